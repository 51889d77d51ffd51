"""``python -m helpers.library``: index a folder of videos, search it by text.

::

    python -m helpers.library index --videos DIR --model milnce --out INDEX [--runner DirectRunner] [--workers 2]
    python -m helpers.library search --index INDEX --text "a red circle moving left" --k 5

``search`` prints one hit per line, tab-separated: video path, start and end in seconds, score.
Bad input (a missing folder, no videos, an index that cannot be read) is one line on stderr
naming the file, exit status 2 (:mod:`helpers.cli`). Beam options for other runners follow
``--``, e.g. ``-- --project P --region R --temp_location gs://B/tmp`` (see
:mod:`helpers.library`).
"""

from __future__ import annotations

import sys

from helpers import cli


def _parser():
    from helpers.library import pipeline

    parser = cli.ArgumentParser(prog="python -m helpers.library",
                                description="Embed a library of videos into an index and search "
                                            "it by text (Apache Beam, MIL-NCE).")
    sub = parser.add_subparsers(dest="command", required=True)
    index = sub.add_parser(
        "index", help="embed every window of every video of a folder into an index",
        description="Cut each video into windows, embed them with MIL-NCE (or MMV's S3D-G) "
                    "through Beam's RunInference, write Parquet shards. A rerun skips "
                    "windows already written; unreadable videos go to INDEX/failures.jsonl. "
                    "Beam pipeline options for other runners go after --. In tiny mode the "
                    "MIL-NCE module is "
                    "a small model trained here on generated clips, not MIL-NCE, and MMV's "
                    "checkpoint a stand-in with random weights.")
    index.add_argument("--videos", required=True,
                       help="a folder of videos (searched recursively) or a glob; gs:// works "
                            "with apache-beam[gcp]")
    index.add_argument("--model", choices=pipeline.MODELS, default="milnce",
                       help="the encoder: milnce (video_embedding 512-d, searchable by text) or "
                            "mmv-s3d (MMV's S3D-G backbone feature vid_repr, 1024-d; no text "
                            "tower: its index cannot be searched by text)")
    index.add_argument("--out", required=True, help="the index folder (created or resumed)")
    index.add_argument("--handle", default=None,
                       help="the weights: for milnce a TF-Hub handle or local SavedModel folder "
                            "(default: MIL-NCE's), for mmv-s3d a checkpoint pickle (default: "
                            "the official one, or the stand-in in tiny mode)")
    index.add_argument("--runner", default="DirectRunner",
                       help="Beam runner: DirectRunner (default), DataflowRunner, FlinkRunner, ...")
    index.add_argument("--engine", choices=pipeline.ENGINES, default="auto",
                       help="beam, in-process (the same steps in this process, local files "
                            "only), or auto: Beam when it is installed (default)")
    index.add_argument("--workers", type=cli.positive_int, default=2,
                       help="DirectRunner workers (direct_num_workers)")
    index.add_argument("--running-mode", choices=("multi_threading", "multi_processing",
                                                  "in_memory"),
                       default=pipeline.DEFAULT_RUNNING_MODE,
                       help="how the DirectRunner runs its workers")
    index.add_argument("--fps", type=cli.positive_float, default=5.0,
                       help="frame rate windows are sampled at")
    index.add_argument("--frames", type=cli.positive_int, default=16, help="frames per window")
    index.add_argument("--windows", type=cli.positive_int, default=10,
                       help="evaluation windows per video (when --stride is not given)")
    index.add_argument("--length", type=cli.positive_float, default=None,
                       help="window length in seconds (sliding windows; with --stride)")
    index.add_argument("--stride", type=cli.positive_float, default=None,
                       help="seconds between window starts (sliding windows instead of "
                            "--windows evaluation windows)")
    index.add_argument("--size", type=cli.positive_int, default=224, help="crop side in pixels")
    index.add_argument("--batch-size", type=cli.positive_int, default=8,
                       help="windows per model call")
    index.add_argument("--rows-per-shard", type=cli.positive_int,
                       default=pipeline.DEFAULT_ROWS_PER_SHARD,
                       help="rows per Parquet shard; a killed run loses at most the shards "
                            "being filled (default %(default)s)")
    index.add_argument("pipeline_args", nargs="*", metavar="BEAM_OPTION",
                       help="after --: options passed to Beam (--project, --region, "
                            "--temp_location, --requirements_file, ...)")

    search = sub.add_parser("search", help="find the windows that best match a sentence",
                            description="Print the k best windows: path, start s, end s, score "
                                        "(tab-separated).")
    search.add_argument("--index", required=True, help="an index folder made by 'index'")
    search.add_argument("--text", required=True, help="the sentence to search for")
    search.add_argument("--k", type=cli.positive_int, default=5, help="hits to print")
    search.add_argument("--approximate", action="store_true",
                        help="search with the approximate index (usearch) instead of exact numpy")
    return parser


def _windows(args):
    from helpers.library.windows import Windows

    if args.length is not None and args.stride is None:
        raise cli.CLIError("--length needs --stride (sliding windows)")
    if args.stride is not None:
        length = args.length if args.length is not None else args.frames / args.fps
        return Windows.sliding(length, args.stride, fps=args.fps, size=args.size)
    return Windows(fps=args.fps, num_frames=args.frames, num_windows=args.windows, size=args.size)


def _index(args) -> int:
    from helpers import report
    from helpers.library import encoders, pipeline

    windows = _windows(args)
    encoder = encoders.get(args.model)
    encoder.check_windows(windows)
    paths = pipeline.list_videos(args.videos)  # before anything loads: bad input fails fast
    handle = str(args.handle) if args.handle else None  # None: the model's default
    resource = encoder.standin_resource(handle)
    if resource:
        report.banner({resource: "tiny"})
    summary = pipeline.build_index(args.videos, args.out, model=args.model, handle=handle,
                                   windows=windows, runner=args.runner, workers=args.workers,
                                   running_mode=args.running_mode, batch_size=args.batch_size,
                                   rows_per_shard=args.rows_per_shard,
                                   pipeline_args=args.pipeline_args, paths=paths,
                                   engine=args.engine)
    print(summary)
    for failure in summary.failures:
        print(f"unreadable {failure['path']}: {failure['reason']}", file=sys.stderr)
    return 0


def _search(args) -> int:
    from helpers import milnce
    from helpers.library import encoders, store
    from helpers.library import search as searching

    library = store.load(args.index)
    encoders.check_text_search(library, args.index)
    if len(library) == 0:
        raise store.LibraryError(f"{args.index}: the index holds no windows yet; run index")
    handle = library.manifest["handle"]
    if library.manifest.get("mode") == "tiny":
        from helpers import report

        report.banner({milnce.RESOURCE: "tiny"})
    model = milnce.load(handle)
    index = searching.make_index(library, approximate=args.approximate)
    for hit in searching.search_text(library, model, args.text, args.k, index):
        print(hit)
    return 0


def main(argv=None) -> int:
    """Run the command line; return its exit status (2 for bad input, one line on stderr)."""
    parser = _parser()
    return cli.main(parser, lambda args: _index(args) if args.command == "index"
                    else _search(args), argv)
