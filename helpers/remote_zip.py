"""Fetch chosen members of a zip on a web server with HTTP range requests, not the whole zip.

UCF101's public mirror is one 6.5 GB zip; a learner who wants ten classes needs about 5% of
it. A zip ends with a central directory listing every member and where its bytes start, so
three kinds of range request are enough: the tail (to find the directory), the directory
(to list the members), and each chosen member's bytes (runs of neighbouring members share
one request)::

    from helpers import remote_zip
    paths = remote_zip.fetch_members(url, lambda name: "_ApplyEyeMakeup_" in name, "ucf101/")

Only the standard library is used (``urllib``, ``struct``, ``zlib``): zip64 archives, stored
and deflated members and data descriptors are understood; every member's CRC-32 and size are
checked before it is renamed into place (so a file under its final name is always complete),
and members already present with the right size and CRC are not fetched again.

Errors are :class:`RemoteZipError` (a :class:`helpers.downloads.DownloadError`); HTTP failures
are explained by :func:`helpers.downloads.explain_url_error`.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import struct
import sys
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from helpers.atomic import atomic_path
from helpers.downloads import (
    BROWSER_USER_AGENT,
    RETRYABLE_STATUSES,
    DownloadError,
    _is_offline,
    explain_url_error,
)

#: The end-of-central-directory record is 22 bytes plus a comment of at most 65,535 bytes,
#: preceded by the 20-byte zip64 locator: asking for this many tail bytes always finds it.
TAIL_BYTES = 22 + 0xFFFF + 20
CHUNK_BYTES = 1 << 20

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_LOCAL = struct.Struct("<4s5H3L2H")
_SIG_EOCD, _SIG_LOC64, _SIG_EOCD64 = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_SIG_CENTRAL, _SIG_LOCAL = b"PK\x01\x02", b"PK\x03\x04"
_STORED, _DEFLATED = 0, 8


class RemoteZipError(DownloadError):
    """The remote zip cannot be read member by member (no range support, corrupt structure, ...)."""


@dataclasses.dataclass(frozen=True)
class ZipMember:
    """One entry of the central directory."""

    name: str
    method: int  # 0 stored, 8 deflated
    flags: int
    crc: int  # CRC-32 of the uncompressed bytes
    compressed_size: int
    size: int  # uncompressed
    header_offset: int  # where its local header starts in the remote file (prefix included)
    end: int  # where the next member (or the central directory) starts: the span to fetch

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


class _Counted:
    """Wraps a response so every body byte read is counted on the owner."""

    def __init__(self, response, owner: "RemoteZip"):
        self.response = response
        self.owner = owner

    def read(self, n: int) -> bytes:
        block = self.response.read(n)
        self.owner.bytes_transferred += len(block)
        return block

    def read_exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            block = self.read(min(n - len(out), CHUNK_BYTES))
            if not block:
                raise _Dropped(f"the connection closed {n - len(out)} bytes early")
            out += block
        return bytes(out)


class _Dropped(ConnectionError):
    """The response ended before the bytes asked for arrived (worth another request)."""


class _WriteFailed(Exception):
    """Writing a member locally failed (disk full, read-only): not worth another request."""


def _transient(err: BaseException) -> bool:
    """Whether another request may succeed after ``err`` (drops, stalls, busy servers)."""
    if isinstance(err, urllib.error.HTTPError):
        return err.code in RETRYABLE_STATUSES
    if _is_offline(err):
        return False
    return isinstance(err, (OSError, http.client.HTTPException))


class RemoteZip:
    """A zip file on an HTTP(S) server that honours range requests.

    Opening reads the tail and the central directory (two or three small requests).
    ``bytes_transferred`` counts response body bytes received; ``requests`` counts requests.
    ``timeout``: seconds a connection or read may wait; ``retries``: further requests for a
    run of members after a drop or stall that brought no member.
    Raises :class:`RemoteZipError` or :class:`DownloadError`.
    """

    def __init__(self, url: str, *, timeout: float = 60.0, retries: int = 3,
                 headers: dict[str, str] | None = None):
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.headers = {"User-Agent": BROWSER_USER_AGENT, **(headers or {})}
        self.bytes_transferred = 0
        self.requests = 0
        self.size: int | None = None
        self._etag: str | None = None
        self.members: list[ZipMember] = self._read_directory()
        self._by_name = {m.name: m for m in self.members}

    # --- HTTP ---------------------------------------------------------------------------------
    def _open(self, range_header: str, start: int | None):
        """A 206 response for ``range_header``; checks where it starts and the file's size."""
        request = urllib.request.Request(self.url, headers={**self.headers, "Range": range_header})
        self.requests += 1
        response = urllib.request.urlopen(request, timeout=self.timeout)  # errors: see _retrying
        status = getattr(response, "status", 200)
        if status != 206:
            response.close()  # without reading: the body may be the whole multi-GB zip
            raise RemoteZipError(
                self.url,
                f"the server ignores HTTP range requests (it answered {status} to "
                f"'Range: {range_header}'), so single members cannot be fetched",
                "download the whole zip with helpers.downloads.download and extract it "
                "locally (or use another mirror)",
            )
        match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*",
                             response.headers.get("Content-Range", ""))
        total = int(match.group(3)) if match and match.group(3) != "*" else None
        if match is None or total is None or (start is not None and int(match.group(1)) != start):
            response.close()
            raise RemoteZipError(self.url, "the server answered a range request with a "
                                 f"missing or different Content-Range "
                                 f"({response.headers.get('Content-Range')!r})", "try another mirror")
        etag = response.headers.get("ETag")
        if (self.size is not None and total != self.size) or (self._etag and etag and etag != self._etag):
            response.close()
            raise RemoteZipError(self.url, "the zip changed on the server while being read (size "
                                 f"{self.size} -> {total} bytes, ETag {self._etag} -> {etag})",
                                 "run again")
        self.size = total
        self._etag = self._etag or etag
        return response, int(match.group(1))

    def _explain(self, err: BaseException) -> DownloadError:
        return explain_url_error(self.url, err, timeout=self.timeout)

    def _retry_or_raise(self, err: BaseException, failures: int, what: str) -> None:
        """Sleep before another request after ``err``, or raise the explained error."""
        if not _transient(err) or failures > self.retries:
            raise self._explain(err) from None
        print(f"{what}: {type(err).__name__} ({err}); asking again", file=sys.stderr)
        time.sleep(min(0.25 * 2 ** (failures - 1), 4.0))

    def _retrying(self, range_header: str, start: int | None, length: int | None):
        """``(bytes, start)`` of one range request, retried after drops and stalls."""
        failures = 0
        while True:
            try:
                response, got_start = self._open(range_header, start)
                with response:
                    count = length if length is not None else self.size - got_start
                    return _Counted(response, self).read_exactly(count), got_start
            except RemoteZipError:
                raise
            except (OSError, http.client.HTTPException) as err:
                failures += 1
                self._retry_or_raise(err, failures, f"bytes {range_header}")

    def _get(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the remote file."""
        return self._retrying(f"bytes={start}-{end - 1}", start, end - start)[0]

    # --- central directory --------------------------------------------------------------------
    def _corrupt(self, what: str) -> RemoteZipError:
        return RemoteZipError(
            self.url, f"the zip's central directory is corrupt or not a zip: {what}",
            "check the address (open it in a browser); if the file is a zip, the mirror's copy "
            "may be damaged: download the whole zip instead")

    def _read_directory(self) -> list[ZipMember]:
        tail, tail_start = self._retrying(f"bytes=-{TAIL_BYTES}", None, None)
        eocd_at = tail.rfind(_SIG_EOCD)
        while eocd_at >= 0 and eocd_at + _EOCD.size > len(tail):
            eocd_at = tail.rfind(_SIG_EOCD, 0, eocd_at)
        if eocd_at < 0:
            raise self._corrupt("no end-of-central-directory record in the last "
                                f"{len(tail)} bytes")
        (_, disk, cd_disk, _, count, cd_size, cd_offset, _) = _EOCD.unpack_from(tail, eocd_at)
        if disk != 0 or cd_disk != 0:
            raise self._corrupt("multi-part (spanned) zips are not supported")
        directory_end = tail_start + eocd_at  # where the central directory (or zip64 record) ends
        locator_at = eocd_at - _EOCD64_LOCATOR.size
        if locator_at >= 0 and tail[locator_at:locator_at + 4] == _SIG_LOC64:
            _, _, record_offset, _ = _EOCD64_LOCATOR.unpack_from(tail, locator_at)
            record_at = tail_start + locator_at - _EOCD64.size  # where it is if nothing is prepended
            record = self._bytes_at(tail, tail_start, record_at, _EOCD64.size)
            if record[:4] != _SIG_EOCD64:
                record_at = record_offset
                record = self._bytes_at(tail, tail_start, record_at, _EOCD64.size)
            if record[:4] != _SIG_EOCD64:
                raise self._corrupt("the zip64 end-of-central-directory record is missing")
            (_, _, _, _, _, _, _, count, cd_size, cd_offset) = _EOCD64.unpack(record)
            directory_end = record_at
        # Bytes prepended to the zip (self-extractors) shift every recorded offset.
        prefix = directory_end - cd_size - cd_offset
        if prefix < 0:
            raise self._corrupt(f"the directory claims {cd_size} bytes at offset {cd_offset}, "
                                f"past its end at {directory_end}")
        cd_start = cd_offset + prefix
        directory = self._bytes_at(tail, tail_start, cd_start, cd_size)
        return self._parse_directory(directory, count, cd_start, prefix)

    def _bytes_at(self, tail: bytes, tail_start: int, start: int, length: int) -> bytes:
        if start >= tail_start:
            return tail[start - tail_start:start - tail_start + length]
        return self._get(start, start + length)

    def _parse_directory(self, data: bytes, count: int, cd_start: int, prefix: int) -> list[ZipMember]:
        raw = []
        pos = 0
        while pos < len(data):
            if data[pos:pos + 4] != _SIG_CENTRAL or pos + _CENTRAL.size > len(data):
                raise self._corrupt(f"entry {len(raw)} at byte {cd_start + pos} has no valid "
                                    "central-directory signature")
            (_, _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len, comment_len,
             _, _, _, offset) = _CENTRAL.unpack_from(data, pos)
            pos += _CENTRAL.size
            name_bytes = data[pos:pos + name_len]
            extra = data[pos + name_len:pos + name_len + extra_len]
            pos += name_len + extra_len + comment_len
            if pos > len(data):
                raise self._corrupt(f"entry {len(raw)} runs past the end of the directory")
            usize, csize, offset = _zip64_values(extra, usize, csize, offset)
            name = name_bytes.decode("utf-8" if flags & 0x800 else "cp437")
            raw.append((name, method, flags, crc, csize, usize, offset + prefix))
        if len(raw) != count:
            raise self._corrupt(f"the directory lists {len(raw)} entries, the end record says {count}")
        starts = sorted({entry[6] for entry in raw}) + [cd_start]
        members = []
        for name, method, flags, crc, csize, usize, offset in raw:
            end = starts[starts.index(offset) + 1]
            if offset < 0 or offset + _LOCAL.size + csize > end:
                raise self._corrupt(f"member {name!r} claims {csize} bytes at offset {offset}, "
                                    "overlapping the next member")
            members.append(ZipMember(name, method, flags, crc, csize, usize, offset, end))
        return members

    # --- members ------------------------------------------------------------------------------
    def namelist(self) -> list[str]:
        """Names of all members, in directory order."""
        return [m.name for m in self.members]

    def select(self, names_or_predicate: Iterable[str] | Callable[[str], bool] | str) -> list[ZipMember]:
        """The file members named (a name or names) or matching a predicate on the name.

        Raises :class:`RemoteZipError` when a named member is absent or nothing matches.
        """
        if callable(names_or_predicate):
            chosen = [m for m in self.members if not m.is_dir and names_or_predicate(m.name)]
        else:
            names = [names_or_predicate] if isinstance(names_or_predicate, str) else list(names_or_predicate)
            missing = [n for n in names if n not in self._by_name]
            if missing:
                raise RemoteZipError(
                    self.url, f"{len(missing)} requested member(s) are not in the zip, e.g. "
                    f"{missing[:3]}; it has {len(self.members)} members, e.g. {self.namelist()[:3]}",
                    "check the names (members of a flat zip have no class folder)")
            chosen = [self._by_name[n] for n in dict.fromkeys(names)]
        if not chosen:
            raise RemoteZipError(self.url, "no member of the zip matches the selection",
                                 f"the zip has members such as {self.namelist()[:3]}")
        return chosen

    def fetch(self, names_or_predicate, dest_dir: str | os.PathLike, *, progress: bool = True,
              flatten: bool = False) -> list[Path]:
        """Fetch the selected members into ``dest_dir`` (keeping their paths; ``flatten``: file
        names only); return their paths in the order selected.

        Members already there with the right size and CRC-32 are not fetched again. Each member
        is written to a temporary file and renamed after its CRC-32 and size check out.
        Raises :class:`RemoteZipError` (corrupt member, unsupported compression, unsafe name)
        or :class:`DownloadError` (HTTP failures, or drops beyond ``retries``).
        """
        dest_dir = Path(dest_dir)
        chosen = self.select(names_or_predicate)
        targets = {m.name: dest_dir / self._relative(m, flatten) for m in chosen}
        if len(set(targets.values())) != len(targets):
            raise RemoteZipError(self.url, "two selected members would be written to the same "
                                 "file (flatten=True drops their folders)", "use flatten=False")
        todo = [m for m in chosen if not _present(targets[m.name], m)]
        todo.sort(key=lambda m: m.header_offset)
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(m.end - m.header_offset for m in todo), unit="B", unit_scale=True,
                   unit_divisor=1024, desc="zip members", disable=not progress, leave=False)
        try:
            for run in _runs(todo):
                self._fetch_run(run, targets, bar, progress)
        finally:
            bar.close()
        return [targets[m.name] for m in chosen]

    def _relative(self, member: ZipMember, flatten: bool) -> Path:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or not path.name or "\\" in member.name:
            raise RemoteZipError(self.url, f"member name {member.name!r} is not a safe relative path",
                                 "this zip cannot be extracted member by member here")
        return Path(path.name) if flatten else Path(*path.parts)

    def _fetch_run(self, run: list[ZipMember], targets: dict, bar, progress: bool) -> None:
        """Fetch members whose spans touch with one request (more after drops or stalls)."""
        failures = 0  # requests in a row that brought no member
        while run:
            start, end = run[0].header_offset, run[-1].end
            try:
                response, _ = self._open(f"bytes={start}-{end - 1}", start)
                with response:
                    stream = _Counted(response, self)
                    while run:
                        self._extract(stream, run[0], targets[run[0].name], bar)
                        run = run[1:]
                        failures = 0
            except RemoteZipError:
                raise
            except _WriteFailed as err:
                raise RemoteZipError(self.url, f"cannot write {err.args[0]} ({err.args[1]})",
                                     "free some disk space or choose a writable folder") from None
            except (OSError, http.client.HTTPException) as err:
                failures += 1
                self._retry_or_raise(err, failures, run[0].name)

    def _extract(self, stream: _Counted, member: ZipMember, target: Path, bar) -> None:
        """Read ``member``'s span from ``stream`` and write it, verified, to ``target``."""
        header = stream.read_exactly(_LOCAL.size)
        (sig, _, flags, method, _, _, _, _, _, name_len, extra_len) = _LOCAL.unpack(header)
        if sig != _SIG_LOCAL:
            raise RemoteZipError(self.url, f"member {member.name!r}: no local header at byte "
                                 f"{member.header_offset}: the zip is corrupt",
                                 "download the whole zip instead")
        name = stream.read_exactly(name_len + extra_len)[:name_len]
        if name.decode("utf-8" if flags & 0x800 else "cp437") != member.name:
            raise RemoteZipError(self.url, f"member {member.name!r}: its local header names "
                                 f"{name!r}: the zip is corrupt", "download the whole zip instead")
        if member.flags & 0x1:
            raise RemoteZipError(self.url, f"member {member.name!r} is encrypted")
        if member.method not in (_STORED, _DEFLATED):
            raise RemoteZipError(self.url, f"member {member.name!r} uses compression method "
                                 f"{member.method}; only stored (0) and deflated (8) are supported")
        bar.update(_LOCAL.size + name_len + extra_len)
        inflater = zlib.decompressobj(-15) if member.method == _DEFLATED else None
        crc = 0
        written = 0
        left = member.compressed_size
        with atomic_path(target) as tmp, open(tmp, "wb") as out:
            while left:
                block = stream.read(min(left, CHUNK_BYTES))
                if not block:
                    raise _Dropped(f"the connection closed inside {member.name!r}")
                left -= len(block)
                bar.update(len(block))
                if inflater is not None:
                    try:
                        block = inflater.decompress(block)
                    except zlib.error as err:
                        raise RemoteZipError(self.url, f"member {member.name!r} does not "
                                             f"decompress ({err}): the zip is corrupt",
                                             "download the whole zip instead") from None
                crc = zlib.crc32(block, crc)
                written += len(block)
                _write(out, tmp, block)
            if inflater is not None:
                tail = inflater.flush()
                crc = zlib.crc32(tail, crc)
                written += len(tail)
                _write(out, tmp, tail)
                if not inflater.eof:
                    raise RemoteZipError(self.url, f"member {member.name!r}: the compressed "
                                         "data ends early: the zip is corrupt",
                                         "download the whole zip instead")
            if written != member.size or crc != member.crc:
                raise RemoteZipError(
                    self.url, f"member {member.name!r} fails its check ({written} bytes, CRC "
                    f"{crc:08x}; the directory says {member.size} bytes, CRC {member.crc:08x}); "
                    "nothing was written", "run again; if it repeats, the mirror's copy is damaged")
        # The data descriptor (if any) and any gap before the next member.
        skip = member.end - member.header_offset - _LOCAL.size - name_len - extra_len - member.compressed_size
        if skip > 0:
            stream.read_exactly(skip)
            bar.update(skip)


def _write(handle, path: Path, block: bytes) -> None:
    try:
        handle.write(block)
    except OSError as err:
        raise _WriteFailed(path, err.strerror or str(err)) from None


def _zip64_values(extra: bytes, usize: int, csize: int, offset: int):
    """Replace 0xFFFFFFFF fields by the zip64 extra field's 8-byte values (in their order)."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, pos)
        body = extra[pos + 4:pos + 4 + length]
        pos += 4 + length
        if tag != 0x0001:
            continue
        values = [v[0] for v in struct.iter_unpack("<Q", body[:len(body) // 8 * 8])]
        if usize == 0xFFFFFFFF and values:
            usize = values.pop(0)
        if csize == 0xFFFFFFFF and values:
            csize = values.pop(0)
        if offset == 0xFFFFFFFF and values:
            offset = values.pop(0)
    return usize, csize, offset


def _runs(members: list[ZipMember]) -> list[list[ZipMember]]:
    """Group members (sorted by offset) whose spans touch, so each group is one request."""
    runs: list[list[ZipMember]] = []
    for member in members:
        if runs and runs[-1][-1].end == member.header_offset:
            runs[-1].append(member)
        else:
            runs.append([member])
    return runs


def _present(path: Path, member: ZipMember) -> bool:
    """Whether ``path`` already holds ``member`` (same size and CRC-32)."""
    if not path.is_file() or path.stat().st_size != member.size:
        return False
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            crc = zlib.crc32(block, crc)
    return crc == member.crc


def list_members(url: str, **kwargs) -> list[ZipMember]:
    """The members of the remote zip at ``url`` (``kwargs`` go to :class:`RemoteZip`)."""
    return RemoteZip(url, **kwargs).members


def fetch_members(url: str, names_or_predicate, dest_dir: str | os.PathLike, *,
                  progress: bool = True, flatten: bool = False, timeout: float = 60.0,
                  retries: int = 3) -> list[Path]:
    """Fetch the chosen members of the remote zip at ``url`` into ``dest_dir``; return their paths.

    ``names_or_predicate``: a member name, a list of names, or ``callable(name) -> bool``.
    See :meth:`RemoteZip.fetch`. With ``progress``, prints how many bytes were transferred.
    """
    remote = RemoteZip(url, timeout=timeout, retries=retries)
    paths = remote.fetch(names_or_predicate, dest_dir, progress=progress, flatten=flatten)
    if progress:
        print(f"{len(paths)} member(s) in {dest_dir}: transferred {remote.bytes_transferred:,} "
              f"bytes of a {remote.size:,}-byte zip in {remote.requests} requests")
    return paths
