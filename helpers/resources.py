"""The registry: for every artefact the course uses, real or stand-in, and a local path to it.

==================  =============================================  ================================
stand-in kind       real                                           tiny stand-in (generated once)
==================  =============================================  ================================
``milnce``          the TF-Hub module (``hub.load`` downloads it)  a module, the same signatures
``milnce_gallery``  the official colab's three Wikimedia GIFs      six clips, GIF/MP4/AVI/WebM
``mmv``             DeepMind's checkpoint pickle, per backbone     a pickle, the official tree
                    (``full=True``: every tower; it has them all)  (``full=True``: every tower)
``mmv_hub``         DeepMind's TF-Hub MMV module, per backbone     the course's export of the
                    (``hub.load`` downloads it)                    full stand-in checkpoint
``sound_clips``     (none published: the learner's own files)      four MP4s, sound tied to motion
``ucf101``          UCF101's videos and split files                a mini-UCF101, official layout
==================  =============================================  ================================

This module is the only place that decides between the two (:func:`mode`, through
:func:`helpers.config.resolve`) and the only one that imports the stand-in builders
(``helpers.standins``, and the trained MIL-NCE stand-in of ``helpers.training.standin``). A
model module *registers* how it recognises and fetches its real
artefact (:func:`register`) and asks for a path (:func:`path`); it never imports a builder.
Every build and download runs under the artefact's lock (:func:`helpers.atomic.locked`), so two
processes never write the same file.

Notebook 03's sample clips are the ``milnce_gallery`` artefact (the same GIFs, or generated
clips).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable

from helpers import atomic, config


@dataclasses.dataclass(frozen=True)
class Artefact:
    """How to recognise and fetch one real artefact (registered by its model module).

    ``is_cached(**options)``: is a real copy on disk already (asked without creating anything);
    ``probe_url(**options)``: the address whose reachability makes ``auto`` mode choose real;
    ``fetch(**options)``: download (verified, resumable) and return the local path. ``options``
    are what the caller passes to :func:`mode` / :func:`path` (e.g. a TF-Hub handle).
    """

    name: str
    kind: str
    is_cached: Callable[..., bool]
    probe_url: Callable[..., str]
    fetch: Callable[..., object]


_registry: dict[str, Artefact] = {}
#: The stand-ins this module can build (see :func:`standin`).
STANDIN_KINDS = ("milnce", "milnce_gallery", "mmv", "mmv_hub", "sound_clips", "ucf101")


def register(name: str, kind: str, *, is_cached: Callable[..., bool],
             probe_url: Callable[..., str], fetch: Callable[..., object]) -> None:
    """Register (or replace) how the real ``name`` is found and fetched; ``kind`` names its
    stand-in (one of :data:`STANDIN_KINDS`)."""
    if kind not in STANDIN_KINDS:
        raise ValueError(f"unknown stand-in kind {kind!r}; choose one of {STANDIN_KINDS}")
    _registry[name] = Artefact(name, kind, is_cached, probe_url, fetch)


def _artefact(name: str) -> Artefact:
    if name not in _registry:
        known = ", ".join(sorted(_registry)) or "none yet"
        raise KeyError(f"unknown artefact {name!r}; registered: {known} (import its module, "
                       "e.g. helpers.mmv, first)")
    return _registry[name]


def mode(name: str, **options) -> str:
    """``real`` or ``tiny`` for ``name`` (see :func:`helpers.config.resolve`)."""
    entry = _artefact(name)
    return config.resolve(name, is_cached=entry.is_cached(**options),
                          probe_url=entry.probe_url(**options))


def path(name: str, chosen: str | None = None, **options):
    """The local path of ``name`` in mode ``chosen`` (default :func:`mode`): for the gallery,
    its list of clips; for UCF101, its folders.

    Real: the registered ``fetch(**options)``, under the artefact's lock. Tiny: the stand-in,
    built once under the same kind of lock (``options`` go to the builder, e.g. the TF-Hub
    handle for ``milnce``).
    """
    chosen = chosen or mode(name, **options)
    if chosen == "real":
        with atomic.locked(_lock_path("real", name)):
            return _artefact(name).fetch(**options)
    if chosen != "tiny":
        raise config.ConfigError(f"mode must be 'real' or 'tiny', got {chosen!r}")
    with atomic.locked(_lock_path("tiny", name)):
        return standin(_artefact(name).kind, name, **options)


def _lock_path(chosen: str, name: str) -> Path:
    return config.cache_dir(chosen, "locks") / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def standin(kind: str, name: str, **options):
    """Build (once; later calls find it) the stand-in ``kind`` of artefact ``name``; return
    where it is (for ``mmv``, ``name`` is ``mmv_<backbone>``)."""
    if kind == "milnce":
        # The MIL-NCE stand-in is a small model trained here once per cache (the random
        # builds of helpers.standins.milnce stay for the format tests).
        from helpers.training import standin as trained

        config.set_standin_note(name, trained.NOTE)
        return trained.ensure_trained_in_cache(config.tfhub_cache_dir("tiny"), options["handle"])
    if kind == "milnce_gallery":
        from helpers.standins import clips

        return clips.generate(config.data_dir("milnce_gallery"))
    if kind == "mmv":
        from helpers.standins import mmv

        return mmv.tiny_checkpoint(name.removeprefix("mmv_"), **options)
    if kind == "mmv_hub":
        from helpers.standins import mmv

        config.set_standin_note(name, "tiny stand-in: random weights (exported from the stand-in "
                                "checkpoint)")
        return mmv.tfhub_module(config.tfhub_cache_dir("tiny"), options["handle"],
                                options["backbone"])
    if kind == "sound_clips":
        from helpers.standins import sound_clips

        return sound_clips.clip_paths()
    if kind == "ucf101":
        from helpers.standins import ucf101

        return ucf101.make_mini_ucf101(**options)
    raise KeyError(f"no stand-in of kind {kind!r}")


def built_standin(name: str, **options) -> Path | None:
    """Where the (file) stand-in of ``name`` is if it has been built, else None; builds nothing.
    Tells a copy of the stand-in from a user's own file (only ``mmv`` checkpoints so far)."""
    entry = _artefact(name)
    if entry.kind != "mmv":
        raise KeyError(f"{name!r}: only mmv checkpoints can be looked up unbuilt")
    from helpers.standins import mmv

    found = mmv.tiny_checkpoint_path(name.removeprefix("mmv_"), **options)
    return found if found.is_file() else None
