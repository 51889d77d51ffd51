"""Mode switch, cache folders and download hosts: the one place that reads the environment.

Modes
-----
``real``
    Official models and data, downloaded from their hosts (and cached).
``tiny``
    Generated stand-ins in the official formats, with small inputs. Numbers made in this
    mode are random and mean nothing; notebooks show a loud banner.
``auto`` (default)
    Per resource: ``real`` when it is already cached or its host answers, else ``tiny``.

Environment variables (read here and nowhere else)
--------------------------------------------------
``COURSE_MODE``       ``auto`` | ``real`` | ``tiny``
``COURSE_CACHE_DIR``  cache root (default ``$XDG_CACHE_HOME/video-text-course`` or
                      ``~/.cache/video-text-course``); real and tiny files live in separate
                      sub-folders, so tiny mode never writes into a real cache.
``COURSE_DATA_DIR``   where generated tiny-mode data (clips, mini-UCF101) goes (default
                      ``data/generated`` in a checkout of the course, else ``<cache root>/data``).
``COURSE_BASE_URLS``  ``key=url,key=url`` overrides of :data:`BASE_URLS` (for the test
                      suite's local HTTP server; users never need it).

JAX's own ``JAX_COMPILATION_CACHE_DIR`` (and its other ``JAX_*`` cache settings) are only given
defaults here (:func:`use_jax_compilation_cache`); a value the user set wins.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

ENV_MODE = "COURSE_MODE"
ENV_CACHE_DIR = "COURSE_CACHE_DIR"
ENV_BASE_URLS = "COURSE_BASE_URLS"
ENV_DATA_DIR = "COURSE_DATA_DIR"

MODES = ("auto", "real", "tiny")

#: Hosts of everything the course downloads. Registry entries name a key and a path below it.
BASE_URLS = {
    # TF-Hub handles (tfhub.dev now redirects to Kaggle Models).
    "tfhub": "https://tfhub.dev",
    # MMV checkpoints (CC BY-NC 4.0).
    "mmv": "https://storage.googleapis.com/deepmind-research-mmv",
    # UCF101 videos as one flat zip (the mirror tensorflow_datasets uses).
    "ucf101_videos": "https://storage.googleapis.com/thumos14_files",
    # UCF101 official split files.
    "ucf101_splits": "https://www.crcv.ucf.edu/data/UCF101",
    # Sample GIFs of the official MIL-NCE colab, and more openly licensed clips.
    "wikimedia": "https://upload.wikimedia.org/wikipedia/commons",
}

_overrides: dict[str, str] = {}
_resolved: dict[str, str] = {}
_reachable: dict[str, bool] = {}


class ConfigError(ValueError):
    """A setting has a value the course cannot use."""


def requested_mode() -> str:
    """The mode asked for in ``COURSE_MODE`` (default ``auto``)."""
    mode = os.environ.get(ENV_MODE, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ConfigError(f"{ENV_MODE}={mode!r} is not one of {', '.join(MODES)}")
    return mode


def set_mode(mode: str) -> None:
    """Switch the mode for this process (e.g. from a notebook cell) and forget earlier choices."""
    if mode not in MODES:
        raise ConfigError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    os.environ[ENV_MODE] = mode
    _resolved.clear()


def cache_root() -> Path:
    """The folder under which every cache of the course lives."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "video-text-course"


#: JAX's persistent compilation cache: where, and its settings (JAX's names, as environment
#: variables). Every compilation is kept, even the many small ones of an eagerly run Haiku
#: ``init`` (JAX's default keeps only those over 1 s): notebook 03 on 2 CPU cores took 41 s
#: the first time and 24 s once they were cached. A size limit turns on JAX's LRU eviction, which
#: also puts every read and write of the cache under a file lock, so two processes sharing it
#: (a notebook and a command it starts, the test suite's two workers) never read a half-written
#: entry. The cache is keyed by JAX itself (program, JAX and jaxlib versions, device, options).
JAX_CACHE_SETTINGS = {
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_COMPILATION_CACHE_MAX_SIZE": str(2 * 1024 ** 3),
}


def use_jax_compilation_cache() -> None:
    """Point JAX's persistent compilation cache at ``<cache root>/jax-compilation``, so a rerun
    of a notebook or a command reuses what an earlier run compiled (see :data:`JAX_CACHE_SETTINGS`).

    Called when ``helpers`` is imported. Before JAX is imported this only sets environment
    variables, which JAX reads when it is imported (and which commands started from here
    inherit); if JAX is already imported, its settings are updated, unless the user set them.
    Nothing here imports JAX.
    """
    import sys

    settings = {"JAX_COMPILATION_CACHE_DIR": str(cache_root() / "jax-compilation"),
                **JAX_CACHE_SETTINGS}
    jax = sys.modules.get("jax")
    for name, value in settings.items():
        if name in os.environ:
            continue
        os.environ[name] = value
        if jax is not None and hasattr(jax, "config"):
            option = name.lower()
            kind = type(getattr(jax.config, option, None))
            jax.config.update(option, kind(value) if kind in (int, float) else value)


def cache_dir(mode: str, *parts: str) -> Path:
    """``<cache root>/<mode>/<parts...>``, created. ``mode`` is ``real`` or ``tiny``."""
    if mode not in ("real", "tiny"):
        raise ConfigError(f"cache_dir needs a resolved mode ('real' or 'tiny'), got {mode!r}")
    path = cache_root().joinpath(mode, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(*parts: str) -> Path:
    """Folder for generated tiny-mode data (``COURSE_DATA_DIR``), created."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        base = Path(env).expanduser()
    else:
        checkout_data = Path(__file__).resolve().parent.parent / "data"
        base = checkout_data / "generated" if checkout_data.is_dir() else cache_root() / "data"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def tfhub_cache_dir(mode: str) -> Path:
    """The TF-Hub cache for ``mode``, also exported as ``TFHUB_CACHE_DIR``.

    tensorflow_hub reads ``TFHUB_CACHE_DIR`` each time it resolves a handle, so setting it here
    keeps downloads across sessions (its default is a temporary folder) and keeps tiny
    stand-ins out of the real cache.
    """
    path = cache_dir(mode, "tfhub_modules")
    os.environ["TFHUB_CACHE_DIR"] = str(path)
    return path


def _parse_env_overrides() -> dict[str, str]:
    raw = os.environ.get(ENV_BASE_URLS, "").strip()
    out: dict[str, str] = {}
    if not raw:
        return out
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{ENV_BASE_URLS} entry {item!r} is not of the form key=url")
        if key.strip() not in BASE_URLS:  # a misspelt key would silently leave the real host
            raise ConfigError(f"{ENV_BASE_URLS} names {key.strip()!r}, which is not a base URL "
                              f"key; known: {', '.join(sorted(BASE_URLS))}")
        out[key.strip()] = value.strip()
    return out


def base_url(key: str) -> str:
    """The base URL for ``key`` after overrides (no trailing slash)."""
    for source in (_overrides, _parse_env_overrides(), BASE_URLS):
        if key in source:
            return source[key].rstrip("/")
    raise ConfigError(f"no base URL is registered under {key!r}; known: {', '.join(sorted(BASE_URLS))}")


def url(key: str, path: str = "") -> str:
    """Join ``base_url(key)`` and ``path``."""
    base = base_url(key)
    return f"{base}/{path.lstrip('/')}" if path else base


def set_base_url(key: str, value: str | None) -> None:
    """Override (or with ``None`` restore) one base URL for this process."""
    if key not in BASE_URLS:
        raise ConfigError(f"no base URL is registered under {key!r}; known: {', '.join(sorted(BASE_URLS))}")
    if value is None:
        _overrides.pop(key, None)
    else:
        _overrides[key] = value
    _reachable.clear()


def reachable(target_url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``target_url`` accepts a TCP connection (answer cached per host)."""
    parts = urllib.parse.urlsplit(target_url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = f"{parts.hostname}:{port}"
    if key not in _reachable:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                _reachable[key] = True
        except OSError:
            _reachable[key] = False
    return _reachable[key]


def resolve(resource: str, *, is_cached: bool, probe_url: str) -> str:
    """Decide ``real`` or ``tiny`` for one resource, remembering the answer for this process.

    ``is_cached``: whether the real resource is already in the real cache.
    ``probe_url``: a URL on the resource's host, tried only in ``auto`` mode when not cached.
    """
    mode = requested_mode()
    if mode == "auto":
        if resource in _resolved:
            return _resolved[resource]
        mode = "real" if is_cached or reachable(probe_url) else "tiny"
    _resolved[resource] = mode
    return mode


#: What each resource's stand-in is, for labels (the default says "random weights").
_standin_notes: dict[str, str] = {}
DEFAULT_STANDIN_NOTE = "tiny stand-in: random weights"


def set_standin_note(resource: str, note: str) -> None:
    """Say what ``resource``'s stand-in is (e.g. a small model trained here), for every label."""
    _standin_notes[resource] = note


def standin_label(resources=None) -> str:
    """The label every number or figure made from stand-ins carries; ``""`` when none is used.

    ``resources``: names of the resources the result was made from, or a dict name -> mode (as
    the notebooks keep); by default every resource this process has resolved to tiny.
    """
    if resources is None:
        tiny = tiny_resources()
    elif isinstance(resources, dict):
        tiny = [name for name, mode in resources.items() if mode == "tiny"]
    else:
        tiny = [name for name in ([resources] if isinstance(resources, str) else resources)
                if _resolved.get(name) == "tiny"]
    notes = list(dict.fromkeys(_standin_notes.get(name, DEFAULT_STANDIN_NOTE) for name in tiny))
    return "; ".join(notes)


def tiny_resources() -> list[str]:
    """Resources this process has resolved to tiny stand-ins, in the order they were resolved."""
    return [name for name, mode in _resolved.items() if mode == "tiny"]
