"""Measure the course's hot paths and print one table.

    python3.11 dev.py bench                      # everything (about 15 min on a 2-core CPU)
    python3.11 dev.py bench --quick              # smaller sizes, a couple of minutes
    python3.11 dev.py bench --only decode,probe  # some sections

Sections: decode (decode + preprocess vs the official colab's OpenCV loop), backbone (MMV
forward passes, compile vs steady state, achieved FLOP/s), extract (UCF101-style extraction on
the mini-UCF, prefetching on vs off), probe (linear SVM fit at UCF101 split-1 sizes), memory (peak
memory decoding a long 1080p video), suite (test suite and notebooks in tiny mode), training
(the tiny-mode MIL-NCE stand-in trained from an empty cache), library (the video library's
Beam pipeline in windows/s against the single-process path, and the approximate index against
exact search; see benchmarks/library_bench.py).

Model weights here are the tiny-mode stand-ins at the official shapes: speed does not depend on
the weights' values, so the timings hold for the real checkpoints. Nothing is asserted; the
results are written to build/benchmarks/results.json and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("COURSE_MODE", "tiny")
os.environ.setdefault("COURSE_CACHE_DIR", str(ROOT / "build" / "bench-cache"))
os.environ.setdefault("COURSE_DATA_DIR", str(ROOT / "build" / "bench-cache" / "data"))

ROWS: list[dict] = []
OUT = ROOT / "build" / "benchmarks"


def record(section: str, what: str, value: float, unit: str, note: str = "") -> None:
    row = {"section": section, "what": what, "value": value, "unit": unit, "note": note}
    ROWS.append(row)
    OUT.mkdir(parents=True, exist_ok=True)  # saved as we go: a long run stopped early keeps its rows
    (OUT / "partial.json").write_text(json.dumps(ROWS, indent=1))
    print(f"  {section:<9} {what:<52} {_fmt(value):>10} {unit:<10} {note}", flush=True)


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def timed(fn, repeat: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ------------------------------------------------------------------------------------ media


def _moving_frames(num: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A textured scene panning right: compresses like real footage, unlike noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height // 8 + 1, (width + 4 * num) // 8 + 1, 3), dtype=np.uint8)
    scene = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
    return np.stack([scene[:height, 4 * i:4 * i + width] for i in range(num)])


def make_media(folder: Path) -> dict[str, Path]:
    from helpers import video

    out = {}
    out["gif"] = video.write_video(folder / "clip.gif", _moving_frames(40, 270, 480), fps=10)
    out["mp4"] = video.write_video(folder / "clip.mp4", _moving_frames(40, 720, 1280), fps=25)
    return out


# ----------------------------------------------------------------------------------- decode


def bench_decode(quick: bool, workdir: Path) -> None:
    """colab_clip against the official colab's OpenCV loop on the same file: rounds alternate
    (loop, ours, loop, ours, ...) so a load from other processes hits both; each round gives
    one ratio, and the median ratio is reported with the range of the rounds."""
    from benchmarks.colab_baseline import opencv_colab_clip
    from helpers import video

    media = make_media(workdir)
    rounds = 5 if quick else 11
    for kind, path in media.items():
        info = video.video_info(path)
        label = f"{kind} {info.width}x{info.height}"
        ours = np.round(video.colab_clip(path) * 255).astype(np.int16)
        base = np.round(opencv_colab_clip(path) * 255).astype(np.int16)
        diff = int(np.abs(ours - base).max())
        for warm_up in (opencv_colab_clip, video.colab_clip):  # imports, first-call set-up
            warm_up(path)
        t_base, t_ours, cpu_base, cpu_ours = [], [], [], []
        for _ in range(rounds):
            for fn, times, cpu in ((opencv_colab_clip, t_base, cpu_base),
                                   (video.colab_clip, t_ours, cpu_ours)):
                start, start_cpu = time.perf_counter(), time.process_time()
                fn(path)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)  # all threads of this process
        ratios = [b / o for b, o in zip(t_base, t_ours)]
        cpu_ratio = statistics.median(b / o for b, o in zip(cpu_base, cpu_ours))
        record("decode", f"{label}: colab OpenCV loop, 32 frames", statistics.median(t_base) * 1e3,
               "ms/clip")
        record("decode", f"{label}: course pipeline, 32 frames", statistics.median(t_ours) * 1e3,
               "ms/clip", f"max pixel diff vs the colab loop {diff} grey levels")
        record("decode", f"{label}: speed-up over the colab loop", statistics.median(ratios), "x",
               f"the colab loop / the course pipeline, median of {rounds} alternated rounds "
               f"(rounds {min(ratios):.2f}-{max(ratios):.2f}); in CPU time {cpu_ratio:.2f}")
    _bench_parallel_decoding(media["mp4"], quick)


def _bench_parallel_decoding(path: Path, quick: bool) -> None:
    from helpers import video

    paths = [path] * (4 if quick else 8)
    # Warm-up: the first progress bar takes 0.4 s to set up, even when disabled.
    video.load_clips(paths[:1], progress=False)
    start = time.perf_counter()
    video.load_clips(paths, progress=False)
    serial = len(paths) / (time.perf_counter() - start)
    record("decode", "mp4 720p clips decoded per second, one process", serial, "clips/s")


# --------------------------------------------------------------------------------- backbone


def bench_backbone(quick: bool) -> None:
    import jax

    from helpers import mmv
    from helpers.mmv import encoder as mmv_encoder

    frames, side = (16, 112) if quick else (32, 224)
    batches = (1, 2) if quick else (1, 8)
    rng = np.random.default_rng(0)
    for backbone in mmv.BACKBONES:
        encoder = mmv.load_model(backbone)
        for batch in batches:
            if backbone == "tsm_resnet_x2" and not quick and batch > 1:
                batch = 2  # ~1 TFLOP per clip: batch 8 would take minutes per call on a CPU
            repeat = 2
            clips = rng.uniform(size=(batch, frames, side, side, 3)).astype(np.float32)
            apply = mmv_encoder._compiled_apply(backbone)
            x = clips  # S3D-G applies space-to-depth inside the model
            start = time.perf_counter()
            compiled = apply.lower(encoder.params, encoder.state, x).compile()
            compile_s = time.perf_counter() - start
            flops = _flops(compiled)
            run = lambda: jax.block_until_ready(compiled(encoder.params, encoder.state, x))
            start = time.perf_counter()
            run()
            first_s = time.perf_counter() - start
            steady = timed(run, repeat=repeat, warmup=0)
            name = f"{backbone} b{batch} {frames}x{side}x{side}"
            record("backbone", f"{name}: compile", compile_s, "s")
            record("backbone", f"{name}: first run after compile", first_s, "s")
            record("backbone", f"{name}: steady state", steady * 1e3 / batch, "ms/clip",
                   f"{batch / steady:.2f} clips/s")
            if flops:
                record("backbone", f"{name}: achieved", flops / steady / 1e9, "GFLOP/s",
                       f"{flops / batch / 1e9:.1f} GFLOP per clip (XLA cost analysis)")
        del encoder


def _flops(compiled) -> float | None:
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend offers it; the table just omits the row
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    value = (analysis or {}).get("flops")
    return float(value) if value else None


# ---------------------------------------------------------------------------------- extract


def bench_extract(quick: bool) -> None:
    """UCF101-style extraction on the mini-UCF: decoding alone, the model alone, and both
    together through ``extract_features`` (decoding threads feed the model)."""
    from helpers import mmv, ucf101
    from helpers.standins import ucf101 as mini
    from helpers.ucf101.features import extract_features

    data = mini.make_mini_ucf101(num_classes=5)
    store_dir = Path(os.environ["COURSE_CACHE_DIR"]) / "bench-store"
    ucf101.prepare(data.videos_dir, data.splits_dir, store_dir, progress=False)
    store = ucf101.open_store(store_dir)
    names = store.names()[: 12 if quick else 40]
    protocol = ucf101.MMV_PROTOCOL.replace(num_frames=16, min_resize=112, crop_size=112)
    batch = 8
    clips = len(names) * protocol.test_windows
    label = f"{len(names)} videos x {protocol.test_windows} windows of 16x112x112"

    zeros = np.zeros((batch, 1), np.float32)
    for workers in (1, 2):
        start = time.perf_counter()
        extract_features(store, names, lambda x: zeros, "decode-only", sampling="test",
                         protocol=protocol, cache_dir=None, batch_size=batch, workers=workers,
                         progress=False)
        decode_s = time.perf_counter() - start
        record("extract", f"decode + sample only, {workers} thread(s): {label}",
               clips / decode_s, "clips/s", f"{len(names) / decode_s:.2f} videos/s")

    # At the published protocol's size (32 frames, 224x224), decoding must keep a GPU fed.
    full_names = names[:4]
    start = time.perf_counter()
    extract_features(store, full_names, lambda x: zeros, "decode-only", sampling="test",
                     protocol=ucf101.MMV_PROTOCOL, cache_dir=None, batch_size=batch,
                     progress=False)
    full_clips = len(full_names) * ucf101.MMV_PROTOCOL.test_windows
    record("extract", "decode + sample only, MMV protocol windows (32x224x224), 2 threads",
           full_clips / (time.perf_counter() - start), "clips/s")

    encoder = mmv.load_model("s3d", batch_size=batch)
    model = lambda x: encoder(x)["vid_repr"]
    sample = np.random.default_rng(0).uniform(size=(batch, 16, 112, 112, 3)).astype(np.float32)
    model(sample)  # compile
    per_batch = timed(lambda: model(sample), repeat=2, warmup=0)
    model_s = per_batch * clips / batch
    record("extract", "S3D-G forward only (same clips, batch 8)", clips / model_s, "clips/s")

    start = time.perf_counter()
    extract_features(store, names, model, "bench-s3d", sampling="test", protocol=protocol,
                     cache_dir=None, batch_size=batch, progress=False)
    both_s = time.perf_counter() - start
    record("extract", f"end to end with S3D-G: {label}", len(names) / both_s, "videos/s",
           f"{clips / both_s:.2f} clips/s; decode+model back to back would take "
           f"{decode_s + model_s:.1f} s, overlapped took {both_s:.1f} s")


# ------------------------------------------------------------------------------------ probe


#: The parallel sklearn fit at 95,370 x 4096 measured before the batched solver (issue 16, on
#: this 2-core machine): rerunning it takes half an hour and about 12 GB (liblinear's copies).
SKLEARN_4096_BEFORE_S = 1554.0


def bench_probe(quick: bool) -> None:
    from benchmarks import probe_bench

    scale = 0.1 if quick else 1.0
    # The batched solver at both sizes first (minutes), then scikit-learn beside it at x 1024
    # with the agreement figures (the slow part), then at x 4096 only when asked.
    ours = {dim: probe_bench.compare(record, dim, scale, sklearn=False)["ours_s"]
            for dim in (1024, 4096)}
    probe_bench.compare(record, 1024, scale, ours_s=ours[1024])
    if SKLEARN_4096 or quick:
        probe_bench.compare(record, 4096, scale, ours_s=ours[4096])
    else:
        record("probe", "fit 95,370 x 4096: scikit-learn, measured before (not rerun)",
               SKLEARN_4096_BEFORE_S, "s", "issue 16's figure; --probe-sklearn-4096 reruns it")
        record("probe", "fit 95,370 x 4096: speed-up over that figure",
               SKLEARN_4096_BEFORE_S / ours[4096], "x", "target >= 5x")


# ----------------------------------------------------------------------------------- memory


_MEMORY_CHILD = r"""
import sys, numpy as np
from helpers import video

def high_water_kib():  # VmHWM: the peak resident memory since the last reset
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

path, how = sys.argv[1], sys.argv[2]
video.video_info(path)  # load FFmpeg's libraries before the baseline
with open("/proc/self/clear_refs", "w") as handle:  # reset the peak to the current size
    handle.write("5")
before = high_water_kib()
if how == "eval_windows":
    out = video.eval_windows(path)
elif how == "colab_clip":
    out = video.colab_clip(path)
elif how == "load_everything":
    out = np.stack(list(video.iter_frames(path)))
print((high_water_kib() - before) / 1024, out.shape, out.nbytes / 2**20)
"""


def bench_memory(quick: bool, workdir: Path) -> None:
    from helpers import video

    seconds = 8 if quick else 30
    height, width = (720, 1280) if quick else (1080, 1920)
    path = workdir / f"long_{height}p.mp4"
    # Written in chunks, so making the test video does not need the memory it is meant to spare.
    frames_total = seconds * 25
    video.write_video(path, _chunked_frames(frames_total, height, width), fps=25)
    raw_mb = frames_total * height * width * 3 / 2**20
    for how in ("eval_windows", "colab_clip", "load_everything"):
        result = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(path), how],
                                capture_output=True, text=True, cwd=ROOT, timeout=900)
        if result.returncode != 0:
            record("memory", f"{how} on {seconds} s of {height}p", float("nan"), "MiB",
                   result.stderr.strip().splitlines()[-1][:80])
            continue
        growth = float(result.stdout.split()[0])
        output_mb = float(result.stdout.split()[-1])
        record("memory", f"{how}: peak growth, {seconds} s of {height}p video", growth, "MiB",
               f"of which the result is {output_mb:,.0f} MiB; all frames would be {raw_mb:,.0f} MiB")
    bench_embed_memory(quick, workdir)


_EMBED_CHILD = r"""
import sys
from helpers import milnce

def high_water_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

out, videos = sys.argv[1], sys.argv[2:]
milnce.load()  # the module (tiny stand-in) and TensorFlow, before the baseline
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
before = high_water_kib()
code = milnce.main(["embed", "--out", out, "--frames", "16", "--size", "112",
                    *[arg for path in videos for arg in ("--video", path)]])
print((high_water_kib() - before) / 1024, code)
"""


def bench_embed_memory(quick: bool, workdir: Path) -> None:
    """``milnce embed`` over many short videos: peak memory must not grow with their number
    (it streams: decode, embed and drop one batch at a time)."""
    from helpers import video

    counts = (20, 100) if quick else (40, 400)
    folder = workdir / "many_videos"
    paths = [video.write_video(folder / f"v{k:03d}.mp4", _moving_frames(20, 96, 128, seed=k),
                               fps=10) for k in range(max(counts))]
    env = dict(os.environ, COURSE_MODE="tiny")
    clip_mb = 16 * 112 * 112 * 3 * 4 / 2**20
    for count in counts:
        result = subprocess.run([sys.executable, "-c", _EMBED_CHILD, str(workdir / "e.npz"),
                                 *map(str, paths[:count])], capture_output=True, text=True,
                                cwd=ROOT, env=env, timeout=1800)
        if result.returncode != 0 or not result.stdout.strip():
            record("memory", f"milnce embed, {count} videos", float("nan"), "MiB",
                   (result.stderr.strip().splitlines() or ["failed"])[-1][:80])
            continue
        growth = float(result.stdout.split()[-2])
        record("memory", f"milnce embed: peak growth, {count} videos of 2 s (16x112x112 clips)",
               growth, "MiB", f"all clips at once would be {count * clip_mb:,.0f} MiB")


def _chunked_frames(total: int, height: int, width: int):
    for index in range(total):
        yield _moving_frames(1, height, width, seed=index % 7)[0]


# ------------------------------------------------------------------------------------ suite


def bench_suite(quick: bool) -> None:
    env = dict(os.environ, COURSE_MODE="tiny")
    env["COURSE_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-suite-")
    env["COURSE_DATA_DIR"] = os.path.join(env["COURSE_CACHE_DIR"], "data")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "tests"], cwd=ROOT,
                            env=env, capture_output=True, text=True, check=False)
    summary = (result.stdout.strip().splitlines() or [""])[-1]  # "N passed in S s" or failures
    record("suite", "unit tests (pytest -n 2 tests/)", time.perf_counter() - start, "s",
           ("ok: " if result.returncode == 0 else "FAILED: ") + summary)
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax",
                                 "--nbval-cell-timeout=600", str(notebook)], cwd=ROOT, env=env,
                                capture_output=True, text=True, check=False)
        status = "ok" if result.returncode == 0 else "FAILED"
        record("suite", f"notebook {notebook.stem} (tiny)", time.perf_counter() - start, "s", status)


def bench_training(quick: bool) -> None:
    """The tiny-mode MIL-NCE stand-in, trained from an empty cache (budget: 90 s on 2 cores),
    in a fresh process so the wall time includes imports and compilation; CPU time beside it
    (the wall time on a shared machine depends on the other load)."""
    code = ("import time, resource, tempfile\n"
            "from pathlib import Path\n"
            "t = time.perf_counter()\n"
            "from helpers.training import standin\n"
            "cache = Path(tempfile.mkdtemp())\n"
            "run = standin.ensure_trained_run(cache)\n"
            "trained = time.perf_counter() - t\n"
            "standin.ensure_trained_in_cache(cache / 'tfhub', 'https://tfhub.dev/deepmind/mil-nce/s3d/1', cache)\n"
            "total = time.perf_counter() - t\n"
            "import json; r = json.loads((run / 'report.json').read_text())\n"
            "cpu = resource.getrusage(resource.RUSAGE_SELF)\n"
            "print(json.dumps({'trained': trained, 'total': total, 'cpu': cpu.ru_utime + cpu.ru_stime,"
            " 'r1': r['test']['text_to_video']['R@1'], 'chance': r['chance_r1']}))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        record("training", "tiny stand-in training", float("nan"), "s", "FAILED")
        return
    data = json.loads(result.stdout.strip().splitlines()[-1])
    note = f"held-out t2v R@1 {data['r1']:.1f} % (chance {data['chance']:.1f} %)"
    record("training", "tiny stand-in: corpus + train (wall, fresh process)", data["trained"],
           "s", note)
    record("training", "tiny stand-in: + export and install (wall)", data["total"], "s")
    record("training", "tiny stand-in: CPU time, all threads", data["cpu"], "s")
    _bench_seed_sweep(quick)


def _bench_seed_sweep(quick: bool) -> None:
    """``train --loss milnce`` at the command line's defaults for seeds 0-7 (0-1 with --quick),
    in one process as notebook 06's full setting trains (one compilation): held-out t2v R@1 per
    seed against 5x chance (issue 13's bar), and the seconds and CPU seconds a run takes (the
    full setting trains 10 such runs in its 10-minute budget)."""
    from helpers.training import train

    seeds = range(2 if quick else 8)
    config = train.TrainConfig()
    values = []
    for seed in seeds:
        start, start_cpu = time.perf_counter(), time.process_time()
        report = train.train("milnce", seed, config).report
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        r1, chance = report["test"]["text_to_video"]["R@1"], report["chance_r1"]
        values.append(r1 / chance)
        record("training", f"train --loss milnce --seed {seed} ({config.steps} steps)", r1, "%",
               f"t2v R@1, {r1 / chance:.1f}x chance; MedR "
               f"{report['test']['text_to_video']['MedR']:g}; {wall:.0f} s wall, {cpu:.0f} s CPU"
               + (" (includes compilation)" if seed == seeds[0] else ""))
    record("training", f"lowest R@1 / chance over seeds {seeds[0]}-{seeds[-1]}", min(values), "x",
           "issue 13's bar: at least 5x for every seed")


# ------------------------------------------------------------------------------------- main

SECTIONS = ("decode", "pipeline", "backbone", "extract", "probe", "memory", "suite", "training",
            "library")
SKLEARN_4096 = False


def machine() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return f"{cpu}, {os.cpu_count()} cores, JAX devices: {devices}, Python {platform.python_version()}"


def print_table(header: str) -> str:
    lines = [header, "", "| section | measurement | value | unit | note |", "|---|---|---:|---|---|"]
    for row in ROWS:
        lines.append(f"| {row['section']} | {row['what']} | {_fmt(row['value'])} | {row['unit']} | "
                     f"{row['note']} |")
    table = "\n".join(lines)
    print("\n" + table)
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast look")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections ({', '.join(SECTIONS)})")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks")
    parser.add_argument("--probe-sklearn-4096", action="store_true",
                        help="also rerun scikit-learn at 95,370 x 4096 (half an hour, ~12 GB)")
    parser.add_argument("--pipeline-videos", type=int, default=None, metavar="N",
                        help="videos per store in the pipeline section (a multiple of 6; "
                             "default 12, 6 with --quick): longer runs weigh start and end less")
    args = parser.parse_args(argv)
    if args.pipeline_videos is not None and (args.pipeline_videos < 6
                                             or args.pipeline_videos % 6):
        parser.error(f"--pipeline-videos must be a positive multiple of 6, got "
                     f"{args.pipeline_videos}")
    global OUT, SKLEARN_4096
    OUT = args.out
    SKLEARN_4096 = args.probe_sklearn_4096
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    header = f"Benchmarks, {time.strftime('%Y-%m-%d')}, {machine()}" + (" (--quick)" if args.quick else "")
    print(header, flush=True)
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        workdir = Path(tmp)
        for section in chosen:
            print(f"\n[{section}]", flush=True)
            if section == "pipeline":
                from benchmarks import pipeline_bench

                pipeline_bench.run(record, args.quick, videos=args.pipeline_videos)
            elif section == "library":
                from benchmarks import library_bench

                library_bench.run(record, args.quick)
            elif section in ("decode", "memory"):
                globals()[f"bench_{section}"](args.quick, workdir)
            else:
                globals()[f"bench_{section}"](args.quick)
    table = print_table(header)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"header": header, "rows": ROWS}, indent=1))
    (args.out / "table.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
