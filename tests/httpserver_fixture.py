"""A local HTTP server for the download tests: loopback only, Range support, faults on demand.

The course downloads from hosts this machine cannot reach, so the tests serve the same bytes
from ``127.0.0.1`` and make the server misbehave the way real hosts do::

    def test_something(http_server):
        url = http_server.add("/files/a.bin", b"...", drop_after=100, drop_times=1)
        downloads.download(url, tmp_path / "a.bin")
        assert http_server.stats("/files/a.bin").requests == 2

What a route can do (all per path, changeable at any time with :meth:`LocalServer.set`):

- serve ``bytes`` or a file, honouring single ``Range: bytes=a-b`` requests (206 with
  ``Content-Range``; 416 with ``Content-Range: bytes */N`` when the range starts past the end),
  or ignore ``Range`` like a server without range support (``ignore_range=True``);
- answer a fixed status instead (``status=403`` / ``404`` / ``500``) or redirect (``redirect=``);
- drop the connection after ``drop_after`` body bytes (for the first ``drop_times`` requests, or
  all), with a FIN (clean close) or an RST (``reset=True``);
- announce a longer ``Content-Length`` than it sends (``short_by=``), or send other bytes
  (``body_override=``);
- be slow: ``chunk_delay`` seconds between chunks of ``chunk_size`` bytes;
- stall: send nothing past byte ``stall_at`` of the file (in any response, resumed or not),
  holding the connection open for ``stall_seconds``, then close it;
- refuse (403) requests whose ``User-Agent`` does not start with ``require_user_agent``, as
  Wikimedia refuses clients that do not identify themselves.

Every request is recorded: :meth:`LocalServer.stats` gives the count, the ``Range`` and
``User-Agent`` headers, the statuses and the body bytes handed to the socket for a path
(counted before each write, so a client that has read them never sees a smaller count).

Bounds (so a test can never hang on the server): the accept loop stops after ``max_requests``
requests or ``lifetime`` seconds, handler threads are daemons, each response stops after
``MAX_RESPONSE_SECONDS`` and a request whose client goes silent times out after
``HANDLER_TIMEOUT`` seconds. Only ``127.0.0.1`` is ever bound, on an ephemeral port.

Later rounds reuse it for the course's own stand-ins: :meth:`LocalServer.add` takes a file path,
:meth:`LocalServer.add_tfhub_module` packs a SavedModel folder the way TF-Hub answers
``?tf-hub-format=compressed``, and :meth:`LocalServer.use_for` points ``helpers.config`` base
URLs at the server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import io
import socket
import struct
import tarfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

HOST = "127.0.0.1"
#: A response never takes longer than this (then the server closes the connection).
MAX_RESPONSE_SECONDS = 10.0
#: A handler waits at most this long for a silent client.
HANDLER_TIMEOUT = 5.0
#: A single sleep between chunks is capped at this.
MAX_CHUNK_DELAY = 3.0


@dataclasses.dataclass
class Route:
    """What the server answers at one path (see the module docstring)."""

    body: bytes | None = None
    file: Path | None = None
    content_type: str = "application/octet-stream"
    status: int | None = None
    redirect: str | None = None
    ignore_range: bool = False
    drop_after: int | None = None
    drop_times: int | None = None
    reset: bool = False
    short_by: int = 0
    body_override: bytes | None = None
    chunk_size: int = 64 * 1024
    chunk_delay: float = 0.0
    stall_at: int | None = None
    stall_seconds: float = 3.0
    require_user_agent: str | None = None
    extra_headers: dict = dataclasses.field(default_factory=dict)

    def content(self) -> bytes:
        if self.body_override is not None:
            return self.body_override
        if self.body is not None:
            return self.body
        if self.file is not None:
            return Path(self.file).read_bytes()
        return b""


@dataclasses.dataclass
class Stats:
    """What a path has seen: requests, their Range headers and statuses, body bytes sent."""

    requests: int = 0
    bytes_served: int = 0
    ranges: list = dataclasses.field(default_factory=list)
    statuses: list = dataclasses.field(default_factory=list)
    methods: list = dataclasses.field(default_factory=list)
    user_agents: list = dataclasses.field(default_factory=list)


def _parse_range(header: str | None, size: int):
    """``(start, end_inclusive)`` for one ``bytes=`` range, ``"unsatisfiable"``, or ``None``."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None  # absent or multi-range: answer the whole body, as servers may
    first, _, last = header[len("bytes="):].strip().partition("-")
    try:
        if first == "":  # suffix: the last N bytes
            count = int(last)
            if count <= 0:
                return "unsatisfiable"
            return max(0, size - count), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = HANDLER_TIMEOUT
    server: "_Server"

    def log_message(self, format, *args):  # keep test output clean
        pass

    def do_HEAD(self):
        self._answer(head=True)

    def do_GET(self):
        self._answer(head=False)

    def _answer(self, head: bool):
        owner = self.server.owner
        key, route = owner._lookup(self.path)
        stats = owner._stats_for(key)
        with owner._lock:
            stats.requests += 1
            index = stats.requests
            stats.ranges.append(self.headers.get("Range"))
            stats.methods.append(self.command)
            stats.user_agents.append(self.headers.get("User-Agent"))
        self.close_connection = True
        if route is None:
            return self._status(stats, 404, b"no such path on the test server\n")
        agent = self.headers.get("User-Agent") or ""
        if route.require_user_agent is not None and not agent.startswith(route.require_user_agent):
            return self._status(stats, 403, b"Please set a user-agent and respect our robot policy\n")
        if route.status is not None:
            return self._status(stats, route.status, f"HTTP {route.status} from the test server\n".encode())
        if route.redirect is not None:
            with owner._lock:
                stats.statuses.append(302)
            self.send_response(302)
            self.send_header("Location", route.redirect)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            return

        data = route.content()
        size = len(data)
        wanted = None if route.ignore_range else _parse_range(self.headers.get("Range"), size)
        if wanted == "unsatisfiable":
            with owner._lock:
                stats.statuses.append(416)
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            return
        if wanted is None:
            start, end, status = 0, size - 1, 200
        else:
            (start, end), status = wanted, 206
        payload = data[start:end + 1]
        with owner._lock:
            stats.statuses.append(status)
        self.send_response(status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(payload) + route.short_by))
        self.send_header("Accept-Ranges", "none" if route.ignore_range else "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for name, value in route.extra_headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return

        limit = len(payload)
        dropping = route.drop_after is not None and (route.drop_times is None or index <= route.drop_times)
        if dropping:
            limit = min(limit, route.drop_after)
        stalling = route.stall_at is not None and start + limit > route.stall_at
        if stalling:
            limit = max(0, route.stall_at - start)
        deadline = time.monotonic() + MAX_RESPONSE_SECONDS
        sent = 0
        chunk = max(1, route.chunk_size)
        try:
            while sent < limit and time.monotonic() < deadline:
                if route.chunk_delay and sent:
                    time.sleep(min(route.chunk_delay, MAX_CHUNK_DELAY))
                block = payload[sent:min(sent + chunk, limit)]
                with owner._lock:  # counted before the write, so a client never outruns the count
                    stats.bytes_served += len(block)
                self.wfile.write(block)
                self.wfile.flush()
                sent += len(block)
            if stalling:
                time.sleep(min(route.stall_seconds, MAX_RESPONSE_SECONDS))
        except (BrokenPipeError, ConnectionResetError, socket.timeout, TimeoutError):
            return  # the client went away (as clients that time out do)
        if dropping and route.reset:
            # SO_LINGER 0 and close() now (no FIN first): the client sees "connection reset".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()

    def _status(self, stats: Stats, code: int, body: bytes):
        with self.server.owner._lock:
            stats.statuses.append(code)
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    owner: "LocalServer"
    accepted = 0

    def process_request(self, request, client_address):
        self.accepted += 1  # only the serving thread calls this
        super().process_request(request, client_address)


class LocalServer:
    """A threaded HTTP server on ``127.0.0.1:<ephemeral port>`` with per-path routes and faults."""

    def __init__(self, *, max_requests: int = 500, lifetime: float = 120.0):
        self.max_requests = max_requests
        self.lifetime = lifetime
        self._routes: dict[str, Route] = {}
        self._stats: dict[str, Stats] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------
    def start(self) -> "LocalServer":
        self._httpd = _Server((HOST, 0), _Handler)
        self._httpd.owner = self
        self._httpd.timeout = 0.05  # handle_request() polls, so stop() is prompt
        self._thread = threading.Thread(target=self._serve, name="test-http-server", daemon=True)
        self._thread.start()
        return self

    def _serve(self):
        deadline = time.monotonic() + self.lifetime
        while (not self._stop.is_set() and self._httpd.accepted < self.max_requests
               and time.monotonic() < deadline):
            self._httpd.handle_request()
        self._stop.set()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._httpd is not None:
            self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- routes -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, path: str = "") -> str:
        return self.base_url + "/" + path.lstrip("/") if path else self.base_url

    def add(self, path: str, content: bytes | str | Path = b"", **faults) -> str:
        """Serve ``content`` (bytes, or a file path) at ``path`` (may include ``?query``); return its URL."""
        if isinstance(content, (str, Path)):
            route = Route(file=Path(content), **faults)
        else:
            route = Route(body=bytes(content), **faults)
        key = self._key(path)
        with self._lock:
            self._routes[key] = route
        return self.url(key)

    def set(self, path: str, **changes):
        """Change a route's faults, e.g. ``set(path, status=None, drop_after=None)``."""
        key = self._key(path)
        with self._lock:
            self._routes[key] = dataclasses.replace(self._routes[key], **changes)

    def add_tfhub_module(self, handle_path: str, saved_model_dir: str | Path, *,
                         signed_path: str | None = None, **faults) -> str:
        """Serve a SavedModel folder as TF-Hub does; return the handle (``http://.../<handle_path>``).

        ``tensorflow_hub`` asks for ``<handle>?tf-hub-format=compressed`` and expects a tar.gz of
        the folder's contents. With ``signed_path``, the handle answers 302 to that path (as
        tfhub.dev redirects to Kaggle's signed storage URL) and the faults apply there.
        """
        archive = tfhub_tarball(saved_model_dir)
        query_path = handle_path.rstrip("/") + "?tf-hub-format=compressed"
        if signed_path is None:
            self.add(query_path, archive, content_type="application/x-tar", **faults)
        else:
            self.add(signed_path, archive, content_type="application/x-tar", **faults)
            self.add(query_path, redirect=self.url(signed_path))
        return self.url(handle_path)

    @contextlib.contextmanager
    def use_for(self, *keys: str, prefix: str = ""):
        """Point ``helpers.config`` base URLs ``keys`` at ``<server>/<prefix>/<key>`` meanwhile."""
        from helpers import config

        try:
            for key in keys:
                config.set_base_url(key, self.url(f"{prefix.strip('/')}/{key}".lstrip("/")))
            yield self
        finally:
            for key in keys:
                config.set_base_url(key, None)

    def stats(self, path: str) -> Stats:
        """A snapshot of what ``path`` has seen."""
        key = self._key(path)
        with self._lock:
            return dataclasses.replace(self._stats.get(key, Stats()))

    # --- internals --------------------------------------------------------------------------
    @staticmethod
    def _key(path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            parts = urllib.parse.urlsplit(path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        return "/" + path.lstrip("/")

    def _lookup(self, request_path: str):
        key = self._key(request_path)
        with self._lock:
            if key in self._routes:
                return key, self._routes[key]
            bare = key.split("?", 1)[0]
            return bare, self._routes.get(bare)

    def _stats_for(self, key: str) -> Stats:
        with self._lock:
            return self._stats.setdefault(key, Stats())


def tfhub_tarball(saved_model_dir: str | Path) -> bytes:
    """A ``.tar.gz`` of a SavedModel folder's contents (paths relative to it), as TF-Hub serves."""
    root = Path(saved_model_dir)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return buffer.getvalue()


def cut_between_files(archive: bytes, member: str) -> int:
    """A prefix length of the .tar.gz ``archive`` whose data ends after every file before
    ``member`` and inside ``member``'s header: what a connection dropped between two files
    delivers (tensorflow_hub takes it for a complete archive)."""
    import zlib

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        header = tar.getmember(member).offset  # where its 512-byte header starts

    def produced(n):
        return len(zlib.decompressobj(wbits=31).decompress(archive[:n]))

    low, high = 0, len(archive)  # smallest prefix that produces at least `header` bytes
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if produced(mid) < header else (low, mid)
    assert header <= produced(low) < header + 512, "no prefix ends inside the header"
    return low


def dead_pid() -> int:
    """The id of a process of this machine that has finished (a lock's owner that is gone)."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True, timeout=30)
    return int(child.stdout)


def leave_hub_download_state(handle: str, cache_dir: Path, pid: int) -> tuple[Path, Path]:
    """What a ``hub.load`` killed mid-download leaves in ``cache_dir``: its lock file and
    half-filled temporary folder, named and written by tensorflow_hub's own helpers (only the
    pid is swapped). Returns ``(lock, tmp)``.

    The suite does not start a second TensorFlow process to kill (seconds of import); a manual
    run that did (SIGKILL while the archive was arriving) left exactly these two paths.
    """
    import os

    from tensorflow_hub import resolver

    from helpers import downloads

    module_dir = str(downloads.hub_cache_folder(handle, cache_dir))
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    uid = "0123456789abcdef0123456789abcdef"
    ours = resolver._lock_file_contents(uid)  # "<host>.<our pid>.<uid>"
    assert ours.endswith(f".{os.getpid()}.{uid}")
    lock = Path(resolver._lock_filename(module_dir))
    lock.write_text(ours.replace(f".{os.getpid()}.", f".{pid}."))
    tmp = Path(resolver._temp_download_dir(module_dir, uid))
    (tmp / "variables").mkdir(parents=True)
    (tmp / "saved_model.pb").write_bytes(b"\0" * 1000)
    return lock, tmp


@pytest.fixture
def http_server():
    """A started :class:`LocalServer`, stopped after the test."""
    server = LocalServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
