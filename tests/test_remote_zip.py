"""helpers.remote_zip: a few classes of a UCF101-style zip by HTTP range requests."""

import io
import os
import random
import struct
import zipfile

import pytest
from httpserver_fixture import http_server  # noqa: F401 - pytest fixture

from helpers import remote_zip
from helpers.downloads import DownloadError
from helpers.remote_zip import RemoteZip, RemoteZipError

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


@pytest.fixture
def ucf_zip(http_server):
    data, files = build_ucf_zip()
    url = http_server.add("/thumos14_files/UCF101_videos.zip", data, content_type="application/zip")
    return url, data, files


def test_two_classes_cost_a_fraction_of_the_zip(http_server, ucf_zip, tmp_path):
    url, data, files = ucf_zip
    paths = remote_zip.fetch_members(url, _is_chosen, tmp_path / "ucf", progress=False)
    wanted = sorted(n for n in files if _is_chosen(n))
    assert sorted(p.name for p in paths) == wanted and len(wanted) == 12
    for path in paths:
        assert path.read_bytes() == files[path.name]
    # Nothing else was written, not even temporary files.
    assert sorted(p.name for p in (tmp_path / "ucf").iterdir()) == wanted

    served = http_server.stats("/thumos14_files/UCF101_videos.zip").bytes_served
    chosen_bytes = sum(len(files[n]) for n in wanted)
    assert served < 0.4 * len(data), (served, len(data))  # 2 of 10 classes, plus the directory
    assert served >= chosen_bytes * 0.5  # the members' bytes did cross the wire


def test_client_counts_the_same_bytes_as_the_server(http_server, ucf_zip, tmp_path):
    url, data, files = ucf_zip
    remote = RemoteZip(url)
    assert remote.size == len(data)
    assert remote.namelist() == list(files)
    names = [n for n in files if "v_Archery_g02" in n]
    remote.fetch(names, tmp_path, progress=False)
    stats = http_server.stats("/thumos14_files/UCF101_videos.zip")
    assert remote.bytes_transferred == stats.bytes_served
    assert remote.requests == stats.requests
    assert all(status == 206 for status in stats.statuses)
    # The two neighbouring members came in one request: tail, directory and one run.
    assert stats.requests <= 3


def test_present_members_are_verified_and_skipped(http_server, ucf_zip, tmp_path):
    url, data, files = ucf_zip
    names = [n for n in files if n.startswith("v_Biking_g01")]
    remote_zip.fetch_members(url, names, tmp_path, progress=False)
    (tmp_path / names[0]).write_bytes(bytes(len(files[names[0]])))  # same size, wrong bytes
    remote = RemoteZip(url)
    directory_bytes = remote.bytes_transferred
    remote.fetch(names, tmp_path, progress=False)
    assert (tmp_path / names[0]).read_bytes() == files[names[0]]
    fetched_again = remote.bytes_transferred - directory_bytes
    assert len(files[names[0]]) * 0.5 < fetched_again < len(files[names[0]]) + 1000
    # A third run transfers no member at all.
    remote = RemoteZip(url)
    before = remote.bytes_transferred
    remote.fetch(names, tmp_path, progress=False)
    assert remote.bytes_transferred == before


def test_zip64_and_prefixed_zips(http_server, tmp_path):
    data, files = build_ucf_zip(prefix="UCF101/")
    zip64 = _as_zip64(data)
    prefixed = os.urandom(1234) + zip64  # as a self-extracting archive would be
    for label, blob in (("zip64", zip64), ("prefixed", prefixed)):
        with zipfile.ZipFile(io.BytesIO(blob)) as check:  # the crafted files are valid zips
            assert check.testzip() is None
        url = http_server.add(f"/{label}.zip", blob)
        names = [n for n in files if "_YoYo_" in n]
        paths = remote_zip.fetch_members(url, names, tmp_path / label, progress=False, flatten=True)
        assert [p.name for p in paths] == [n.split("/")[1] for n in names]
        assert all(p.read_bytes() == files[n] for p, n in zip(paths, names))
    nested = remote_zip.fetch_members(url, names[:1], tmp_path / "nested", progress=False)
    assert nested[0] == tmp_path / "nested" / "UCF101" / names[0].split("/")[1]


def test_dropped_connection_mid_member_is_resumed(http_server, ucf_zip, tmp_path):
    url, data, files = ucf_zip
    remote = RemoteZip(url)
    done = http_server.stats("/thumos14_files/UCF101_videos.zip").requests
    names = [n for n in files if n.startswith("v_Drumming_g")]
    members = sorted(remote.select(names), key=lambda m: m.header_offset)
    first_span = members[0].end - members[0].header_offset
    # The next response (one run of six members) is cut 1 kB into the second member.
    http_server.set("/thumos14_files/UCF101_videos.zip", drop_after=first_span + 1000,
                    drop_times=done + 1)
    paths = remote.fetch(names, tmp_path, progress=False)
    assert all(p.read_bytes() == files[p.name] for p in paths)
    stats = http_server.stats("/thumos14_files/UCF101_videos.zip")
    assert stats.requests == done + 2
    # The second request starts at the member that was cut, not at the first one.
    assert stats.ranges[-1] == f"bytes={members[1].header_offset}-{members[-1].end - 1}"


def test_server_without_range_support_is_a_clear_error(http_server, tmp_path):
    data, _ = build_ucf_zip()
    url = http_server.add("/norange.zip", data, ignore_range=True)
    with pytest.raises(RemoteZipError) as info:
        RemoteZip(url)
    message = str(info.value)
    assert url in message and "ignores HTTP range requests" in message
    assert "download the whole zip" in message


def test_corrupt_central_directory_is_a_clear_error(http_server):
    data, _ = build_ucf_zip()
    cd_offset = struct.unpack_from("<L", data, len(data) - 22 + 16)[0]
    broken = bytearray(data)
    second = data.index(b"PK\x01\x02", cd_offset + 4)  # the second directory entry
    broken[second:second + 4] = b"XX\x01\x02"
    url = http_server.add("/broken.zip", bytes(broken))
    with pytest.raises(RemoteZipError, match="central directory is corrupt.*entry 1"):
        RemoteZip(url)

    not_a_zip = http_server.add("/random.bin", os.urandom(200_000))
    with pytest.raises(RemoteZipError, match="no end-of-central-directory record"):
        RemoteZip(not_a_zip)


def test_corrupt_member_leaves_nothing_behind(http_server, tmp_path):
    data, files = build_ucf_zip()
    name = "v_Bowling_g01_c01.avi"
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    broken = bytearray(data)
    broken[info.header_offset + 30 + len(name) + 100] ^= 0xFF  # one byte of its data
    url = http_server.add("/damaged.zip", bytes(broken))
    with pytest.raises(RemoteZipError, match="v_Bowling_g01_c01.avi"):
        remote_zip.fetch_members(url, [name], tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unknown_names_and_empty_selections_are_errors(http_server, ucf_zip, tmp_path):
    url, _, _ = ucf_zip
    remote = RemoteZip(url)
    with pytest.raises(RemoteZipError, match="not in the zip.*Archery/v_Archery"):
        remote.fetch(["Archery/v_Archery_g01_c01.avi"], tmp_path, progress=False)
    with pytest.raises(RemoteZipError, match="no member"):
        remote.fetch(lambda name: False, tmp_path, progress=False)


def test_refusals_are_explained(http_server):
    url = http_server.add("/gone.zip", b"", status=404)
    with pytest.raises(DownloadError, match="HTTP 404"):
        RemoteZip(url)


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


def test_a_zip_that_changes_between_requests_is_an_error(http_server, ucf_zip, tmp_path):
    url, data, files = ucf_zip
    remote = RemoteZip(url)
    other, _ = build_ucf_zip(seed=1)  # same layout, other bytes and size
    http_server.add("/thumos14_files/UCF101_videos.zip", other)
    with pytest.raises(RemoteZipError, match="changed on the server"):
        remote.fetch([next(iter(files))], tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
