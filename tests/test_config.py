"""helpers.config: the mode switch, cache folders and base URLs."""

import socket
import threading

import pytest

from helpers import config


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    config._resolved.clear()
    config._reachable.clear()
    config._overrides.clear()
    yield
    config._resolved.clear()
    config._reachable.clear()
    config._overrides.clear()


def test_mode_defaults_to_auto_and_rejects_typos(monkeypatch):
    monkeypatch.delenv("COURSE_MODE", raising=False)
    assert config.requested_mode() == "auto"
    monkeypatch.setenv("COURSE_MODE", " Tiny ")
    assert config.requested_mode() == "tiny"
    monkeypatch.setenv("COURSE_MODE", "fast")
    with pytest.raises(config.ConfigError, match="COURSE_MODE='fast'"):
        config.requested_mode()


def test_explicit_modes_win_over_cache_and_network(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "tiny")
    assert config.resolve("m", is_cached=True, probe_url="http://127.0.0.1:9/") == "tiny"
    monkeypatch.setenv("COURSE_MODE", "real")
    assert config.resolve("m", is_cached=False, probe_url="http://127.0.0.1:9/") == "real"


def _closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_auto_uses_real_when_cached_and_tiny_when_unreachable(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "auto")
    dead = f"http://127.0.0.1:{_closed_port()}/x"
    assert config.resolve("cached-thing", is_cached=True, probe_url=dead) == "real"
    assert config.resolve("missing-thing", is_cached=False, probe_url=dead) == "tiny"
    assert config.tiny_resources() == ["missing-thing"]


def test_auto_uses_real_when_the_host_answers(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "auto")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepter = threading.Thread(target=lambda: server.accept()[0].close(), daemon=True)
    accepter.start()
    try:
        assert config.resolve("remote", is_cached=False, probe_url=f"http://127.0.0.1:{port}/") == "real"
    finally:
        accepter.join(timeout=5)
        server.close()


def test_set_mode_forgets_earlier_choices(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "tiny")
    config.resolve("a", is_cached=False, probe_url="http://x/")
    config.set_mode("real")
    assert config.tiny_resources() == []
    assert config.resolve("a", is_cached=False, probe_url="http://x/") == "real"
    with pytest.raises(config.ConfigError):
        config.set_mode("huge")


def test_cache_dirs_keep_real_and_tiny_apart(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    real = config.cache_dir("real", "mmv")
    tiny = config.cache_dir("tiny", "mmv")
    assert real == tmp_path / "real" / "mmv" and real.is_dir()
    assert tiny == tmp_path / "tiny" / "mmv" and tiny.is_dir()
    with pytest.raises(config.ConfigError):
        config.cache_dir("auto")


def test_tfhub_cache_dir_sets_the_hub_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TFHUB_CACHE_DIR", raising=False)
    path = config.tfhub_cache_dir("tiny")
    import os

    assert os.environ["TFHUB_CACHE_DIR"] == str(path) == str(tmp_path / "tiny" / "tfhub_modules")


def test_default_cache_root_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert config.cache_root() == tmp_path / "video-text-course"


def test_base_urls_can_be_overridden_from_env_and_code(monkeypatch):
    assert config.url("mmv", "mmv_s3d.pkl") == \
        "https://storage.googleapis.com/deepmind-research-mmv/mmv_s3d.pkl"
    monkeypatch.setenv("COURSE_BASE_URLS", "mmv=http://127.0.0.1:8000/m/, tfhub=http://127.0.0.1:8000/h")
    assert config.url("mmv", "/mmv_s3d.pkl") == "http://127.0.0.1:8000/m/mmv_s3d.pkl"
    assert config.url("tfhub") == "http://127.0.0.1:8000/h"
    config.set_base_url("mmv", "http://127.0.0.1:9999")
    assert config.url("mmv", "a") == "http://127.0.0.1:9999/a"
    config.set_base_url("mmv", None)
    assert config.url("mmv", "a") == "http://127.0.0.1:8000/m/a"
    monkeypatch.setenv("COURSE_BASE_URLS", "mmv")
    with pytest.raises(config.ConfigError, match="key=url"):
        config.url("mmv")
    with pytest.raises(config.ConfigError, match="no base URL"):
        config.set_base_url("nope", "http://x")


def test_data_dir_is_configurable(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "d"))
    assert config.data_dir("ucf") == tmp_path / "d" / "ucf"
    assert (tmp_path / "d" / "ucf").is_dir()


_COMPILE_TWICE = """
import time
import helpers, jax, jax.numpy as jnp
import numpy as np
x = jnp.ones((64, 64))
f = jax.jit(lambda a: jnp.tanh(a @ a.T).sum() * 3.0)
print(float(f(x)))
"""


def _run_python(code, env):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def test_jax_compilations_are_cached_under_the_cache_root_and_reused(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["COURSE_CACHE_DIR"] = str(tmp_path / "cache")
    first = _run_python(_COMPILE_TWICE, env)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "cache" / "jax-compilation"
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert entries, "nothing was written to the compilation cache"
    # A second process finds the entry (JAX logs a cache hit at DEBUG) and computes the same.
    second = _run_python("import logging; logging.basicConfig(level=logging.DEBUG)\n"
                         + _COMPILE_TWICE, env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert "Persistent compilation cache hit" in second.stderr
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == entries


def test_a_compilation_cache_the_user_chose_wins(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["COURSE_CACHE_DIR"] = str(tmp_path / "cache")
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "mine")
    # jax imported before helpers: the settings are updated in place, the user's folder kept.
    code = "import jax\n" + _COMPILE_TWICE.replace("import helpers, jax", "import helpers") + (
        "print(jax.config.jax_persistent_cache_min_compile_time_secs)\n")
    done = _run_python(code, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "0.0"
    assert any((tmp_path / "mine").iterdir())
    assert not (tmp_path / "cache" / "jax-compilation").exists()
