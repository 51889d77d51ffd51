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

import sys
from pathlib import Path

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
from helpers.mmv.inputs import ClipError, check_clips, space_to_depth  # noqa: F401  (re-exported)
from helpers.mmv.encoder import (  # noqa: F401  (re-exported)
    DEFAULT_BATCH_SIZE,
    DISPLAY_NAME,
    FEATURE_DIM,
    LICENCE,
    RESOURCES,
    TFHUB_HANDLE,
    VA_DIM,
    VAT_DIM,
    VideoEncoder,
    checkpoint_path,
    checkpoint_provenance,
    default_batch_size,
    load_model,
    resolve_mode,
)


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
