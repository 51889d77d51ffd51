"""MMV video encoders (S3D-G, TSM-ResNet50, TSM-ResNet50x2) on DeepMind's JAX/Haiku checkpoints.

Taught in notebook 03 (``03_mmv_backbones.ipynb``); reused by the UCF101 linear evaluation.

    from helpers import mmv
    encoder = mmv.load_model("s3d")          # downloads (real) or generates (tiny) the checkpoint
    out = encoder(clips)                     # clips [B, T, H, W, 3] float32 in [0, 1]
    out["vid_repr"], out["va"], out["vat"]   # [B, 1024 | 2048 | 4096], [B, 512], [B, 256]

``vid_repr`` is the backbone feature (TF-Hub's ``before_head``); ``va`` is the video embedding
in the video-audio space (the checkpoints' ``vid2audio_embd`` head, called ``toaud`` in the
original code); ``vat`` the video embedding in the video-audio-text space (``vis_embd``, called
``totxt``), where text embeddings live too.

Command line (batch use)::

    python -m helpers.mmv embed --backbone s3d [--checkpoint mmv_s3d.pkl] \\
        --clips clips.npy --out embeddings.npz [--batch-size 8] \\
        [--audio sound.wav] [--text "a dog barking"]     # these two: the TF-Hub module
    python -m helpers.mmv export-tfhub --backbone s3d --checkpoint mmv_s3d.pkl --out DIR
    python -m helpers.mmv compare-releases --backbone s3d  # TF-Hub video vs JAX checkpoint

Audio and text: :mod:`helpers.mmv.audio_text` (the Haiku towers on the checkpoints) and
:mod:`helpers.mmv.hub` (DeepMind's TF-Hub modules, notebook 05).

Checkpoint weights are DeepMind's, licensed CC BY-NC 4.0 (non-commercial use only). Importing
this module does not import JAX; building a model does.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np

from helpers import config, downloads, resources
from helpers.mmv.clips import space_to_depth  # noqa: F401  (re-exported)
from helpers.mmv.checkpoint import (  # noqa: F401  (re-exported)
    BACKBONES,
    CheckpointError,
    UnsafeCheckpointError,
    count_params,
    expected_tree,
    guess_backbone,
    load_checkpoint,
    tree_bytes,
)

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


class ClipError(ValueError):
    """Clips have the wrong shape, type or value range; the message says which and how to fix it."""


def _check_backbone(backbone: str) -> str:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown MMV backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    return backbone


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
                       is_cached=lambda b=_backbone: _real_path(b).is_file(),
                       probe_url=lambda b=_backbone: RESOURCES[b].url,
                       fetch=lambda b=_backbone: _download_checkpoint(b))
del _backbone


# --------------------------------------------------------------------------- clips


def check_clips(clips, backbone: str, what: str = "clips") -> np.ndarray:
    """Validate clips ``[B, T, H, W, 3]`` in [0, 1]; return them as float32. Raises :class:`ClipError`."""
    array = np.asarray(clips)
    if array.ndim == 4 and array.shape[-1] == 3:
        raise ClipError(f"{what} has shape {array.shape}: that is one clip [T, H, W, 3]; "
                        "add a batch axis (clip[None])")
    if array.ndim != 5 or array.shape[-1] != 3:
        raise ClipError(f"{what} has shape {array.shape}; expected [B, T, H, W, 3] RGB clips")
    if 0 in array.shape:
        raise ClipError(f"{what} has shape {array.shape}: it is empty")
    if array.dtype == np.uint8:
        raise ClipError(f"{what} is uint8 (0..255); convert with clips.astype(np.float32) / 255")
    if not np.issubdtype(array.dtype, np.floating):
        raise ClipError(f"{what} has dtype {array.dtype}; expected float32 in [0, 1]")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ClipError(f"{what} contains NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1 + 1e-3:
        hint = " (it looks like 0..255: divide by 255)" if high > 2 else (
            " (it looks like [-1, 1]: use (x + 1) / 2)" if low < -0.5 else "")
        raise ClipError(f"{what} has values in [{low:.3g}, {high:.3g}]; expected [0, 1]{hint}")
    if backbone == "s3d" and any(d % 2 for d in array.shape[1:4]):
        raise ClipError(f"{what} has shape {array.shape}; S3D-G needs even T, H and W "
                        "(its space-to-depth step packs 2x2x2 blocks)")
    return array


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


# --------------------------------------------------------------------------- command line


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
        from helpers.standins import mmv as standin

        tiny_root = (config.cache_root() / "tiny" / "mmv").resolve()
        if tiny_root in path.resolve().parents:
            origin = "stand-in"
        else:
            known = (config.cache_root() / "tiny" / "mmv"
                     / f"{standin.RULE}-seed{standin.DEFAULT_SEED}" / f"mmv_{backbone}.pkl")
            if known.is_file() and checks.file_digest(known) == digest:
                origin = "stand-in"
    return {"origin": origin, "file": str(path), "sha256": digest}


def _embed(args) -> int:
    out = _embed_clips(args) if args.clips else {}
    if args.audio or args.text:
        from helpers.mmv import commands

        out.update(commands.embed_audio_text(args))

    from helpers import atomic

    atomic.save_npz(args.out, **out)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in out.items())
    print(f"wrote {args.out}: {shapes}")
    return 0


def _embed_clips(args) -> dict:
    from helpers import checks

    clips = checks.load_npy(args.clips)
    clips = check_clips(clips, args.backbone, what=str(args.clips))
    weights = checkpoint_provenance(args.backbone, args.checkpoint)
    checkpoint = Path(weights["file"])
    if args.checkpoint:
        print(f"checkpoint: {checkpoint} ({weights['origin']}, sha256 {weights['sha256'][:12]})",
              file=sys.stderr)
    else:
        mode = resolve_mode(args.backbone)
        print(f"checkpoint: {checkpoint} ({mode})", file=sys.stderr)
    if weights["origin"] == "stand-in":
        print("WARNING: tiny mode: a generated stand-in with RANDOM weights; the embeddings "
              "mean nothing.", file=sys.stderr)
    # None for the default: load_model then drops a damaged download from the cache.
    encoder = load_model(args.backbone, args.checkpoint, batch_size=args.batch_size)
    return encoder(clips)


def main(argv=None) -> int:
    """``python -m helpers.mmv embed ...``; exit status 2 for any bad input (one line)."""
    from helpers import cli

    parser = cli.ArgumentParser(prog="python -m helpers.mmv", description=(
        "Embed RGB clips with an MMV video model (vid_repr, va, vat). " + LICENCE))
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser("embed", help="embed clips from a .npy file into a .npz file")
    embed.add_argument("--backbone", required=True, choices=BACKBONES)
    embed.add_argument("--checkpoint", type=cli.input_file,
                       help="checkpoint pickle (default: download the official "
                       "one, or generate the stand-in in tiny mode)")
    embed.add_argument("--clips", type=cli.input_file,
                       help=".npy file of clips [B, T, H, W, 3] float32 in [0, 1] (JAX checkpoint)")
    embed.add_argument("--audio", action="append", default=[], metavar="FILE",
                       type=cli.input_file,
                       help="a .wav / .mp4 / ... file whose first 3.2 s of sound to embed with the "
                       "TF-Hub module (repeatable): audio_va, audio_vat, audio_last_conv")
    embed.add_argument("--text", action="append", default=[], metavar="SENTENCE",
                       help="a sentence to embed with the TF-Hub module (repeatable): text_vat")
    embed.add_argument("--out", required=True, type=cli.suffixed(cli.output_file, ".npz"),
                       help="output .npz (every embedding computed: vid_repr, va, vat for "
                       "--clips; audio_*, text_* for --audio / --text)")
    embed.add_argument("--batch-size", type=cli.positive_int, default=None,
                       help="clips per forward pass (default: s3d 8, tsm_resnet_x1 4, x2 2)")
    from helpers.mmv import commands

    commands.add_parsers(sub)

    def body(args) -> int:
        if args.command != "embed":
            return commands.run(args)
        if not (args.clips or args.audio or args.text):
            raise cli.CLIError("give at least one of --clips, --audio, --text")
        return _embed(args)

    return cli.main(parser, body, argv)
