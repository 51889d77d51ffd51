"""The MMV command line beyond ``embed --clips``: audio and text through TF-Hub, export-tfhub,
compare-releases (see :func:`helpers.mmv.main`); and :func:`compare_releases` for notebooks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from helpers import config
from helpers.mmv.checkpoint import BACKBONES, CheckpointError
from helpers.mmv.inputs import ClipError, check_clips
from helpers.mmv.encoder import load_model, resolve_mode

#: Two float32 runs of the same weights through different XLA builds differ by rounding only:
#: measured on the stand-in, at most ~3e-6 of max|output| (video, 8x64x64 clips). A relative
#: difference above MATCH_TOLERANCE means the computations differ, not just their rounding.
MATCH_TOLERANCE = 1e-3


def embed_audio_text(args) -> dict:
    """``embed --audio/--text``: the TF-Hub module of ``args.backbone`` on sound files and sentences."""
    from helpers.mmv import frontend, hub

    sounds = [hub.read_audio(path) for path in args.audio]  # bad files fail before loading
    mode = hub.resolve_mode(args.backbone)
    print(f"TF-Hub module: {hub.default_handle(args.backbone)} ({mode})", file=sys.stderr)
    if mode == "tiny":
        print("WARNING: tiny mode: the course's stand-in module with RANDOM weights; the audio and "
              "text embeddings mean nothing.", file=sys.stderr)
    module = hub.load(args.backbone)
    out = {}
    if sounds:
        audio = hub.embed_audio(module, np.stack([hub.fit_length(s) for s in sounds]))
        out.update({f"audio_{k}": v for k, v in audio.items()})
        out["audio_files"] = np.asarray([str(p) for p in args.audio])
        short = [p for p, s in zip(args.audio, sounds) if len(s) < frontend.NUM_SAMPLES]
        if short:
            print(f"note: zero-padded to 3.2 s: {', '.join(map(str, short))}", file=sys.stderr)
    if args.text:
        out["text_vat"] = hub.embed_texts(module, args.text)["vat"]
        out["texts"] = np.asarray(args.text)
    return out


# --------------------------------------------------------------------------- compare releases


def compare_releases(backbone: str, clips, module=None, encoder=None) -> dict:
    """The TF-Hub module's ``video`` outputs vs the JAX checkpoint's on the same clips.

    Both are DeepMind's releases of the same trained weights, so they should agree up to float32
    rounding. Runs both on ``clips`` and returns :func:`compare_outputs` of the two.
    """
    from helpers.mmv import hub

    module = module if module is not None else hub.load(backbone)
    encoder = encoder if encoder is not None else load_model(backbone)
    return compare_outputs(hub.embed_videos(module, clips), encoder(clips))


def compare_outputs(tfhub: dict, jax_out: dict) -> dict:
    """Compare the TF-Hub ``video`` outputs ``tfhub`` with the JAX model's ``jax_out`` on the
    same clips (for a notebook that has both already).

    Returns ``{output: {"max_abs": ..., "relative": ..., "match": bool}}`` for ``before_head``
    (vs ``vid_repr``), ``va``, ``vat``, plus ``"match"`` overall; ``relative`` is
    ``max|tfhub - jax| / max(1, max|jax|)``, a match is ``relative <= MATCH_TOLERANCE``.
    """
    report = {}
    for hub_key, jax_key in (("before_head", "vid_repr"), ("va", "va"), ("vat", "vat")):
        if np.shape(tfhub[hub_key]) != np.shape(jax_out[jax_key]):
            raise ValueError(f"TF-Hub {hub_key} has shape {np.shape(tfhub[hub_key])}, JAX "
                             f"{jax_key} {np.shape(jax_out[jax_key])}: not the same clips")
        diff = float(np.abs(tfhub[hub_key] - jax_out[jax_key]).max())
        relative = diff / max(1.0, float(np.abs(jax_out[jax_key]).max()))
        report[hub_key] = {"max_abs": diff, "relative": relative,
                           "match": relative <= MATCH_TOLERANCE}
    report["match"] = all(v["match"] for v in report.values())
    return report


def format_comparison(report: dict, label: str = "") -> str:
    lines = [f"[{label}]"] if label else []
    lines.append(f"{'output':<12} {'max |TF-Hub - JAX|':>20} {'relative':>10}  verdict")
    for key in ("before_head", "va", "vat"):
        r = report[key]
        lines.append(f"{key:<12} {r['max_abs']:>20.3g} {r['relative']:>10.2g}  "
                     f"{'match' if r['match'] else 'MISMATCH'}")
    if report["match"]:
        lines.append("The two releases compute the same function (differences are float32 rounding).")
    else:
        lines.append("MISMATCH: the two releases disagree by more than rounding: different "
                     "weights, preprocessing or layer definitions (see notebook 05).")
    return "\n".join(lines)


def _compare_command(args) -> int:
    from helpers.mmv import clips as mmv_clips
    from helpers.mmv import hub

    mode = hub.resolve_mode(args.backbone)
    ckpt_mode = resolve_mode(args.backbone)
    if args.clips:
        clips = np.load(args.clips, allow_pickle=False)
    else:
        clips, _ = mmv_clips.demo_clips(num_frames=args.frames, size=args.size, mode=mode)
    clips = check_clips(clips, args.backbone, what=args.clips or "demo clips")
    encoder = load_model(args.backbone, args.checkpoint)
    report = compare_releases(args.backbone, clips, hub.load(args.backbone), encoder)
    label = config.standin_label([hub.resource_name(args.backbone), f"mmv_{args.backbone}"])
    if mode == "tiny" or ckpt_mode == "tiny":
        label = (label or "tiny stand-in") + ": both sides are made from the same stand-in " \
                "checkpoint, so they agree by construction"
    print(format_comparison(report, label))
    return 0 if report["match"] else 3


# --------------------------------------------------------------------------- export


def _export_command(args) -> int:
    from helpers.mmv import export

    out = export.build_savedmodel(args.backbone, Path(args.checkpoint), Path(args.out))
    print(f"wrote {out}: signatures video (before_head, va, vat), audio (va, vat, last_conv), "
          f"text (vat); {export.NOTE}")
    return 0


def add_parsers(sub) -> None:
    exp = sub.add_parser("export-tfhub", help="write a checkpoint as a SavedModel with the "
                         "TF-Hub MMV signatures (video, audio, text)")
    exp.add_argument("--backbone", required=True, choices=BACKBONES)
    exp.add_argument("--checkpoint", required=True, help="official-format checkpoint pickle "
                     "(all three towers)")
    exp.add_argument("--out", required=True, help="new folder for the SavedModel")
    cmp = sub.add_parser("compare-releases", help="TF-Hub module vs JAX checkpoint: video "
                         "outputs on the same clips (exit 3 on a mismatch)")
    cmp.add_argument("--backbone", required=True, choices=BACKBONES)
    cmp.add_argument("--checkpoint", help="checkpoint pickle (default: the mode's)")
    cmp.add_argument("--clips", help=".npy clips [B, T, H, W, 3] in [0, 1] (default: the demo clips)")
    cmp.add_argument("--frames", type=int, default=32)
    cmp.add_argument("--size", type=int, default=224)


def run(args: argparse.Namespace) -> int:
    """Run ``export-tfhub`` or ``compare-releases``; 2 for bad input, 1 for a failed download."""
    from helpers import downloads
    from helpers.mmv import hub

    try:
        if args.command == "export-tfhub":
            return _export_command(args)
        return _compare_command(args)
    except (ClipError, CheckpointError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (downloads.DownloadError, hub.MmvHubError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
