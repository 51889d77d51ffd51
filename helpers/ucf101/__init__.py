"""UCF101 linear evaluation with the MMV protocol: data, re-encoding, features, probe, CLI.

The pieces live in sub-modules, re-exported here:

- :mod:`helpers.ucf101.splits`   official split files (``classInd.txt``, ``trainlist0N.txt``,
  ``testlist0N.txt``), finding the videos in either layout;
- :mod:`helpers.ucf101.store`    the MMV re-encoding (ffmpeg, 25 fps, ``-qscale:v 2``, 20 s)
  into a compact frame store;
- :mod:`helpers.ucf101.sampling` the protocol's training clips and test windows;
- :mod:`helpers.ucf101.features` batched, prefetched, cached, resumable feature extraction;
- :mod:`helpers.probe`           scaler + ``LinearSVC(C=0.001)``, window-averaged scores.

Where the data comes from (real mode)
-------------------------------------
- videos: ``https://storage.googleapis.com/thumos14_files/UCF101_videos.zip`` (6.96 GB), the
  zip mirror tensorflow_datasets' UCF101 builder downloads (no RAR tool needed; the same
  ``.avi`` files as ``https://www.crcv.ucf.edu/data/UCF101/UCF101.rar``, flat under ``UCF101/``);
- splits: ``https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip``
  (folder ``ucfTrainTestlist/``).
Sizes and SHA-256 are the ones tensorflow_datasets records for these URLs
(``tensorflow_datasets/url_checksums/ucf101.txt``); every download is verified against them.

Command line (for the long run on a GPU machine)::

    python -m helpers.ucf101 download --dest DIR
    python -m helpers.ucf101 prepare --videos DIR --splits DIR --store DIR
    python -m helpers.ucf101 evaluate --store DIR --split N --backbone s3d \\
        [--checkpoint F.pkl] --cache DIR --report F.json

No TensorFlow or JAX is imported by this module; the encoders import their model modules when
they are built.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import hashlib
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from helpers import atomic, config, downloads, probe, resources
from helpers.ucf101.features import (FeatureError, consolidate, extract_features,  # noqa: F401
                                     feature_cache_dir)
from helpers.ucf101.sampling import (MMV_PROTOCOL, Protocol, TrainDraw, clip_indices,  # noqa: F401
                                     central_crop_offsets, resize_and_crop, resize_bilinear,
                                     resize_smallest, resized_size, test_clips, test_window_indices,
                                     test_window_starts, train_clip, train_draw, train_start_limit)
from helpers.ucf101.splits import (SPLITS, Split, SplitError, VideoEntry,  # noqa: F401
                                   available_splits, find_splits_dir, index_videos, load_split,
                                   locate_videos, read_class_index, read_video_list, test_groups)
from helpers.ucf101.store import (DEFAULT_DECODER, JPEG_DECODERS, MMV_ENCODING,  # noqa: F401
                                  EncodeParams, FrameStore, PrepareReport, StoredVideo, StoreError,
                                  VideoEncodeError, copy_split_files, ffmpeg_command,
                                  prepare_store, reencode_video, split_jpeg_stream)

#: The videos, as one flat zip (the mirror tensorflow_datasets uses).
VIDEOS_ZIP = downloads.Resource(
    name="UCF101 videos (zip mirror)", base="ucf101_videos", path="UCF101_videos.zip",
    filename="UCF101_videos.zip", size=6960400115,
    sha256="dabf56f573cd19c79e096563529fec8126a2a34e18e10c72eb621dd687532b0d",
    licence="UCF101 (Soomro, Zamir and Shah, 2012): videos collected from YouTube; for "
            "research use")
#: The official train/test split files.
SPLITS_ZIP = downloads.Resource(
    name="UCF101 train/test splits", base="ucf101_splits",
    path="UCF101TrainTestSplits-RecognitionTask.zip",
    filename="UCF101TrainTestSplits-RecognitionTask.zip", size=113943,
    sha256="5c0d1a53b8ed364a2ac830a73f405e51bece7d98ce1254fd19ed4a36b224bd27")
#: Folder inside the videos zip.
ZIP_VIDEOS_FOLDER = "UCF101"

#: What tiny mode uses: the protocol's logic with fewer and smaller clips, so that a CPU runs
#: the notebook in seconds (the published numbers are the defaults of :class:`Protocol`).
TINY_PROTOCOL = Protocol(num_frames=8, stride=2, train_passes=4, test_windows=4,
                         min_resize=48, crop_size=48)

#: Protocol presets of the command line.
PROTOCOLS = {"mmv": MMV_PROTOCOL, "tiny": TINY_PROTOCOL}

PUBLISHED_TOP1 = probe.PUBLISHED_TOP1
PUBLISHED_SOURCE = probe.PUBLISHED_SOURCE
MMV_BACKBONES = ("s3d", "tsm_resnet_x1", "tsm_resnet_x2")


class UCF101Error(RuntimeError):
    """A dataset step cannot go on (a download, an archive, a missing folder)."""


# --- mode and locations ------------------------------------------------------------------------

def real_dir(*parts: str) -> Path:
    """``<real cache>/ucf101/<parts>``: downloads, extracted data, the frame store, features."""
    return config.cache_dir("real", "ucf101", *parts)


def _real_data_present() -> bool:
    root = config.cache_root() / "real" / "ucf101"
    return (root / "store" / "manifest.json").is_file() or (root / "UCF101").is_dir()


def resolve_mode() -> str:
    """``real`` or ``tiny`` for the UCF101 data (see :func:`helpers.config.resolve`)."""
    return resources.mode("ucf101")


resources.register("ucf101", "ucf101", is_cached=_real_data_present,
                   probe_url=lambda: config.url("ucf101_videos"),
                   fetch=lambda classes=None: download(classes))


def protocol_for(mode: str) -> Protocol:
    """The published protocol in real mode; fewer, smaller frames in tiny mode."""
    return MMV_PROTOCOL if mode == "real" else TINY_PROTOCOL


def default_store_dir(mode: str) -> Path:
    """Where the frame store goes by default (separate for real and tiny)."""
    return config.cache_dir(mode, "ucf101", "store")


def default_feature_cache(mode: str) -> Path:
    return config.cache_dir(mode, "ucf101", "features")


@dataclasses.dataclass(frozen=True)
class DatasetPaths:
    """A UCF101 on disk: the videos folder (either layout) and the split files' folder."""

    videos_dir: Path
    splits_dir: Path
    mode: str


# --- downloads ---------------------------------------------------------------------------------

def extract_zip(zip_path: str | os.PathLike, dest_dir: str | os.PathLike, members=None,
                progress: bool = True) -> Path:
    """Extract ``zip_path`` (or only ``members``) into ``dest_dir``; resumable, never half a file.

    Each member is written to a temporary name and renamed; members already present with the
    right size are skipped, so an interrupted extraction picks up where it stopped. Members with
    absolute paths or ``..`` are refused. Raises :class:`UCF101Error` for a damaged archive.
    """
    from helpers.progress import bar as tqdm

    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise UCF101Error(f"{zip_path}: not a readable zip archive ({err}); delete it and "
                          "download again") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if members is not None:
            wanted = set(members)
            infos = [i for i in infos if i.filename in wanted]
            absent = wanted - {i.filename for i in infos}
            if absent:
                raise UCF101Error(f"{zip_path} has no member(s) {sorted(absent)[:5]}")
        bar = tqdm(total=sum(i.file_size for i in infos), unit="B", unit_scale=True,
                   desc=f"extracting {Path(zip_path).name}", disable=not progress, leave=False)
        for info in infos:
            parts = Path(info.filename).parts
            if Path(info.filename).is_absolute() or ".." in parts:
                raise UCF101Error(f"{zip_path}: refusing member with unsafe path {info.filename!r}")
            target = dest.joinpath(*parts)
            if target.is_file() and target.stat().st_size == info.file_size:
                bar.update(info.file_size)
                continue
            try:
                with atomic.atomic_path(target) as tmp, archive.open(info) as src, \
                        open(tmp, "wb") as out:
                    while block := src.read(1 << 20):
                        out.write(block)
                        bar.update(len(block))
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise UCF101Error(f"{zip_path}: cannot extract {info.filename} ({err})") from None
        bar.close()
    return dest


def download_splits(dest_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download (verified, cached) and extract the official split files; return their folder."""
    dest = Path(dest_dir) if dest_dir is not None else real_dir()
    archive = downloads.fetch(SPLITS_ZIP, dest / "downloads", progress=progress)
    extract_zip(archive, dest, progress=progress)
    return find_splits_dir(dest)


def download_videos(dest_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download (6.96 GB, resumable, verified) and extract all videos; return their folder."""
    dest = Path(dest_dir) if dest_dir is not None else real_dir()
    marker = dest / ZIP_VIDEOS_FOLDER / ".extracted"
    if not marker.is_file():
        archive = downloads.fetch(VIDEOS_ZIP, dest / "downloads", progress=progress)
        extract_zip(archive, dest, progress=progress)
        marker.write_text(VIDEOS_ZIP.sha256 or "")
    return dest / ZIP_VIDEOS_FOLDER


def zip_member_names(video_names) -> list[str]:
    """Names inside the videos zip of the given videos (``UCF101/<name>.avi``).

    The mirror spells ``HandstandPushups`` where the split lists spell ``HandStandPushups``.
    """
    return [f"{ZIP_VIDEOS_FOLDER}/{n.replace('HandStandPushups', 'HandstandPushups')}.avi"
            for n in video_names]


def download_subset(video_names, dest_dir: str | os.PathLike | None = None,
                    fetch_members: Callable | None = None, progress: bool = True) -> Path:
    """Fetch only some videos from the zip mirror (HTTP range requests); return the folder.

    ``video_names``: names like ``v_ApplyEyeMakeup_g08_c01`` (e.g. the entries of
    ``load_split(...).restrict([...])``). ``fetch_members(url, members, dest_dir)`` does the
    transfer: it must write each zip member under ``dest_dir`` at its path in the zip. By default
    it is :func:`helpers.ucf101.remote.fetch_members` (HTTP range requests through fsspec).
    """
    dest = Path(dest_dir) if dest_dir is not None else real_dir()
    members = zip_member_names(video_names)
    todo = [m for m in members if not (dest / m).is_file()]
    if todo:
        if fetch_members is None:
            from helpers.ucf101 import remote

            fetch_members = functools.partial(remote.fetch_members, progress=progress)
        fetch_members(VIDEOS_ZIP.url, todo, dest)
    return dest / ZIP_VIDEOS_FOLDER


def download(classes=None, dest_dir: str | os.PathLike | None = None, progress: bool = True,
             fetch_members: Callable | None = None) -> DatasetPaths:
    """Real data: the split files and the videos (all, or only ``classes`` via a subset fetch).

    ``fetch_members``: see :func:`download_subset` (used only with ``classes``).
    """
    splits_dir = download_splits(dest_dir, progress)
    if classes:
        names = set()
        for number in available_splits(splits_dir):
            split = load_split(splits_dir, number).restrict(classes)
            names.update(e.name for e in split.train + split.test)
        videos_dir = download_subset(sorted(names), dest_dir, fetch_members, progress=progress)
    else:
        videos_dir = download_videos(dest_dir, progress)
    return DatasetPaths(videos_dir, splits_dir, "real")


def tiny_dataset(**kwargs) -> DatasetPaths:
    """Generate (once) the mini-UCF101 stand-in; ``kwargs`` go to ``make_mini_ucf101``."""
    mini = resources.path("ucf101", "tiny", **kwargs)
    return DatasetPaths(mini.videos_dir, mini.splits_dir, "tiny")


def dataset(mode: str | None = None, classes=None) -> DatasetPaths:
    """The UCF101 of ``mode`` (default :func:`resolve_mode`): download, or generate the stand-in."""
    mode = mode or resolve_mode()
    return resources.path("ucf101", "real", classes=classes) if mode == "real" else tiny_dataset()


# --- re-encoding -------------------------------------------------------------------------------

def prepare(videos_dir, splits_dir, store_dir, *, splits=None, classes=None,
            missing: str = "error", workers: int | None = None, progress: bool = True,
            params: EncodeParams = MMV_ENCODING) -> PrepareReport:
    """Re-encode every video the split files name into the frame store (resumable).

    ``splits``: which splits' videos (default: every split present; the three splits together
    cover all 13,320 videos). ``classes``: only these classes. ``missing``: ``error`` (a listed
    video not on disk raises :class:`SplitError` naming the list file and line) or ``skip``
    (reported in the result's ``failed``). The split files are copied into the store, so
    ``evaluate`` needs only the store. Corrupt videos are reported and skipped.
    """
    splits = tuple(splits) if splits else available_splits(splits_dir)
    if not splits:
        raise SplitError(f"{splits_dir}: no complete train/test list pair found")
    entries: dict[str, VideoEntry] = {}
    for number in splits:
        split = load_split(splits_dir, number)
        if classes:
            split = split.restrict(classes)
        for entry in split.train + split.test:
            entries.setdefault(entry.name, entry)
    found, absent = locate_videos(list(entries.values()), videos_dir, missing=missing)
    report = prepare_store(found, store_dir, params=params, workers=workers, progress=progress)
    copy_split_files(splits_dir, FrameStore(store_dir))
    for entry in absent:
        report.failed[entry.name] = f"not found under {videos_dir} (listed at {entry.source})"
    return report


def open_store(store_dir, decoder: str = DEFAULT_DECODER) -> FrameStore:
    """Open a frame store made by :func:`prepare`.

    ``decoder``: ``opencv`` (default) or ``pillow`` (the same pixels, accurate DCT; OpenCV is
    faster in threads), or ``tensorflow``, which decodes the JPEGs exactly as the release did
    (TensorFlow's default fast DCT; see :mod:`helpers.ucf101.store`).
    """
    return FrameStore(store_dir, decoder)


def store_split(store: FrameStore, number: int = 1, classes=None) -> Split:
    """Split ``number`` as recorded in the store (optionally only ``classes``)."""
    if not store.splits_dir.is_dir():
        raise StoreError(f"{store.root} has no split files (splits/); run prepare with --splits")
    split = load_split(store.splits_dir, number)
    return split.restrict(classes) if classes else split


# --- encoders ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Encoder:
    """A feature extractor: ``fn(clips [B, T, H, W, 3] float32 in [0, 1]) -> [B, D]``.

    ``name`` identifies the model *and its weights* (it keys the feature cache).
    ``clip_input``: what ``fn`` takes (``float``, ``uint8`` or ``raw``: see
    :func:`helpers.ucf101.features.extract_features`).
    """

    fn: Callable
    name: str
    feature_dim: int | None = None
    mode: str = "real"
    description: str = ""
    clip_input: str = "float"
    #: What the weights are (reports): ``{"origin": official | stand-in | user file,
    #: "file", "sha256"}``; ``None`` when not known (a custom encoder).
    weights: dict | None = None

    def __call__(self, clips):
        return self.fn(clips)


def mmv_encoder(backbone: str = "s3d", checkpoint=None) -> Encoder:
    """An MMV backbone's ``vid_repr`` (1024 / 2048 / 4096) as an :class:`Encoder`.

    Uses ``helpers.mmv.resolve_mode(backbone)`` and ``helpers.mmv.load_model(backbone,
    checkpoint)`` (the official checkpoint, or its tiny stand-in, when ``checkpoint`` is None).
    """
    if backbone not in MMV_BACKBONES:
        raise ValueError(f"backbone must be one of {MMV_BACKBONES}, got {backbone!r}")
    from helpers import mmv

    # The cache key carries the digest of the weights file, whichever it is (official
    # download, stand-in, user file): new weights under the same name never reuse old features.
    weights = mmv.checkpoint_provenance(backbone, checkpoint)
    mode = "tiny" if weights["origin"] == "stand-in" else "real"
    model = mmv.load_model(backbone, checkpoint)  # None: a damaged download is dropped there
    feature_dim = getattr(model, "feature_dim", None) or mmv.FEATURE_DIM.get(backbone)

    def fn(clips):
        return np.asarray(model(np.asarray(clips, dtype=np.float32))["vid_repr"])

    return Encoder(fn, f"mmv_{backbone}_{weights['sha256'][:16]}", feature_dim, mode,
                   f"MMV {backbone} vid_repr ({weights['origin']}: {weights['file']}, sha256 "
                   f"{weights['sha256'][:12]})", weights=weights)


def milnce_encoder(handle=None) -> Encoder:
    """MIL-NCE S3D's ``mixed_5c`` (1024) as an :class:`Encoder`, for comparison.

    Uses ``helpers.milnce.resolve_mode()``, ``helpers.milnce.load(handle)`` and
    ``helpers.milnce.embed_videos(model, clips, batch_size)``.
    """
    from helpers import checks, milnce

    mode = milnce.resolve_mode()
    model = milnce.load(handle)
    # Key by the module's files (the cached or local SavedModel), not by its handle alone.
    local = handle is not None and milnce._looks_local(str(handle))
    folder = (Path(str(handle).removeprefix("file://")).expanduser() if local else
              milnce.cache_folder(str(handle) if handle else milnce.default_handle(), mode))
    digest = checks.folder_digest(folder) if folder.is_dir() else \
        hashlib.sha256(str(handle).encode()).hexdigest()
    tag = digest[:16]
    origin = "user file" if local else ("stand-in" if mode == "tiny" else "official")
    weights = {"origin": origin, "file": str(folder), "sha256": digest}

    def fn(clips):
        clips = np.asarray(clips, dtype=np.float32)
        return np.asarray(milnce.embed_videos(model, clips, batch_size=len(clips))["mixed_5c"])

    return Encoder(fn, f"milnce_mixed_5c_{tag}", 1024, "tiny" if origin == "stand-in" else "real",
                   f"MIL-NCE S3D mixed_5c ({origin}: {folder})", weights=weights)


#: ``--backbone`` choices of the command line: name -> factory(checkpoint) -> Encoder.
ENCODERS: dict[str, Callable[[str | None], Encoder]] = {
    "s3d": lambda checkpoint=None: mmv_encoder("s3d", checkpoint),
    "tsm_resnet_x1": lambda checkpoint=None: mmv_encoder("tsm_resnet_x1", checkpoint),
    "tsm_resnet_x2": lambda checkpoint=None: mmv_encoder("tsm_resnet_x2", checkpoint),
    "milnce": lambda checkpoint=None: milnce_encoder(checkpoint),
}


def register_encoder(name: str, factory: Callable[[str | None], Encoder]) -> None:
    """Make ``name`` a ``--backbone`` choice (e.g. a test encoder, or another model)."""
    ENCODERS[name] = factory


def get_encoder(name: str, checkpoint=None) -> Encoder:
    if name not in ENCODERS:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(ENCODERS)}")
    return ENCODERS[name](checkpoint)


# --- the evaluation ----------------------------------------------------------------------------

@dataclasses.dataclass
class SplitFeatures:
    """Features of one split. ``train``: ``[V_train, passes, D]``; ``test``: ``[V_test, W, D]``."""

    split: Split
    train: np.ndarray
    train_labels: np.ndarray
    train_names: list[str]
    test: np.ndarray
    test_labels: np.ndarray
    test_names: list[str]
    missing: list[str]  # listed videos absent from the store (failed re-encoding), left out


def split_features(store: FrameStore, split: Split, encoder: Encoder, *,
                   protocol: Protocol = MMV_PROTOCOL, cache_dir=None, batch_size: int = 8,
                   workers: int | None = None, progress: bool = True) -> SplitFeatures:
    """Extract (or load from the cache) the train clips and test windows of ``split``.

    Videos listed but absent from the store are left out and named in ``missing``.
    """
    present = set(store.names())
    missing = [e.name for e in split.train + split.test if e.name not in present]
    if missing:
        print(f"warning: {len(missing)} videos of split {split.number} are not in the store "
              f"(failed re-encoding?) and are left out: {', '.join(missing[:5])}"
              + (" ..." if len(missing) > 5 else ""), file=sys.stderr)
    train = [e for e in split.train if e.name in present]
    test = [e for e in split.test if e.name in present]
    if not train or not test:
        raise FeatureError(f"split {split.number}: no {'train' if not train else 'test'} videos "
                           f"in the store {store.root}")
    common = dict(protocol=protocol, cache_dir=cache_dir, batch_size=batch_size, workers=workers,
                  clip_input=encoder.clip_input,
                  progress=progress)
    train_features = extract_features(store, [e.name for e in train], encoder.fn, encoder.name,
                                      sampling="train", **common)
    test_features = extract_features(store, [e.name for e in test], encoder.fn, encoder.name,
                                     sampling="test", **common)
    return SplitFeatures(split, train_features, np.array([e.label for e in train]),
                         [e.name for e in train], test_features,
                         np.array([e.label for e in test]), [e.name for e in test], missing)


def evaluate(store_dir, split: int = 1, backbone: str = "s3d", *, checkpoint=None,
             cache_dir=None, report_path=None, C: float = probe.DEFAULT_C,
             protocol: Protocol = MMV_PROTOCOL, classes=None, batch_size: int = 8,
             workers: int | None = None, progress: bool = True, encoder: Encoder | None = None,
             jpeg_decoder: str = DEFAULT_DECODER, solver: str = probe.DEFAULT_SOLVER) -> dict:
    """Run the whole linear evaluation on one split; return (and optionally write) the report.

    ``backbone``: a key of :data:`ENCODERS` (ignored when ``encoder`` is given).
    ``cache_dir``: feature cache root (``None``: no cache). The report holds the settings
    (store manifest, protocol, C, encoder, counts), top-1/top-5, per-class accuracy, the
    published number for the backbone and timings.
    """
    started = time.perf_counter()
    store = open_store(store_dir, jpeg_decoder)
    the_split = store_split(store, split, classes)
    encoder = encoder or get_encoder(backbone, checkpoint)
    features = split_features(store, the_split, encoder, protocol=protocol, cache_dir=cache_dir,
                              batch_size=batch_size, workers=workers, progress=progress)
    extracted = time.perf_counter()
    result = probe.linear_evaluation(features.train, features.train_labels, features.test,
                                     features.test_labels, C=C,
                                     num_classes=the_split.num_classes, solver=solver)
    finished = time.perf_counter()
    report = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "split": split,
        "backbone": backbone,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "encoder": encoder.name,
        "encoder_mode": encoder.mode,
        "encoder_description": encoder.description,
        "weights": encoder.weights,
        "feature_dim": int(features.train.shape[-1]),
        "protocol": protocol.asdict(),
        "C": C,
        "probe_solver": solver,
        "classifier": f"StandardScaler + LinearSVC(C={C:g}), decision scores averaged over "
                      f"{protocol.test_windows} windows",
        "store": {"path": str(store.root), **{k: store.manifest[k] for k in (
            "fps", "qscale", "duration", "ffmpeg_command", "ffmpeg_version", "store_id")}},
        "jpeg_decoder": store.decoder,
        "classes": list(the_split.classes) if classes else None,
        "num_classes": the_split.num_classes,
        "num_train_videos": len(features.train_names),
        "num_train_clips": result.num_train_clips,
        "num_test_videos": result.num_test_videos,
        "missing_videos": features.missing,
        "top1": result.top1,
        "top5": result.top5,
        "train_top1": result.train_top1,
        "per_class_top1": {c: (None if np.isnan(a) else float(a))
                           for c, a in zip(the_split.classes, result.per_class)},
        "published_top1_percent": PUBLISHED_TOP1.get(backbone),
        "published_source": PUBLISHED_SOURCE if backbone in PUBLISHED_TOP1 else None,
        "seconds": {"features": round(extracted - started, 2),
                    "probe": round(finished - extracted, 2)},
        "versions": _versions(),
    }
    if report_path is not None:
        atomic.write_bytes(report_path, json.dumps(report, indent=2).encode())
    return report


def _versions() -> dict:
    from helpers.report import versions

    return {k: v for k, v in versions().items()
            if k in ("python", "numpy", "scikit-learn", "jax", "dm-haiku", "tensorflow")}


# --- command line ------------------------------------------------------------------------------

def _classes_arg(text: str | None):
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _build_parser() -> argparse.ArgumentParser:
    from helpers import cli

    parser = cli.ArgumentParser(
        prog="python -m helpers.ucf101",
        description="UCF101 linear evaluation of video backbones with the MMV protocol.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="download and extract the videos and the split files")
    p.add_argument("--dest", type=cli.output_folder, default=None,
                   help="target folder (default: the course's real cache)")
    p.add_argument("--classes", help="comma-separated class names: fetch only these (range "
                                     "requests on the zip)")

    p = sub.add_parser("prepare", help="re-encode the videos into a frame store (resumable)")
    p.add_argument("--videos", type=cli.input_folder, required=True,
                   help="folder of the .avi files (<Class>/v_*.avi, or flat as in the zip)")
    p.add_argument("--splits", type=cli.input_folder, required=True,
                   help="folder with classInd.txt, trainlist0N.txt, testlist0N.txt")
    p.add_argument("--store", type=cli.output_folder, required=True,
                   help="frame store folder (created)")
    p.add_argument("--split", type=int, action="append", choices=SPLITS,
                   help="only the videos of this split (repeatable; default all)")
    p.add_argument("--classes", help="comma-separated class names to keep")
    p.add_argument("--skip-missing", action="store_true",
                   help="report listed videos that are not on disk instead of stopping")
    p.add_argument("--workers", type=cli.positive_int, default=None,
                   help="parallel ffmpeg processes")

    p = sub.add_parser("evaluate", help="extract features, fit the probe, report top-1/top-5")
    p.add_argument("--store", type=cli.input_folder, required=True)
    p.add_argument("--split", type=int, default=1, choices=SPLITS)
    p.add_argument("--backbone", default="s3d", choices=list(ENCODERS),
                   help=f"one of {', '.join(ENCODERS)} (default s3d)")
    p.add_argument("--checkpoint", default=None,
                   help="MMV checkpoint .pkl (default: the official one, downloaded); for "
                        "milnce a TF-Hub handle or a SavedModel folder")
    p.add_argument("--cache", type=cli.output_folder, default=None, help="feature cache folder")
    p.add_argument("--report", type=cli.output_file, default=None,
                   help="write the JSON report here (checked writable before the run)")
    p.add_argument("--C", type=cli.positive_float, default=probe.DEFAULT_C,
                   help="LinearSVC C (0.001)")
    p.add_argument("--solver", choices=probe.SOLVERS, default=probe.DEFAULT_SOLVER,
                   help="probe solver: all classes at once (batched, batched-jax) or "
                        "scikit-learn's liblinear (sklearn, the reference); same objective")
    p.add_argument("--classes", help="comma-separated class names to keep")
    p.add_argument("--batch-size", type=cli.positive_int, default=8)
    p.add_argument("--workers", type=cli.positive_int, default=None, help="decoding threads")
    p.add_argument("--jpeg-decoder", choices=JPEG_DECODERS, default=DEFAULT_DECODER,
                   help="opencv (default) or pillow: the same pixels (accurate DCT); tensorflow: "
                        "TF's fast DCT, exactly as the release")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="mmv",
                   help="preset: mmv (published, default) or tiny (8 frames of 48x48, 4 passes, "
                        "4 windows: for trying the command on a CPU); the flags below override it")
    p.add_argument("--frames", type=cli.positive_int, help="frames per clip (mmv: 32)")
    p.add_argument("--stride", type=cli.positive_int, help="frame stride (mmv: 2)")
    p.add_argument("--passes", type=cli.positive_int, help="training passes (mmv: 10)")
    p.add_argument("--windows", type=cli.positive_int, help="test windows (mmv: 10)")
    p.add_argument("--min-resize", type=cli.positive_int,
                   help="short side after resizing (mmv: 224)")
    p.add_argument("--crop", type=cli.positive_int, help="crop size (mmv: 224)")
    p.add_argument("--seed", type=cli.nonnegative_int, help="seed of the training draws (mmv: 0)")
    p.add_argument("--no-progress", action="store_true")
    return parser


def _check_checkpoint_arg(backbone: str, checkpoint: str | None) -> None:
    """A named checkpoint must exist before the long work: a file (MMV) or folder (MIL-NCE)."""
    from helpers import checks, cli

    if checkpoint is None or backbone not in MMV_BACKBONES + ("milnce",):
        return
    if backbone == "milnce":
        if "://" in checkpoint and not checkpoint.startswith("file://"):
            return  # a TF-Hub handle: checked when it loads
        problem = checks.input_file_problem(checkpoint.removeprefix("file://"), folder=True)
    else:
        problem = checks.input_file_problem(checkpoint)
    if problem:
        raise cli.CLIError(f"{checkpoint}: {problem} (--checkpoint)")


def _main(args) -> int:
    if args.command == "download":
        paths = download(_classes_arg(args.classes), args.dest)
        print(f"videos: {paths.videos_dir}\nsplits: {paths.splits_dir}")
        return 0
    if args.command == "prepare":
        report = prepare(args.videos, args.splits, args.store, splits=args.split,
                         classes=_classes_arg(args.classes),
                         missing="skip" if args.skip_missing else "error",
                         workers=args.workers)
        print(report)
        return 0
    _check_checkpoint_arg(args.backbone, args.checkpoint)
    overrides = {field: value for field, value in (
        ("num_frames", args.frames), ("stride", args.stride), ("train_passes", args.passes),
        ("test_windows", args.windows), ("min_resize", args.min_resize),
        ("crop_size", args.crop), ("seed", args.seed)) if value is not None}
    protocol = PROTOCOLS[args.protocol].replace(**overrides)
    # The report is written after the result is printed: a failing write loses nothing.
    report = evaluate(args.store, args.split, args.backbone, checkpoint=args.checkpoint,
                      cache_dir=args.cache, report_path=None, C=args.C,
                      protocol=protocol, classes=_classes_arg(args.classes),
                      batch_size=args.batch_size, workers=args.workers,
                      progress=not args.no_progress, jpeg_decoder=args.jpeg_decoder,
                      solver=args.solver)
    published = report["published_top1_percent"]
    tiny = report["encoder_mode"] == "tiny"
    label = " [tiny stand-in weights: this number means nothing]" if tiny else ""
    print(f"UCF101 split {args.split}, {args.backbone} ({report['encoder']}): "
          f"top-1 {100 * report['top1']:.2f} %, top-5 {100 * report['top5']:.2f} % "
          f"on {report['num_test_videos']} test videos{label}")
    weights = report.get("weights")
    if weights:
        print(f"weights: {weights['origin']}, {weights['file']} (sha256 {weights['sha256'][:16]})")
    if published is not None:
        print(f"published top-1: {published} % ({PUBLISHED_SOURCE})")
    if tiny:
        print("NOTE: tiny-mode stand-in weights: this number means nothing.")
    if args.report:
        atomic.write_bytes(args.report, json.dumps(report, indent=2).encode())
        print(f"report: {args.report}")
    return 0


def main(argv=None) -> int:
    """``python -m helpers.ucf101 download|prepare|evaluate``; exit status 2 for bad input."""
    from helpers import cli

    return cli.main(_build_parser(), _main, argv, also=(ValueError,))
