"""Stand-in MMV checkpoints: random weights by rule ``mmv-kat-v1``, pickled in the official layout.

The rule (also used for the known-answer vectors in ``tests/data/mmv_kat``) gives every array
its own generator, seeded by ``seed`` and a CRC-32 of ``"<module_path>/<name>"``, so an array's
values never depend on which other arrays are generated:

=====================  =========================================================================
entry                  value (computed in float64, then cast to float32)
=====================  =========================================================================
param ``w``            ``standard_normal * sqrt(g / fan_in)``, ``fan_in = prod(shape[:-1])``,
                       ``g = 3`` inside ``/S3D/`` (its self-gating halves activations), else 1
param ``b``            ``standard_normal * 0.02``
param ``scale``        ``uniform(0.8, 1.2)``
param ``offset``       ``standard_normal * 0.05``
param ``embeddings``   ``standard_normal * 0.1``
state ``mean_ema``     ``average`` = ``hidden`` = ``standard_normal * 0.05`` (drawn with the key of
                       ``average``)
state ``var_ema``      ``average`` = ``hidden`` = ``uniform(0.5, 1.5)``
state ``counter``      ``int32`` 1
=====================  =========================================================================

By default a stand-in holds only the visual backbone and the two video heads (the arrays of
``helpers/mmv/trees/<backbone>.txt``), since the video outputs never read the rest; asked for
``parts=("video", "audio", "text")`` or ``"full"`` it also holds the audio and text towers
(``trees/audio_text.txt``; ``"full"``: every array of the official file, unused heads too).
Weights are random: outputs mean nothing.
"""

from __future__ import annotations

import io
import pickle
import sys
import zlib
from pathlib import Path

import numpy as np

from helpers import atomic, config
from helpers.hub_format import cache_folder_name, install_folder
from helpers.mmv.checkpoint import BACKBONES, TreeEntry, check_parts, expected_tree, official_tree

RULE = "mmv-kat-v1"
DEFAULT_SEED = 0


def _rng(seed: int, module: str, name: str) -> np.random.Generator:
    key = zlib.crc32(f"{module}/{name}".encode("utf-8"))
    return np.random.default_rng([seed, key])


def rule_array(module: str, name: str, shape, seed: int = DEFAULT_SEED,
               collection: str | None = None) -> np.ndarray:
    """The value rule ``mmv-kat-v1`` gives to one array (see the module docstring).

    ``collection``: ``"params"`` or ``"state"``; guessed from ``name`` when omitted.
    """
    shape = tuple(int(d) for d in shape)
    if collection is None:
        collection = "state" if name in ("average", "hidden", "counter") else "params"
    if collection == "state":
        if name == "counter":
            return np.asarray(1, np.int32)
        rng = _rng(seed, module, "average")  # `hidden` is a copy of `average`
        if module.endswith("mean_ema"):
            return (rng.standard_normal(shape) * 0.05).astype(np.float32)
        if module.endswith("var_ema"):
            return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
        raise ValueError(f"no rule for state {module}/{name}")
    rng = _rng(seed, module, name)
    if name == "w":
        gain = 3.0 if "/S3D/" in module else 1.0
        fan_in = int(np.prod(shape[:-1]))
        return (rng.standard_normal(shape) * np.sqrt(gain / fan_in)).astype(np.float32)
    if name == "b":
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)
    if name == "scale":
        return rng.uniform(0.8, 1.2, size=shape).astype(np.float32)
    if name == "offset":
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)
    if name == "embeddings":
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)
    raise ValueError(f"no rule for param {module}/{name}")


def make_tree(entries, seed: int = DEFAULT_SEED) -> dict:
    """``{'params': {module: {name: array}}, 'state': {...}}`` for ``entries`` (``TreeEntry``s)."""
    tree: dict = {"params": {}, "state": {}}
    for entry in entries:
        array = rule_array(entry.module, entry.name, entry.shape, seed, entry.collection)
        tree[entry.collection].setdefault(entry.module, {})[entry.name] = array
    return tree


def _entries(backbone: str, parts) -> tuple:
    if parts == "full":
        return official_tree(backbone)
    return expected_tree(backbone, check_parts(parts))


def make_checkpoint(backbone: str, seed: int = DEFAULT_SEED, extra_entries=(),
                    parts=("video",)) -> dict:
    """``backbone``'s checkpoint by rule: the arrays ``parts`` read (``"full"``: all of the
    official file), plus ``extra_entries`` (TreeEntry)."""
    return make_tree(tuple(_entries(backbone, parts)) + tuple(extra_entries), seed)


# --------------------------------------------------------------------------- pickling


class _Global:
    """A name pickled as a GLOBAL opcode, whether or not it can be imported here."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle insists that a REDUCE target be callable
        raise TypeError(f"{self.module}.{self.name} is only a name to pickle")


class _Wrapped:
    """A mapping to be pickled as ``<module>.<name>(<dict>)`` (e.g. Haiku's FlatMapping)."""

    def __init__(self, ref: _Global, mapping: dict):
        self.ref, self.mapping = ref, mapping


FLAT_MAPPING = _Global("haiku._src.data_structures", "FlatMapping")
NUMPY1_RECONSTRUCT = _Global("numpy.core.multiarray", "_reconstruct")


class _CheckpointPickler(pickle._Pickler):  # the Python pickler lets us emit arbitrary GLOBALs
    def __init__(self, handle, protocol, numpy1_names):
        super().__init__(handle, protocol=protocol)
        self._numpy1_names = numpy1_names

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
            return
        super().save(obj, save_persistent_id)

    def reducer_override(self, obj):
        if isinstance(obj, _Wrapped):
            return obj.ref, (obj.mapping,)
        if self._numpy1_names and type(obj) is np.ndarray:
            _, args, state = obj.__reduce__()  # numpy 2 writes numpy._core...; numpy 1 wrote numpy.core
            return NUMPY1_RECONSTRUCT, args, state
        return NotImplemented


def _wrap(tree: dict, container: str, top_level: dict) -> dict:
    out = dict(top_level)
    for collection in ("params", "state"):
        modules = tree[collection]
        if container == "flatmapping":
            out[collection] = _Wrapped(FLAT_MAPPING, {m: _Wrapped(FLAT_MAPPING, dict(v))
                                                      for m, v in modules.items()})
        else:
            out[collection] = {m: dict(v) for m, v in modules.items()}
    return out


def checkpoint_bytes(tree: dict, container: str = "dict", numpy1_names: bool = False,
                     protocol: int = 4, extra_top_level: dict | None = None) -> bytes:
    """Pickle ``tree`` like the official checkpoints.

    ``container``: ``"dict"`` (plain dicts) or ``"flatmapping"`` (every mapping pickled as
    ``haiku._src.data_structures.FlatMapping(<dict>)``, readable without that class existing).
    ``numpy1_names``: name numpy 1's ``numpy.core.multiarray._reconstruct`` for arrays (as the
    2020 checkpoints do) instead of numpy 2's ``numpy._core...``. ``protocol``: pickle protocol
    (2 stores bytes via ``_codecs.encode``; 5 makes numpy use ``_frombuffer``).
    ``extra_top_level``: more top-level keys (the official files may have some).
    """
    if container not in ("dict", "flatmapping"):
        raise ValueError(f"container must be 'dict' or 'flatmapping', got {container!r}")
    obj = _wrap(tree, container, extra_top_level or {})
    if container == "dict" and not numpy1_names:
        return pickle.dumps(obj, protocol=protocol)
    handle = io.BytesIO()
    _CheckpointPickler(handle, protocol, numpy1_names).dump(obj)
    return handle.getvalue()


def write_checkpoint(tree: dict, path, **kwargs) -> Path:
    """Atomically write :func:`checkpoint_bytes` of ``tree`` to ``path``."""
    return atomic.write_bytes(path, checkpoint_bytes(tree, **kwargs))


def tiny_checkpoint_path(backbone: str, seed: int = DEFAULT_SEED, full: bool = False) -> Path:
    """Where :func:`tiny_checkpoint` keeps its file (computed only: creates nothing)."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown MMV backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    name = f"mmv_{backbone}.full.pkl" if full else f"mmv_{backbone}.pkl"
    return config.cache_root() / "tiny" / "mmv" / f"{RULE}-seed{seed}" / name


def tiny_checkpoint(backbone: str, seed: int = DEFAULT_SEED, full: bool = False) -> Path:
    """Path of the tiny-mode stand-in for ``backbone`` (generated once, then cached).

    Written in Haiku-FlatMapping form with numpy 1 array names, the older of the two layouts
    the official pickles may have. Lives in ``config.cache_dir('tiny', 'mmv', ...)``.
    ``full``: every array of the official file (audio and text towers too, about 230 MB more:
    ``mmv_<backbone>.full.pkl``) instead of the video part only.
    """
    path = tiny_checkpoint_path(backbone, seed, full)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.locked(path):
            if not path.exists():  # another process may have written it while we waited
                tree = make_checkpoint(backbone, seed, parts="full" if full else ("video",))
                write_checkpoint(tree, path, container="flatmapping", numpy1_names=True,
                                 extra_top_level={"standin": f"random weights, rule {RULE}, "
                                                             f"seed {seed}"})
    return path


def tfhub_module(cache_dir, handle: str, backbone: str, seed: int = DEFAULT_SEED) -> Path:
    """The TF-Hub MMV stand-in: the course's export (:mod:`helpers.mmv.export`) of the full
    tiny checkpoint, installed once at ``<cache_dir>/sha1(handle)``, where ``hub.load(handle)``
    looks (:func:`helpers.hub_format.install_folder`: atomic, locked, a real module refused)."""
    from helpers.mmv import export

    def is_current(target):
        marker = export.read_marker(target)
        return bool(marker and marker.get("version") == export.VERSION and marker.get("standin"))

    def build(dest):
        checkpoint = tiny_checkpoint(backbone, seed, full=True)
        print(f"Building the tiny stand-in for {handle} (once) ...", file=sys.stderr, flush=True)
        export.build_savedmodel(backbone, checkpoint, dest,
                                marker={"standin": f"rule {RULE}, seed {seed}"})

    return install_folder(Path(cache_dir) / cache_folder_name(handle), build, is_current,
                          lambda target: export.read_marker(target) is not None)


__all__ = ["RULE", "DEFAULT_SEED", "TreeEntry", "rule_array", "make_tree", "make_checkpoint",
           "checkpoint_bytes", "write_checkpoint", "tiny_checkpoint", "tiny_checkpoint_path",
           "tfhub_module"]
