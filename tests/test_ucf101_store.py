"""The MMV re-encoding: ffmpeg options, JPEG stream splitting, containers, prepare."""

import io
import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from helpers import ucf101
from helpers.ucf101 import store as st
from helpers.standins.ucf101 import CLASS_SPECS, make_mini_ucf101, render_video, write_avi


def jpeg(value: int, size=(24, 32), comment: bytes | None = None) -> bytes:
    image = Image.fromarray(np.full((*size, 3), value, dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    if comment is not None:  # a COM segment right after SOI
        data = data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]
    return data


def test_split_jpeg_stream_is_marker_aware():
    # An end-of-image byte pair inside a comment must not end the image.
    images = [jpeg(10), jpeg(200, comment=b"tricky \xff\xd9 bytes"), jpeg(90, size=(8, 8))]
    assert st.split_jpeg_stream(b"".join(images)) == images
    assert st.split_jpeg_stream(b"") == []
    with pytest.raises(st.VideoEncodeError, match="truncated|ends inside"):
        st.split_jpeg_stream(b"".join(images)[:-30], "x.avi")
    with pytest.raises(st.VideoEncodeError, match="start-of-image"):
        st.split_jpeg_stream(b"garbage" + images[0])


@pytest.fixture(scope="module")
def avi_30fps(tmp_path_factory):
    """2 s at 30 fps, 64x48."""
    frames = render_video(CLASS_SPECS[0], 60, (48, 64))
    return write_avi(tmp_path_factory.mktemp("avi") / "v_RedDiscRight_g01_c01.avi", frames, 30)


def test_reencoding_is_byte_identical_to_the_release_command(avi_30fps, tmp_path):
    """Piping with -f image2pipe -c:v mjpeg gives exactly what %010d.jpeg files hold."""
    exe = st.ffmpeg_exe()
    out = tmp_path / "frames"
    out.mkdir()
    subprocess.run([exe, "-nostdin", "-loglevel", "error", "-i", str(avi_30fps),
                    "-qscale:v", "2", "-r", "25", "-t", "00:00:20", str(out / "%010d.jpeg")],
                   check=True)
    files = sorted(out.iterdir())
    piped = st.reencode_video(avi_30fps)
    assert len(piped) == len(files)
    assert 50 <= len(piped) <= 52  # 2 s at 25 fps (ffmpeg may repeat the last frame)
    assert [f.read_bytes() for f in files] == piped
    command = st.ffmpeg_command("in.avi", exe="ffmpeg")
    assert command[command.index("-i"):] == ["-i", "in.avi", "-qscale:v", "2", "-r", "25",
                                             "-t", "00:00:20", "-f", "image2pipe", "-c:v",
                                             "mjpeg", "pipe:1"]


def test_duration_limit_and_frame_rate(avi_30fps):
    assert len(st.reencode_video(avi_30fps, st.EncodeParams(duration="00:00:01"))) == 25
    assert len(st.reencode_video(avi_30fps, st.EncodeParams(duration="00:00:01", fps=10))) == 10


def test_bad_videos_raise_one_error_type_naming_the_file(tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 20)
    for path, cause in [(empty, "empty file"), (garbage, "ffmpeg exit status"),
                        (tmp_path / "absent.avi", "file not found")]:
        with pytest.raises(st.VideoEncodeError, match=cause) as info:
            st.reencode_video(path)
        assert info.value.path == path and str(path) in str(info.value)


def test_container_round_trip_and_damage(tmp_path):
    frames = [jpeg(v) for v in (0, 60, 120, 250)]
    path = st.write_container(tmp_path / "v.jpgs", frames)
    video = st.StoredVideo(path)
    assert (video.name, video.num_frames, video.height, video.width) == ("v", 4, 24, 32)
    assert video.jpegs([3, 0, 3]) == [frames[3], frames[0], frames[3]]
    decoded = video.frames([2, 1, 2])
    assert decoded.shape == (3, 24, 32, 3) and decoded.dtype == np.uint8
    expected = np.asarray(Image.open(io.BytesIO(frames[2])).convert("RGB"))
    np.testing.assert_array_equal(decoded[0], expected)
    np.testing.assert_array_equal(decoded[0], decoded[2])
    with pytest.raises(IndexError):
        video.frames([4])
    data = path.read_bytes()
    (tmp_path / "cut.jpgs").write_bytes(data[:-10])
    with pytest.raises(st.StoreError, match="damaged container"):
        st.StoredVideo(tmp_path / "cut.jpgs")
    (tmp_path / "bad.jpgs").write_bytes(b"NOTMAGIC" + data[8:])
    with pytest.raises(st.StoreError, match="bad magic"):
        st.StoredVideo(tmp_path / "bad.jpgs")


@pytest.mark.parametrize("subsampling", [0, 1, 2])  # 4:4:4, 4:2:2 and 4:2:0 (ffmpeg's)
def test_pillow_and_opencv_decoders_equal_plain_pillow(subsampling, tmp_path):
    """decode_jpeg_pillow packs the pixels itself (one piece, JPEG plugin only), and
    decode_jpeg_opencv (the default) is another library: both give the pixels of
    np.asarray(Image.open(...)), for noise (every DCT coefficient in use), smooth pictures,
    odd sizes and grey JPEGs; frames(out=) decodes into a given array."""
    rng = np.random.default_rng(subsampling)
    frames = []
    smooth = np.linspace(0, 255, 40 * 48 * 3).reshape(40, 48, 3)
    for height, width, channels in [(24, 32, 3), (17, 35, 3), (9, 13, 1), (40, 48, 3)]:
        pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        if height == 40:
            pixels = (smooth + rng.normal(0, 4, smooth.shape)).clip(0, 255).astype(np.uint8)
        for quality in (80, 97):
            buffer = io.BytesIO()
            Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(
                buffer, format="JPEG", quality=quality, subsampling=subsampling)
            data = buffer.getvalue()
            want = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            for decode in (st.decode_jpeg_pillow, st.decode_jpeg_opencv):
                got = decode(data)
                assert got.shape == want.shape and got.dtype == np.uint8
                np.testing.assert_array_equal(got, want, err_msg=decode.__name__)
            if (height, width, quality) == (24, 32, 80):
                frames.append(data)
    assert not np.array_equal(st.decode_jpeg_opencv(frames[0]), st.decode_jpeg_opencv(jpeg(7)))
    video = st.StoredVideo(st.write_container(tmp_path / "v.jpgs", frames + [jpeg(7)]))
    out = np.zeros((2, 24, 32, 3), np.uint8)
    assert video.frames([0, 1], out=out) is out
    np.testing.assert_array_equal(out, video.frames([0, 1]))
    with pytest.raises(ValueError, match="distinct"):
        video.frames([1, 0], out=out)


def test_opencv_decoder_without_rgb_flag_swaps_bgr(monkeypatch):
    """An older OpenCV has no IMREAD_COLOR_RGB: its BGR frame is swapped to the same RGB."""
    import cv2

    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[..., 0], pixels[..., 2] = 200, 30  # red: a channel swap would show
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    want = st.decode_jpeg_pillow(data)
    monkeypatch.delattr(cv2, "IMREAD_COLOR_RGB")
    got = st.decode_jpeg_opencv(data)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, want[..., ::-1])


@pytest.mark.parametrize("decoder", ["opencv", "pillow"])
def test_damaged_frame_raises_store_error_naming_the_file(decoder, tmp_path):
    """A frame cut short or overwritten inside an intact container: a StoreError naming the
    container and the frame (libjpeg alone would fill a cut frame with grey)."""
    good = jpeg(3)
    for name, bad in [("cut", good[: len(good) // 2]), ("noise", bytes(range(256)) * 4)]:
        path = st.write_container(tmp_path / f"{name}.jpgs", [good, bad])
        video = st.StoredVideo(path, decoder=decoder)
        np.testing.assert_array_equal(video.frames([0])[0], st.decode_jpeg_pillow(good))
        with pytest.raises(st.StoreError, match=rf"{name}\.jpgs: frame 1: "):
            video.frames([1])


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return make_mini_ucf101(tmp_path_factory.mktemp("mini") / "ucf", num_classes=3,
                            groups=(1, 8, 22), clips_per_group=1, frame_size=(60, 80),
                            seconds=(0.8, 1.2), layout="flat")


def test_prepare_store_parallel_resumable_and_corrupt_videos_skipped(mini, tmp_path):
    videos = {name: mini.videos_dir / f"{name}.avi" for name in mini.videos}
    broken = tmp_path / "v_Broken_g01_c01.avi"
    broken.write_bytes(b"\x00" * 1000)
    sources = dict(videos, v_Broken_g01_c01=broken)
    store_dir = tmp_path / "store"
    report = st.prepare_store(sources, store_dir, workers=2, progress=False)
    assert sorted(report.encoded) == sorted(mini.videos)
    assert list(report.failed) == ["v_Broken_g01_c01"]
    assert "v_Broken_g01_c01.avi" in report.failed["v_Broken_g01_c01"]
    store = st.FrameStore(store_dir)
    assert store.names() == sorted(mini.videos)
    assert json.loads((store_dir / "failures.json").read_text()).keys() == {"v_Broken_g01_c01"}
    manifest = store.manifest
    assert (manifest["fps"], manifest["qscale"], manifest["duration"]) == (25, 2, "00:00:20")
    assert manifest["ffmpeg_version"].startswith("ffmpeg version")
    assert "-qscale:v 2 -r 25 -t 00:00:20" in manifest["ffmpeg_command"]
    # One file per video (plus the manifest), never one per frame.
    assert len(list((store_dir / "videos").iterdir())) == len(mini.videos)
    # The frames are the re-encoded ones.
    name = mini.videos[0]
    assert store.video(name).jpegs(range(store.video(name).num_frames)) == \
        st.reencode_video(videos[name])

    # Resume: finished videos are skipped (files untouched), the broken one is tried again.
    stamps = {p.name: p.stat().st_mtime_ns for p in (store_dir / "videos").iterdir()}
    again = st.prepare_store(sources, store_dir, workers=2, progress=False)
    assert again.encoded == [] and sorted(again.skipped) == sorted(mini.videos)
    assert list(again.failed) == ["v_Broken_g01_c01"]
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (store_dir / "videos").iterdir()}
    # Fixing the file and rerunning clears the failure record.
    broken.write_bytes(videos[mini.videos[0]].read_bytes())
    fixed = st.prepare_store(sources, store_dir, workers=1, progress=False)
    assert fixed.encoded == ["v_Broken_g01_c01"] and not fixed.failed
    assert st.FrameStore(store_dir).failures() == {}


def test_store_made_with_other_parameters_is_refused(mini, tmp_path):
    st.open_or_create_store(tmp_path / "s", st.EncodeParams())
    with pytest.raises(st.StoreError, match="was made with"):
        st.open_or_create_store(tmp_path / "s", st.EncodeParams(fps=30))
    with pytest.raises(st.StoreError, match="not a frame store"):
        st.FrameStore(tmp_path)


def test_prepare_copies_splits_and_reports_missing(mini, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in mini.videos[1:]:  # the first listed video is absent
        (partial / f"{name}.avi").write_bytes((mini.videos_dir / f"{name}.avi").read_bytes())
    with pytest.raises(ucf101.SplitError, match=r"(?s)1 of 9 listed.*testlist01.txt, line 1"):
        ucf101.prepare(partial, mini.splits_dir, tmp_path / "s0", progress=False)
    report = ucf101.prepare(partial, mini.splits_dir, tmp_path / "s0", progress=False,
                            missing="skip", workers=2)
    assert list(report.failed) == [mini.videos[0]]
    assert "not found under" in report.failed[mini.videos[0]]
    assert len(report.encoded) == 8

    store_dir = tmp_path / "store"
    report = ucf101.prepare(mini.videos_dir, mini.splits_dir, store_dir, progress=False,
                            classes=[mini.classes[0]], workers=2)
    assert sorted(report.encoded) == [v for v in mini.videos if mini.classes[0] in v]
    store = ucf101.open_store(store_dir)
    assert sorted(p.name for p in store.splits_dir.iterdir()) == sorted(
        p.name for p in mini.splits_dir.iterdir())
    split = ucf101.store_split(store, 2, classes=[mini.classes[0]])
    assert split.classes == (mini.classes[0],)
