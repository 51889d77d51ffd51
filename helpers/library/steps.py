"""The steps of indexing one video, shared by both engines (Beam, and in-process without Beam).

:mod:`helpers.library.beam_pipeline` wraps them in Beam transforms; :func:`helpers.library.
pipeline.build_index` calls them in a plain loop when Beam is not installed (Colab: see
:mod:`helpers.library.pipeline`). One implementation, so both engines write the same rows.
Nothing here imports Beam unless a remote (``gs://``) file has to be read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from typing import Iterator, Sequence

import numpy as np

from helpers.library.windows import Windows


def is_remote(path) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


@contextlib.contextmanager
def local_copy(path: str):
    """Yield ``(local path, sha256 hex)`` of ``path``; a remote file is copied to a temporary
    file while hashing (the decoder needs a local file) and deleted afterwards (needs Beam's
    file systems, ``apache-beam[gcp]`` for ``gs://``)."""
    digest = hashlib.sha256()
    if not is_remote(path):
        local = str(path).removeprefix("file://")
        with open(local, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        yield local, digest.hexdigest()
        return
    from apache_beam.io.filesystems import FileSystems

    folder = tempfile.mkdtemp(prefix="library-")
    local = os.path.join(folder, "video" + os.path.splitext(path)[1])
    try:
        with FileSystems.open(path) as source, open(local, "wb") as target:
            while block := source.read(1 << 20):
                digest.update(block)
                target.write(block)
        yield local, digest.hexdigest()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def cut_windows(path: str, windows: Windows, done: dict) -> Iterator[tuple]:
    """The windows of ``path`` not written yet: yields ``((video, file_sha256, start_s, end_s),
    uint8 frames [T, size, size, 3])``; an unreadable file yields ``(None, {"path",
    "reason"})`` (once, possibly after some windows of a damaged tail) instead of raising.

    ``done``: ``{file_sha256: {(start_s, end_s), ...}}`` already in the index for this model's
    weights; those windows are skipped without being decoded.
    """
    from helpers import video
    from helpers.library import windows as cutter

    try:
        with local_copy(path) as (local, digest):
            plan = cutter.plan(local, windows)
            skip = done.get(digest, ())
            todo = [i for i, span in enumerate(plan.spans()) if span not in skip]
            for _, start, end, frames in cutter.iter_windows(local, windows, todo, the_plan=plan):
                yield (path, digest, start, end), frames
    except video.VideoError as err:
        yield None, {"path": path, "reason": err.cause}
    except OSError as err:  # unreadable, vanished, or a storage error
        yield None, {"path": path, "reason": f"cannot read it ({err.strerror or err})"}
    except Exception as err:  # noqa: BLE001 - one odd file must not stop the whole job
        yield None, {"path": path, "reason": f"unexpected error while cutting it "
                                             f"({type(err).__name__}: {str(err)[:200]})"}


def embed_windows(model, batch: Sequence[np.ndarray], encoder: str = "milnce") -> np.ndarray:
    """uint8 windows ``[T, size, size, 3]`` -> float32 embeddings ``[B, dim]`` with the encoder
    called ``encoder`` (:mod:`helpers.library.encoders`): MIL-NCE's ``video_embedding``
    through :func:`helpers.milnce.embed_videos` (the function ``python -m helpers.milnce
    embed`` calls), or MMV S3D-G's ``vid_repr`` through :func:`helpers.mmv.load_model`'s
    encoder."""
    from helpers.library import encoders

    return encoders.get(encoder).embed(model, batch)


def row(key: tuple, embedding, model: str, weights: str) -> dict:
    """One index row (:data:`helpers.library.store.COLUMNS`) for a window's key and embedding."""
    path, digest, start, end = key
    return {"video": path, "file_sha256": digest, "start_s": start, "end_s": end,
            "embedding": np.asarray(embedding, np.float32), "model": model,
            "weights_sha256": weights}
