"""Write an MMV checkpoint as a SavedModel shaped like DeepMind's TF-Hub MMV modules (jax2tf).

    python -m helpers.mmv export-tfhub --backbone s3d --checkpoint mmv_s3d.pkl --out mmv_s3d_hub

The SavedModel has the TF-Hub modules' three signatures and output names:

* ``video``: float32 ``[B, T, H, W, 3]`` in [0, 1] (S3D-G: even T, H, W; TSM-ResNet: H and W
  multiples of 32, e.g. 224 or 256, a limit of the export, not of the models) -> ``before_head``
  (the backbone feature ``vid_repr``), ``va`` (512), ``vat`` (256);
* ``audio``: float32 ``[B, 153600]``, 48 kHz in [-1, 1] -> ``va`` (512), ``vat`` (256) and
  ``last_conv`` (the audio ResNet's last feature map, ``[B, 10, 3, 2048]``, before its final
  BN + ReLU);
* ``text``: tf.string ``[B]`` sentences -> ``vat`` (256).

The Haiku functions of :mod:`helpers.mmv.models` and :mod:`helpers.mmv.towers` are converted
with ``jax.experimental.jax2tf`` (native serialisation: each signature runs the same XLA program
JAX runs, shipped as StableHLO) and the checkpoint's arrays become the SavedModel's variables,
so the ``video`` signature computes what :class:`helpers.mmv.VideoEncoder` computes on the same
weights. The audio front end (waveform -> log-mel) and the text vocabulary are the course's own
(:mod:`helpers.mmv.frontend`), not DeepMind's, which the JAX release does not include: the
``audio`` and ``text`` signatures of an export are **not** those of DeepMind's modules, even from
the official checkpoint. Only the vocabulary's rows of the word-embedding table are kept.

Input names (``images``, ``audio``, ``words``) are the course's: the course calls every MMV
signature with its single input by position or by whatever name the signature declares
(:func:`helpers.mmv.hub.call_signature`), so it works with either module.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from helpers import gpu, hub_format
from helpers.mmv import frontend

MARKER = "course_export.json"
#: Bump when the export's graph or layout changes: cached stand-ins of older versions are rebuilt.
VERSION = 1
NOTE = ("exported by the course from a JAX checkpoint (jax2tf); the audio front end and the "
        "text vocabulary are the course's own, not DeepMind's")


def _jax2tf():
    try:
        from jax.experimental import jax2tf
    except ImportError as err:  # removed from some future JAX
        raise RuntimeError(f"jax.experimental.jax2tf cannot be imported ({err}); export-tfhub "
                           "needs a JAX that still ships it (0.4 .. 0.10 do)") from err
    return jax2tf


def _video_fn(backbone):
    from helpers.mmv import models

    apply = models.transformed(backbone).apply

    def fn(params, state, images):
        out = apply(params, state, images)[0]
        return {"before_head": out["vid_repr"], "va": out["va"], "vat": out["vat"]}

    return fn


def _audio_fn(vocab_size):
    from helpers.mmv import towers

    apply = towers.transformed(vocab_size).apply

    def fn(params, state, waveform):
        out = apply(params, state, spectrogram=frontend.log_mel_spectrogram(waveform))[0]["audio"]
        return {"va": out["va"], "vat": out["vat"], "last_conv": out["last_conv"]}

    return fn


def _text_fn(vocab_size):
    from helpers.mmv import towers

    apply = towers.transformed(vocab_size).apply

    def fn(params, state, word_ids):
        return {"vat": apply(params, state, word_ids=word_ids)[0]["text"]["vat"]}

    return fn


def _unpack(flat, layout):
    leaves, start = [], 0
    for shape, dtype in layout:
        size = int(np.prod(shape, dtype=np.int64))
        leaves.append(flat[start:start + size].reshape(shape).astype(dtype))
        start += size
    return leaves


def _subtree(checkpoint, prefixes):
    return {c: {m: v for m, v in checkpoint[c].items() if any(p in m for p in prefixes)}
            for c in ("params", "state")}


def build_savedmodel(backbone: str, checkpoint, out_dir, *, marker: dict | None = None) -> Path:
    """Write the SavedModel for ``backbone`` from ``checkpoint`` (a path or a full loaded dict)
    into ``out_dir`` (created; must be empty or absent). Returns ``out_dir``. Imports TF and JAX."""
    import jax

    from helpers.gpu import import_tensorflow
    from helpers.hub_format import word_ids
    from helpers.mmv.checkpoint import PARTS, _check_backbone, check_parts, extract_visual, safe_unpickle

    tf = import_tensorflow()
    jax2tf = _jax2tf()
    _check_backbone(backbone)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose a new --out")
    source = str(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "in memory"
    tree = safe_unpickle(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    full = extract_visual(tree, backbone, source, check_parts(PARTS))

    vocab = frontend.vocabulary()
    text_tree = _subtree(full, PARTS["text"])
    embed = "text_audio_video/text_module/~/embed"
    text_tree["params"][embed] = {"embeddings": np.ascontiguousarray(
        text_tree["params"][embed]["embeddings"][:len(vocab)])}
    trees = {"video": _subtree(full, PARTS["video"]), "audio": _subtree(full, PARTS["audio"]),
             "text": text_tree}
    # Shape polymorphism: one signature for every clip size. JAX must prove the shapes of the
    # two branches of every residual add equal; TSM-ResNet's strided convs (SAME padding,
    # five halvings) give expressions it cannot match unless H and W are multiples of 32.
    # S3D-G needs only even T, H, W (space-to-depth).
    video_shape = "(b, 2*t, 2*h, 2*w, 3)" if backbone == "s3d" else "(b, t, 32*h, 32*w, 3)"
    specs = {
        "video": (tf.TensorSpec([None, None, None, None, 3], tf.float32, name="images"),
                  video_shape, _video_fn(backbone)),
        "audio": (tf.TensorSpec([None, frontend.NUM_SAMPLES], tf.float32, name="audio"),
                  f"(b, {frontend.NUM_SAMPLES})", _audio_fn(len(vocab))),
        "text": (None, f"(b, {frontend.MAX_WORDS})", _text_fn(len(vocab))),
    }

    module = tf.Module()
    converted = {}
    for name, (_, shape, fn) in specs.items():
        # All arrays of a signature travel as one float32 variable (int32 counters are small
        # integers, exact in float32), unpacked by slicing inside the converted function: a
        # thousand separate variables make saving and loading several times slower.
        leaves, treedef = jax.tree_util.tree_flatten((trees[name]["params"], trees[name]["state"]))
        layout = [(np.shape(leaf), np.asarray(leaf).dtype) for leaf in leaves]
        packed = np.concatenate([np.asarray(leaf, np.float32).ravel() for leaf in leaves])
        variable = tf.Variable(packed, trainable=False, name=f"{name}_weights")
        setattr(module, f"_{name}_weights", variable)
        call = jax2tf.convert(
            lambda flat, x, fn=fn, treedef=treedef, layout=layout:
                fn(*jax.tree_util.tree_unflatten(treedef, _unpack(flat, layout)), x),
            polymorphic_shapes=[None, shape], with_gradient=False)
        converted[name] = (call, variable)

    keys = tf.constant(vocab[1:])
    values = tf.constant(np.arange(1, len(vocab), dtype=np.int64))
    module._table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), -1)

    def run(name, x):
        call, variables = converted[name]
        return call(variables, x)

    @tf.function(input_signature=[specs["video"][0]], autograph=False)
    def video(images):
        return run("video", images)

    @tf.function(input_signature=[specs["audio"][0]], autograph=False)
    def audio(waveform):
        return run("audio", waveform)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")], autograph=False)
    def text(words):
        ids = word_ids(tf, words, module._table, frontend.MAX_WORDS)
        return run("text", tf.cast(ids, tf.int32))

    # Only the three concrete functions are saved (as signatures); attaching the tf.functions
    # to the module as well would make tf.saved_model.save trace and convert each one again.
    with gpu.quiet_startup():  # tracing logs an MLIR INFO line under TF 2.20, whatever the level
        concrete = {"video": video.get_concrete_function(), "audio": audio.get_concrete_function(),
                    "text": text.get_concrete_function()}
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent if out.parent.exists() else None) as tmp:
        staging = Path(tmp) / "module"
        # tf.saved_model.save logs "Assets written to: <temporary folder>" at INFO; a notebook
        # that builds the stand-in would show that line (and the cache folder's hash).
        logger, level = tf.get_logger(), tf.get_logger().level
        logger.setLevel("ERROR")
        try:
            with gpu.quiet_startup():
                tf.saved_model.save(module, str(staging), signatures=concrete)
        finally:
            logger.setLevel(level)
        info = {"backbone": backbone, "version": VERSION, "checkpoint": source,
                "vocabulary_words": len(vocab) - 1, "note": NOTE, **(marker or {})}
        (staging / MARKER).write_text(json.dumps(info, indent=1) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            shutil.move(str(item), out / item.name)
    return out


def read_marker(folder) -> dict | None:
    """The export's marker (``course_export.json``) of a SavedModel folder, or None."""
    return hub_format.read_marker(folder, MARKER)
