"""The encoders a library embeds its windows with (``--model``): MIL-NCE, or MMV's S3D-G.

* ``milnce``: MIL-NCE's TF-Hub module (or its tiny stand-in, trained here):
  ``video_embedding`` ``[512]``, in the space of its text tower, so ``search --text`` works;
* ``mmv-s3d``: MMV's S3D-G backbone on DeepMind's JAX checkpoint (tiny mode: the course's
  stand-in checkpoint, random weights), loaded by :func:`helpers.mmv.load_model`: the
  backbone feature ``vid_repr`` ``[1024]`` (TF-Hub's ``before_head``) of each window. It has no
  text tower to search with: the checkpoint's own text tower reads word ids whose vocabulary
  DeepMind did not publish (the course's stand-in vocabulary makes its text embeddings mean
  nothing with the real weights, :mod:`helpers.mmv.frontend`), and the TF-Hub module's text
  tower lives in the ``vat`` head's space, not the backbone's. An ``mmv-s3d`` index is for
  video-to-video search (:func:`helpers.library.search.search` with a window's feature) and
  for features; ``search --text`` refuses it (:func:`check_text_search`).

Each encoder gives its ``name`` (the rows' ``model`` column), ``dim``, whether it has a
``text`` tower, ``resolve(handle)`` (the handle or file recorded in the manifest; ``None``:
the default), ``weights(handle)`` (the digest recorded with every row), ``load(handle)`` and
``embed(model, frames)``: uint8 windows ``[B, T, size, size, 3]`` ->
float32 ``[B, dim]``, the same scaling to [0, 1] for both (:func:`helpers.library.windows.
to_model_input`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.library.store import LibraryError


class Milnce:
    name = "milnce"
    dim = 512
    text = True
    display = "MIL-NCE S3D (video_embedding, 512-d)"

    @staticmethod
    def resolve(handle=None) -> str:
        """The TF-Hub handle or folder to record (default: MIL-NCE's handle)."""
        from helpers import milnce

        return str(handle) if handle else milnce.default_handle()

    @classmethod
    def weights(cls, handle=None) -> tuple[str, str]:
        return weights_digest(cls.resolve(handle))

    @staticmethod
    def check_windows(windows) -> None:
        pass  # any frame count and size

    @classmethod
    def standin_resource(cls, handle=None) -> str | None:
        """The resource to put in the tiny-mode banner when ``handle`` (None: the default)
        resolves to the stand-in module, else None (a local folder is the user's own)."""
        from helpers import milnce

        handle = cls.resolve(handle)
        if not milnce._looks_local(handle) and milnce.resolve_mode(handle) == "tiny":
            return milnce.RESOURCE
        return None

    @classmethod
    def load(cls, handle=None):
        from helpers import milnce

        return milnce.load(cls.resolve(handle))

    @staticmethod
    def embed(model, frames) -> np.ndarray:
        """Through :func:`helpers.milnce.embed_videos` (what ``python -m helpers.milnce embed``
        calls), all of ``frames`` in one call."""
        from helpers import milnce
        from helpers.library.windows import to_model_input

        clips = to_model_input(np.stack(frames))
        return milnce.embed_videos(model, clips, batch_size=max(1, len(clips)),
                                   progress=False)["video_embedding"]


class MmvS3d:
    name = "mmv-s3d"
    backbone = "s3d"
    dim = 1024
    text = False
    display = "MMV S3D-G backbone (vid_repr, 1024-d; no text tower)"

    @classmethod
    def resolve(cls, handle=None) -> str:
        """The checkpoint pickle to record: ``handle``, or the mode's (downloaded once, or in
        tiny mode the stand-in generated once)."""
        from helpers import mmv

        return str(handle) if handle else str(mmv.checkpoint_path(cls.backbone))

    @classmethod
    def weights(cls, handle=None) -> tuple[str, str]:
        """``(sha256 of the checkpoint file, "real" | "tiny" | "local")``
        (:func:`helpers.mmv.checkpoint_provenance`)."""
        from helpers import mmv

        if handle and not Path(handle).is_file():
            raise LibraryError(f"{handle}: the MMV checkpoint file does not exist")
        provenance = mmv.checkpoint_provenance(cls.backbone, handle or None)
        mode = {"official": "real", "stand-in": "tiny"}.get(provenance["origin"], "local")
        return provenance["sha256"], mode

    @staticmethod
    def check_windows(windows) -> None:
        # S3D-G's space-to-depth packs 2x2x2 blocks of pixels (helpers.mmv.inputs).
        odd = [f"{name} {value}" for name, value in (("--frames", windows.num_frames),
                                                     ("--size", windows.size)) if value % 2]
        if odd:
            raise LibraryError(f"--model mmv-s3d: S3D-G needs an even number of frames and an "
                               f"even crop size, got {', '.join(odd)}")

    @classmethod
    def standin_resource(cls, handle=None) -> str | None:
        """As :meth:`Milnce.standin_resource`: the default checkpoint in tiny mode is the
        stand-in; a given file is the user's own."""
        from helpers import mmv

        return f"mmv_{cls.backbone}" if not handle and mmv.resolve_mode(cls.backbone) == "tiny" \
            else None

    @classmethod
    def load(cls, handle=None):
        """:func:`helpers.mmv.load_model`: ``handle`` a checkpoint pickle, or None for the
        mode's (each Beam worker then finds, downloads or generates its own). It runs the
        windows of one call :func:`helpers.mmv.default_batch_size` at a time (1 on a CPU,
        where larger batches are slower per clip)."""
        from helpers import mmv

        return mmv.load_model(cls.backbone, handle or None)

    @staticmethod
    def embed(model, frames) -> np.ndarray:
        """``vid_repr`` of each window. The batch is padded to a multiple of the encoder's batch
        size (with copies of its last window, dropped after) so XLA compiles one program for
        every batch, whatever size Beam or the last batch of a run hands over."""
        from helpers.library.windows import to_model_input

        clips = to_model_input(np.stack(frames))
        count = len(clips)
        pad = -count % model.batch_size
        if pad:
            clips = np.concatenate([clips, np.repeat(clips[-1:], pad, axis=0)])
        return model(clips)["vid_repr"][:count]


ENCODERS = {encoder.name: encoder for encoder in (Milnce, MmvS3d)}
#: The names ``--model`` accepts.
NAMES = tuple(ENCODERS)


def get(name: str):
    """The encoder called ``name``; raises :class:`LibraryError` naming the choices."""
    try:
        return ENCODERS[name]
    except KeyError:
        raise LibraryError(f"--model {name}: not supported; use one of "
                           f"{', '.join(NAMES)}") from None


def check_text_search(library, index: str = "the index") -> None:
    """Raise :class:`LibraryError` (naming ``index``) unless ``library`` was embedded with an
    encoder that has a text tower in the same space (MIL-NCE)."""
    name = library.manifest.get("model", "milnce")
    encoder = ENCODERS.get(name)
    if encoder is None or not encoder.text:
        what = encoder.display if encoder is not None else "an unknown model"
        raise LibraryError(f"{index}: built with --model {name} ({what}), which has no text "
                           f"tower to search it by text; build an index with --model milnce "
                           f"for text search")


def weights_digest(handle: str) -> tuple[str, str]:
    """``(sha256 over the module's files, mode)`` for a TF-Hub handle or a local folder.

    The module is resolved (and, the first time in real mode, downloaded) as
    :func:`helpers.milnce.load` does; the digest is :func:`helpers.checks.folder_digest`.
    """
    from helpers import checks, milnce

    handle = str(handle)
    if "://" not in handle or handle.startswith("file://"):  # a local folder (as steps.is_remote)
        folder = Path(handle.removeprefix("file://")).expanduser()
        if not folder.is_dir():
            raise LibraryError(f"{folder}: the model folder does not exist")
        return checks.folder_digest(folder), "local"
    mode = milnce.resolve_mode(handle)
    folder = milnce.cache_folder(handle, mode)
    if not (folder.is_dir() and any(folder.iterdir())):
        milnce.load(handle)  # downloads it into the cache
    return checks.folder_digest(folder), mode
