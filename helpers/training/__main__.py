"""Command line: train a video-text model on the generated corpus; export it as a TF-Hub module.

    python -m helpers.training train --loss milnce --seed 0 --out runs/milnce0 [--steps N]
    python -m helpers.training export --run runs/milnce0 --out modules/milnce0

Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    from helpers import cli
    from helpers.training.losses import LOSSES

    parser = cli.ArgumentParser(prog="python -m helpers.training",
                                description="Train with MIL-NCE (or a baseline loss) on "
                                            "generated narrated clips; export to TF-Hub.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train both towers; write DIR/report.json + weights")
    train.add_argument("--loss", choices=sorted(LOSSES), default="milnce")
    train.add_argument("--seed", type=cli.nonnegative_int, default=0)
    # Checked writable while parsing: a folder that cannot be written is found before the
    # training, not after it (when the trained run would be lost).
    train.add_argument("--out", type=cli.output_folder, required=True, help="run folder (created)")
    train.add_argument("--steps", type=cli.positive_int, default=None, help="optimiser steps")
    train.add_argument("--bag-size", type=cli.positive_int, default=None,
                       help="narrations per clip (K)")
    train.add_argument("--videos", type=cli.positive_int, default=None,
                       help="narrated videos in the generated corpus")
    export = sub.add_parser("export", help="write a run as a TF-Hub module (MIL-NCE's format)")
    export.add_argument("--run", type=cli.input_folder, required=True,
                        help="a run folder from `train`")
    export.add_argument("--out", type=cli.output_folder, required=True,
                        help="module folder (created)")
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    from helpers import cli

    return cli.main(_parser(), _command, argv, also=(ValueError,))


def _command(args) -> int:
    if args.command == "train":
        from helpers.training import train as train_lib

        config = train_lib.TrainConfig()
        if args.steps is not None:
            config = dataclasses.replace(config, steps=args.steps)
        if args.bag_size is not None:
            config = dataclasses.replace(config, bag_size=args.bag_size)
        if args.videos is not None:
            config = dataclasses.replace(config, num_videos=args.videos)
        if (args.out / "report.json").exists():
            return _fail(f"{args.out} already holds a run (report.json); choose a new --out")
        run = train_lib.train(args.loss, args.seed, config, log=print)
        train_lib.save_run(run, args.out)
        t2v = run.report["test"]["text_to_video"]
        print(json.dumps({"out": str(args.out), "seconds": run.report["seconds"],
                          "chance_r1": round(run.report["chance_r1"], 2),
                          "t2v_R@1": round(t2v["R@1"], 2), "t2v_MedR": t2v["MedR"]}))
        return 0
    from helpers.training import export

    export.export_run_folder(args.run, args.out)  # RunFolderError, FileExistsError: one line
    print(f"wrote {args.out} (TF1 Hub format; signatures video, text; tags {{}} and "
          f"{{'train'}})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
