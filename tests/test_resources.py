"""helpers.resources: the one place that decides real vs stand-in, under a lock per artefact."""

import pytest

from helpers import config, resources


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(resources, "_registry", dict(resources._registry))
    monkeypatch.setattr(config, "_resolved", {})


def test_every_course_artefact_is_registered():
    import helpers.milnce  # noqa: F401  (importing a model module registers its artefacts)
    import helpers.mmv  # noqa: F401
    import helpers.ucf101  # noqa: F401

    names = set(resources._registry)
    assert {"mmv_s3d", "mmv_tsm_resnet_x1", "mmv_tsm_resnet_x2", "ucf101"} <= names
    assert {helpers.milnce.RESOURCE, helpers.milnce.GALLERY_RESOURCE} <= names


def test_real_goes_through_the_registered_fetch_under_a_lock(fresh, tmp_path):
    calls = []

    def fetch(**options):
        calls.append(options)
        return tmp_path / "artefact.bin"

    resources.register("demo", "mmv", is_cached=lambda: True, probe_url=lambda: "http://x",
                       fetch=fetch)
    assert resources.path("demo", "real", size=3) == tmp_path / "artefact.bin"
    assert calls == [{"size": 3}]
    assert (config.cache_dir("real", "locks") / "demo.lock").exists()


def test_mode_asks_the_registered_probes(fresh, monkeypatch):
    seen = {}
    resources.register("probe demo", "ucf101", is_cached=lambda **o: seen.setdefault("cached", o) == {},
                       probe_url=lambda **o: "http://127.0.0.1:9/", fetch=lambda **o: None)
    monkeypatch.setenv("COURSE_MODE", "auto")
    assert resources.mode("probe demo") == "real"  # cached: real without asking the network
    assert seen["cached"] == {}


def test_unknown_names_kinds_and_modes_are_clear_errors(fresh):
    with pytest.raises(KeyError, match="unknown artefact 'nothing'"):
        resources.mode("nothing")
    with pytest.raises(ValueError, match="stand-in kind"):
        resources.register("x", "pictures", is_cached=bool, probe_url=str, fetch=str)
    resources.register("x", "mmv", is_cached=bool, probe_url=str, fetch=str)
    with pytest.raises(config.ConfigError, match="mode must be"):
        resources.path("x", "sometimes")
