"""Pictures the lessons show: frame grids, heatmaps, confusion matrices.

Every function returns the matplotlib Figure (so notebooks display it and tests can inspect it).
matplotlib is imported on first use, not at ``import helpers``.
"""

from __future__ import annotations

import functools

import numpy as np

from helpers import config


def _plt():
    import matplotlib.pyplot as plt

    return plt


def standin_labelled(function):
    """Stamp the stand-in label (:func:`helpers.config.standin_label`) on the returned figure.

    The label comes from the resolved mode, so no notebook cell can forget it. Callers may pass
    ``standin=`` (resource names, a name -> mode dict, or ``False`` for pictures that show no
    model output); by default every resource resolved to tiny in this process counts.
    """
    @functools.wraps(function)
    def wrapper(*args, standin=None, **kwargs):
        return stamp(function(*args, **kwargs), standin)

    return wrapper


def stamp(fig, standin=None):
    """Put the stand-in label on ``fig`` (a figure a notebook drew itself); return ``fig``.

    ``standin`` as for :func:`standin_labelled`. Sets ``fig.standin_label`` when it stamps.
    """
    label = "" if standin is False else config.standin_label(standin)
    if label and fig is not None:
        fig.text(0.5, 1.0, label.upper(), ha="center", va="bottom", color="#b00000",
                 fontsize=10, fontweight="bold")
        fig.standin_label = label
    return fig


def _as_display(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0.0, 1.0)
    return frame


@standin_labelled
def frame_grid(frames, ncols: int = 8, titles=None, title: str | None = None, size: float = 1.6):
    """Show frames ``[N, H, W, 3]`` (uint8, or float in [0, 1]) in a grid."""
    frames = list(frames)
    if not frames:
        raise ValueError("frame_grid needs at least one frame")
    ncols = max(1, min(ncols, len(frames)))
    nrows = -(-len(frames) // ncols)
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(frames):
            ax.imshow(_as_display(frames[index]))
            if titles is not None:
                ax.set_title(str(titles[index]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@standin_labelled
def heatmap(matrix, row_labels, col_labels, title: str | None = None, fmt: str = "{:.2f}",
            cmap: str = "viridis", xlabel: str | None = None, ylabel: str | None = None):
    """Annotated heatmap of a small matrix (e.g. text-video similarities)."""
    matrix = np.asarray(matrix, dtype=float)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * matrix.shape[1], 1.0 + 0.6 * matrix.shape[0]))
    image = ax.imshow(matrix, cmap=cmap)
    ax.set_xticks(range(matrix.shape[1]), labels=[str(c) for c in col_labels], rotation=45,
                  ha="right")
    ax.set_yticks(range(matrix.shape[0]), labels=[str(r) for r in row_labels])
    if matrix.size <= 400:
        mid = (np.nanmax(matrix) + np.nanmin(matrix)) / 2
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8,
                    color="black" if value > mid else "white")
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


@standin_labelled
def confusion_matrix(labels_true, labels_pred, class_names, normalize: bool = True,
                     title: str | None = None):
    """Confusion matrix (rows: true class, columns: predicted), row-normalised by default."""
    labels_true = np.asarray(labels_true)
    labels_pred = np.asarray(labels_pred)
    n = len(class_names)
    counts = np.zeros((n, n), dtype=float)
    np.add.at(counts, (labels_true, labels_pred), 1)
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    plt = _plt()
    side = min(12.0, 2.0 + 0.35 * n)
    fig, ax = plt.subplots(figsize=(side, side))
    image = ax.imshow(values, cmap="Blues", vmin=0)
    ticks = range(n)
    show_names = n <= 40
    ax.set_xticks(ticks, labels=class_names if show_names else [""] * n, rotation=90)
    ax.set_yticks(ticks, labels=class_names if show_names else [""] * n)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 15:
        for (i, j), value in np.ndenumerate(values):
            if value:
                ax.text(j, i, f"{value:.2f}" if normalize else f"{int(value)}", ha="center",
                        va="center", fontsize=8, color="white" if value > values.max() / 2 else "black")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


# --- mmv ---


def space_to_depth(clip, step: int = 0, patch: int = 4, corner=None):
    """Draw S3D-G's space-to-depth step on one clip ``[T, H, W, 3]`` (uint8, or float in [0, 1]).

    Top row: input frames ``2*step`` and ``2*step + 1`` and a ``patch`` x ``patch`` pixel square of
    each (at ``corner`` = (row, column), default: where the first frame has most detail), every
    pixel labelled with the packed group ``k = (dt * 2 + dh) * 2 + dw`` it goes to.
    Lower rows: the eight groups of output step ``step``, i.e. channels ``3k .. 3k+2`` of the
    ``[H/2, W/2, 24]`` result shown as RGB images at half the resolution. Needs even T, H, W.
    """
    clip = np.asarray(clip)
    clip = clip.astype(np.float32) / 255.0 if clip.dtype == np.uint8 else np.clip(clip, 0.0, 1.0)
    frames, height, width, channels = clip.shape
    if frames % 2 or height % 2 or width % 2 or channels != 3:
        raise ValueError(f"space_to_depth needs a clip [T, H, W, 3] with even T, H, W; "
                         f"got {clip.shape}")
    if not 0 <= step < frames // 2:
        raise ValueError(f"step must be in [0, {frames // 2}), got {step}")
    pair = clip[2 * step:2 * step + 2]
    if corner is None:  # the even-aligned spot with the strongest edges, so the zoom shows something
        detail = np.abs(np.diff(pair[0].mean(-1), axis=0))[:, :-1] + \
            np.abs(np.diff(pair[0].mean(-1), axis=1))[:-1, :]
        row, col = np.unravel_index(np.argmax(detail), detail.shape)
        corner = (int(min(max(row - patch // 2, 0), height - patch)) // 2 * 2,
                  int(min(max(col - patch // 2, 0), width - patch)) // 2 * 2)
    top, left = corner
    if top % 2 or left % 2:
        raise ValueError(f"corner must have even coordinates (2x2 blocks start there), got {corner}")
    # [2, H/2, 2, W/2, 2, 3] -> [H/2, W/2, (dt, dh, dw), 3]: group k holds pixels (2h+dh, 2w+dw).
    groups = pair.reshape(2, height // 2, 2, width // 2, 2, 3).transpose(1, 3, 0, 2, 4, 5)
    groups = groups.reshape(height // 2, width // 2, 8, 3)

    plt = _plt()
    fig = plt.figure(figsize=(12, 8.4))
    grid = fig.add_gridspec(3, 4, height_ratios=(1.1, 1, 1))
    for dt in range(2):
        ax = fig.add_subplot(grid[0, dt])
        ax.imshow(pair[dt])
        ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), patch, patch, fill=False, color="white",
                                   lw=1.5))
        ax.set_title(f"input frame {2 * step + dt} (dt={dt})", fontsize=9)
        ax.axis("off")
        zoom = fig.add_subplot(grid[0, 2 + dt])
        zoom.imshow(pair[dt, top:top + patch, left:left + patch], interpolation="nearest")
        for i in range(patch):
            for j in range(patch):
                k = (dt * 2 + i % 2) * 2 + j % 2
                zoom.text(j, i, str(k), ha="center", va="center", fontsize=10, color="white",
                          bbox=dict(boxstyle="round,pad=0.15", fc="black", alpha=0.45, lw=0))
        for edge in range(0, patch + 1, 2):  # 2x2 blocks become one output position
            zoom.axhline(edge - 0.5, color="white", lw=1.5)
            zoom.axvline(edge - 0.5, color="white", lw=1.5)
        zoom.set_title(f"{patch}x{patch} pixels at ({top}, {left}) of frame {2 * step + dt}:\n"
                       "number = group k the pixel goes to", fontsize=9)
        zoom.set_xticks([])
        zoom.set_yticks([])
    for k in range(8):
        dt, dh, dw = k // 4, (k // 2) % 2, k % 2
        ax = fig.add_subplot(grid[1 + k // 4, k % 4])
        ax.imshow(groups[:, :, k])
        ax.set_title(f"group {k}: channels {3 * k}-{3 * k + 2}\n(dt={dt}, dh={dh}, dw={dw})",
                     fontsize=9)
        ax.axis("off")
    fig.suptitle(f"Space-to-depth: frames {2 * step}-{2 * step + 1} ({height}x{width}x3 each) "
                 f"-> one step of {height // 2}x{width // 2}x24")
    fig.tight_layout()
    return fig

# --- milnce: retrieval results and clip animations ---

@standin_labelled
def retrieval_grid(queries, indices, scores, thumbnails, item_names=None, correct=None,
                   size: float = 1.9, title: str | None = None):
    """Top-k results per query: one row per query, its k best items left to right.

    ``indices`` / ``scores``: ``[Nq, k]`` from :func:`helpers.retrieval.top_k`. ``thumbnails``:
    one frame per gallery item (``[H, W, 3]`` uint8 or float in [0, 1]). ``correct``: optional
    index of the right item per query; its cell gets a green frame, others red.
    """
    indices = np.asarray(indices)
    scores = np.asarray(scores)
    nq, k = indices.shape
    plt = _plt()
    fig, axes = plt.subplots(nq, k, figsize=(size * k + 1.6, size * nq), squeeze=False)
    for i in range(nq):
        for r in range(k):
            ax = axes[i, r]
            item = int(indices[i, r])
            ax.imshow(_as_display(thumbnails[item]))
            ax.set_xticks([])
            ax.set_yticks([])
            name = item_names[item] if item_names is not None else f"#{item}"
            ax.set_title(f"{r + 1}. {name}\n{scores[i, r]:.2f}", fontsize=7)
            if correct is not None:
                colour = "tab:green" if item == correct[i] else "tab:red"
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(3)
            if r == 0:
                ax.set_ylabel(str(queries[i]), fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def animations_html(clips, titles=None, fps: float = 8.0, width: int = 128,
                    standin=None) -> str:
    """HTML showing clips (``[T, H, W, 3]``, uint8 or float in [0, 1]) as looping GIFs side by side.

    Display it with ``IPython.display.HTML(...)``. The GIFs are embedded (base64), so keep
    clips small (a few dozen frames at 112-224 pixels). ``standin`` as for the figures
    (:func:`standin_labelled`): the stand-in label heads the row when a stand-in chose the clips;
    ``False`` for clips no model picked.
    """
    import base64
    import html

    from helpers import video

    cells = []
    for index, clip in enumerate(clips):
        data = base64.b64encode(video.to_gif_bytes(np.asarray(clip), fps=fps)).decode("ascii")
        caption = html.escape(str(titles[index])) if titles is not None else str(index)
        cells.append(
            # The figure is as wide as its clip, so a long caption wraps under it instead of
            # running into its neighbour's; rows of clips line up at the top.
            f'<figure style="display:inline-block;vertical-align:top;width:{width}px;'
            'margin:4px;text-align:center">'
            f'<img src="data:image/gif;base64,{data}" width="{width}">'
            '<figcaption style="font-size:0.8em;overflow-wrap:anywhere">'
            f'{caption}</figcaption></figure>')
    label = "" if standin is False else config.standin_label(standin)
    head = (f'<div style="color:#b00000;font-weight:bold">{html.escape(label.upper())}</div>'
            if label else "")
    return "<div>" + head + "".join(cells) + "</div>"


# --- ucf101 linear evaluation (notebook 04) ---


def protocol_timeline(num_frames: int, test_windows, train_clips=None, fps: float = 25.0,
                      title: str | None = None):
    """Where the protocol's clips fall in one video, on a frame axis.

    ``num_frames``: the video's length L. ``test_windows``: ``[W, T]`` frame indices of the
    test windows; ``train_clips``: optional ``[P, T]`` indices of training clips. Each clip is
    one row of dots; a frame reached by looping past the end (the clip wrapped around) is drawn
    as a cross, so short videos show their repetition.
    """
    test_windows = np.atleast_2d(np.asarray(test_windows))
    rows = [("test", i, w) for i, w in enumerate(test_windows)]
    if train_clips is not None:
        rows += [("train", i, c) for i, c in enumerate(np.atleast_2d(np.asarray(train_clips)))]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.28 * len(rows)))
    ax.axvspan(-0.5, num_frames - 0.5, color="0.93", zorder=0)
    for row, (kind, index, clip) in enumerate(rows):
        clip = np.asarray(clip)
        # A frame index lower than the one before it means the clip looped to the start.
        wrapped = np.concatenate([[False], np.cumsum(np.diff(clip) < 0) > 0])
        colour = "tab:blue" if kind == "test" else "tab:orange"
        ax.plot([clip[0], clip[~wrapped][-1]], [row, row], color=colour, lw=1, alpha=0.5)
        ax.scatter(clip[~wrapped], np.full((~wrapped).sum(), row), s=9, color=colour, zorder=3)
        if wrapped.any():
            ax.scatter(clip[wrapped], np.full(wrapped.sum(), row), s=16, marker="x",
                       color="tab:red", zorder=3)
    labels = [f"{kind} {'window' if kind == 'test' else 'pass'} {index}"
              for kind, index, _ in rows]
    ax.set_yticks(range(len(rows)), labels=labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-1, num_frames)
    ax.set_xlabel(f"frame (video of {num_frames} frames = {num_frames / fps:.1f} s at {fps:g} fps);"
                  " x = looped past the end")
    ax.set_title(title or "sampled frames of each clip")
    fig.tight_layout()
    return fig


@standin_labelled
def accuracy_sweep(values, accuracies: dict, xlabel: str, title: str | None = None,
                   log_x: bool = False, chance: float | None = None, mark=None):
    """Accuracy (%) against a setting: one line per entry of ``accuracies`` (label -> list).

    ``accuracies`` hold fractions in [0, 1]; ``chance`` draws a dashed line; ``mark`` draws a
    vertical line at the published setting (e.g. C = 0.001).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, ys in accuracies.items():
        ax.plot(values, 100 * np.asarray(ys, dtype=float), marker="o", label=label)
    if chance is not None:
        ax.axhline(100 * chance, color="0.5", ls="--", lw=1, label="chance")
    if mark is not None:
        ax.axvline(mark, color="tab:red", ls=":", lw=1, label="protocol")
    if log_x:
        ax.set_xscale("log")
    elif all(float(v).is_integer() for v in values):  # counts: passes, windows
        ax.set_xticks(list(values))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


@standin_labelled
def per_class_accuracy(class_names, accuracies, title: str | None = None, top: int = 40):
    """Horizontal bars of per-class accuracy (fractions; NaN = no test video), worst first.

    With many classes only the ``top`` worst are drawn.
    """
    accuracies = np.asarray(accuracies, dtype=float)
    order = np.argsort(np.nan_to_num(accuracies, nan=2.0), kind="stable")[:top]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 0.6 + 0.22 * len(order)))
    ax.barh(range(len(order)), 100 * np.nan_to_num(accuracies[order]), color="tab:blue")
    ax.set_yticks(range(len(order)), labels=[str(class_names[i]) for i in order], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("top-1 accuracy (%)")
    ax.set_title(title or "per-class accuracy (worst first)")
    fig.tight_layout()
    return fig
