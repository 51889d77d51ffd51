"""The MMV re-encoding of UCF101, kept in a compact on-disk frame store.

The MMV release re-encoded every video with

    ffmpeg -i video.avi -qscale:v 2 -r 25 -t 00:00:20 %010d.jpeg

(JPEG quality scale 2, 25 frames per second, at most the first 20 seconds, native size), which
differs from tensorflow_datasets' stock UCF101 encoding. :func:`reencode_video` runs the bundled
ffmpeg (``imageio_ffmpeg.get_ffmpeg_exe()``) with exactly those output options, but pipes the
JPEGs (``-f image2pipe -c:v mjpeg``, which encodes byte for byte what the ``%010d.jpeg``
pattern writes) and splits the stream at the JPEG markers, so no frame ever lands in a file of
its own.

Store layout (one folder)::

    manifest.json          the parameters the store was made with (fps, qscale, duration,
                           ffmpeg command and version, format version, a store id)
    videos/<name>.jpgs     one container per video: header, frame offsets, JPEG bytes
    splits/                copies of the official split files (so ``evaluate`` needs only the store)
    failures.json          videos that could not be re-encoded, with the reason (if any)

Container format (little-endian): ``b"UCFJPEG1"``, ``uint32`` frame count, ``uint16`` height,
``uint16`` width, ``uint64`` offsets ``[n + 1]`` (relative to the data start), then the JPEG
bytes. Each container is written to a temporary name and renamed, so a store never holds half a
video, and a rerun of :func:`prepare_store` skips the videos already there.

JPEG decoding: OpenCV by default, or Pillow: both libjpeg-turbo's accurate integer DCT, the
same pixels, equal to TensorFlow's ``dct_method="INTEGER_ACCURATE"``. The release decoded
through tensorflow_datasets, i.e. ``tf.image.decode_image`` with TensorFlow's default *fast*
integer DCT, which differs by a few grey levels in about half of the pixel values;
``decoder="tensorflow"`` reproduces it bit for bit (and imports TensorFlow on first use).
Nothing here imports TensorFlow or JAX at import time.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np

from helpers import atomic

MAGIC = b"UCFJPEG1"
_HEADER = struct.Struct("<8sIHH")
CONTAINER_SUFFIX = ".jpgs"
MANIFEST = "manifest.json"
FAILURES = "failures.json"
STORE_FORMAT = "ucf101-mmv-jpeg-store"
STORE_VERSION = 1
#: ``opencv`` (default) or ``pillow``: the accurate DCT, the same pixels (OpenCV decodes faster in
#: threads, see :func:`decode_jpeg_opencv`); ``tensorflow``: TF's default fast DCT, as the release.
JPEG_DECODERS = ("opencv", "pillow", "tensorflow")
DEFAULT_DECODER = "opencv"


class StoreError(RuntimeError):
    """The frame store (or one container in it) is missing, damaged or made differently."""


#: What a reader of a damaged container tells the user to do.
REDO_ADVICE = "; delete it and run prepare again"


class VideoEncodeError(RuntimeError):
    """ffmpeg could not re-encode one video; ``path`` and ``cause`` say which and why."""

    def __init__(self, path, cause: str):
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


@dataclasses.dataclass(frozen=True)
class EncodeParams:
    """How videos are re-encoded. The defaults are the MMV release's."""

    fps: int = 25
    qscale: int = 2
    duration: str = "00:00:20"  # ffmpeg -t: at most the first 20 seconds

    def output_options(self) -> list[str]:
        return ["-qscale:v", str(self.qscale), "-r", str(self.fps), "-t", self.duration]


MMV_ENCODING = EncodeParams()


# --- ffmpeg ------------------------------------------------------------------------------------

def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (``IMAGEIO_FFMPEG_EXE`` overrides)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


_versions: dict[str, str] = {}


def ffmpeg_version(exe: str | None = None) -> str:
    """First line of ``ffmpeg -version`` (remembered per binary)."""
    exe = exe or ffmpeg_exe()
    if exe not in _versions:
        out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True,
                             check=False, timeout=60)
        _versions[exe] = (out.stdout.splitlines() or ["unknown"])[0].strip()
    return _versions[exe]


def ffmpeg_command(src: str | os.PathLike, params: EncodeParams = MMV_ENCODING,
                   exe: str | None = None) -> list[str]:
    """The command that re-encodes ``src``: the release's output options, JPEGs to stdout."""
    return [exe or ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
            "-i", os.fspath(src), *params.output_options(),
            "-f", "image2pipe", "-c:v", "mjpeg", "pipe:1"]


def split_jpeg_stream(data: bytes, source: str = "stream") -> list[bytes]:
    """Split concatenated JPEG images (as ``-f image2pipe -c:v mjpeg`` writes them).

    Walks the marker segments of each image (so bytes inside headers are never mistaken for a
    marker) and the entropy-coded data after each SOS (where 0xFF is always followed by 0x00,
    a restart marker or the next marker). Raises :class:`VideoEncodeError` on a malformed or
    truncated stream.
    """
    images = []
    pos, size = 0, len(data)
    while pos < size:
        start = pos
        if data[pos:pos + 2] != b"\xff\xd8":
            raise VideoEncodeError(source, f"JPEG stream: expected a start-of-image marker at "
                                           f"byte {pos}")
        pos += 2
        while True:
            # Skip fill bytes, then read a marker.
            while pos < size and data[pos] == 0xFF and pos + 1 < size and data[pos + 1] == 0xFF:
                pos += 1
            if pos + 2 > size or data[pos] != 0xFF:
                raise VideoEncodeError(source, f"JPEG stream truncated or corrupt at byte {pos}")
            marker = data[pos + 1]
            pos += 2
            if marker == 0xD9:  # end of image
                break
            if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
                continue
            if pos + 2 > size:
                raise VideoEncodeError(source, f"JPEG stream truncated at byte {pos}")
            length = int.from_bytes(data[pos:pos + 2], "big")
            if length < 2:
                raise VideoEncodeError(source, f"JPEG segment with length {length} at byte {pos}")
            pos += length
            if marker == 0xDA:  # start of scan: entropy-coded data follows
                while True:
                    pos = data.find(b"\xff", pos)
                    if pos < 0 or pos + 1 >= size:
                        raise VideoEncodeError(source, "JPEG stream ends inside scan data")
                    following = data[pos + 1]
                    if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                        pos += 1 if following == 0xFF else 2
                        continue
                    break  # a real marker: handled by the outer loop
        images.append(data[start:pos])
    return images


def reencode_video(src: str | os.PathLike, params: EncodeParams = MMV_ENCODING,
                   exe: str | None = None, timeout: float = 600.0) -> list[bytes]:
    """Re-encode one video file; return its JPEG frames (bytes, in order).

    Raises :class:`VideoEncodeError` (naming the file) if the file is missing, ffmpeg fails or
    times out, or no frame comes out.
    """
    src = Path(src)
    if not src.is_file():
        raise VideoEncodeError(src, "file not found")
    if src.stat().st_size == 0:
        raise VideoEncodeError(src, "empty file (0 bytes)")
    command = ffmpeg_command(src, params, exe)
    try:
        result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise VideoEncodeError(src, f"ffmpeg did not finish within {timeout:g} s") from None
    stderr = result.stderr.decode("utf-8", "replace").strip()
    if result.returncode != 0:
        tail = " | ".join(stderr.splitlines()[-3:]) or "no message"
        raise VideoEncodeError(src, f"ffmpeg exit status {result.returncode}: {tail}")
    frames = split_jpeg_stream(result.stdout, str(src))
    if not frames:
        detail = f" ({stderr})" if stderr else ""
        raise VideoEncodeError(src, f"ffmpeg produced no frames{detail}")
    return frames


# --- JPEG decoding -----------------------------------------------------------------------------

def _check_decoder(decoder: str) -> str:
    if decoder not in JPEG_DECODERS:
        raise ValueError(f"decoder must be one of {JPEG_DECODERS}, got {decoder!r}")
    return decoder


def decode_jpeg_opencv(jpeg: bytes) -> np.ndarray:
    """One JPEG -> ``[H, W, 3] uint8`` RGB with OpenCV: the pixels of :func:`decode_jpeg_pillow`
    (both libjpeg-turbo, accurate integer DCT, fancy upsampling; the tests compare them).

    The default because OpenCV holds the GIL only to enter and leave, so decoding threads run
    side by side, while Pillow holds it for its Python steps around each frame. Measured on the
    2-core benchmark machine with the 320x240 stand-in frames: one thread decoded 3,888 frames/s
    (Pillow 4,027), two threads 8,410 (Pillow 5,778). Orientation tags are ignored, as Pillow
    ignores them. Raises ``ValueError`` for bytes that do not decode, and for a JPEG cut short
    (no end marker), which libjpeg would fill with grey where Pillow raises.
    """
    import cv2

    if not jpeg.endswith(b"\xff\xd9"):
        raise ValueError("truncated JPEG (no end-of-image marker)")
    rgb = getattr(cv2, "IMREAD_COLOR_RGB", None)  # older OpenCV: BGR, then swapped
    array = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8),
                         (cv2.IMREAD_COLOR if rgb is None else rgb) | cv2.IMREAD_IGNORE_ORIENTATION)
    if array is None:
        raise ValueError("not a decodable JPEG")
    return array if rgb is not None else cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def decode_jpeg_pillow(jpeg: bytes) -> np.ndarray:
    """One JPEG -> ``[H, W, 3] uint8`` RGB (read-only) with Pillow.

    The decoding itself releases the GIL; what Pillow does around it holds it, and decoding
    threads queue for it (measured on the 2-core benchmark machine: the GIL held 70 % of the
    time with two threads). So: only the JPEG plugin is asked to open the bytes (``open``
    otherwise tries others first: 30-100 us a frame), and the pixels are packed to RGB in one
    piece instead of ``tobytes``' 64 KB pieces joined (another copy, under the GIL). The same
    pixels; ``np.asarray(image)`` is the fallback where Pillow's encoder lookup differs.
    """
    from PIL import Image

    with Image.open(io.BytesIO(jpeg), formats=("JPEG",)) as image:
        # convert() copies even when the mode is already RGB (the store's JPEGs are): skip it.
        if image.mode != "RGB":
            return np.asarray(image.convert("RGB"))
        image.load()
        width, height = image.size
        try:
            encoder = Image._getencoder("RGB", "raw", "RGB")
            encoder.setimage(image.im, (0, 0, width, height))
            _, status, data = encoder.encode(width * height * 3)
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - another Pillow
            return np.asarray(image)
        if status != 1 or len(data) != width * height * 3:  # pragma: no cover
            return np.asarray(image)
        return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


_tf_lock = threading.Lock()
_tf = None


def _tensorflow():
    """TensorFlow for decoding, set up (once) to share a GPU with JAX instead of grabbing it."""
    global _tf
    with _tf_lock:
        if _tf is None:
            from helpers import gpu

            gpu.share_gpu()
            import tensorflow as tf

            _tf = tf
    return _tf


def decode_jpeg_tensorflow(jpeg: bytes) -> np.ndarray:
    """One JPEG -> ``[H, W, 3] uint8`` with ``tf.io.decode_jpeg`` defaults (as the release)."""
    tf = _tensorflow()
    with tf.device("/CPU:0"):
        return tf.io.decode_jpeg(jpeg, channels=3).numpy()


def decode_function(decoder: str):
    """The function ``jpeg bytes -> [H, W, 3] uint8`` of a name in :data:`JPEG_DECODERS`."""
    return {"opencv": decode_jpeg_opencv, "pillow": decode_jpeg_pillow,
            "tensorflow": decode_jpeg_tensorflow}[_check_decoder(decoder)]


# --- containers --------------------------------------------------------------------------------

def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as image:
        width, height = image.size
    return height, width


def write_container(path: str | os.PathLike, jpegs: list[bytes]) -> Path:
    """Atomically write JPEG frames into one container file; return its path."""
    if not jpegs:
        raise ValueError("a container needs at least one frame")
    height, width = _jpeg_size(jpegs[0])
    offsets = np.zeros(len(jpegs) + 1, dtype="<u8")
    np.cumsum([len(j) for j in jpegs], out=offsets[1:])
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(_HEADER.pack(MAGIC, len(jpegs), height, width))
            handle.write(offsets.tobytes())
            for jpeg in jpegs:
                handle.write(jpeg)
    return Path(path)


class StoredVideo:
    """One re-encoded video in the store: frame count, size, and frame decoding.

    Opening reads only the header and the offsets; frames are read and decoded on demand, so
    a training clip touches only the JPEGs it needs. Safe to use from several threads.
    """

    def __init__(self, path: str | os.PathLike, name: str | None = None,
                 decoder: str = DEFAULT_DECODER):
        self.path = Path(path)
        self.name = name or self.path.name[: -len(CONTAINER_SUFFIX)]
        self.decoder = _check_decoder(decoder)
        self._decode_jpeg = decode_function(decoder)
        try:
            with open(self.path, "rb") as handle:
                header = handle.read(_HEADER.size)
                if len(header) != _HEADER.size:
                    raise StoreError(f"{self.path}: truncated container header")
                magic, count, height, width = _HEADER.unpack(header)
                if magic != MAGIC:
                    raise StoreError(f"{self.path}: not a frame container (bad magic {magic!r})")
                raw = handle.read(8 * (count + 1))
        except FileNotFoundError:
            raise StoreError(f"{self.path}: container not found") from None
        if len(raw) != 8 * (count + 1):
            raise StoreError(f"{self.path}: truncated offsets table")
        self.offsets = np.frombuffer(raw, dtype="<u8").astype(np.int64)
        self._data_start = _HEADER.size + 8 * (count + 1)
        self.file_size = self.path.stat().st_size
        if count == 0 or np.any(np.diff(self.offsets) <= 0) or self.offsets[0] != 0 \
                or self._data_start + self.offsets[-1] != self.file_size:
            raise StoreError(f"{self.path}: damaged container (offsets do not match the file "
                             f"size {self.file_size}){REDO_ADVICE}")
        self.num_frames = int(count)
        self.height = int(height)
        self.width = int(width)

    def __repr__(self) -> str:
        return (f"StoredVideo({self.name!r}, frames={self.num_frames}, "
                f"size={self.height}x{self.width})")

    def jpegs(self, indices) -> list[bytes]:
        """The JPEG bytes of frames ``indices`` (any order, repeats allowed)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size == 0:
            return []
        if indices.min() < 0 or indices.max() >= self.num_frames:
            raise IndexError(f"{self.name}: frame index out of range 0..{self.num_frames - 1}")
        first, last = int(indices.min()), int(indices.max())
        begin, end = self.offsets[first], self.offsets[last + 1]
        with open(self.path, "rb") as handle:  # one read covering the span
            handle.seek(self._data_start + int(begin))
            span = handle.read(int(end - begin))
        return [span[self.offsets[i] - begin: self.offsets[i + 1] - begin] for i in indices]

    def _decode(self, index, jpeg: bytes) -> np.ndarray:
        try:
            array = self._decode_jpeg(jpeg)
        except (ValueError, OSError) as err:  # OSError: Pillow's
            raise StoreError(f"{self.path}: frame {index}: {err}{REDO_ADVICE}") from None
        if array.shape != (self.height, self.width, 3):
            raise StoreError(f"{self.path}: frame {index} is {array.shape[:2]}, "
                             f"not {(self.height, self.width)}")
        return array

    def decoded(self, indices) -> list[np.ndarray]:
        """Decode frames ``indices`` -> one ``[H, W, 3] uint8`` array each (read-only: the
        decoder's own), for a reader that needs no single array (the resize kernel). For a
        few frames at a time: many such arrays alive at once come as fresh memory (measured:
        96 at once cost 40 % more a frame than 4, the allocator returning freed memory that
        large to the system)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        return [self._decode(i, jpeg) for i, jpeg in zip(indices, self.jpegs(indices))]

    def frames(self, indices=None, out=None) -> np.ndarray:
        """Decode frames ``indices`` (default: all) -> ``[N, H, W, 3] uint8`` RGB.

        Each distinct frame is decoded once, however often it is asked for (looping clips);
        with the video's ``decoder`` (see the module docstring). ``out``: a C-contiguous
        ``[N, H, W, 3] uint8`` array to decode into, for distinct sorted ``indices`` (what the
        samplers ask for), e.g. a reused buffer: fresh memory costs a page fault per 4 KB on
        first write, on the benchmark machine as much as a tenth of the decoding.
        """
        if indices is None:
            indices = np.arange(self.num_frames)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        unique, inverse = np.unique(indices, return_inverse=True)
        distinct = len(unique) == len(indices) and np.array_equal(unique, indices)
        shape = (len(unique), self.height, self.width, 3)
        if out is None:
            out = np.empty(shape, dtype=np.uint8)
        elif not distinct or out.shape != shape or out.dtype != np.uint8 \
                or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous uint8 {shape} and the indices distinct "
                             f"and sorted, got {out.dtype} {out.shape}")
        for row, jpeg in enumerate(self.jpegs(unique)):  # each decoded array freed at once
            out[row] = self._decode(unique[row], jpeg)
        if distinct:
            return out  # already distinct and sorted (what the samplers ask for): no copy
        return out[inverse]


# --- the store ---------------------------------------------------------------------------------

@dataclasses.dataclass
class PrepareReport:
    """What one :func:`prepare_store` run did. ``failed``: name -> reason."""

    store: Path
    encoded: list[str]
    skipped: list[str]
    failed: dict[str, str]

    def __str__(self) -> str:
        text = (f"{self.store}: {len(self.encoded)} videos re-encoded, {len(self.skipped)} already "
                f"there, {len(self.failed)} failed")
        for name, reason in list(self.failed.items())[:10]:
            text += f"\n  FAILED {name}: {reason}"
        if len(self.failed) > 10:
            text += f"\n  ... and {len(self.failed) - 10} more (see {FAILURES})"
        return text


class FrameStore:
    """A folder of re-encoded videos (see the module docstring for the layout).

    ``decoder``: how its videos decode JPEGs, one of :data:`JPEG_DECODERS`.
    """

    def __init__(self, root: str | os.PathLike, decoder: str = DEFAULT_DECODER):
        self.root = Path(root)
        self.decoder = _check_decoder(decoder)
        manifest = self.root / MANIFEST
        if not manifest.is_file():
            raise StoreError(f"{self.root}: no {MANIFEST}; this is not a frame store (make one "
                             "with `python -m helpers.ucf101 prepare`)")
        try:
            self.manifest = json.loads(manifest.read_text())
        except ValueError as err:
            raise StoreError(f"{manifest}: damaged, not JSON ({err}); the store's record is "
                             "lost: delete the store folder and run prepare again") from None
        if not isinstance(self.manifest, dict):
            raise StoreError(f"{manifest}: damaged, a JSON {type(self.manifest).__name__} "
                             "instead of an object; delete the store folder and run prepare "
                             "again")
        missing = [key for key in ("fps", "qscale", "duration", "store_id")
                   if key not in self.manifest]
        if self.manifest.get("format") == STORE_FORMAT and missing:
            raise StoreError(f"{manifest}: damaged, it lacks {', '.join(missing)}; delete the "
                             "store folder and run prepare again")
        if self.manifest.get("format") != STORE_FORMAT:
            raise StoreError(f"{manifest}: not a {STORE_FORMAT} manifest")
        if self.manifest.get("version") != STORE_VERSION:
            raise StoreError(f"{manifest}: store version {self.manifest.get('version')}, this "
                             f"code reads version {STORE_VERSION}; re-create the store")
        self._cache: dict[str, StoredVideo] = {}
        self._lock = threading.Lock()

    @property
    def videos_dir(self) -> Path:
        return self.root / "videos"

    @property
    def splits_dir(self) -> Path:
        return self.root / "splits"

    @property
    def params(self) -> EncodeParams:
        m = self.manifest
        return EncodeParams(fps=m["fps"], qscale=m["qscale"], duration=m["duration"])

    @property
    def store_id(self) -> str:
        return self.manifest["store_id"]

    def path_for(self, name: str) -> Path:
        return self.videos_dir / f"{name}{CONTAINER_SUFFIX}"

    def names(self) -> list[str]:
        """Names of the videos in the store (sorted)."""
        if not self.videos_dir.is_dir():
            return []
        return sorted(p.name[: -len(CONTAINER_SUFFIX)] for p in self.videos_dir.iterdir()
                      if p.name.endswith(CONTAINER_SUFFIX) and not p.name.startswith("."))

    def __contains__(self, name: str) -> bool:
        return self.path_for(name).is_file()

    def __len__(self) -> int:
        return len(self.names())

    def video(self, name: str) -> StoredVideo:
        """The container of ``name`` (headers are read once and remembered)."""
        with self._lock:
            if name not in self._cache:
                self._cache[name] = StoredVideo(self.path_for(name), name, self.decoder)
            return self._cache[name]

    def failures(self) -> dict[str, str]:
        """``failures.json`` (name -> reason); a damaged copy counts as empty, with a warning
        (it is rewritten by the next prepare)."""
        path = self.root / FAILURES
        if not path.is_file():
            return {}
        try:
            known = json.loads(path.read_text())
            if not isinstance(known, dict):
                raise ValueError(f"a JSON {type(known).__name__}, not an object")
        except ValueError as err:
            import warnings

            warnings.warn(f"{path}: damaged ({err}); ignored", stacklevel=2)
            return {}
        return known

    def damaged(self, name: str) -> str | None:
        """Why the container of ``name`` cannot be used (truncated, bad offsets), or ``None``.

        Without the reader's advice to run prepare again: prepare, the caller, re-encodes it.
        """
        try:
            StoredVideo(self.path_for(name), name, self.decoder)
        except (StoreError, OSError) as err:
            return str(err).removesuffix(REDO_ADVICE)
        return None

    def describe(self) -> str:
        m = self.manifest
        return (f"frame store {self.root}\n  {len(self)} videos; re-encoded with "
                f"`{m['ffmpeg_command']}`\n  ({m['ffmpeg_version']})")


def _new_manifest(params: EncodeParams, exe: str) -> dict:
    return {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "fps": params.fps,
        "qscale": params.qscale,
        "duration": params.duration,
        "ffmpeg_command": " ".join(["ffmpeg", "-i", "<video>", *params.output_options(),
                                    "-f", "image2pipe", "-c:v", "mjpeg", "pipe:1"]),
        "release_command": " ".join(["ffmpeg", "-i", "video.avi", *params.output_options(),
                                     "%010d.jpeg"]),
        "ffmpeg_version": ffmpeg_version(exe),
        "container": "header 'UCFJPEG1' <uint32 frames> <uint16 height> <uint16 width>, "
                     "uint64 offsets[frames + 1], JPEG bytes",
        "store_id": uuid.uuid4().hex,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def open_or_create_store(root: str | os.PathLike, params: EncodeParams = MMV_ENCODING,
                         exe: str | None = None) -> FrameStore:
    """Open the store at ``root``, creating it (with its manifest) if it does not exist.

    Raises :class:`StoreError` if an existing store was made with other parameters. A
    different ffmpeg version is only warned about (the JPEG encoder is stable across versions).
    """
    root = Path(root)
    exe = exe or ffmpeg_exe()
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        root.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(manifest_path, json.dumps(_new_manifest(params, exe), indent=2).encode())
    store = FrameStore(root)
    if store.params != params:
        raise StoreError(f"{root} was made with {store.params}, not {params}; use another "
                         "folder or delete this one")
    version = ffmpeg_version(exe)
    if store.manifest.get("ffmpeg_version") != version:
        import warnings

        warnings.warn(f"{root} was made with {store.manifest.get('ffmpeg_version')!r}; this run "
                      f"uses {version!r}", stacklevel=2)
    return store


def copy_split_files(splits_dir: str | os.PathLike, store: FrameStore) -> list[Path]:
    """Copy ``classInd.txt`` and the train/test lists into ``<store>/splits`` (atomically)."""
    from helpers.ucf101.splits import CLASS_INDEX_FILE, SPLITS, find_splits_dir

    source = find_splits_dir(splits_dir)
    names = [CLASS_INDEX_FILE] + [f"{kind}list{n:02d}.txt" for n in SPLITS
                                  for kind in ("train", "test")]
    copied = []
    for name in names:
        if (source / name).is_file():
            with atomic.atomic_path(store.splits_dir / name) as tmp:
                shutil.copyfile(source / name, tmp)
            copied.append(store.splits_dir / name)
    return copied


def prepare_store(sources, store_dir: str | os.PathLike, *, params: EncodeParams = MMV_ENCODING,
                  workers: int | None = None, progress: bool = True,
                  timeout: float = 600.0) -> PrepareReport:
    """Re-encode videos into the store at ``store_dir``, in parallel; resumable.

    ``sources``: ``{name: path}`` (or ``(name, path)`` pairs), ``name`` being the video's key
    (``v_<Class>_gNN_cNN``). Videos already in the store are skipped; a video that fails
    (corrupt, unreadable, no frames) is reported, recorded in ``failures.json`` and skipped,
    never fatal. ``workers``: parallel ffmpeg processes (default: the number of CPUs).
    Returns a :class:`PrepareReport`.
    """
    from helpers.progress import bar as tqdm

    sources = dict(sources.items() if isinstance(sources, dict) else sources)
    exe = ffmpeg_exe()
    store = open_or_create_store(store_dir, params, exe)
    store.videos_dir.mkdir(parents=True, exist_ok=True)
    todo = {}
    for name, path in sources.items():
        # A container counts as done only if it is whole: one cut short (a full disk, a copy
        # interrupted outside the course) is re-encoded.
        problem = store.damaged(name) if name in store else "absent"
        if problem != "absent" and problem is not None:
            print(f"warning: {problem}; re-encoding it", file=sys.stderr)
        if problem is not None:
            todo[name] = Path(path)
    skipped = [n for n in sources if n not in todo]
    failed: dict[str, str] = {}
    encoded: list[str] = []

    def work(name: str, path: Path) -> None:
        _check_source(path)
        jpegs = reencode_video(path, params, exe, timeout=timeout)
        write_container(store.path_for(name), jpegs)

    workers = max(1, workers or os.cpu_count() or 1)
    bar = tqdm(total=len(sources), initial=len(skipped), desc="re-encoding", unit="video",
               disable=not progress)
    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = {pool.submit(work, n, p): n for n, p in todo.items()}
            try:
                for future in concurrent.futures.as_completed(futures):
                    name = futures[future]
                    try:
                        future.result()
                        encoded.append(name)
                    except (VideoEncodeError, StoreError) as err:
                        failed[name] = str(err)
                        bar.write(f"skipped {name}: {err}")
                    bar.update(1)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    finally:
        bar.close()
        _record_failures(store, failed, done=set(encoded) | set(skipped))
    return PrepareReport(store.root, sorted(encoded), sorted(skipped), dict(sorted(failed.items())))


def _check_source(path: Path) -> None:
    """Refuse a source video cut short: ffmpeg re-encodes what is there without complaint.

    ``helpers.video.frame_times`` demuxes the whole file (cheap: no decoding) and raises when
    fewer frames arrive than the container announces.
    """
    from helpers import video

    try:
        video.frame_times(path)
    except video.VideoError as err:
        raise VideoEncodeError(path, err.cause) from None


def _record_failures(store: FrameStore, failed: dict[str, str], done: set[str]) -> None:
    known = store.failures()
    merged = {n: r for n, r in known.items() if n not in done}
    merged.update(failed)
    path = store.root / FAILURES
    if merged or path.exists():
        atomic.write_bytes(path, json.dumps(dict(sorted(merged.items())), indent=2).encode())
