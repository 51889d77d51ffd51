"""dev.py's helpers for the browser check: what it takes over from ``dev.py test``'s cache."""

import dev


def test_browser_check_copies_the_test_cache_but_shares_jax_compilations(tmp_path, monkeypatch):
    monkeypatch.setattr(dev, "BUILD", tmp_path)
    source = tmp_path / "test-cache"
    (source / "data" / "mini").mkdir(parents=True)
    (source / "data" / "mini" / ".mini_ucf101.json").write_text("{}")   # a marker: copied
    (source / "data" / "clip.avi").write_bytes(b"x")
    (source / "data" / "clip.avi.lock").write_text("")                 # a lock: left behind
    (source / "data" / ".tmp-half").write_bytes(b"half")               # a partial write: left
    (source / "jax-compilation").mkdir()
    (source / "jax-compilation" / "jit_f-abc-cache").write_bytes(b"compiled")

    dest = tmp_path / "browser-cache"
    assert dev.reuse_test_cache(dest)
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == ["data/clip.avi", "data/mini/.mini_ucf101.json"]
    # JAX's key holds the folder's path: the browser check uses the test run's folder itself.
    assert dev.jax_cache_env() == {"JAX_COMPILATION_CACHE_DIR": str(source / "jax-compilation")}


def test_no_test_cache_means_nothing_to_reuse(tmp_path, monkeypatch):
    monkeypatch.setattr(dev, "BUILD", tmp_path)
    assert not dev.reuse_test_cache(tmp_path / "browser-cache")
    assert dev.jax_cache_env() == {}
