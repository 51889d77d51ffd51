"""A few classes of UCF101 from its 6.96 GB zip mirror, by HTTP range requests, with fsspec.

A zip ends with a directory of its members and where each one starts, so a reader that can
seek needs only the tail, the directory and the chosen members' bytes. ``fsspec``'s HTTP file
system (Colab preinstalls it) gives exactly such a seekable file over range requests, and the
standard library's ``zipfile`` reads it: zip64, stored and deflated members, CRC-32 checks.
What is left here is the course's own care:

* each member goes to a temporary file and is renamed after ``zipfile`` checked its CRC-32, so a
  file under its final name is always complete; members already present with the right size and
  CRC are not fetched again;
* a dropped or stalled connection is retried (the directory is read again, members finished
  before the drop are kept);
* errors name the URL, the member and the fix (:class:`ZipMemberError`, a
  :class:`helpers.downloads.DownloadError`).
"""

from __future__ import annotations

import os
import sys
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from helpers.atomic import atomic_path
from helpers.downloads import BROWSER_USER_AGENT, RETRYABLE_STATUSES, DownloadError

#: Bytes per range request while reading members (fsspec's read-ahead block): large enough that a
#: run of neighbouring videos (about 0.5 MB each) costs few requests, small enough that reading
#: past the last chosen member wastes little.
BLOCK_BYTES = 4 << 20
CHUNK_BYTES = 1 << 20


class ZipMemberError(DownloadError):
    """The remote zip cannot be read member by member (no range support, corrupt, ...)."""


def _filesystem(timeout: float):
    import aiohttp
    import fsspec

    return fsspec.filesystem(
        "http", skip_instance_cache=True, headers={"User-Agent": BROWSER_USER_AGENT},
        client_kwargs={"timeout": aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout)})


def _select(archive: zipfile.ZipFile, url: str, chosen) -> list[zipfile.ZipInfo]:
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if callable(chosen):
        picked = [i for i in infos if chosen(i.filename)]
    else:
        names = [chosen] if isinstance(chosen, str) else list(dict.fromkeys(chosen))
        by_name = {i.filename: i for i in infos}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ZipMemberError(url, f"{len(missing)} requested member(s) are not in the zip, "
                                 f"e.g. {missing[:3]}; it has {len(infos)} members, e.g. "
                                 f"{[i.filename for i in infos[:3]]}",
                                 "check the names (members of a flat zip have no class folder)")
        picked = [by_name[n] for n in names]
    if not picked:
        raise ZipMemberError(url, "no member of the zip matches the selection",
                             f"the zip has members such as {[i.filename for i in infos[:3]]}")
    return picked


def _target(url: str, dest: Path, name: str, flatten: bool) -> Path:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise ZipMemberError(url, f"member name {name!r} is not a safe relative path",
                             "this zip cannot be extracted member by member here")
    return dest / (path.name if flatten else Path(*path.parts))


def _present(path: Path, info: zipfile.ZipInfo) -> bool:
    """Whether ``path`` already holds the member (same size and CRC-32)."""
    if not path.is_file() or path.stat().st_size != info.file_size:
        return False
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            crc = zlib.crc32(block, crc)
    return crc == info.CRC


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, url: str, bar) -> None:
    try:
        with archive.open(info) as source, atomic_path(target) as tmp, open(tmp, "wb") as out:
            while block := source.read(CHUNK_BYTES):
                try:
                    out.write(block)
                except OSError as err:
                    raise ZipMemberError(url, f"cannot write {target} ({err.strerror or err})",
                                         "free some disk space or choose a writable folder") from None
                bar.update(len(block))
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # zipfile's CRC and format checks
        raise ZipMemberError(url, f"member {info.filename!r} fails its check ({err}); nothing "
                             "was written", "run again; if it repeats, the mirror's copy is "
                             "damaged: download the whole zip instead") from None


def _transient(err: BaseException) -> bool:
    status = getattr(err, "status", None)
    if status is not None:
        return status in RETRYABLE_STATUSES
    return not isinstance(err, (FileNotFoundError, PermissionError))


def _explain(url: str, err: BaseException) -> DownloadError:
    status = getattr(err, "status", None)
    if isinstance(err, FileNotFoundError) or status == 404:
        return DownloadError(url, "HTTP 404: the server has no such file",
                             "check the URL (config.set_base_url) or try later")
    if status is not None:
        return DownloadError(url, f"HTTP {status}", "try again later")
    return DownloadError(url, f"{type(err).__name__}: {err}",
                         "check your internet connection and run again (finished members are kept)")


def fetch_members(url: str, names_or_predicate: str | Iterable[str] | Callable[[str], bool],
                  dest_dir: str | os.PathLike, *, progress: bool = True, flatten: bool = False,
                  timeout: float = 60.0, retries: int = 3) -> list[Path]:
    """Fetch chosen members of the zip at ``url`` into ``dest_dir``; return their paths.

    ``names_or_predicate``: a member name, a list of names, or ``callable(name) -> bool``.
    Members keep their folders below ``dest_dir`` (``flatten``: file names only). ``timeout``:
    seconds a connection or read may wait; ``retries``: further attempts after drops or stalls.
    Raises :class:`ZipMemberError` (no range support, not a zip, a corrupt member, unknown
    names) or :class:`helpers.downloads.DownloadError` (HTTP and network failures).
    """
    import aiohttp

    from helpers.progress import bar as progress_bar

    dest = Path(dest_dir)
    failures = 0
    while True:
        try:
            fs = _filesystem(timeout)
            if fs.info(url).get("partial") is False:  # "Accept-Ranges: none" (HEAD)
                raise ValueError("the server does not support range requests")
            with fs.open(url, "rb", block_size=BLOCK_BYTES, cache_type="readahead") as remote, \
                    zipfile.ZipFile(remote) as archive:
                picked = _select(archive, url, names_or_predicate)
                targets = {i.filename: _target(url, dest, i.filename, flatten) for i in picked}
                if len(set(targets.values())) != len(targets):
                    raise ZipMemberError(url, "two selected members would be written to the "
                                         "same file (flatten=True drops their folders)",
                                         "use flatten=False")
                todo = sorted((i for i in picked if not _present(targets[i.filename], i)),
                              key=lambda i: i.header_offset)  # one forward pass over the zip
                with progress_bar(total=sum(i.file_size for i in todo), unit="B",
                                  unit_scale=True, unit_divisor=1024, desc="zip members",
                                  disable=not progress, leave=False) as bar:
                    for info in todo:
                        _extract(archive, info, targets[info.filename], url, bar)
            return [targets[i.filename] for i in picked]
        except ZipMemberError:
            raise
        except zipfile.BadZipFile as err:
            raise ZipMemberError(url, f"not a readable zip ({err})",
                                 "check the URL, or download the whole zip instead") from None
        except ValueError as err:
            # fsspec's two ways of saying so: a range answered from the start, or a server that
            # announced no range support (a streaming file that cannot seek).
            if "range requests" not in str(err) and "streaming" not in str(err):
                raise
            raise ZipMemberError(url, "the server ignores HTTP range requests, so single "
                                 "members cannot be fetched", "download the whole zip with "
                                 "helpers.downloads.download and extract it locally") from None
        except (OSError, aiohttp.ClientError, TimeoutError) as err:
            failures += 1
            if not _transient(err) or failures > retries:
                raise _explain(url, err) from None
            print(f"{url}: {type(err).__name__} ({err}); asking again", file=sys.stderr)
            time.sleep(min(0.25 * 2 ** (failures - 1), 4.0))
