"""helpers.retrieval on hand-counted examples."""

import numpy as np
import pytest

from helpers import retrieval

# Rows: texts, columns: videos; text i belongs to video i.
SIM = np.array([[0.9, 0.1, 0.5],
                [0.8, 0.7, 0.9],
                [0.2, 0.3, 0.1]])


def test_similarity_is_the_dot_product():
    text = np.array([[1.0, 2.0], [0.0, -1.0]])
    vid = np.array([[3.0, 1.0], [1.0, 1.0], [0.5, 0.0]])
    np.testing.assert_allclose(retrieval.similarity(text, vid), [[5, 3, 0.5], [-1, -1, 0]])
    with pytest.raises(ValueError, match="sizes differ"):
        retrieval.similarity(text, np.ones((2, 3)))


def test_text_to_video_ranks_counted_by_hand():
    # text 0: 0.9 beats 0.1 and 0.5 -> 1; text 1: 0.8 and 0.9 beat 0.7 -> 3;
    # text 2: 0.2 and 0.3 beat 0.1 -> 3
    assert retrieval.ranks(SIM).tolist() == [1, 3, 3]
    result = retrieval.metrics(SIM)
    assert result["R@1"] == pytest.approx(100 / 3)
    assert result["R@5"] == result["R@10"] == 100.0
    assert result["MedR"] == 3.0


def test_video_to_text_ranks_counted_by_hand():
    # video 0: column [0.9, 0.8, 0.2] -> 1; video 1: [0.1, 0.7, 0.3] -> 1; video 2: [0.5, 0.9, 0.1] -> 3
    assert retrieval.ranks(SIM, "video_to_text").tolist() == [1, 1, 3]
    both = retrieval.both_directions(SIM)
    assert both["video_to_text"]["R@1"] == pytest.approx(200 / 3)
    assert both["video_to_text"]["MedR"] == 1.0
    assert both["text_to_video"] == retrieval.metrics(SIM)


def test_ties_count_against_the_query():
    flat = np.ones((4, 4))
    assert retrieval.ranks(flat).tolist() == [4, 4, 4, 4]
    assert retrieval.metrics(flat)["R@1"] == 0.0
    one_tie = np.array([[0.5, 0.5], [0.1, 0.9]])
    assert retrieval.ranks(one_tie).tolist() == [2, 1]


def test_several_captions_per_video():
    # texts 0, 1 describe video 0; texts 2, 3 describe video 1.
    sim = np.array([[0.9, 0.85],
                    [0.1, 0.3],
                    [0.4, 0.8],
                    [0.6, 0.5]])
    owner = [0, 0, 1, 1]
    assert retrieval.ranks(sim, "text_to_video", owner).tolist() == [1, 2, 1, 2]
    # video 0: best own caption 0.9, nothing else >= 0.9 -> 1.
    # video 1: best own caption 0.8 (text 2), text 0 scores 0.85 -> 2.
    assert retrieval.ranks(sim, "video_to_text", owner).tolist() == [1, 2]
    assert retrieval.metrics(sim, "video_to_text", owner)["R@1"] == 50.0


def test_recall_and_median_on_a_longer_list():
    rank_values = np.array([1, 2, 6, 11, 4, 30, 1])
    assert retrieval.recall_at_k(rank_values, 1) == pytest.approx(100 * 2 / 7)
    assert retrieval.recall_at_k(rank_values, 5) == pytest.approx(100 * 4 / 7)
    assert retrieval.recall_at_k(rank_values, 10) == pytest.approx(100 * 5 / 7)
    assert float(np.median(rank_values)) == 4.0
    with pytest.raises(ValueError):
        retrieval.recall_at_k([], 1)


def test_bad_ground_truth_is_refused():
    with pytest.raises(ValueError, match="not square"):
        retrieval.ranks(np.ones((2, 3)))
    with pytest.raises(ValueError, match="indexes videos"):
        retrieval.ranks(np.ones((2, 3)), text_to_video=[0, 3])
    with pytest.raises(ValueError, match="direction"):
        retrieval.ranks(SIM, "sideways")


def test_top_k_and_zero_shot():
    indices, scores = retrieval.top_k(SIM, k=2)
    assert indices.tolist() == [[0, 2], [2, 0], [1, 0]]
    np.testing.assert_allclose(scores, [[0.9, 0.5], [0.9, 0.8], [0.3, 0.2]])
    indices, _ = retrieval.top_k(SIM, k=5, axis=0)  # k is capped at the gallery size
    assert indices.tolist() == [[0, 1, 2], [1, 2, 0], [1, 0, 2]]
    # classes x videos: video 0 -> class 0, video 1 -> class 1 (0.7), video 2 -> class 1 (0.9)
    assert retrieval.zero_shot_accuracy(SIM, [0, 1, 2]) == pytest.approx(200 / 3)


def test_format_metrics_says_percent():
    text = retrieval.format_metrics(retrieval.both_directions(SIM))
    assert "percent" in text and "text_to_video" in text and "33.3" in text


def test_retrieval_grid_marks_the_right_item():
    from helpers import plots

    indices, scores = retrieval.top_k(SIM, k=2)
    thumbnails = np.random.default_rng(0).random((3, 8, 8, 3))
    fig = plots.retrieval_grid(["q0", "q1", "q2"], indices, scores, thumbnails,
                               item_names=["a", "b", "c"], correct=[0, 1, 2])
    axes = fig.axes
    assert len(axes) == 6
    assert axes[0].get_title() == "1. a\n0.90"  # query 0's best is its own video
    green = [ax.spines["top"].get_edgecolor() for ax in axes]
    import matplotlib.colors as mcolors

    is_green = [mcolors.same_color(c, "tab:green") for c in green]
    # Top 2 per query: [0, 2], [2, 0], [1, 0]; only query 0 finds its own video (0) among them.
    assert is_green == [True, False, False, False, False, False]


def test_animations_html_embeds_one_gif_per_clip():
    import base64
    import re

    from helpers import plots

    clips = np.random.default_rng(1).random((2, 4, 8, 8, 3)).astype(np.float32)
    html = plots.animations_html(clips, titles=["<one>", "two"], fps=5, width=64)
    payloads = re.findall(r'src="data:image/gif;base64,([^"]+)"', html)
    assert len(payloads) == 2
    assert all(base64.b64decode(p)[:6] == b"GIF89a" for p in payloads)
    assert "&lt;one&gt;" in html and 'width="64"' in html


def test_animations_html_carries_the_standin_label_unless_told_no_model_chose_the_clips():
    from helpers import config, plots

    clips = np.zeros((1, 2, 8, 8, 3), np.float32)
    label = config.standin_label({"milnce": "tiny"})
    assert label  # tiny mode has a label to show
    labelled = plots.animations_html(clips, standin={"milnce": "tiny"})
    assert label.upper() in labelled and labelled.index(label.upper()) < labelled.index("<figure")
    assert label.upper() not in plots.animations_html(clips, standin=False)
    assert label.upper() not in plots.animations_html(clips, standin={"milnce": "real"})
