"""The accelerator benchmark: one command, at most about 8 minutes, also runnable on a CPU.

    python3.11 dev.py bench --device                 # here: JAX as installed (CPU), full sizes
    python3.11 dev.py bench --device --quick         # CPU-sized settings (the test suite runs these)
    python3.11 dev.py bench --device --wheels DIR    # first install jax[cuda12]==0.10.2 from DIR
    bash benchmarks/device.sh [WHEEL_DIR]            # on a lent GPU machine (see that file)

Measures, on ``jax.devices()[0]``:

1. ``backbone``: S3D-G, TSM-ResNet50 and TSM-ResNet50x2 clips/s at their accelerator batch
   sizes (32x224x224), at each matmul precision (``highest`` = fp32, ``high`` = bf16x3,
   ``default`` = TF32 on NVIDIA GPUs since Ampere, bf16 on TPUs), each with its known-answer error
   against ``tests/data/mmv_kat`` (the original code's outputs on CPU): the TF32 concern is how
   far ``default`` drifts.
2. ``device-pre``: the protocol's resize/crop/flip on the device against the CPU path: the
   fraction of pixels that differ (by one grey level at most) and the effect on S3D-G features.
3. ``extract``: mini-UCF extraction end to end (320x240 stored videos, MMV protocol), decode
   threads beside the accelerator: CPU preprocessing vs on-device preprocessing (raw frames).
4. ``probe``: the batched probe solver on the device at UCF101 split-1 size (x 1024, x 4096).

Sections stop being started once ``--budget`` seconds have passed (their rows say so). Weights
are the tiny-mode stand-ins at the official shapes (speed does not depend on their values).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("COURSE_MODE", "tiny")
os.environ.setdefault("COURSE_CACHE_DIR", str(ROOT / "build" / "bench-cache"))
os.environ.setdefault("COURSE_DATA_DIR", str(ROOT / "build" / "bench-cache" / "data"))

PRECISIONS = ("highest", "high", "default")


def _block(tree):
    import jax

    return jax.block_until_ready(tree)


def bench_backbones(record, quick: bool) -> None:
    import jax

    from helpers import mmv
    from helpers.mmv import models as mmv_models
    from helpers.standins import mmv as standin

    kat_dir = ROOT / "tests" / "data" / "mmv_kat"
    kat_clip = np.random.default_rng(0).uniform(0, 1, size=(2, 8, 64, 64, 3)).astype(np.float32)
    accelerator = jax.default_backend() != "cpu"
    frames, side = (32, 224) if not quick else (8, 64)
    backbones = mmv.BACKBONES if not quick else ("s3d",)
    # Each precision is its own compilation. On a CPU they are the same program, so --quick
    # there times only fp32; on an accelerator --quick keeps all three.
    precisions = PRECISIONS if accelerator or not quick else ("highest",)
    for backbone in backbones:
        checkpoint = standin.make_checkpoint(backbone, 0)  # the known-answer rule (seed 0)
        params, state = jax.device_put(checkpoint["params"]), jax.device_put(checkpoint["state"])
        ref = np.load(kat_dir / f"{backbone}.npz")["vid_repr"]
        batch = mmv.DEFAULT_BATCH_SIZE[backbone] if accelerator else 1
        if quick and not accelerator:  # the known-answer clip's shape: one compilation, not two
            batch = len(kat_clip)
        clips = np.random.default_rng(1).uniform(size=(batch, frames, side, side, 3)
                                                 ).astype(np.float32)
        apply = jax.jit(mmv_models.transformed(backbone).apply)
        for precision in precisions:
            with jax.default_matmul_precision(precision):
                out, _ = apply(params, state, kat_clip)
                err = float(np.abs(np.asarray(out["vid_repr"]) - ref).max()
                            / max(1.0, float(np.abs(ref).max())))
                start = time.perf_counter()
                _block(apply(params, state, clips))  # compile + first run
                first = time.perf_counter() - start
                runs = 2 if quick else 5
                start = time.perf_counter()
                for _ in range(runs):
                    _block(apply(params, state, clips))
                per_batch = (time.perf_counter() - start) / runs
            record("backbone", f"{backbone} b{batch} {frames}x{side}x{side}, precision {precision}",
                   batch / per_batch, "clips/s",
                   f"known-answer error {err:.1e} (relative; CPU tests allow 2e-5); compile+first "
                   f"{first:.1f} s")
        del params, state


def bench_device_preprocess(record, quick: bool) -> None:
    import jax

    from helpers import mmv
    from helpers.mmv import models as mmv_models
    from helpers.ucf101 import device
    from helpers.ucf101 import sampling as sm

    rng = np.random.default_rng(0)
    num = 8 if quick else 32
    size = 64 if quick else 224  # --quick: 320x240 -> 64x85 (the same code, a smaller model input)
    yy, xx = np.mgrid[0:240, 0:320]
    base = (yy * 0.7 + xx * 0.4)[None, :, :, None] + np.arange(3) * 30
    frames = np.clip(base + rng.integers(-40, 40, (num, 240, 320, 3)), 0, 255).astype(np.uint8)
    protocol = sm.MMV_PROTOCOL.replace(num_frames=num, min_resize=size, crop_size=size)
    spare = sm.resized_size(240, 320, size)[1] - size  # how far the crop can move sideways
    params = np.array([[0, 0, 0], [0, spare // 2, 1], [0, spare, 0], [0, spare // 4, 1]],
                      np.int32)[: 2 if quick else None]  # --quick: a flipped and a plain clip
    batch = np.stack([frames] * len(params))
    cpu = np.stack([sm.resize_and_crop(frames, size, size, (p[0], p[1]), flip=bool(p[2]),
                                       dtype=np.uint8) for p in params]).astype(np.int16)
    dev = np.asarray(device.preprocess(batch, params, protocol, scale=False)).astype(np.int16)
    diff = np.abs(dev - cpu)
    record("device-pre", "pixels differing from the CPU path (bit-identical to TF)",
           100 * float(np.mean(diff > 0)), "%",
           f"max difference {int(diff.max())} grey level(s); {diff.size:,} values; "
           f"{jax.devices()[0].device_kind}")
    encoder = mmv.load_model("s3d", batch_size=len(params))
    f_cpu = encoder(cpu.astype(np.float32) / np.float32(255))["vid_repr"]
    f_dev = encoder(dev.astype(np.float32) / np.float32(255))["vid_repr"]
    rel = float(np.abs(f_dev - f_cpu).max() / np.abs(f_cpu).max())
    cos = float(np.min(np.sum(f_dev * f_cpu, 1)
                       / (np.linalg.norm(f_dev, axis=1) * np.linalg.norm(f_cpu, axis=1))))
    record("device-pre", "S3D-G vid_repr: device-preprocessed vs CPU-path clips", rel,
           "max rel diff", f"lowest cosine {cos:.7f}; stand-in weights, {num}x{size}x{size} clips")
    start = time.perf_counter()
    for _ in range(3):
        _block(device.preprocess(batch, params, protocol))
    record("device-pre", "preprocess on the device", 3 * len(params) / (time.perf_counter() - start),
           "clips/s", f"{num} frames of 320x240 -> {size}x{size}, transfer included")


def bench_extract(record, quick: bool) -> None:
    import jax

    from benchmarks import pipeline_bench
    from helpers import mmv
    from helpers.mmv import models as mmv_models
    from helpers.ucf101 import device
    from helpers.ucf101.features import extract_features
    from helpers.ucf101.sampling import MMV_PROTOCOL

    store = pipeline_bench.make_store(quick)
    names = store.names()[: 2 if quick else None]
    protocol = MMV_PROTOCOL if not quick else MMV_PROTOCOL.replace(num_frames=8, min_resize=64,
                                                                   crop_size=64)
    accelerator = jax.default_backend() != "cpu"
    batch = mmv.DEFAULT_BATCH_SIZE["s3d"] if accelerator else 2
    encoder = mmv.load_model("s3d", batch_size=batch)
    model = jax.jit(lambda clips: mmv_models.transformed("s3d").apply(
        encoder.params, encoder.state, clips)[0]["vid_repr"])
    workers = os.cpu_count() or 2
    clips = len(names) * protocol.test_windows
    for clip_input, fn in (("float", model), ("raw", device.device_encoder(model, protocol))):
        run = lambda: extract_features(store, names, fn, f"bench-s3d-{clip_input}",
                                       sampling="test", protocol=protocol, cache_dir=None,
                                       batch_size=batch, workers=workers, progress=False,
                                       clip_input=clip_input)
        run()  # compile
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        what = "CPU resize" if clip_input == "float" else "resize on the device (raw frames)"
        record("extract", f"S3D-G test windows end to end, {what}", clips / seconds, "clips/s",
               f"{len(names)} videos, {protocol.num_frames}x{protocol.crop_size}^2, batch {batch}, "
               f"{workers} decode threads")


def bench_probe(record, quick: bool) -> None:
    from benchmarks import probe_bench

    scale = 0.011 if quick else 1.0  # --quick: 101 training videos (one per class) x 10 clips
    for dim in ((128,) if quick else (1024, 4096)):
        probe_bench.compare(record, dim, scale, sklearn=False, solver="batched-jax",
                            section="probe")


SECTIONS = {"backbone": bench_backbones, "device-pre": bench_device_preprocess,
            "extract": bench_extract, "probe": bench_probe}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU-sized settings")
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--budget", type=float, default=450.0,
                        help="start no new section after this many seconds (default 450)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks-device")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    from benchmarks import run as bench

    bench.OUT = args.out
    header = f"Device benchmarks, {time.strftime('%Y-%m-%d')}, {bench.machine()}" + \
        (" (--quick)" if args.quick else "")
    print(header, flush=True)
    started = time.perf_counter()
    for section in chosen:
        if time.perf_counter() - started > args.budget:
            bench.record(section, "skipped: the time budget was spent", float("nan"), "",
                         f"--budget {args.budget:g} s")
            continue
        print(f"\n[{section}]", flush=True)
        section_start = time.perf_counter()
        SECTIONS[section](bench.record, args.quick)
        bench.record(section, "section wall time", time.perf_counter() - section_start, "s",
                     "compilation and set-up included")
    bench.record("total", "wall time", time.perf_counter() - started, "s")
    table = bench.print_table(header)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"header": header, "rows": bench.ROWS},
                                                      indent=1))
    (args.out / "table.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
