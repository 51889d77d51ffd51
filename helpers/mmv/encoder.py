"""MMV's video model on DeepMind's checkpoints: the checkpoint artefact, :class:`VideoEncoder`,
:func:`load_model`. Re-exported by :mod:`helpers.mmv` (use it from there); a leaf module, so
the package's other modules can import it without importing the package.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from helpers import config, downloads, resources
from helpers.mmv.checkpoint import (
    BACKBONES,
    CheckpointError,
    _check_backbone,
    count_params,
    load_checkpoint,
    tree_bytes,
)
from helpers.mmv.inputs import check_clips

FEATURE_DIM = {"s3d": 1024, "tsm_resnet_x1": 2048, "tsm_resnet_x2": 4096}
VA_DIM, VAT_DIM = 512, 256
DISPLAY_NAME = {"s3d": "S3D-G", "tsm_resnet_x1": "TSM-ResNet50", "tsm_resnet_x2": "TSM-ResNet50x2"}
#: TF-Hub modules of the same models (TF SavedModels: signatures video / audio / text).
TFHUB_HANDLE = {
    "s3d": "https://tfhub.dev/deepmind/mmv/s3d/1",
    "tsm_resnet_x1": "https://tfhub.dev/deepmind/mmv/tsm-resnet50/1",
    "tsm_resnet_x2": "https://tfhub.dev/deepmind/mmv/tsm-resnet50x2/1",
}
LICENCE = ("The MMV checkpoints are DeepMind's, released under CC BY-NC 4.0 "
           "(https://creativecommons.org/licenses/by-nc/4.0/): non-commercial use only, with "
           "attribution (Alayrac et al., NeurIPS 2020).")

#: The official checkpoints. No sizes or hashes are published; a download is checked for
#: completeness (Content-Length), for a plausible size, and then array by array when loaded.
RESOURCES = {
    backbone: downloads.Resource(
        name=f"MMV {DISPLAY_NAME[backbone]} checkpoint",
        base="mmv",
        path=f"mmv_{backbone}.pkl",
        filename=f"mmv_{backbone}.pkl",
        licence=LICENCE,
    )
    for backbone in BACKBONES
}

#: Clips per forward pass by default: TSM-ResNet runs B*T frames as images, so it needs smaller
#: batches than S3D-G to stay within a few GB at 32x224x224.
DEFAULT_BATCH_SIZE = {"s3d": 8, "tsm_resnet_x1": 4, "tsm_resnet_x2": 2}


def default_batch_size(backbone: str) -> int:
    """Clips per forward pass: :data:`DEFAULT_BATCH_SIZE` on an accelerator, 1 on a CPU.

    On a CPU, bigger batches are slower per clip (measured on 2 cores at 32x224x224: S3D-G
    1.25 s/clip at batch 1 vs 1.35 at 8; TSM-ResNet50 3.1 vs 4.4), since one clip already
    fills the cores and larger batches only spill the caches (see benchmarks/).
    """
    import jax

    return 1 if jax.default_backend() == "cpu" else DEFAULT_BATCH_SIZE[backbone]


# --------------------------------------------------------------------------- checkpoints


def _real_path(backbone: str) -> Path:
    # Not config.cache_dir(): that creates folders, and asking must not touch the real cache.
    return config.cache_root() / "real" / "mmv" / RESOURCES[backbone].filename


def resolve_mode(backbone: str) -> str:
    """``"real"`` or ``"tiny"`` for ``backbone``'s checkpoint (see :mod:`helpers.resources`)."""
    return resources.mode(f"mmv_{_check_backbone(backbone)}")


def checkpoint_path(backbone: str, mode: str | None = None) -> Path:
    """Local path of ``backbone``'s checkpoint pickle.

    ``real``: downloaded once into ``<cache>/real/mmv/`` (progress bar, resumable, atomic;
    prints the CC BY-NC 4.0 notice before the first download). ``tiny``: a stand-in with random
    weights in the official format, generated once into ``<cache>/tiny/mmv/``.
    ``mode`` defaults to :func:`resolve_mode`. Raises :class:`helpers.downloads.DownloadError`.
    """
    return resources.path(f"mmv_{_check_backbone(backbone)}", mode)


def _download_checkpoint(backbone: str) -> Path:
    """The real checkpoint, downloaded once and checked for a plausible size."""
    resource = RESOURCES[backbone]
    path = downloads.fetch(resource, config.cache_dir("real", "mmv"))
    minimum = tree_bytes(backbone)  # no published sizes: the video part alone is a lower bound
    if path.stat().st_size < minimum:
        size = path.stat().st_size
        path.unlink()
        raise downloads.DownloadError(
            resource.url, f"got {size} bytes, but the video part alone needs {minimum}",
            "the server sent something else (an error page?); retry later")
    return path


for _backbone in BACKBONES:
    resources.register(f"mmv_{_backbone}", "mmv",
                       # (options: full=True asks for all three towers; the official file has them)
                       is_cached=lambda b=_backbone, **_: _real_path(b).is_file(),
                       probe_url=lambda b=_backbone, **_: RESOURCES[b].url,
                       fetch=lambda b=_backbone, **_: _download_checkpoint(b))
del _backbone


# --------------------------------------------------------------------------- models


@functools.lru_cache(maxsize=None)
def _compiled_apply(backbone: str):
    """One jitted forward per backbone (XLA then keeps one executable per input shape)."""
    import jax

    from helpers.mmv import models as mmv_models

    return jax.jit(mmv_models.transformed(backbone).apply)


class VideoEncoder:
    """A loaded MMV video model: ``encoder(clips) -> {"vid_repr", "va", "vat"}`` (numpy float32).

    ``clips``: ``[B, T, H, W, 3]`` float32 in [0, 1]; any T, H, W (even for S3D-G). The
    official evaluation uses 32 frames of 224x224. Clips are run ``batch_size`` at a time
    (default :func:`default_batch_size`; the last batch is padded, so one compiled program
    serves every batch).
    """

    def __init__(self, backbone: str, checkpoint: dict, batch_size: int | None = None,
                 source: str = "in memory"):
        import jax

        self.backbone = _check_backbone(backbone)
        self.feature_dim = FEATURE_DIM[backbone]
        self.batch_size = default_batch_size(backbone) if batch_size is None else int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.source = source
        self.num_params = count_params(checkpoint["params"])
        self.params = jax.device_put(checkpoint["params"])
        self.state = jax.device_put(checkpoint["state"])
        self._apply = _compiled_apply(backbone)

    def __repr__(self):
        return (f"VideoEncoder({DISPLAY_NAME[self.backbone]}, vid_repr {self.feature_dim}-d, "
                f"{self.num_params:,} parameters, from {self.source})")

    def forward(self, clips) -> dict:
        """Every output: ``vid_repr``, ``va``, ``vat``, ``endpoint_means`` ({layer: [B, C]})
        and ``first_endpoint_slice`` (raw values of the first layer, ``[B, 2, 4, 4, C]``)."""
        import jax

        clips = check_clips(clips, self.backbone)
        total = clips.shape[0]
        size = total if total <= self.batch_size else self.batch_size
        pieces = []
        for start in range(0, total, size):
            batch = clips[start:start + size]
            if batch.shape[0] < size:  # pad with copies of the last clip, dropped below
                pad = np.repeat(batch[-1:], size - batch.shape[0], axis=0)
                batch = np.concatenate([batch, pad])
            out, _ = self._apply(self.params, self.state, batch)
            pieces.append(jax.tree_util.tree_map(np.asarray, out))
        joined = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[:total], *pieces)
        for key in ("vid_repr", "va", "vat"):
            if not np.isfinite(joined[key]).all():
                self._raise_non_finite(key, joined[key])
        return joined

    def _raise_non_finite(self, key: str, value: np.ndarray):
        """The clips were checked finite, so the weights are to blame: say which arrays."""
        from helpers.checks import NonFiniteError

        bad = [f"{module}/{name}" for collection in (self.params, self.state)
               for module, arrays in collection.items() for name, array in arrays.items()
               if not np.isfinite(np.asarray(array)).all()]
        rows = np.flatnonzero(~np.isfinite(value).reshape(len(value), -1).all(axis=1))
        where = (f"the weights hold NaN or infinite values in {len(bad)} arrays (first: "
                 f"{', '.join(bad[:3])})" if bad else "the weights are finite, so the "
                 "computation overflowed")
        raise NonFiniteError(f"{self.source}: MMV {DISPLAY_NAME[self.backbone]} output {key!r} "
                             f"is not finite for clips {rows[:5].tolist()}; the clips are "
                             f"finite, {where}")

    def __call__(self, clips) -> dict:
        out = self.forward(clips)
        return {key: out[key] for key in ("vid_repr", "va", "vat")}

    def endpoint_means(self, clips) -> dict:
        """Mean over (T, H, W) of every backbone layer's output: ``{layer name: [B, C]}``."""
        return self.forward(clips)["endpoint_means"]


def load_model(backbone: str, checkpoint=None, batch_size: int | None = None) -> VideoEncoder:
    """Build :class:`VideoEncoder` for ``backbone`` from a checkpoint.

    ``checkpoint``: a pickle path, an already loaded ``{'params', 'state'}`` dict (from
    :func:`load_checkpoint`), or ``None`` for :func:`checkpoint_path` (download / stand-in).
    ``batch_size``: clips per forward pass (default :func:`default_batch_size`).
    Raises :class:`CheckpointError` for a bad or unsafe file.
    """
    _check_backbone(backbone)
    downloaded = False
    if checkpoint is None:
        checkpoint = checkpoint_path(backbone)
        downloaded = resolve_mode(backbone) == "real"
    if isinstance(checkpoint, (str, os.PathLike)):
        source = str(checkpoint)
        try:
            checkpoint = load_checkpoint(checkpoint, backbone)
        except CheckpointError as err:
            if not downloaded:  # a file the user named: never delete it
                raise
            # No size or hash is published, so a damaged download can only be caught here:
            # drop it from the cache, so the next run downloads it again instead of failing.
            Path(source).unlink(missing_ok=True)
            raise type(err)(f"{err}\nThe damaged copy was deleted from the course's cache; run "
                            f"again to download it afresh.") from err
    else:
        source = "in memory"
        if not isinstance(checkpoint, dict) or not {"params", "state"} <= set(checkpoint):
            raise CheckpointError("checkpoint must be a path or a dict with 'params' and 'state'")
        from helpers.mmv.checkpoint import extract_visual

        checkpoint = extract_visual(checkpoint, backbone, source)
    return VideoEncoder(backbone, checkpoint, batch_size=batch_size, source=source)


def checkpoint_provenance(backbone: str, checkpoint=None) -> dict:
    """What the weights are: ``{"origin", "file", "sha256"}`` for reports and cache keys.

    ``origin``: ``official`` (the downloaded checkpoint), ``stand-in`` (the course's generated
    checkpoint, found by its digest or its place in the tiny cache) or ``user file``.
    ``checkpoint``: a path, or ``None`` for :func:`checkpoint_path` (which downloads or builds
    it). The digest is the file's SHA-256 (remembered by size and mtime, see
    :func:`helpers.checks.file_digest`).
    """
    from helpers import checks

    if checkpoint is None:
        mode = resolve_mode(backbone)
        path = checkpoint_path(backbone, mode)
        origin = "official" if mode == "real" else "stand-in"
    else:
        path = Path(checkpoint)
        origin = "user file"
    digest = checks.file_digest(path)
    if origin == "user file":
        known = resources.built_standin(f"mmv_{backbone}")
        if (config.cache_root() / "tiny" / "mmv").resolve() in path.resolve().parents or (
                known is not None and checks.file_digest(known) == digest):
            origin = "stand-in"
    return {"origin": origin, "file": str(path), "sha256": digest}
