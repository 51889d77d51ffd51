"""MMV checkpoints without JAX: the expected parameter trees, a safe unpickler, and verification.

The official checkpoints (``mmv_s3d.pkl``, ``mmv_tsm_resnet_x1.pkl``, ``mmv_tsm_resnet_x2.pkl``)
are pickles of ``{'params': P, 'state': S, ...}`` where ``P`` and ``S`` are two-level mappings
``{module_path: {name: numpy array}}`` holding the whole audio-text-video model. The mappings
are plain dicts or Haiku ``FlatMapping`` objects; the arrays are ordinary numpy pickles.

``pickle.load`` on a downloaded file runs whatever the file asks for, so this module reads
checkpoints with a restricted unpickler: it resolves only numpy's array-rebuilding functions and
maps Haiku's mapping classes to ``dict``. Any other import a file asks for (``os.system``,
``builtins.eval``, ...) stops the load with :class:`UnsafeCheckpointError` before anything runs.

:func:`load_checkpoint` then keeps only the visual backbone and the two video heads and checks
every array against the listing of the official tree (``helpers/mmv/trees/<backbone>.txt``).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import importlib.resources
import io
import os
import pickle
from pathlib import Path

import numpy as np

BACKBONES = ("s3d", "tsm_resnet_x1", "tsm_resnet_x2")

#: Root module of the official model, and the parts of its tree the video outputs use.
ROOT = "text_audio_video"
VISUAL_MARKERS = ("/visual_module/", "/vid2audio_embd/", "/vis_embd/")
#: What each output of the model reads. Audio reaches the vat space through the video's
#: ``vis_embd`` head (FAC), so "audio" includes it. ``audio2txt_embd`` is in the checkpoints but
#: unused by the FAC graph at evaluation, so no part includes it.
PARTS = {
    "video": VISUAL_MARKERS,
    "audio": ("/audio_module/", "_get_pair_embedding_heads/audio_embd/", "/vis_embd/"),
    "text": ("/text_module/", "/txt_embd/", "/txt2audio_embd/"),
}


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and the problem."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle asked to import something other than numpy arrays and Haiku mappings."""


# --------------------------------------------------------------------------- expected trees


@dataclasses.dataclass(frozen=True)
class TreeEntry:
    """One array of a checkpoint: ``tree[collection][module][name]`` of ``shape`` and ``dtype``."""

    collection: str  # "params" or "state"
    module: str
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def key(self) -> str:
        return f"{self.collection}: {self.module}/{self.name}"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def is_visual(module_path: str) -> bool:
    """Whether a module path belongs to the visual backbone or a video head."""
    return any(marker in module_path for marker in VISUAL_MARKERS)


def check_parts(parts) -> tuple[str, ...]:
    """``parts`` (a name or names out of :data:`PARTS`) as a sorted tuple; ``ValueError`` otherwise."""
    names = (parts,) if isinstance(parts, str) else tuple(parts)
    unknown = [p for p in names if p not in PARTS]
    if unknown or not names:
        raise ValueError(f"unknown checkpoint part(s) {unknown or names!r}; choose from "
                         f"{', '.join(PARTS)}")
    return tuple(sorted(set(names), key=list(PARTS).index))


def _check_backbone(backbone: str) -> str:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown MMV backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    return backbone


def parse_tree_listing(text: str, source: str = "listing") -> tuple[TreeEntry, ...]:
    """Parse lines ``P|S <module_path> <name> <shape tuple> <dtype>`` (``#`` lines are comments)."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) < 5 or tokens[0] not in ("P", "S"):
            raise ValueError(f"{source}:{number}: cannot parse {line!r}")
        shape_text = " ".join(tokens[3:-1]).strip("()").replace(" ", "")
        shape = tuple(int(d) for d in shape_text.split(",") if d)
        entries.append(TreeEntry("params" if tokens[0] == "P" else "state", tokens[1], tokens[2],
                                 shape, tokens[-1]))
    return tuple(entries)


@functools.lru_cache(maxsize=None)
def _listing(name: str) -> tuple[TreeEntry, ...]:
    resource = importlib.resources.files("helpers.mmv").joinpath("trees", f"{name}.txt")
    return parse_tree_listing(resource.read_text(encoding="utf-8"), f"mmv/trees/{name}.txt")


def expected_tree(backbone: str, parts=("video",)) -> tuple[TreeEntry, ...]:
    """The arrays of ``backbone``'s official checkpoint that ``parts`` read (package data listings).

    ``parts``: out of :data:`PARTS`. ``"video"`` (default): the visual backbone and the video
    heads, 313 params + 474 state arrays for ``s3d``, 162 + 312 for each TSM-ResNet.
    ``"audio"``: the audio ResNet50, its ``audio_embd`` head and ``vis_embd``; ``"text"``: the
    word embeddings, ``text_conv1`` and the heads ``txt_embd``, ``txt2audio_embd``. The audio and
    text arrays are the same in all three checkpoints (``trees/audio_text.txt``).
    """
    _check_backbone(backbone)
    wanted = [m for part in check_parts(parts) for m in PARTS[part]]
    seen, out = set(), []
    for entry in _listing(backbone) + _listing("audio_text"):
        if any(m in entry.module for m in wanted) and entry.key not in seen:
            seen.add(entry.key)
            out.append(entry)
    return tuple(out)


def official_tree(backbone: str) -> tuple[TreeEntry, ...]:
    """Every array of ``backbone``'s official checkpoint (video, audio and text, unused heads too)."""
    _check_backbone(backbone)
    return _listing(backbone) + _listing("audio_text")


def tree_bytes(backbone: str) -> int:
    """Bytes of the visual subset (a lower bound for the size of a checkpoint file)."""
    return sum(e.size * np.dtype(e.dtype).itemsize for e in expected_tree(backbone))


def count_params(tree: collections.abc.Mapping) -> int:
    """Number of scalars in a two-level mapping ``{module: {name: array}}``."""
    return int(sum(np.size(v) for module in tree.values() for v in module.values()))


# --------------------------------------------------------------------------- safe unpickling


def _numpy_core():
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _safe_reconstruct(subtype, shape, dtype):
    # numpy's own rebuild, but only for plain ndarrays (never a subclass with its own code).
    if subtype is not np.ndarray:
        raise UnsafeCheckpointError(f"array rebuild for {subtype!r} instead of numpy.ndarray")
    return _numpy_core()._reconstruct(np.ndarray, shape, dtype)


def _safe_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafeCheckpointError(f"numpy scalar of dtype {dtype!r}")
    return _numpy_core().scalar(dtype, data) if data is not None else _numpy_core().scalar(dtype)


def _safe_frombuffer(buf, dtype, shape, order, axis_order=None):
    # What numpy >= 1.24 writes for arrays pickled with protocol 5.
    if not isinstance(buf, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        raise UnsafeCheckpointError(f"array buffer of type {type(buf).__name__}")
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise UnsafeCheckpointError("array of Python objects")
    array = np.frombuffer(buf, dtype=dtype)
    if order == "K" and axis_order is not None:
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order=order)


def _safe_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str):
        raise UnsafeCheckpointError(f"numpy dtype from {type(spec).__name__}")
    return np.dtype(spec, align=bool(align), copy=bool(copy))


def _latin1_encode(text, encoding="latin1"):
    # Protocol-2 pickles store bytes as ``_codecs.encode(str, 'latin1')``.
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafeCheckpointError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _empty_bytes(*args):
    # Protocols 0-2 store an empty bytes object (a zero-size array's data) as a call to bytes().
    if args:
        raise UnsafeCheckpointError("bytes() called with arguments")
    return b""


def _mapping_as_dict(*args):
    """Haiku's FlatMapping / frozendict (and OrderedDict) rebuilt as a plain dict."""
    if not args:
        return {}
    if len(args) == 1 and isinstance(args[0], collections.abc.Mapping):
        return dict(args[0])
    raise CheckpointError(
        "a Haiku mapping is stored in an unsupported form (expected a dict inside it, found "
        f"{', '.join(type(a).__name__ for a in args)})")


_HAIKU_MAPPINGS = ("FlatMapping", "FlatMap", "frozendict")
_HAIKU_MODULES = ("haiku._src.data_structures", "haiku.data_structures")

#: The only globals a checkpoint may name, and what each one is replaced by.
SAFE_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
    ("numpy.core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,  # the name protocols 0-2 write
    ("collections", "OrderedDict"): _mapping_as_dict,
    **{(module, name): _mapping_as_dict for module in _HAIKU_MODULES for name in _HAIKU_MAPPINGS},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle, source: str):
        super().__init__(handle)
        self._source = source

    def find_class(self, module, name):
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self._source}: refused to load: the pickle asks to import `{module}.{name}`, "
                "and a checkpoint may only contain numpy arrays and (Haiku) mappings. Nothing from "
                "the file was executed. The file is corrupt or malicious: delete it and download "
                "the official checkpoint again.") from None

    def persistent_load(self, pid):
        raise UnsafeCheckpointError(f"{self._source}: refused to load: the pickle refers to an "
                                    "external object (persistent id); checkpoints never do")


def safe_unpickle(source) -> object:
    """Unpickle a checkpoint file (path, or binary file object) allowing only numpy arrays and mappings.

    Raises :class:`UnsafeCheckpointError` for any other global (nothing is executed) and
    :class:`CheckpointError` for a missing, truncated or corrupt file.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise CheckpointError(f"{name}: no such checkpoint file")
        handle = open(path, "rb")
    elif isinstance(source, (bytes, bytearray)):
        name, handle = "<bytes>", io.BytesIO(source)
    else:
        name, handle = getattr(source, "name", "<file object>"), source
    try:
        return _RestrictedUnpickler(handle, name).load()
    except CheckpointError as err:
        if name not in str(err):
            raise type(err)(f"{name}: {err}") from None
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, MemoryError, OverflowError, RecursionError) as err:
        raise CheckpointError(
            f"{name}: not a readable checkpoint pickle ({type(err).__name__}: {err}); the file is "
            "probably truncated or corrupt: delete it and download it again") from None
    finally:
        if handle is not source:
            handle.close()


# --------------------------------------------------------------------------- verification


def guess_backbone(tree: collections.abc.Mapping) -> str | None:
    """Which backbone a loaded ``{'params': ...}`` tree holds (``None`` if it holds none)."""
    params = tree.get("params", {}) if isinstance(tree, collections.abc.Mapping) else {}
    if not isinstance(params, collections.abc.Mapping):
        return None
    for module, arrays in params.items():
        if not isinstance(module, str) or not isinstance(arrays, collections.abc.Mapping):
            continue
        if "/visual_module/~/S3D/" in module:
            return "s3d"
        if module.endswith("/visual_module/~/TSMResNetV2/tsm_resnet_stem") and "w" in arrays:
            width = int(np.shape(arrays["w"])[-1]) if np.ndim(arrays["w"]) == 4 else 0
            return {64: "tsm_resnet_x1", 128: "tsm_resnet_x2"}.get(width)
    return None


def _as_array(value):
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    return None


def extract_visual(tree, backbone: str, source: str = "checkpoint", parts=("video",)) -> dict:
    """Pick the arrays ``parts`` read (default: the visual backbone and video heads) out of a
    loaded checkpoint and verify them.

    ``tree``: the unpickled object, a mapping with ``'params'`` and ``'state'`` (extra top-level
    keys and the entries of other parts are ignored). Returns ``{'params': {module: {name: array}},
    'state': {...}}`` with exactly the entries of :func:`expected_tree` for ``parts``. Raises
    :class:`CheckpointError` naming every missing array and every array of the wrong shape/dtype.
    """
    _check_backbone(backbone)
    if not isinstance(tree, collections.abc.Mapping):
        raise CheckpointError(f"{source}: expected a mapping with 'params' and 'state', found "
                              f"{type(tree).__name__}")
    for collection in ("params", "state"):
        if collection not in tree:
            raise CheckpointError(f"{source}: no {collection!r} entry (top-level keys: "
                                  f"{', '.join(map(repr, list(tree)[:10]))})")
        if not isinstance(tree[collection], collections.abc.Mapping):
            raise CheckpointError(f"{source}: {collection!r} is a {type(tree[collection]).__name__},"
                                  " expected a mapping {module_path: {name: array}}")

    out: dict = {"params": {}, "state": {}}
    missing, wrong = [], []
    for entry in expected_tree(backbone, parts):
        module = tree[entry.collection].get(entry.module)
        value = module.get(entry.name) if isinstance(module, collections.abc.Mapping) else None
        if value is None:
            missing.append(entry.key)
            continue
        array = _as_array(value)
        if array is None:
            wrong.append(f"{entry.key} is a {type(value).__name__}, not an array")
        elif tuple(array.shape) != entry.shape or array.dtype != np.dtype(entry.dtype):
            wrong.append(f"{entry.key} has shape {tuple(array.shape)} {array.dtype}, expected "
                         f"{entry.shape} {entry.dtype}")
        else:
            out[entry.collection].setdefault(entry.module, {})[entry.name] = array
    if missing or wrong:
        raise CheckpointError(_problem_report(source, backbone, tree, missing, wrong, parts=parts))
    return out


def _problem_report(source, backbone, tree, missing, wrong, show: int = 8, parts=("video",)) -> str:
    total = len(expected_tree(backbone, parts))
    which = "" if tuple(parts) == ("video",) else f" (parts: {', '.join(parts)})"
    lines = [f"{source} is not a complete {backbone} checkpoint{which}:"]
    guess = guess_backbone(tree)
    if guess and guess != backbone:
        lines.append(f"  it looks like a {guess} checkpoint: load it with backbone={guess!r}")
    if missing:
        lines.append(f"  {len(missing)} of {total} expected arrays are missing:")
        lines += [f"    {key}" for key in missing[:show]]
        if len(missing) > show:
            lines.append(f"    ... and {len(missing) - show} more")
    if wrong:
        lines.append(f"  {len(wrong)} arrays have the wrong shape or type:")
        lines += [f"    {item}" for item in wrong[:show]]
        if len(wrong) > show:
            lines.append(f"    ... and {len(wrong) - show} more")
    return "\n".join(lines)


def load_checkpoint(path, backbone: str, parts=("video",)) -> dict:
    """Safely read an MMV checkpoint pickle and return the verified arrays ``parts`` read.

    ``path``: a checkpoint file (``str``/``Path``), its bytes, or a binary file object.
    ``parts``: any of ``"video"``, ``"audio"``, ``"text"`` (see :func:`expected_tree`).
    Returns ``{'params': {module_path: {name: np.ndarray}}, 'state': {...}}`` holding, by
    default, the visual backbone and the video heads (``vid2audio_embd``, ``vis_embd``) only.
    Raises :class:`UnsafeCheckpointError` (nothing executed) or :class:`CheckpointError`.
    """
    _check_backbone(backbone)
    parts = check_parts(parts)
    source = str(path) if isinstance(path, (str, os.PathLike)) else getattr(path, "name", "<bytes>")
    return extract_visual(safe_unpickle(path), backbone, source, parts)
