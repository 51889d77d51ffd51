"""Verified, resumable, atomic downloads with a progress bar.

A download goes to ``<file>.part`` and is renamed to ``<file>`` only after its size (and hash,
where known) has been checked, so a file under its final name is always complete: an
interrupted run leaves at most a ``.part`` that the next run resumes with an HTTP range
request (or restarts, when the server ignores ranges).

Errors are :class:`DownloadError`, whose message names the URL, what went wrong and what to do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import socket
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


def _check_file(url: str, path: Path, size: int | None, sha256: str | None) -> None:
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise DownloadError(url, f"{path.name} has {actual} bytes, expected {size}")
    if sha256 is not None:
        got = sha256_of(path)
        if got != sha256.lower():
            raise DownloadError(url, f"{path.name} has SHA-256 {got}, expected {sha256}")


def _http_error(url: str, err: urllib.error.HTTPError) -> DownloadError:
    code = err.code
    if code == 403:
        return DownloadError(
            url,
            "HTTP 403 Forbidden: the host refused the request",
            "model hosts answer 403 when a signed storage URL has expired or the host rejects "
            "the client (Kaggle/TF-Hub, see tensorflow/hub issues #922 and #931); wait and retry, "
            "download the file in a browser and place it in the cache folder, or run with "
            "COURSE_MODE=tiny",
        )
    if code == 404:
        return DownloadError(
            url,
            "HTTP 404 Not Found: nothing is served at this address",
            "the file may have moved; check the project's README for its current location",
        )
    if code == 429 or code >= 500:
        return DownloadError(url, f"HTTP {code} {err.reason}: the server is busy or failing",
                             "retry later")
    return DownloadError(url, f"HTTP {code} {err.reason}")


def _is_offline(err: BaseException) -> bool:
    reason = getattr(err, "reason", err)
    return isinstance(reason, socket.gaierror) or isinstance(reason, ConnectionRefusedError)


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
    """Download ``url`` to ``dest`` unless it is already there; return ``dest``.

    ``size`` / ``sha256``: published size and hash; a mismatch removes the file and raises.
    ``timeout``: seconds without data before a read is given up (then retried, resuming).
    ``retries``: further attempts after a dropped connection or a stall.
    Raises :class:`DownloadError`.
    """
    dest = Path(dest)
    if dest.exists():
        try:
            _check_file(url, dest, size, sha256)
            return dest
        except DownloadError:
            dest.unlink()  # a stale or corrupt file from elsewhere: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    request_headers = {"User-Agent": BROWSER_USER_AGENT}
    request_headers.update(headers or {})

    last_problem = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(2.0 ** (attempt - 1), 8.0) * 0.25)
        try:
            _transfer(url, part, request_headers, timeout, progress, description or dest.name)
            break
        except urllib.error.HTTPError as err:
            if err.code == 416 and part.exists():  # our .part is not a prefix the server accepts
                part.unlink()
                last_problem = "HTTP 416 for a resumed range"
                continue
            if err.code in (429, 500, 502, 503, 504) and attempt < retries:
                last_problem = f"HTTP {err.code}"
                continue
            raise _http_error(url, err) from None
        except _Incomplete as err:
            last_problem = str(err)
        except (TimeoutError, socket.timeout) as err:
            last_problem = f"no data for {timeout:g} s ({err})"
        except urllib.error.URLError as err:
            if _is_offline(err):
                raise DownloadError(
                    url,
                    f"cannot reach the host ({err.reason})",
                    "check the network connection, or run the course with COURSE_MODE=tiny "
                    "to use the generated stand-ins",
                ) from None
            last_problem = f"connection error ({err.reason})"
        except (ConnectionError, http.client.HTTPException, OSError) as err:
            last_problem = f"connection dropped ({type(err).__name__}: {err})"
    else:
        raise DownloadError(
            url,
            f"gave up after {retries + 1} attempts; last problem: {last_problem}",
            "retry later; the partial file is kept and the next run resumes it",
        )

    try:
        _check_file(url, part, size, sha256)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


class _Incomplete(Exception):
    """The server closed the connection before sending everything it announced."""


def _transfer(url: str, part: Path, headers: dict, timeout: float, progress: bool, desc: str) -> None:
    """One attempt: resume ``part`` if possible, else start it over. Raises on any failure."""
    have = part.stat().st_size if part.exists() else 0
    request_headers = dict(headers)
    if have:
        request_headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=request_headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        if status == 206 and have:
            content_range = response.headers.get("Content-Range", "")
            start = _range_start(content_range)
            if start != have:
                raise _Incomplete(f"server resumed at byte {start}, expected {have}")
            mode = "ab"
            total = have + remaining if remaining is not None else None
        else:  # a full answer: start over
            have = 0
            mode = "wb"
            total = remaining
        bar = _progress_bar(total, have, desc, progress)
        received = 0
        try:
            with open(part, mode) as handle:
                while True:
                    block = response.read(CHUNK_BYTES)
                    if not block:
                        break
                    handle.write(block)
                    received += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
        if remaining is not None and received < remaining:
            raise _Incomplete(f"connection closed after {have + received} of {total} bytes")


def _range_start(content_range: str) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _progress_bar(total, initial, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not enabled, leave=False)


def fetch(resource: Resource, dest_dir: str | os.PathLike, **kwargs) -> Path:
    """Download a registry :class:`Resource` into ``dest_dir`` (if not there yet); return its path."""
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
