"""Export a trained run as a TF-Hub module in MIL-NCE's format (TF1 Hub format).

The module is what ``hub.load("https://tfhub.dev/deepmind/mil-nce/s3d/1")`` returns, in form:

* signature ``video``: input ``images`` float32 ``[B, T, H, W, 3]`` RGB in [0, 1], any T, H, W
  -> ``video_embedding`` ``[B, 512]``, ``mixed_5c`` ``[B, 1024]``. The graph first picks the
  model's T frames evenly spaced (repeating frames of a short clip) and resizes them to the
  model's size (bilinear, anti-aliased), the steps :func:`helpers.training.corpus.preprocess`
  does in training;
* signature ``text``: input ``words`` tf.string ``[B]`` -> ``text_embedding`` ``[B, 512]``,
  tokenised in the graph (lowercase, runs of ``[\\w']``, unknown words dropped, at most 16);
* two graph variants, as in the official TF1 module: the default tags (empty set; batch norm
  on its stored statistics) and ``{"train"}`` (batch norm on the statistics of the batch it is
  given), sharing one set of variables (``trainable`` ones: the weights; not: the statistics);
* a ``tfhub_module.pb`` marker, so ``hub.load`` treats it as TF1 Hub format.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from helpers.hub_format import word_ids, write_milnce_module
from helpers.training.settings import ModelConfig, same_padding

#: Marker written next to the module: which run it came from.
MARKER = "course_trained.json"


def _variable_name(path: str) -> str:
    return path.replace("~", "").replace("//", "/").strip("/")


def weights_for_export(run) -> tuple[dict, dict]:
    """``(trainable, statistics)``: name -> float32 array, BN statistics reshaped to ``[C]``."""
    trainable, stats = {}, {}
    for module, values in run.params.items():
        for name, value in values.items():
            value = np.asarray(value, np.float32)
            if name in ("scale", "offset"):
                value = value.reshape(-1)
            trainable[_variable_name(f"{module}/{name}")] = value
    for module, values in run.state.items():
        stat = "moving_mean" if module.endswith("mean_ema") else "moving_variance"
        owner = module.rsplit("/", 1)[0]
        stats[_variable_name(f"{owner}/{stat}")] = np.asarray(values["average"],
                                                              np.float32).reshape(-1)
    return trainable, stats


def _batch_norm(tf, x, var, name, cfg: ModelConfig, train: bool, axes=(0, 1, 2, 3)):
    scale, offset = var[f"{name}/scale"], var[f"{name}/offset"]
    if train:
        mean, variance = tf.nn.moments(x, axes=list(axes))
    else:
        mean, variance = var[f"{name}/moving_mean"], var[f"{name}/moving_variance"]
    return (x - mean) * tf.math.rsqrt(variance + cfg.bn_eps) * scale + offset


def _scaled_unit(tf, x, cfg: ModelConfig):
    return x * (cfg.embedding_norm * tf.math.rsqrt(
        tf.maximum(tf.reduce_sum(x * x, axis=-1, keepdims=True), 1e-12)))


def _gating(tf, x, var, name):
    weights = tf.sigmoid(tf.matmul(tf.reduce_mean(x, axis=[1, 2, 3]), var[f"{name}/w"])
                         + var[f"{name}/b"])
    return x * weights[:, None, None, None, :]


def _temporal_conv(tf, x, kernel, stride: int):
    t = x.shape[1]
    before, after = same_padding(t, 3, stride)
    padded = tf.pad(x, [[0, 0], [before, after], [0, 0], [0, 0], [0, 0]])
    out = -(-t // stride)
    return tf.add_n([tf.einsum("bthwc,cd->bthwd",
                               padded[:, k:k + stride * (out - 1) + 1:stride], kernel[k])
                     for k in range(3)])


def _sep_conv(tf, x, var, name, stride, t_stride, cfg, train, gating=True):
    b = tf.shape(x)[0]
    t, h, w, c = x.shape[1:]
    y = tf.nn.conv2d(tf.reshape(x, [-1, h, w, c]), var[f"{name}/spatial/w"],
                     strides=[1, stride, stride, 1], padding="SAME")
    y = tf.reshape(y, tf.concat([[b, t], tf.shape(y)[1:]], axis=0))
    y.set_shape([None, t, -(-h // stride), -(-w // stride), y.shape[-1]])
    y = tf.nn.relu(_batch_norm(tf, y, var, f"{name}/spatial_bn/bn", cfg, train))
    y = _temporal_conv(tf, y, var[f"{name}/temporal/kernel"], t_stride)
    y = tf.nn.relu(_batch_norm(tf, y, var, f"{name}/temporal_bn/bn", cfg, train))
    if gating:
        y = _gating(tf, y, var, f"{name}/gating/gate")
    return y


def model_input(tf, images, cfg: ModelConfig):
    """Any ``[B, T, H, W, 3]`` -> ``[B, cfg.frames, cfg.size, cfg.size, 3]``: T frames evenly
    spaced (short clips repeat frames), each resized bilinearly with anti-aliasing."""
    num = tf.shape(images)[1]
    i = tf.range(cfg.frames, dtype=tf.float64)
    index = tf.cast(tf.floor((i + 0.5) * tf.cast(num, tf.float64) / cfg.frames), tf.int32)
    frames = tf.gather(images, tf.minimum(index, num - 1), axis=1)
    shape = tf.shape(frames)
    flat = tf.reshape(frames, tf.concat([[-1], shape[2:]], axis=0))
    resized = tf.image.resize(flat, [cfg.size, cfg.size], method="bilinear", antialias=True)
    out = tf.reshape(resized, [-1, cfg.frames, cfg.size, cfg.size, 3])
    return out


def video_graph(tf, images, var, cfg: ModelConfig, train: bool):
    x = model_input(tf, images, cfg)
    c1, c2, c3 = cfg.channels
    x = _sep_conv(tf, x, var, "video/conv1", 2, 2, cfg, train, gating=False)
    x = _sep_conv(tf, x, var, "video/block2", 2, 2, cfg, train)
    x = _sep_conv(tf, x, var, "video/block3", 2, 1, cfg, train)
    x = tf.einsum("bthwc,cd->bthwd", x, var["video/mixed_5c/w"])
    x = tf.nn.relu(_batch_norm(tf, x, var, "video/mixed_5c_bn/bn", cfg, train))
    x = _gating(tf, x, var, "video/mixed_5c_gating/gate")
    mixed_5c = tf.reduce_mean(x, axis=[1, 2, 3])
    embedding = _scaled_unit(tf, tf.matmul(mixed_5c, var["video/embedding/w"])
                             + var["video/embedding/b"], cfg)
    return {"video_embedding": tf.identity(embedding, name="video_embedding"),
            "mixed_5c": tf.identity(mixed_5c, name="mixed_5c")}


def text_graph(tf, words, table, var, cfg: ModelConfig):
    ids = word_ids(tf, words, table, cfg.max_words)
    embedded = tf.gather(var["text/word_embedding"], ids)
    hidden = tf.nn.relu(tf.einsum("bwe,eh->bwh", embedded, var["text/hidden/w"])
                        + var["text/hidden/b"])
    pooled = tf.reduce_max(hidden, axis=1)
    embedding = _scaled_unit(tf, tf.matmul(pooled, var["text/embedding/w"])
                             + var["text/embedding/b"], cfg)
    return {"text_embedding": tf.identity(embedding, name="text_embedding")}


def export_module(run, dest_dir) -> Path:
    """Write ``run`` (a :class:`helpers.training.train.Run`) as a TF1 Hub module into
    ``dest_dir`` (created; must be empty or absent). Returns ``dest_dir``."""
    from helpers.gpu import import_tensorflow

    tf = import_tensorflow()
    dest = Path(dest_dir)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty; export into a new folder")
    cfg = run.config.model
    trainable, stats = weights_for_export(run)
    write_milnce_module(tf, dest, trainable, stats, run.vocab,
                        lambda tf, images, words, var, table, train: (
                            video_graph(tf, images, var, cfg, train),
                            text_graph(tf, words, table, var, cfg)))
    marker = {"loss": run.loss, "seed": run.seed, "steps": run.config.steps,
              "test": run.report.get("test"), "chance_r1": run.report.get("chance_r1"),
              "note": "a small model trained here on generated clips, not MIL-NCE"}
    (dest / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    return dest


def export_run_folder(run_dir, dest_dir) -> Path:
    """:func:`export_module` of a run folder written by ``train`` (atomic: built beside
    ``dest_dir`` and renamed into place)."""
    from helpers.training.train import load_run

    run = load_run(run_dir)
    dest = Path(dest_dir)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty; export into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=dest.parent))
    try:
        export_module(run, tmp / "module")
        if dest.exists():
            dest.rmdir()
        (tmp / "module").rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
