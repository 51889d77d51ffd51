"""TF-Hub module folders the course writes itself: shared by the stand-in builders and exports.

* where ``tensorflow_hub`` caches a handle (:func:`cache_folder_name`) and the course's marker
  file inside a module it wrote (:data:`MARKER`, :func:`read_marker`);
* :func:`install_folder`: put a built module there once, safely against concurrent builds;
* MIL-NCE's TF1 Hub format, which both MIL-NCE stand-ins are written in (the random one of
  :mod:`helpers.standins.milnce`, the trained one of :mod:`helpers.training.export`):
  :func:`write_milnce_module`, and the in-graph tokeniser (:func:`word_ids`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from helpers import atomic, gpu

#: Marker file inside a MIL-NCE stand-in folder (hub.load and the SavedModel loader ignore it).
MARKER = "course_standin.json"
#: Bump when the stand-ins' layout or graph changes: cached copies of older versions are rebuilt.
STANDIN_VERSION = 1


def cache_folder_name(handle: str) -> str:
    """The folder name tensorflow_hub gives ``handle`` in its cache: ``sha1(handle)``."""
    return hashlib.sha1(handle.encode("utf8")).hexdigest()


def read_marker(folder, name: str = MARKER) -> dict | None:
    """The marker ``name`` of a module folder, or None (a real module, or nothing there)."""
    try:
        return json.loads((Path(folder) / name).read_text())
    except (OSError, ValueError):
        return None


def install_folder(target, build: Callable[[Path], object], is_current: Callable[[Path], bool],
                   is_ours: Callable[[Path], bool]) -> Path:
    """Make ``target`` hold what ``build(folder)`` writes, unless ``is_current(target)``; return it.

    One build at a time (a lock beside it; not ``<target>.lock``, which is tensorflow_hub's own
    download lock); built in a temporary folder and renamed into place, so a concurrent or
    interrupted build never leaves half a module where ``hub.load`` would use it. An older
    folder of ours is replaced; one that is not ours (``is_ours`` false: a real module) is
    refused with ``FileExistsError``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_current(target):
        return target
    with atomic.locked(target.parent / f".standin-{target.name}"):
        if is_current(target):  # another process built it while we waited
            return target
        if target.exists() and any(target.iterdir()) and not is_ours(target):
            raise FileExistsError(f"{target} holds a module that is not the course's stand-in; "
                                  "refusing to overwrite it (is this a real TF-Hub cache?)")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
        try:
            build(tmp / "module")
            if target.exists():
                os.replace(target, tmp / "old")
            os.rename(tmp / "module", target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- TF1 Hub format


def lookup_table(tf, vocab_file):
    """word -> line number of ``vocab_file`` (-1 for unknown words), a TF lookup table."""
    initializer = tf.lookup.TextFileInitializer(
        vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
        tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
    return tf.lookup.StaticHashTable(initializer, default_value=-1)


def word_ids(tf, words, table, max_words: int):
    """Raw sentences ``[B]`` -> ids ``[B, max_words]`` in the graph: the tokenisation of
    :func:`helpers.words.tokenize`, unknown words dropped, zero-padded."""
    from helpers.words import NOT_WORD_RE2

    spaced = tf.strings.regex_replace(tf.strings.lower(words, encoding="utf-8"), NOT_WORD_RE2, " ")
    ids = tf.ragged.map_flat_values(table.lookup, tf.strings.split(spaced))
    ids = tf.ragged.boolean_mask(ids, ids >= 0)  # unknown words are dropped
    return ids[:, :max_words].to_tensor(default_value=0, shape=[None, max_words])


def write_milnce_module(tf, dest, trainable: dict, fixed: dict, vocab, towers) -> None:
    """Write a module in MIL-NCE's TF1 Hub format into the new folder ``dest``.

    ``trainable`` / ``fixed``: name -> float32 array (the weights; batch-norm statistics or
    weights that are not trained). ``towers(tf, images, words, var, table, train)`` builds the
    graph and returns ``(video_outputs, text_outputs)``. Two graph variants share the
    variables, as in the official module: the empty tags (``train=False``) and ``{"train"}``.
    Variables start at zero and get their values fed in, so the weights live in ``variables/``
    only, not also as constants in ``saved_model.pb``.
    """
    v1 = tf.compat.v1
    values = {**trainable, **fixed}
    builder = v1.saved_model.Builder(str(dest))
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # the TF1 builder's deprecation notices: TF1 format on purpose
    try:
        with tempfile.TemporaryDirectory(prefix="milnce-module-") as scratch:
            vocab_file = Path(scratch) / "vocab.txt"
            vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
            for train in (False, True):
                graph = tf.Graph()
                with graph.as_default():
                    images = v1.placeholder(tf.float32, [None, None, None, None, 3], name="images")
                    words = v1.placeholder(tf.string, [None], name="words")
                    var = {name: v1.get_variable(name, shape=value.shape, dtype=tf.float32,
                                                 initializer=v1.zeros_initializer(),
                                                 trainable=name in trainable, use_resource=True)
                           for name, value in values.items()}
                    vocab_tensor = tf.constant(str(vocab_file), name="vocab_file")
                    v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, vocab_tensor)
                    video_out, text_out = towers(tf, images, words, var,
                                                 lookup_table(tf, vocab_tensor), train)
                    info = v1.saved_model.utils.build_tensor_info
                    build = v1.saved_model.signature_def_utils.build_signature_def
                    signatures = {
                        "video": build(inputs={"images": info(images)},
                                       outputs={k: info(v) for k, v in video_out.items()}),
                        "text": build(inputs={"words": info(words)},
                                      outputs={k: info(v) for k, v in text_out.items()})}
                    init_tables = v1.tables_initializer(name="init_tables")
                    options = dict(signature_def_map=signatures, main_op=init_tables,
                                   assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
                                   strip_default_attrs=True)
                    if train:
                        builder.add_meta_graph(tags=["train"], **options)
                        continue
                    feeds = {name: v1.placeholder(tf.float32, value.shape)
                             for name, value in values.items()}
                    # The first session run logs an MLIR INFO line under TF 2.20 (Colab's).
                    with gpu.quiet_startup(), v1.Session(graph=graph) as session:
                        session.run([v1.global_variables_initializer(), init_tables])
                        session.run([var[name].assign(feeds[name]) for name in feeds],
                                    {feeds[name]: values[name] for name in feeds})
                        builder.add_meta_graph_and_variables(session, tags=[], **options)
            builder.save()
    finally:
        logger.setLevel(level)
    mark_tf1_hub_format(dest)


def mark_tf1_hub_format(dest) -> None:
    """Write ``tfhub_module.pb``: ``hub.load`` then treats the SavedModel as TF1 Hub format and
    loads its empty tags. The content is a ModuleDef proto {format: FORMAT_V3} (field 1 = 1)."""
    (Path(dest) / "tfhub_module.pb").write_bytes(b"\x08\x01")
