"""Every figure and metric table made from a stand-in says so, from the resolved mode."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from helpers import config, plots, retrieval


@pytest.fixture
def fresh_modes(monkeypatch):
    monkeypatch.setattr(config, "_resolved", {})
    monkeypatch.setattr(config, "_standin_notes", {})
    return config._resolved


def test_no_label_when_every_resource_is_real(fresh_modes):
    fresh_modes["milnce"] = "real"
    assert config.standin_label() == ""
    fig = plots.heatmap(np.eye(2), ["a", "b"], ["c", "d"])
    assert not hasattr(fig, "standin_label")
    assert not retrieval.format_metrics({"t2v": {"R@1": 1.0}}).startswith("[")


def test_default_label_and_a_resource_note(fresh_modes):
    fresh_modes.update({"milnce": "tiny", "mmv_s3d": "tiny", "ucf101": "real"})
    assert config.standin_label() == config.DEFAULT_STANDIN_NOTE
    config.set_standin_note("milnce", "tiny stand-in: a small model trained here")
    assert config.standin_label(["milnce"]) == "tiny stand-in: a small model trained here"
    assert config.standin_label({"ucf101": "real"}) == ""
    assert config.standin_label(["ucf101"]) == ""
    assert "random weights" in config.standin_label(["mmv_s3d"])


def test_figures_and_tables_carry_the_label(fresh_modes):
    fresh_modes["milnce"] = "tiny"
    fig = plots.heatmap(np.eye(2), ["a", "b"], ["c", "d"], title="similarities")
    texts = [t.get_text() for t in fig.texts]
    assert config.DEFAULT_STANDIN_NOTE.upper() in texts
    table = retrieval.format_metrics({"t2v": {"R@1": 1.0}}, title="recalls")
    assert table.splitlines()[0] == f"[{config.DEFAULT_STANDIN_NOTE.upper()}]"
    # A picture that shows no model output can opt out.
    assert not plots.heatmap(np.eye(2), ["a", "b"], ["c", "d"], standin=False).texts
