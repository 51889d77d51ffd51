"""helpers.downloads against a local HTTP server that fails the way real hosts do."""

import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from httpserver_fixture import http_server  # noqa: F401 - pytest fixture

from helpers import config, downloads
from helpers.downloads import DownloadError

ROOT = Path(__file__).resolve().parent.parent
# Seeded, so a failure can be replayed; os.urandom made one run in 256 send an
# "altered" body equal to the real one (its last byte was already zero).
PAYLOAD = random.Random(20261202).randbytes(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _only_part_or_nothing(dest: Path):
    """The final name never holds a partial file."""
    assert not dest.exists()


def test_plain_download_is_verified_and_atomic(http_server, tmp_path):
    url = http_server.add("/f/a.bin", PAYLOAD)
    dest = downloads.download(url, tmp_path / "a.bin", size=len(PAYLOAD), sha256=PAYLOAD_SHA,
                              progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not downloads.part_path(dest).exists()
    # A second call finds the verified file and asks the server nothing.
    downloads.download(url, dest, size=len(PAYLOAD), sha256=PAYLOAD_SHA, progress=False)
    assert http_server.stats("/f/a.bin").requests == 1


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_dropped_connection_resumes_with_a_range_request(http_server, tmp_path, reset):
    url = http_server.add("/f/a.bin", PAYLOAD, drop_after=100_000, drop_times=1, reset=reset)
    dest = downloads.download(url, tmp_path / "a.bin", sha256=PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    stats = http_server.stats("/f/a.bin")
    assert stats.requests == 2
    assert stats.ranges[0] is None
    resumed_at = int(stats.ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 100_000
    assert stats.statuses == [200, 206]
    # Resuming re-sends nothing that had arrived.
    assert stats.bytes_served == 100_000 + len(PAYLOAD) - resumed_at


def test_dropped_connection_restarts_when_server_ignores_ranges(http_server, tmp_path):
    url = http_server.add("/f/a.bin", PAYLOAD, drop_after=100_000, drop_times=1, ignore_range=True)
    dest = downloads.download(url, tmp_path / "a.bin", sha256=PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    stats = http_server.stats("/f/a.bin")
    assert stats.ranges[1] is not None and stats.statuses == [200, 200]  # asked, ignored
    assert stats.bytes_served == 100_000 + len(PAYLOAD)


def test_drops_that_bring_bytes_do_not_use_up_retries(http_server, tmp_path):
    # Every response is cut after 40 kB: ten attempts, each bringing new bytes, with retries=1.
    url = http_server.add("/f/a.bin", PAYLOAD, drop_after=40_000)
    dest = downloads.download(url, tmp_path / "a.bin", size=len(PAYLOAD), retries=1, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert http_server.stats("/f/a.bin").requests == -(-len(PAYLOAD) // 40_000)


def test_drops_without_progress_give_up_and_keep_only_the_part(http_server, tmp_path):
    url = http_server.add("/f/a.bin", PAYLOAD, drop_after=50_000, ignore_range=True)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError) as info:
        downloads.download(url, dest, retries=2, progress=False)
    message = str(info.value)
    # The first attempt brought bytes; the next three (1 + retries) brought nothing new.
    assert url in message and "gave up after 4 attempts" in message and "resumes" in message
    _only_part_or_nothing(dest)
    assert downloads.part_path(dest).read_bytes() == PAYLOAD[:50_000]
    assert http_server.stats("/f/a.bin").requests == 4


def test_fewer_bytes_than_content_length_is_not_accepted(http_server, tmp_path):
    # The server announces 10 bytes more than it sends, every time, and cannot resume.
    url = http_server.add("/f/a.bin", PAYLOAD, short_by=10, ignore_range=True)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="connection closed after 300000 of 300010 bytes"):
        downloads.download(url, dest, retries=1, progress=False)
    _only_part_or_nothing(dest)


def test_complete_part_left_by_a_killed_run_is_verified_not_refetched(http_server, tmp_path):
    url = http_server.add("/f/a.bin", PAYLOAD)
    dest = tmp_path / "a.bin"
    downloads.part_path(dest).write_bytes(PAYLOAD)  # killed between the last write and the rename
    downloads.download(url, dest, sha256=PAYLOAD_SHA, progress=False)
    stats = http_server.stats("/f/a.bin")
    assert stats.statuses == [416] and stats.bytes_served == 0
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize("code, words", [
    (403, ["HTTP 403", "signed", "expired", "browser", "COURSE_MODE=tiny"]),
    (404, ["HTTP 404", "moved", "report"]),
])
def test_http_refusals_name_url_cause_and_fix(http_server, tmp_path, code, words):
    url = http_server.add("/models/m.pkl", PAYLOAD, status=code)
    dest = tmp_path / "m.pkl"
    with pytest.raises(DownloadError) as info:
        downloads.download(url, dest, progress=False)
    message = str(info.value)
    assert url in message and "What to do:" in message
    for word in words:
        assert word in message
    assert info.value.url == url
    assert http_server.stats("/models/m.pkl").requests == 1  # a refusal is not retried
    assert not dest.exists() and not downloads.part_path(dest).exists()


def test_busy_server_is_retried_then_reported(http_server, tmp_path):
    url = http_server.add("/f/a.bin", PAYLOAD, status=503)
    with pytest.raises(DownloadError, match="HTTP 503"):
        downloads.download(url, tmp_path / "a.bin", retries=1, progress=False)
    assert http_server.stats("/f/a.bin").requests == 2


def test_wrong_announced_size_stops_at_once(http_server, tmp_path):
    url = http_server.add("/f/a.bin", PAYLOAD)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match=f"announces {len(PAYLOAD)} bytes, but the course expects"):
        downloads.download(url, dest, size=len(PAYLOAD) + 1, progress=False)
    assert not dest.exists() and not downloads.part_path(dest).exists()


def test_wrong_hash_removes_the_file(http_server, tmp_path):
    url = http_server.add("/f/a.bin", PAYLOAD, body_override=PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 0xFF]))
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError) as info:
        downloads.download(url, dest, size=len(PAYLOAD), sha256=PAYLOAD_SHA, progress=False)
    assert "SHA-256" in str(info.value) and "removed" in str(info.value)
    assert not dest.exists() and not downloads.part_path(dest).exists()


def test_corrupt_existing_file_is_downloaded_again(http_server, tmp_path):
    url = http_server.add("/f/a.bin", PAYLOAD)
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"not the file")
    downloads.download(url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_slow_server_shows_progress(http_server, tmp_path, capsys):
    data = PAYLOAD[:60_000]
    url = http_server.add("/f/slow.bin", data, chunk_size=6_000, chunk_delay=0.05)
    downloads.download(url, tmp_path / "slow.bin", timeout=2, description="slow.bin")
    err = capsys.readouterr().err
    assert "slow.bin" in err and "B/s" in err  # tqdm's bar, with a rate
    assert (tmp_path / "slow.bin").read_bytes() == data


def test_stalled_server_is_reported_as_a_timeout_not_a_hang(http_server, tmp_path, capsys):
    # The server sends 100 kB, then nothing (holding the connection), also when resumed.
    url = http_server.add("/f/stall.bin", PAYLOAD, stall_at=100_000, stall_seconds=5)
    dest = tmp_path / "stall.bin"
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        downloads.download(url, dest, timeout=0.3, retries=1)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0  # 3 reads of 0.3 s and a 0.25 s pause, not the server's 5 s per stall
    assert "no data for 0.3 s (timed out)" in str(info.value)
    assert "trying again" in capsys.readouterr().err  # the stall was reported as it happened
    _only_part_or_nothing(dest)
    assert downloads.part_path(dest).read_bytes() == PAYLOAD[:100_000]
    assert http_server.stats("/f/stall.bin").ranges[1:] == ["bytes=100000-"] * 2


def test_trickling_server_keeps_going_while_bytes_arrive(http_server, tmp_path):
    # Each connection sends one 50 kB chunk and then stalls past the timeout: every attempt
    # brings new bytes, so the download completes (slowly) instead of giving up.
    url = http_server.add("/f/trickle.bin", PAYLOAD, chunk_size=50_000, chunk_delay=1.0)
    dest = downloads.download(url, tmp_path / "t.bin", timeout=0.2, retries=0, progress=False,
                              sha256=PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    assert http_server.stats("/f/trickle.bin").requests == len(PAYLOAD) // 50_000


def test_unreachable_host_is_reported_as_offline(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/nothing.bin"
    with pytest.raises(DownloadError, match="cannot reach the host") as info:
        downloads.download(url, tmp_path / "nothing.bin", progress=False)
    assert "COURSE_MODE=tiny" in str(info.value)


_CHILD = """
import sys
from helpers import downloads
downloads.download(sys.argv[1], sys.argv[2], progress=False, timeout=5)
"""


def test_killed_process_leaves_a_part_that_the_next_run_resumes(http_server, tmp_path):
    data = PAYLOAD
    url = http_server.add("/f/big.bin", data, chunk_size=4_000, chunk_delay=0.05)
    dest = tmp_path / "big.bin"
    part = downloads.part_path(dest)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url, str(dest)], env=env)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 20_000):
            assert child.poll() is None, "the child finished before it could be killed"
            time.sleep(0.02)
        assert part.exists() and part.stat().st_size >= 20_000
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    kept = part.stat().st_size
    assert not dest.exists() and 0 < kept < len(data)
    assert part.read_bytes() == data[:kept]

    http_server.set("/f/big.bin", chunk_delay=0.0)
    downloads.download(url, dest, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                       progress=False)
    assert dest.read_bytes() == data and not part.exists()
    stats = http_server.stats("/f/big.bin")
    assert stats.ranges[-1] == f"bytes={kept}-" and stats.statuses[-1] == 206


def test_base_url_overrides_point_registry_entries_at_the_local_server(http_server, tmp_path, monkeypatch):
    resource = downloads.Resource("MMV S3D", "mmv", "mmv_s3d.pkl", "mmv_s3d.pkl",
                                  size=len(PAYLOAD), sha256=PAYLOAD_SHA, licence="CC BY-NC 4.0")
    assert resource.url == "https://storage.googleapis.com/deepmind-research-mmv/mmv_s3d.pkl"
    http_server.add("/env/mmv_s3d.pkl", PAYLOAD)
    http_server.add("/set/mmv/mmv_s3d.pkl", PAYLOAD)

    # 1. The environment variable (read at each call).
    monkeypatch.setenv(config.ENV_BASE_URLS, f"mmv={http_server.url('env')}/, tfhub=http://x.invalid")
    assert resource.url == http_server.url("env/mmv_s3d.pkl")
    path = downloads.fetch(resource, tmp_path / "a", progress=False)
    assert path.read_bytes() == PAYLOAD

    # 2. set_base_url wins over the environment while it is set, and can be undone.
    with http_server.use_for("mmv", prefix="set"):
        assert resource.url == http_server.url("set/mmv/mmv_s3d.pkl")
        downloads.fetch(resource, tmp_path / "b", progress=False)
    assert http_server.stats("/set/mmv/mmv_s3d.pkl").requests == 1
    assert resource.url == http_server.url("env/mmv_s3d.pkl")
    monkeypatch.delenv(config.ENV_BASE_URLS)
    assert resource.url.startswith("https://storage.googleapis.com/")


def test_malformed_base_url_override_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(config.ENV_BASE_URLS, "mmv")
    with pytest.raises(config.ConfigError, match="key=url"):
        config.url("mmv", "x")
    monkeypatch.setenv(config.ENV_BASE_URLS, "tfhb=http://127.0.0.1:1")  # misspelt key
    with pytest.raises(config.ConfigError, match="'tfhb'.*known: mmv, tfhub"):
        config.url("tfhub", "x")
