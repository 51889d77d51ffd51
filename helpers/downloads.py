"""Verified, resumable, atomic downloads with a progress bar, and TF-Hub cache care.

Plain files (:func:`download`, :func:`fetch`)
---------------------------------------------
A download goes to ``<file>.part`` and is renamed to ``<file>`` only after its size (and hash,
where known) has been checked, so a file under its final name is always complete. An
interrupted run (dropped connection, stall, killed process) leaves at most a ``.part``; the
next attempt resumes it with an HTTP range request, or starts over when the server ignores
ranges. A server that sends fewer bytes than it announced is never taken at its word: the
attempt counts as interrupted and the rest is asked for again.

Why not a library: ``urllib`` and ``requests`` fetch, but neither resumes; ``fsspec`` reads
ranges (the course uses it for a few UCF101 classes, :mod:`helpers.ucf101.remote`) but does
not continue a half-written local file; ``tf.keras.utils.get_file`` and ``pooch`` verify a
hash but restart from zero after a drop. The UCF101 zip is 6.96 GB (6.5 GiB): starting again
after each dropped connection is not an option on a home line or in Colab, so resuming
``<file>.part`` with a range request, and refusing short answers, stays here.

TF-Hub modules (:func:`hub_load` and friends)
---------------------------------------------
``tensorflow_hub`` downloads a module itself (``<handle>?tf-hub-format=compressed``, a tar.gz
streamed straight into a temporary folder of its cache, renamed to ``sha1(handle)`` at the end).
What its source (0.16.1, ``resolver.py``, ``compressed_module_resolver.py``,
``file_utils.py``) does on failures, checked against a local server in
``tests/test_tfhub_http.py``:

- HTTP errors and ``URLError`` propagate unchanged (``HTTPError 403: Forbidden``); nothing is
  cached, the temporary folder and lock file are removed.
- It calls ``urlopen`` without a timeout, so a stalled server hangs it for ever unless a
  socket default timeout is set (then ``TimeoutError``).
- A connection dropped inside a file of the archive gives ``OSError: ... does not appear to
  be a valid module`` (a reset gives ``ConnectionResetError``); nothing is cached.
- A connection dropped **between** two files of the archive is not noticed: ``tarfile`` in
  stream mode takes the missing header for the end of the archive, and hub ignores
  ``Content-Length`` and the gzip trailer. The truncated module is renamed into the cache,
  and every later ``hub.load`` uses it without asking the network again: a broken entry
  (loading it fails with ``FileNotFoundError: Unsuccessful TensorSliceReader constructor``
  when the variables are missing).
- A killed process leaves ``<sha1>.lock`` and ``<sha1>.<uid>.tmp`` (seen with a child
  process killed by SIGKILL mid-archive). The next ``hub.load`` waits for the lock to go
  stale before it downloads again: it checks every 10 minutes whether the lock's temporary
  folder grew, and the first check never counts (it compares against no earlier lock
  content), so it waits about 20 minutes.

:func:`hub_load` guards against all of these; :func:`explain_hub_error` turns hub's errors into
:class:`DownloadError` messages (the course's one explanation of them: ``helpers.milnce.load``
loads every handle through :func:`hub_load`); :func:`hub_cache_problems`,
:func:`hub_cache_entry_ok` and :func:`repair_hub_cache` inspect and mend a cache entry.

Errors are :class:`DownloadError`, whose message names the URL, what went wrong and what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import os
import re
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from helpers import config

#: Some hosts (Wikimedia) refuse requests without a browser-like User-Agent.
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36 video-text-course"
)
CHUNK_BYTES = 1 << 20
#: Attempts that bring new bytes do not use up ``retries``; this caps all attempts of one call.
MAX_ATTEMPTS = 100
#: HTTP statuses worth another attempt (the host is busy or failing for a moment).
RETRYABLE_STATUSES = (408, 429, 500, 502, 503, 504)


class DownloadError(RuntimeError):
    """A download failed; the message says which URL, why, and what to do."""

    def __init__(self, url: str, problem: str, fix: str = ""):
        self.url = url
        self.problem = problem
        self.fix = fix
        message = f"Download of {url} failed: {problem}"
        if fix:
            message += f"\nWhat to do: {fix}"
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class Resource:
    """One downloadable file: where it lives and how to check it."""

    name: str
    base: str  # key into config.BASE_URLS
    path: str  # below the base URL
    filename: str
    size: int | None = None  # bytes, when published
    sha256: str | None = None  # when published
    licence: str | None = None
    browser_user_agent: bool = False

    @property
    def url(self) -> str:
        return config.url(self.base, self.path)


def sha256_of(path: Path, chunk: int = CHUNK_BYTES) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def part_path(dest: str | os.PathLike) -> Path:
    """Where :func:`download` keeps the unfinished bytes of ``dest``: ``<dest>.part``."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def _check_file(url: str, path: Path, size: int | None, sha256: str | None) -> None:
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise DownloadError(
            url, f"{path.name} has {actual} bytes, expected {size}; it was removed",
            "run again to download it afresh; if this repeats, the file at this address has "
            "changed: please report it",
        )
    if sha256 is not None:
        got = sha256_of(path)
        if got != sha256.lower():
            raise DownloadError(
                url, f"{path.name} has SHA-256 {got}, expected {sha256}; it was removed",
                "run again to download it afresh; if this repeats, the file at this address "
                "has changed (or a proxy alters it): please report it",
            )


# --- error messages --------------------------------------------------------------------------


def _reason(exc: BaseException) -> BaseException:
    return getattr(exc, "reason", exc) if isinstance(exc, urllib.error.URLError) else exc


def _is_offline(err: BaseException) -> bool:
    reason = _reason(err)
    return isinstance(reason, (socket.gaierror, ConnectionRefusedError))


def _is_timeout(err: BaseException) -> bool:
    return isinstance(_reason(err), (TimeoutError, socket.timeout))


def explain_url_error(url: str, exc: BaseException, *, dest: str | os.PathLike | None = None,
                      timeout: float | None = None) -> DownloadError:
    """Turn an ``urllib`` / socket error met while fetching ``url`` into a :class:`DownloadError`.

    ``dest``: where the file should end up (named in the advice for a manual download).
    ``timeout``: the read timeout in use (named in the message of a stall).
    HTTP 403 is explained as the refusal model hosts give when a signed storage link has
    expired or the client is rejected; 404 as a moved file; name-resolution failures and
    refused connections as being offline.
    """
    where = f" and save it as {dest}" if dest is not None else ""
    if isinstance(exc, urllib.error.HTTPError):
        code = exc.code
        if code == 403:
            return DownloadError(
                url,
                "HTTP 403 Forbidden: the host refused the request. Model hosts answer 403 when "
                "the signed storage link they redirect to has expired or was refused (TF-Hub "
                "modules now come from Kaggle's signed Google Cloud Storage links, see "
                "tensorflow/hub issues #922 and #931-#933); some hosts (Wikimedia) also refuse "
                "clients that do not look like a browser",
                f"wait a few minutes and run again (each request gets a fresh signed link); if "
                f"it persists, open {url} in a browser{where}; or run the course with "
                "COURSE_MODE=tiny to use the generated stand-ins",
            )
        if code == 404:
            return DownloadError(
                url,
                "HTTP 404 Not Found: nothing is served at this address (the file may have "
                "moved, or the address is mistyped)",
                "open the address in a browser to check; if the host has moved the file, the "
                "course's registry (helpers) needs the new address: please report it; "
                "meanwhile COURSE_MODE=tiny runs the course on stand-ins",
            )
        if code == 416:
            return DownloadError(url, "HTTP 416 Range Not Satisfiable: the server refused the "
                                      "byte range asked for", "run again")
        if code in RETRYABLE_STATUSES:
            return DownloadError(url, f"HTTP {code} {exc.reason}: the server is busy or failing",
                                 "retry in a few minutes")
        return DownloadError(url, f"HTTP {code} {exc.reason}",
                             "open the address in a browser to see what the host says")
    if _is_offline(exc):
        return DownloadError(
            url,
            f"cannot reach the host ({_reason(exc)})",
            "check the network connection (on Colab: Runtime > Reconnect), or run the course "
            "with COURSE_MODE=tiny to use the generated stand-ins",
        )
    if _is_timeout(exc):
        waited = f" for {timeout:g} s" if timeout is not None else ""
        return DownloadError(url, f"the server sent no data{waited} (timed out)",
                             "the host or the network is slow or stalled: run again later")
    if isinstance(exc, (ConnectionError, http.client.HTTPException, urllib.error.URLError)):
        return DownloadError(url, f"the connection failed ({type(exc).__name__}: {_reason(exc)})",
                             "run again; a flaky network often recovers")
    return DownloadError(url, f"{type(exc).__name__}: {exc}")


# --- plain files -----------------------------------------------------------------------------


class _Incomplete(Exception):
    """The attempt ended before the file was complete; what was received is kept."""


class _Restart(Exception):
    """The ``.part`` cannot be resumed (the server resumed elsewhere, or refused the range)."""


class _WrongContent(DownloadError):
    """The server serves something other than the expected file: the ``.part`` is worthless."""


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    progress: bool = True,
    description: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` unless it is already there (and checks out); return ``dest``.

    ``size`` / ``sha256``: published size and hash. A file already at ``dest`` that fails them
    is downloaded again; a download that fails them is removed and raises. When the server
    announces a total size other than ``size``, the download stops at once.
    ``timeout``: seconds a connection or a single read may wait for data; a stall ends the
    attempt (what arrived is kept) and is reported.
    ``retries``: attempts in a row that bring no new bytes before giving up (attempts that do
    bring bytes, e.g. on a line that drops every few minutes, do not count; at most
    :data:`MAX_ATTEMPTS` in all).
    ``progress``: a tqdm bar, plus one line on stderr per interrupted attempt.

    Unknown sizes: without ``size`` and without a ``Content-Length`` a cut connection cannot be
    told from the end of the file; every host the course uses sends ``Content-Length``.
    Concurrent calls for the same ``dest`` (other processes or threads) take turns under the
    per-file lock ``<dest>.lock`` (:func:`helpers.atomic.locked`): the second waits, then
    finds the finished file.
    Raises :class:`DownloadError` (naming the URL, the problem and what to do).
    """
    from helpers import atomic

    dest = Path(dest)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(atomic.locked(dest))
        except OSError as err:  # the folder cannot be made or written: say so, with the fix
            raise _disk_error(url, dest.with_name(dest.name + ".lock"), err) from None
        return _download_locked(url, dest, size=size, sha256=sha256, headers=headers,
                                timeout=timeout, retries=retries, progress=progress,
                                description=description)


def _download_locked(url: str, dest: Path, *, size, sha256, headers, timeout, retries, progress,
                     description) -> Path:
    """:func:`download`'s body, run while holding ``dest``'s lock."""
    if dest.exists():
        try:
            _check_file(url, dest, size, sha256)
            return dest
        except DownloadError:
            dest.unlink()  # a stale or corrupt file from elsewhere: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()  # longer than the whole file: not a prefix of it
    request_headers = {"User-Agent": BROWSER_USER_AGENT}
    request_headers.update(headers or {})
    desc = description or dest.name

    failures = 0  # attempts in a row without new bytes
    best = part.stat().st_size if part.exists() else 0  # most bytes the .part has held
    last_problem = ""
    attempts = 0
    while True:
        attempts += 1
        try:
            _transfer(url, part, request_headers, timeout, progress, desc, size)
            break
        except _Restart as err:
            part.unlink(missing_ok=True)
            last_problem = str(err)
        except _Incomplete as err:
            last_problem = str(err)
        except urllib.error.HTTPError as err:
            if err.code not in RETRYABLE_STATUSES:
                raise explain_url_error(url, err, dest=dest) from None
            last_problem = f"HTTP {err.code} {err.reason}"
        except _WrongContent:
            part.unlink(missing_ok=True)
            raise
        except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, resets
            if _is_offline(err):
                raise explain_url_error(url, err, dest=dest) from None
            if _is_timeout(err):
                last_problem = f"no data for {timeout:g} s (timed out)"
            else:
                last_problem = f"connection dropped ({type(err).__name__}: {_reason(err)})"
        have = part.stat().st_size if part.exists() else 0
        if have > best:
            best, failures = have, 0
        else:
            failures += 1
        if failures > retries or attempts >= MAX_ATTEMPTS:
            raise DownloadError(
                url,
                f"gave up after {attempts} attempts; last problem: {last_problem}",
                f"check the connection and run again: the {have} bytes received so far are "
                f"kept in {part} and the next run resumes from there",
            )
        if progress:
            print(f"{desc}: {last_problem}; trying again ({have} bytes kept)", file=sys.stderr)
        time.sleep(min(0.25 * 2.0 ** max(failures - 1, 0), 4.0) if failures else 0.0)

    try:
        _check_file(url, part, size, sha256)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _content_range(value: str | None):
    """``(start, end, total)`` from ``bytes a-b/N`` (``None`` for unknown parts), or ``None``."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value or "")
    if not match:
        return None
    start, end, total = match.groups()
    return (int(start) if start else None, int(end) if end else None,
            int(total) if total and total != "*" else None)


def _transfer(url: str, part: Path, headers: dict, timeout: float, progress: bool, desc: str,
              size: int | None) -> None:
    """One attempt: resume ``part`` if possible, else start it over. Raises on any failure."""
    have = part.stat().st_size if part.exists() else 0
    request_headers = dict(headers)
    if have:
        request_headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=request_headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            parsed = _content_range(err.headers.get("Content-Range"))
            total = parsed[2] if parsed else None
            if total == have:  # the .part already holds the whole file (killed before the rename)
                return
            raise _Restart(f"the server refused to resume at byte {have} (HTTP 416, file has "
                           f"{total if total is not None else 'an unknown number of'} bytes)") from None
        raise
    with response:
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        if status == 206:
            parsed = _content_range(response.headers.get("Content-Range"))
            if not have or parsed is None or parsed[0] != have:
                raise _Restart(f"the server resumed at byte {parsed[0] if parsed else '?'}, "
                               f"expected {have}")
            mode = "ab"
            total = parsed[2] if parsed[2] is not None else (
                have + remaining if remaining is not None else None)
        elif status == 200:  # a full answer (no range asked, or the server ignores ranges)
            have = 0
            mode = "wb"
            total = remaining
        else:
            raise DownloadError(url, f"unexpected HTTP {status} {response.reason}",
                                "open the address in a browser to see what the host says")
        if size is not None and total is not None and total != size:
            raise _WrongContent(
                url,
                f"the server announces {total} bytes, but the course expects {size}: the file "
                "at this address has changed, or something between you and the host answers "
                "instead of it (a captive portal, a proxy); nothing was kept",
                "open the address in a browser to see what it serves; if the file has changed, "
                "please report it",
            )
        bar = _progress_bar(total, have, desc, progress)
        received = 0
        read = getattr(response, "read1", response.read)  # read1: prompt progress on slow lines
        try:
            with _open_for_writing(url, part, mode) as handle:
                while True:
                    block = read(CHUNK_BYTES)
                    if not block:
                        break
                    _write(url, part, handle, block)
                    received += len(block)
                    bar.update(len(block))
                    if size is not None and have + received > size:
                        raise _WrongContent(
                            url, f"the server sent more than the expected {size} bytes; "
                                 "nothing was kept",
                            "the file at this address has changed: please report it")
        finally:
            bar.close()
        if remaining is not None and received < remaining:
            raise _Incomplete(f"connection closed after {have + received} of {total} bytes")


def _disk_error(url: str, path: Path, err: OSError) -> DownloadError:
    return DownloadError(url, f"cannot write {path} ({err.strerror or err})",
                         "free some disk space or choose a writable cache folder "
                         "(COURSE_CACHE_DIR), then run again")


def _open_for_writing(url: str, path: Path, mode: str):
    try:
        return open(path, mode)
    except OSError as err:
        raise _disk_error(url, path, err) from None


def _write(url: str, path: Path, handle, block: bytes) -> None:
    # Local write errors (disk full, read-only) are not network trouble: no retry.
    try:
        handle.write(block)
    except OSError as err:
        raise _disk_error(url, path, err) from None


def _progress_bar(total, initial, desc, enabled):
    from helpers.progress import bar as tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not enabled, leave=False)


def fetch(resource: Resource, dest_dir: str | os.PathLike, **kwargs) -> Path:
    """Download a registry :class:`Resource` into ``dest_dir`` (if not there yet); return its path.

    The URL comes from ``config`` (so base-URL overrides apply); ``kwargs`` go to
    :func:`download`. Prints the licence the first time a licensed file is fetched.
    """
    if resource.licence and not (Path(dest_dir) / resource.filename).exists():
        print(f"{resource.name}: {resource.licence}")
    return download(
        resource.url,
        Path(dest_dir) / resource.filename,
        size=resource.size,
        sha256=resource.sha256,
        description=resource.filename,
        **kwargs,
    )


# --- TF-Hub cache ----------------------------------------------------------------------------


def hub_cache_folder(handle: str, cache_dir: str | os.PathLike) -> Path:
    """The folder ``tensorflow_hub`` caches ``handle`` in: ``<cache_dir>/<sha1(handle)>``."""
    return Path(cache_dir) / hashlib.sha1(handle.encode("utf8")).hexdigest()


_SHARD = re.compile(r"variables\.data-(\d+)-of-(\d+)$")


def _needs_variables(saved_model_pb: Path) -> bool | None:
    """Whether the SavedModel declares variables (``None``: cannot tell). Raises on a bad file."""
    try:
        from tensorflow.core.protobuf import saved_model_pb2
    except ImportError:
        return None
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(saved_model_pb.read_bytes())  # a truncated file raises DecodeError
    for graph in proto.meta_graphs:
        if graph.saver_def.filename_tensor_name:  # TF1 (hub format) modules with a saver
            return True
        if any(node.WhichOneof("kind") == "variable" for node in graph.object_graph_def.nodes):
            return True
    return False


def _entry_problem(folder: Path, deep: bool) -> str | None:
    """What is wrong with a cache entry that exists and is non-empty (``None``: nothing found)."""
    pb = folder / "saved_model.pb"
    if not pb.is_file() and not (folder / "saved_model.pbtxt").is_file():
        return "it has no saved_model.pb"
    if pb.is_file() and pb.stat().st_size == 0:
        return "its saved_model.pb is empty"
    variables = folder / "variables"
    shards = {}
    if variables.is_dir():
        for path in variables.iterdir():
            match = _SHARD.match(path.name)
            if match:
                shards[int(match.group(1))] = int(match.group(2))
        if shards and not (variables / "variables.index").is_file():
            return "variables/variables.index is missing"
        if (variables / "variables.index").is_file():
            counts = set(shards.values())
            if not shards or len(counts) != 1 or set(shards) != set(range(counts.pop())):
                return "some variables/variables.data-* shards are missing"
    if pb.is_file():
        try:
            needs = _needs_variables(pb)
        except Exception as exc:  # noqa: BLE001 - any parse failure means a damaged file
            return f"its saved_model.pb cannot be parsed ({type(exc).__name__})"
        if needs and not (variables / "variables.index").is_file():
            return "the model has variables but variables/ is missing or empty"
    if deep and (variables / "variables.index").is_file():
        try:
            import tensorflow as tf

            reader = tf.train.load_checkpoint(str(variables / "variables"))
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)  # reads and checks every tensor's checksum
        except Exception as exc:  # noqa: BLE001 - any read failure means damaged variables
            return f"its variables cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
    return None


def _lock_state(lock: Path):
    """``(host, pid, uid, alive)`` of a hub lock file (``alive`` None: another host)."""
    try:
        text = lock.read_text().strip()
    except OSError:
        return None
    host, _, rest = text.rpartition(".")  # hub writes "<hostname>.<pid>.<uid>"
    host, _, pid = host.rpartition(".")
    uid = rest
    try:
        pid_value = int(pid)
    except ValueError:
        return host, None, uid, None
    if host != socket.gethostname():
        return host, pid_value, uid, None
    try:
        os.kill(pid_value, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    except PermissionError:  # exists, owned by someone else
        alive = True
    return host, pid_value, uid, alive


def hub_cache_problems(handle: str, cache_dir: str | os.PathLike, *, deep: bool = False) -> list[str]:
    """What is wrong with ``handle``'s entry in the TF-Hub cache ``cache_dir`` (``[]``: nothing).

    Checks, without any network call:

    - the entry folder ``<sha1(handle)>`` (when present and non-empty, hub uses it as is):
      ``saved_model.pb`` present and parseable, ``variables.index`` with every
      ``variables.data-K-of-N`` shard, variables present when the graph declares them, and
      with ``deep=True`` every variable readable (reads them all: seconds for big models);
    - ``<sha1>.lock`` left by a process of this machine that no longer runs (hub would wait
      about 20 minutes before downloading again), or held by a live one;
    - ``<sha1>.<uid>.tmp`` folders that no running download owns.

    An absent entry is not a problem (hub downloads it). Each line names the path.
    """
    cache_dir = Path(cache_dir)
    folder = hub_cache_folder(handle, cache_dir)
    problems = []
    if folder.is_dir() and any(folder.iterdir()):
        problem = _entry_problem(folder, deep)
        if problem:
            problems.append(f"the cached module {folder} is incomplete or damaged: {problem}")
    lock = folder.with_name(folder.name + ".lock")
    live_uid = None
    if lock.exists():
        state = _lock_state(lock)
        if state is not None:
            host, pid, uid, alive = state
            if alive:
                live_uid = uid
                problems.append(f"{lock}: process {pid} of this machine is downloading the module "
                                "now (tensorflow_hub waits for it)")
            elif alive is None:
                live_uid = uid
                problems.append(f"{lock}: held by host {host!r} (a shared cache?); delete it if "
                                "no download is running there")
            else:
                problems.append(f"{lock}: left by process {pid}, which no longer runs (a killed "
                                "download); tensorflow_hub would wait about 20 minutes for it")
    for tmp in sorted(cache_dir.glob(f"{folder.name}.*.tmp")):
        if live_uid is None or not tmp.name.endswith(f".{live_uid}.tmp"):
            problems.append(f"{tmp}: unfinished download folder of a process that no longer runs")
    return problems


def hub_cache_entry_ok(handle: str, cache_dir: str | os.PathLike, *, deep: bool = False) -> bool:
    """Whether ``handle`` is cached in ``cache_dir`` and complete, so ``hub.load`` works offline.

    See :func:`hub_cache_problems` for what is checked (stale locks do not matter here).
    """
    folder = hub_cache_folder(handle, cache_dir)
    return folder.is_dir() and any(folder.iterdir()) and _entry_problem(folder, deep) is None


def repair_hub_cache(handle: str, cache_dir: str | os.PathLike, *, deep: bool = False) -> list[Path]:
    """Remove what :func:`hub_cache_problems` finds broken; return the paths removed.

    Removes a damaged entry folder (and its ``.descriptor.txt``), a lock file whose process of
    this machine no longer runs, and temporary folders no running download owns. Never touches
    a lock held by a live process or by another host.
    """
    cache_dir = Path(cache_dir)
    folder = hub_cache_folder(handle, cache_dir)
    removed = []
    if folder.is_dir() and any(folder.iterdir()) and _entry_problem(folder, deep):
        shutil.rmtree(folder)
        removed.append(folder)
        descriptor = folder.with_name(folder.name + ".descriptor.txt")
        if descriptor.exists():
            descriptor.unlink()
            removed.append(descriptor)
    lock = folder.with_name(folder.name + ".lock")
    live_uid = None
    if lock.exists():
        state = _lock_state(lock)
        if state is not None and state[3] is False:
            lock.unlink(missing_ok=True)
            removed.append(lock)
        elif state is not None:
            live_uid = state[2]
    for tmp in sorted(cache_dir.glob(f"{folder.name}.*.tmp")):
        if live_uid is None or not tmp.name.endswith(f".{live_uid}.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _hub_invalid_archive(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and "does not appear to be a valid module" in str(exc)


def _hub_manual_route(handle: str, cache_dir, page: str | None, install: str | None) -> str:
    """How to get a module by hand: where to download its archive, and how to put it in place."""
    archive = handle.rstrip("/") + "?tf-hub-format=compressed"
    source = f"{page} or from {archive}," if page else archive
    if install:
        return f"download the archive in a browser from {source} and run {install}"
    folder = (hub_cache_folder(handle, cache_dir) if cache_dir is not None
              else "<TFHUB_CACHE_DIR>/<sha1 of the handle>")
    return f"download the archive in a browser from {source} and unpack the .tar.gz into {folder}"


def explain_hub_error(handle: str, exc: BaseException,
                      cache_dir: str | os.PathLike | None = None, *,
                      timeout: float | None = None, page: str | None = None,
                      install: str | None = None) -> DownloadError:
    """Turn an exception from ``tensorflow_hub.load(handle)`` into a clear :class:`DownloadError`.

    The one explanation of TF-Hub failures in the course (:func:`hub_load` and
    :func:`helpers.milnce.load` use it). What hub raises (0.16.1, see the module docstring):

    - ``HTTPError``: 403 is explained as the expired / refused signed storage link of
      Kaggle-hosted modules (the refused address is named when hub was redirected), with the
      manual route as the fix; 404 as a mistyped or moved handle; others as in
      :func:`explain_url_error`;
    - ``URLError`` when offline, ``TimeoutError`` on a stall (only with a socket timeout set);
    - ``OSError('... does not appear to be a valid module')`` when the archive arrives cut
      short, ``ConnectionResetError`` / ``http.client`` errors when the connection breaks off;
    - TensorFlow / ``OSError`` load errors when the cached folder is damaged: with
      ``cache_dir`` the cache entry is inspected, and a damaged (or unloadable) one is named
      with the command to delete it.

    ``timeout``: the socket timeout that was in use (named in the message of a stall).
    ``page``: a web page where the module can be downloaded by hand; ``install``: the call that
    puts such a downloaded archive in place (e.g. ``helpers.milnce.install_archive(...)``).
    Without them the manual route is "download ``<handle>?tf-hub-format=compressed`` and unpack
    it into the cache folder".
    """
    folder = hub_cache_folder(handle, cache_dir) if cache_dir is not None else None
    cached = folder is not None and folder.is_dir() and any(folder.iterdir())
    if cached:
        problem = _entry_problem(folder, deep=True)
        if problem:
            return DownloadError(
                handle,
                f"the cached copy in {folder} is incomplete or damaged ({problem}); "
                "tensorflow_hub reuses a cached folder without checking it",
                f"delete the folder (shutil.rmtree({str(folder)!r}), or "
                "helpers.downloads.repair_hub_cache) and load again",
            )
    archive = handle.rstrip("/") + "?tf-hub-format=compressed"
    manual = _hub_manual_route(handle, cache_dir, page, install)
    tiny = "or run the course with COURSE_MODE=tiny to use the generated stand-ins"
    if isinstance(exc, urllib.error.HTTPError):
        refused_url = getattr(exc, "url", None) or exc.filename  # where hub was redirected
        refused = refused_url if refused_url and refused_url not in (handle, archive) else None
        at = f" (refused at {refused})" if refused else ""
        if exc.code == 403:
            return DownloadError(
                handle, explain_url_error(handle, exc).problem + at,
                "wait a few minutes and load again (each request gets a fresh signed link); if "
                f"it persists, {manual}; {tiny}",
            )
        if exc.code == 404:
            see = f" (the module's page: {page})" if page else ""
            return DownloadError(
                handle,
                f"HTTP 404 Not Found{at}: no module is served at this handle (mistyped, or the "
                "module has moved)",
                f"check the handle{see}; if the course's own default handle gives 404, the host "
                f"has moved the module: please report it; meanwhile {tiny.removeprefix('or ')}",
            )
        error = explain_url_error(handle, exc, timeout=timeout)
        return DownloadError(handle, error.problem + at, error.fix)
    if _is_offline(exc):
        return explain_url_error(handle, exc, timeout=timeout)
    if _is_timeout(exc):
        error = explain_url_error(handle, exc, timeout=timeout)
        return DownloadError(handle, error.problem + "; nothing was cached",
                             f"run again later; on a slow or stalled network, {manual}")
    if _hub_invalid_archive(exc):
        return DownloadError(
            handle,
            "the module archive arrived incomplete or is not a tar.gz (the connection dropped, "
            "or a proxy or captive portal answered instead); tensorflow_hub cannot resume, and "
            f"nothing was cached ({type(exc).__name__}: {exc})",
            f"run again; if it keeps failing, open {archive} in a browser to see what is "
            f"served, or {manual}",
        )
    if isinstance(exc, (ConnectionError, http.client.HTTPException, urllib.error.URLError)):
        return DownloadError(
            handle,
            f"the download from the model host broke off ({type(exc).__name__}: {_reason(exc)}); "
            "tensorflow_hub cannot resume, and nothing was cached",
            f"run again (tensorflow_hub starts the download over); on a slow or flaky network, "
            f"{manual}",
        )
    if cached:  # a folder the checks above find complete, yet TensorFlow cannot load it
        return DownloadError(
            handle,
            f"the cached module in {folder} could not be loaded ({type(exc).__name__}: "
            f"{str(exc)[:300]})",
            f"delete the folder (shutil.rmtree({str(folder)!r})) and load again: it is "
            "downloaded afresh",
        )
    return DownloadError(handle, f"{type(exc).__name__}: {str(exc)[:300]}",
                         f"see the message above; {tiny.removeprefix('or ')}")


@contextlib.contextmanager
def _env_and_socket_timeout(env: dict[str, str], timeout: float | None):
    """Set environment variables and the socket default timeout meanwhile, then restore them."""
    saved_env = {key: os.environ.get(key) for key in env}
    saved_timeout = socket.getdefaulttimeout()
    try:
        os.environ.update(env)
        socket.setdefaulttimeout(timeout)
        yield
    finally:
        socket.setdefaulttimeout(saved_timeout)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def hub_load(handle: str, cache_dir: str | os.PathLike, *, tags=None, timeout: float = 60.0,
             retries: int = 2, progress: bool = True, page: str | None = None,
             install: str | None = None):
    """``tensorflow_hub.load(handle)`` through the cache ``cache_dir``, with the course's guards.

    Before loading: a lock file left by a killed process and orphaned temporary folders are
    removed (hub would wait about 20 minutes), and so is a damaged cache entry.
    While loading: ``timeout`` seconds is the socket default timeout (hub sets none, so a stall
    would hang for ever; note it is process-wide meanwhile), ``TFHUB_CACHE_DIR`` is
    ``cache_dir``, ``TFHUB_MODEL_LOAD_FORMAT`` is ``COMPRESSED`` and, with ``progress``,
    hub prints its download progress.
    On failure: a dropped connection, a stall or a busy server (HTTP 5xx, 429) is retried up
    to ``retries`` times (hub starts the archive over; it cannot resume); a module that was
    cached truncated (see the module docstring) is deleted and downloaded again, also within
    ``retries``; when the retries are used up, such a truncated copy is deleted too, so no
    broken entry is left behind.
    ``page`` / ``install``: the manual route for the error message (see
    :func:`explain_hub_error`).
    Returns what ``hub.load`` returns (``.signatures`` for a TF1 hub-format module).
    Raises :class:`DownloadError` (from :func:`explain_hub_error`) with hub's error as cause.
    """
    import tensorflow_hub as hub

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for path in repair_hub_cache(handle, cache_dir):
        print(f"Removed {path} (left by an interrupted or damaged TF-Hub download)", file=sys.stderr)
    for problem in hub_cache_problems(handle, cache_dir):  # what is left: another live download
        print(f"Note: {problem}", file=sys.stderr)
    env = {"TFHUB_CACHE_DIR": str(cache_dir), "TFHUB_MODEL_LOAD_FORMAT": "COMPRESSED"}
    if progress:
        env["TFHUB_DOWNLOAD_PROGRESS"] = "1"
    attempt = 0
    while True:
        attempt += 1
        try:
            with _env_and_socket_timeout(env, timeout):
                return hub.load(handle, tags=tags)
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised as DownloadError
            folder = hub_cache_folder(handle, cache_dir)
            damaged = folder.is_dir() and any(folder.iterdir()) and _entry_problem(folder, deep=True)
            busy = (isinstance(exc, urllib.error.HTTPError)
                    and exc.code in RETRYABLE_STATUSES)
            transient = (damaged or busy or _hub_invalid_archive(exc) or _is_timeout(exc)
                         or (isinstance(exc, (ConnectionError, http.client.HTTPException,
                                              urllib.error.URLError))
                             and not isinstance(exc, urllib.error.HTTPError) and not _is_offline(exc)))
            error = explain_hub_error(handle, exc, cache_dir, timeout=timeout, page=page,
                                      install=install)
            if not transient or attempt > retries:
                if damaged:
                    # Remove the incomplete copy hub cached, so no broken entry outlives us.
                    repair_hub_cache(handle, cache_dir, deep=True)
                    tries = f"{attempt} attempts" if attempt > 1 else "1 attempt"
                    error = DownloadError(
                        handle,
                        f"after {tries} the cached module was still incomplete ({damaged}): "
                        "tensorflow_hub caches an archive that arrives cut short between two "
                        "of its files without noticing; the incomplete copy was removed, so "
                        "nothing is cached",
                        "run again later; if it keeps failing, "
                        + _hub_manual_route(handle, cache_dir, page, install))
                raise error from exc
            if damaged:
                repair_hub_cache(handle, cache_dir, deep=True)
            if progress:
                print(f"{handle}: {error.problem}; trying again", file=sys.stderr)
            if busy:
                time.sleep(min(0.5 * attempt, 4.0))
