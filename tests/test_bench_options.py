"""The benchmark runner's options are checked before any section runs (a section can take
minutes, so a bad value must not cost them)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("videos", ["7", "0", "-6"])
def test_pipeline_videos_must_be_a_positive_multiple_of_six(videos, tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--only", "pipeline",
                           "--pipeline-videos", videos, "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--pipeline-videos must be a positive multiple of 6" in done.stderr
    assert "Traceback" not in done.stderr
    assert "[pipeline]" not in done.stdout  # refused before the section started
