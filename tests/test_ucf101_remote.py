"""helpers.ucf101.remote: a few classes of a UCF101-style zip by HTTP range requests (fsspec)."""

import io
import random
import struct
import zipfile

import pytest
from httpserver_fixture import http_server  # noqa: F401 - pytest fixture

from helpers.downloads import DownloadError
from helpers.ucf101 import remote
from helpers.ucf101.remote import ZipMemberError

CLASSES = ["ApplyEyeMakeup", "Archery", "BabyCrawling", "Basketball", "Biking", "Bowling",
           "CliffDiving", "Drumming", "Fencing", "YoYo"]
CHOSEN = ("Archery", "Fencing")


def _fake_avi(rng: random.Random, n: int) -> bytes:
    # A RIFF header and a mix of noise and repetition, so deflate neither fails nor vanishes.
    noise = rng.randbytes(n // 2)
    return b"RIFF" + struct.pack("<I", n) + b"AVI LIST" + noise + noise[: n // 4] * 2


def build_ucf_zip(prefix: str = "", seed: int = 0) -> tuple[bytes, dict[str, bytes]]:
    """A flat UCF101-style zip (``v_<Class>_gNN_cNN.avi`` at the top, as the mirror holds them)."""
    rng = random.Random(seed)
    files = {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for c, name in enumerate(CLASSES):
            for group in (1, 2, 3):
                for clip in (1, 2):
                    member = f"{prefix}v_{name}_g{group:02d}_c{clip:02d}.avi"
                    data = _fake_avi(rng, rng.randrange(30_000, 50_000))
                    # The mirror stores videos; mix in deflated members to cover both methods.
                    method = zipfile.ZIP_DEFLATED if (c + clip) % 2 else zipfile.ZIP_STORED
                    archive.writestr(member, data, compress_type=method)
                    files[member] = data
    return buffer.getvalue(), files


def _is_chosen(name: str) -> bool:
    return any(f"v_{cls}_g" in name for cls in CHOSEN)


ZIP_PATH = "/thumos14_files/UCF101_videos.zip"


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    # The test zips are 2 MB, not 7 GB: read ahead in blocks as small against them as the real
    # block is against the mirror, so "only the chosen members" stays measurable.
    monkeypatch.setattr(remote, "BLOCK_BYTES", 32 * 1024)


@pytest.fixture
def ucf_zip(http_server):
    data, files = build_ucf_zip()
    url = http_server.add(ZIP_PATH, data, content_type="application/zip")
    return url, data, files


def _spans(data: bytes, names) -> list[tuple[int, int]]:
    """Byte span [start, end) of each member in the zip (local header to the next member)."""
    infos = sorted(zipfile.ZipFile(io.BytesIO(data)).infolist(), key=lambda i: i.header_offset)
    ends = [i.header_offset for i in infos[1:]] + [
        struct.unpack_from("<L", data, len(data) - 22 + 16)[0]]
    return [(i.header_offset, end) for i, end in zip(infos, ends) if i.filename in set(names)]


def _requested(stats, size: int) -> list[tuple[int, int]]:
    out = []
    for header in stats.ranges:
        if header is None:
            continue
        start, _, end = header.removeprefix("bytes=").partition("-")
        out.append((int(start), min(int(end) + 1, size)) if start else (size - int(end), size))
    return out


def test_two_classes_cost_a_fraction_of_the_zip(http_server, ucf_zip, tmp_path):
    url, data, files = ucf_zip
    paths = remote.fetch_members(url, _is_chosen, tmp_path / "ucf", progress=False)
    wanted = sorted(n for n in files if _is_chosen(n))
    assert sorted(p.name for p in paths) == wanted and len(wanted) == 12
    for path in paths:
        assert path.read_bytes() == files[path.name]
    # Nothing else was written, not even temporary files.
    assert sorted(p.name for p in (tmp_path / "ucf").iterdir()) == wanted

    stats = http_server.stats(ZIP_PATH)
    chosen_bytes = sum(end - start for start, end in _spans(data, wanted))
    # Exact accounting: what the server sent is the sum of the ranges asked for.
    asked = _requested(stats, len(data))
    assert stats.bytes_served == sum(end - start for start, end in asked)
    assert all(status in (200, 206) for status in stats.statuses)
    # Every member byte crossed the wire once; the rest is the directory and read-ahead.
    assert chosen_bytes <= stats.bytes_served < 0.4 * len(data), (stats.bytes_served, len(data))


def test_present_members_are_verified_and_skipped(http_server, ucf_zip, tmp_path):
    url, data, files = ucf_zip
    names = [n for n in files if n.startswith("v_Biking_g01")]
    remote.fetch_members(url, names, tmp_path, progress=False)
    (tmp_path / names[0]).write_bytes(bytes(len(files[names[0]])))  # same size, wrong bytes
    before = http_server.stats(ZIP_PATH).bytes_served
    remote.fetch_members(url, names, tmp_path, progress=False)
    assert (tmp_path / names[0]).read_bytes() == files[names[0]]
    again = http_server.stats(ZIP_PATH).bytes_served - before
    assert again >= len(files[names[0]]) * 0.5  # the damaged member came again
    # A third run reads the directory only: far less than one member.
    before = http_server.stats(ZIP_PATH).bytes_served
    remote.fetch_members(url, names, tmp_path, progress=False)
    member_offset = min(start for start, _ in _spans(data, names))
    asked = _requested(http_server.stats(ZIP_PATH), len(data))
    assert http_server.stats(ZIP_PATH).bytes_served > before
    assert not any(start <= member_offset < end for start, end in asked[-2:]
                   if end - start < remote.BLOCK_BYTES)


def test_zip64_and_prefixed_zips(http_server, tmp_path):
    data, files = build_ucf_zip(prefix="UCF101/")
    zip64 = _as_zip64(data)
    prefixed = random.Random(1).randbytes(1234) + zip64  # as a self-extracting archive would be
    for label, blob in (("zip64", zip64), ("prefixed", prefixed)):
        with zipfile.ZipFile(io.BytesIO(blob)) as check:  # the crafted files are valid zips
            assert check.testzip() is None
        url = http_server.add(f"/{label}.zip", blob)
        names = [n for n in files if "_YoYo_" in n]
        paths = remote.fetch_members(url, names, tmp_path / label, progress=False, flatten=True)
        assert [p.name for p in paths] == [n.split("/")[1] for n in names]
        assert all(p.read_bytes() == files[n] for p, n in zip(paths, names))
    nested = remote.fetch_members(url, names[:1], tmp_path / "nested", progress=False)
    assert nested[0] == tmp_path / "nested" / "UCF101" / names[0].split("/")[1]


def test_dropped_connection_mid_member_is_retried(http_server, ucf_zip, tmp_path):
    url, data, files = ucf_zip
    names = [n for n in files if n.startswith("v_Drumming_g")]
    # Every response is cut after 3 kB, once per request for the first four requests: the tail
    # and directory reads fit, the first member read is cut.
    http_server.set(ZIP_PATH, drop_after=3000, drop_times=4)
    paths = remote.fetch_members(url, names, tmp_path, progress=False, retries=5)
    assert all(p.read_bytes() == files[p.name] for p in paths)
    assert not [p for p in tmp_path.iterdir() if p.name not in {q.name for q in paths}]
    stats = http_server.stats(ZIP_PATH)
    assert stats.requests > 4  # it asked again after the cuts


def test_drops_beyond_the_retries_are_a_clear_error(http_server, ucf_zip, tmp_path):
    url, _, files = ucf_zip
    http_server.set(ZIP_PATH, drop_after=3000)  # every response
    with pytest.raises(DownloadError) as info:
        remote.fetch_members(url, [next(iter(files))], tmp_path, progress=False, retries=1)
    assert url in str(info.value) and "run again" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_server_without_range_support_is_a_clear_error(http_server, tmp_path):
    data, files = build_ucf_zip()
    url = http_server.add("/norange.zip", data, ignore_range=True)
    with pytest.raises(ZipMemberError) as info:
        remote.fetch_members(url, [next(iter(files))], tmp_path, progress=False)
    message = str(info.value)
    assert url in message and "ignores HTTP range requests" in message
    assert "download the whole zip" in message
    # It stopped after the first block instead of streaming the whole zip.
    assert http_server.stats("/norange.zip").bytes_served <= 2 * remote.BLOCK_BYTES + 1


def test_corrupt_central_directory_and_not_a_zip_are_clear_errors(http_server, tmp_path):
    data, files = build_ucf_zip()
    cd_offset = struct.unpack_from("<L", data, len(data) - 22 + 16)[0]
    broken = bytearray(data)
    second = data.index(b"PK\x01\x02", cd_offset + 4)  # the second directory entry
    broken[second:second + 4] = b"XX\x01\x02"
    url = http_server.add("/broken.zip", bytes(broken))
    with pytest.raises(ZipMemberError, match="not a readable zip"):
        remote.fetch_members(url, [next(iter(files))], tmp_path, progress=False)
    not_a_zip = http_server.add("/random.bin", random.Random(2).randbytes(200_000))
    with pytest.raises(ZipMemberError, match="not a readable zip"):
        remote.fetch_members(not_a_zip, lambda name: True, tmp_path, progress=False)


def test_corrupt_member_leaves_nothing_behind(http_server, tmp_path):
    data, files = build_ucf_zip()
    name = "v_Bowling_g01_c01.avi"
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    broken = bytearray(data)
    broken[info.header_offset + 30 + len(name) + 100] ^= 0xFF  # one byte of its data
    url = http_server.add("/damaged.zip", bytes(broken))
    with pytest.raises(ZipMemberError, match="v_Bowling_g01_c01.avi.*fails its check"):
        remote.fetch_members(url, [name], tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unknown_names_and_empty_selections_are_errors(http_server, ucf_zip, tmp_path):
    url, _, _ = ucf_zip
    with pytest.raises(ZipMemberError, match="not in the zip.*Archery/v_Archery"):
        remote.fetch_members(url, ["Archery/v_Archery_g01_c01.avi"], tmp_path, progress=False)
    with pytest.raises(ZipMemberError, match="no member"):
        remote.fetch_members(url, lambda name: False, tmp_path, progress=False)


def test_refusals_are_explained(http_server, tmp_path):
    url = http_server.add("/gone.zip", b"", status=404)
    with pytest.raises(DownloadError, match="HTTP 404"):
        remote.fetch_members(url, ["a"], tmp_path, progress=False)


def _as_zip64(data: bytes) -> bytes:
    """Rewrite a small zip's directory the zip64 way (sizes and offsets in the zip64 extra
    field, a zip64 end record and locator), as a zip past 4 GB or 65,535 members has it."""
    eocd = len(data) - 22
    _, _, _, _, count, cd_size, cd_offset, _ = struct.unpack_from("<4s4H2LH", data, eocd)
    entries = []
    pos = cd_offset
    for _ in range(count):
        fields = list(struct.unpack_from("<4s6H3L5H2L", data, pos))
        name_len, extra_len, comment_len = fields[10:13]
        name = data[pos + 46:pos + 46 + name_len]
        usize, csize, offset = fields[9], fields[8], fields[16]
        extra = struct.pack("<2H3Q", 0x0001, 24, usize, csize, offset)
        fields[8] = fields[9] = fields[16] = 0xFFFFFFFF
        fields[11] = len(extra)
        fields[12] = 0
        fields[2] = 45  # version needed: 4.5 (zip64)
        entries.append(struct.pack("<4s6H3L5H2L", *fields) + name + extra)
        pos += 46 + name_len + extra_len + comment_len
    directory = b"".join(entries)
    record_at = cd_offset + len(directory)
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                         len(directory), cd_offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, record_at, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:cd_offset] + directory + record + locator + end
