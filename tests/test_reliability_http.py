"""Item 4 of issue 10: two processes downloading the same checkpoint, against the loopback server.

Before the per-file lock, the second process found the first one's ``.part`` renamed under it
(``FileNotFoundError: ...mmv_s3d.pkl.part``) and the cached file could end up longer than the
source. With the lock, the second waits and then uses the finished file: one transfer, two
successes, the exact bytes.
"""

import os
import subprocess
import sys
from pathlib import Path

from httpserver_fixture import LocalServer

from helpers.standins import mmv as mmv_standin

ROOT = Path(__file__).resolve().parent.parent
CHILD = ("from helpers import mmv; p = mmv.checkpoint_path('s3d'); "
         "print(p.stat().st_size)")


def test_two_processes_downloading_one_checkpoint_take_turns(tmp_path):
    data = mmv_standin.checkpoint_bytes(mmv_standin.make_checkpoint("s3d"))
    server = LocalServer(max_requests=50, lifetime=120).start()
    try:
        # ~8 MB/s: the transfer takes a few seconds, so the two processes overlap.
        path = "/concurrent/mmv/mmv_s3d.pkl"
        server.add(path, data, chunk_size=256 * 1024, chunk_delay=0.03)
        cache = tmp_path / "cache"
        env = dict(os.environ, PYTHONPATH=str(ROOT), COURSE_MODE="real",
                   COURSE_CACHE_DIR=str(cache),
                   COURSE_BASE_URLS=f"mmv={server.url('/concurrent/mmv')}")
        env.pop("TFHUB_CACHE_DIR", None)
        children = [subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for _ in range(2)]
        results = [child.communicate(timeout=180) for child in children]
        for child, (out, err) in zip(children, results):
            assert child.returncode == 0, err
            assert out.strip().splitlines()[-1] == str(len(data))
        cached = cache / "real" / "mmv" / "mmv_s3d.pkl"
        assert cached.read_bytes() == data
        assert not cached.with_name(cached.name + ".part").exists()
        # The second process used the first's file: one transfer from byte 0. (On a starved
        # machine - the suite pinned to one core, with another run beside it - the first
        # process has once resumed its own transfer with a Range request: that is still one
        # transfer, so resumes are allowed; a second download from the start is not.)
        stats = server.stats(path)
        fresh = [r for r in stats.ranges if r is None or r.startswith("bytes=0-")]
        assert len(fresh) == 1 and all(r.startswith("bytes=") for r in stats.ranges[1:]), stats
    finally:
        server.stop()
