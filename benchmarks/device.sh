#!/usr/bin/env bash
# The accelerator benchmark on a lent GPU machine (no internet; its own python3 with JAX + CUDA).
# WHEEL_DIR holds the pure-Python wheels that image lacks (dm-haiku==0.0.17 and its needs, tqdm,
# filelock, av, imageio-ffmpeg), downloaded here with pip download (see /work/.library notes).
# Not yet run on an accelerator.
set -euo pipefail
WHEELS=${1:-.whl}; shift || true
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$WHEELS"/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
exec python3 -m benchmarks.device_bench --budget 420 "$@"
