"""A generated stand-in for the MIL-NCE S3D TF-Hub module (``deepmind/mil-nce/s3d/1``).

The stand-in is a SavedModel with the real module's interface, so ``hub.load`` and the course's
code cannot tell it apart:

* signature ``video``: input ``images`` float32 ``[B, T, H, W, 3]`` (any T, H, W), outputs
  ``video_embedding`` float32 ``[B, 512]`` and ``mixed_5c`` float32 ``[B, 1024]``;
* signature ``text``: input ``words`` tf.string ``[B]`` (raw sentences), output
  ``text_embedding`` float32 ``[B, 512]``; the sentences are tokenised inside the graph the way
  the authors' PyTorch port does it (lowercase, words are runs of ``[\\w']``, unknown words
  dropped, at most 16 words, padded);
* no ``default`` signature (like the real module).

Its weights are random (from ``seed``): it computes nothing meaningful, only with the right
names, shapes and dtypes. It is small (about 1 MB) and builds in a few seconds.

Two builds, loaded and called the same way by ``hub.load``:

* ``tf1_style=True`` (what tiny mode installs, like the real module's TF1 Hub format): a
  SavedModel written with the TF1 ``SavedModelBuilder`` under empty tags (plus a ``train``
  variant), and a ``tfhub_module.pb`` marker, which makes ``hub.load`` ask for the empty tags;
* ``tf1_style=False``: ``tf.saved_model.save`` of a ``tf.Module`` with ``signatures={...}``.

:func:`build_module` writes one into any folder (for example to pack it as the
``?tf-hub-format=compressed`` tar.gz a TF-Hub server answers); :func:`ensure_in_cache` puts one
where ``hub.load`` looks for a handle in a TF-Hub cache.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from helpers.hub_format import (  # noqa: F401  (cache_folder_name, read_marker: re-exported)
    MARKER, cache_folder_name, install_folder, lookup_table, read_marker, word_ids,
    write_milnce_module)
from helpers.hub_format import STANDIN_VERSION as VERSION
from helpers.words import MAX_WORDS, NOT_WORD_RE2, VOCABULARY, tokenize  # noqa: F401  (re-exported)

VIDEO_EMBEDDING_DIM = 512
MIXED_5C_DIM = 1024
TEXT_EMBEDDING_DIM = 512
WORD_DIM = 300  # as the real model's word2vec-initialised embeddings
TEXT_HIDDEN = 256  # the real model uses 2048; smaller keeps the stand-in small
VIDEO_HIDDEN = 32

NOTE = "stand-in: random weights, not the official MIL-NCE module"


def _weights(seed: int) -> dict[str, np.ndarray]:
    """All parameters, drawn from ``seed`` (float32, scaled so embeddings are O(1) per entry)."""
    rng = np.random.default_rng(seed)

    def normal(*shape, fan_in):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    words = normal(len(VOCABULARY), WORD_DIM, fan_in=1.0)
    words[0] = 0.0  # padding contributes nothing before the ReLU but the bias
    return {
        "conv1/kernel": normal(3, 3, 3, 3, VIDEO_HIDDEN, fan_in=27 * 3 / 2.0),
        "conv1/bias": (rng.standard_normal(VIDEO_HIDDEN) * 0.1).astype(np.float32),
        "mixed_5c/kernel": normal(VIDEO_HIDDEN, MIXED_5C_DIM, fan_in=VIDEO_HIDDEN / 2.0),
        "mixed_5c/bias": (rng.standard_normal(MIXED_5C_DIM) * 0.1).astype(np.float32),
        "video_embedding/kernel": normal(MIXED_5C_DIM, VIDEO_EMBEDDING_DIM, fan_in=MIXED_5C_DIM * 4.0),
        "video_embedding/bias": np.zeros(VIDEO_EMBEDDING_DIM, np.float32),
        "word_embedding": words,
        "text_hidden/kernel": normal(WORD_DIM, TEXT_HIDDEN, fan_in=WORD_DIM / 2.0),
        "text_hidden/bias": (rng.standard_normal(TEXT_HIDDEN) * 0.1).astype(np.float32),
        "text_embedding/kernel": normal(TEXT_HIDDEN, TEXT_EMBEDDING_DIM, fan_in=TEXT_HIDDEN * 16.0),
        "text_embedding/bias": np.zeros(TEXT_EMBEDDING_DIM, np.float32),
    }


def _video_graph(tf, images, var):
    """S3D-shaped toy tower: pool, strided 3D conv, pointwise 1024 channels, mean = mixed_5c."""
    # Pool 8x8 in space first: cheap on 224x224 inputs, and SAME padding accepts any size.
    x = tf.nn.avg_pool3d(images, ksize=[1, 1, 8, 8, 1], strides=[1, 1, 8, 8, 1], padding="SAME")
    x = tf.nn.conv3d(x, var["conv1/kernel"], strides=[1, 2, 2, 2, 1], padding="SAME")
    x = tf.nn.relu(x + var["conv1/bias"])
    x = tf.einsum("bthwc,cd->bthwd", x, var["mixed_5c/kernel"])
    x = tf.nn.relu(x + var["mixed_5c/bias"])
    mixed_5c = tf.reduce_mean(x, axis=[1, 2, 3])
    video_embedding = tf.matmul(mixed_5c, var["video_embedding/kernel"]) + var["video_embedding/bias"]
    return {"video_embedding": tf.identity(video_embedding, name="video_embedding"),
            "mixed_5c": tf.identity(mixed_5c, name="mixed_5c")}


def _text_graph(tf, words, table, var):
    """Tokenise raw sentences in the graph, look words up, max-pool, project to 512."""
    ids = word_ids(tf, words, table, MAX_WORDS)
    embedded = tf.gather(var["word_embedding"], ids)  # [B, 16, 300]
    hidden = tf.nn.relu(tf.einsum("bwe,eh->bwh", embedded, var["text_hidden/kernel"])
                        + var["text_hidden/bias"])
    pooled = tf.reduce_max(hidden, axis=1)  # over the 16 positions, padding included
    text_embedding = tf.matmul(pooled, var["text_embedding/kernel"]) + var["text_embedding/bias"]
    return {"text_embedding": tf.identity(text_embedding, name="text_embedding")}


def _write_vocab(folder: Path) -> Path:
    path = folder / "vocab.txt"
    path.write_text("\n".join(VOCABULARY) + "\n", encoding="utf-8")
    return path


def _build_tf2(tf, dest: Path, seed: int, scratch: Path) -> None:
    weights = _weights(seed)
    vocab_file = _write_vocab(scratch)

    class MilNceStandIn(tf.Module):
        def __init__(self):
            super().__init__(name="mil_nce_standin")
            self.var = {name: tf.Variable(value, name=name.replace("/", "_"), trainable=False)
                        for name, value in weights.items()}
            self.table = lookup_table(tf, str(vocab_file))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None, 3], tf.float32,
                                                    name="images")])
        def video(self, images):
            return _video_graph(tf, images, self.var)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
        def text(self, words):
            return _text_graph(tf, words, self.table, self.var)

    module = MilNceStandIn()
    tf.saved_model.save(module, str(dest), signatures={
        "video": module.video.get_concrete_function(),
        "text": module.text.get_concrete_function(),
    })


def build_module(dest_dir, tf1_style: bool = False, seed: int = 0) -> Path:
    """Write the stand-in module into the folder ``dest_dir`` (created; must be empty or absent).

    ``tf1_style``: TF1 Hub format (empty tags + ``tfhub_module.pb``) instead of a TF2
    SavedModel. ``seed``: the random weights (same seed, same module outputs).
    Returns ``dest_dir``. Imports TensorFlow.
    """
    from helpers.gpu import import_tensorflow

    tf = import_tensorflow()
    dest = Path(dest_dir)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty; build the stand-in into a new folder")
    logger = tf.get_logger()
    level = logger.level
    # The TF1 builder's own deprecation notices are noise here: this build is TF1 on purpose.
    logger.setLevel("ERROR")
    try:
        with tempfile.TemporaryDirectory(prefix="milnce-standin-") as scratch:
            if tf1_style:
                write_milnce_module(tf, dest, {}, _weights(seed), VOCABULARY,
                                    lambda tf, images, words, var, table, train: (
                                        _video_graph(tf, images, var),
                                        _text_graph(tf, words, table, var)))
            else:
                _build_tf2(tf, dest, seed, Path(scratch))
    finally:
        logger.setLevel(level)
    marker = {"standin": "milnce-s3d", "version": VERSION, "seed": seed,
              "tf1_style": tf1_style, "note": NOTE}
    (dest / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    return dest


def ensure_in_cache(cache_dir, handle: str, tf1_style: bool = True, seed: int = 0) -> Path:
    """Make sure ``<cache_dir>/sha1(handle)`` holds the current stand-in; return that folder
    (see :func:`helpers.hub_format.install_folder`: atomic, locked, a real module refused)."""
    def is_current(target):
        marker = read_marker(target)
        return bool(marker and marker.get("version") == VERSION and marker.get("seed") == seed
                    and marker.get("tf1_style") == tf1_style)

    return install_folder(Path(cache_dir) / cache_folder_name(handle),
                          lambda dest: build_module(dest, tf1_style=tf1_style, seed=seed),
                          is_current, lambda target: read_marker(target) is not None)
