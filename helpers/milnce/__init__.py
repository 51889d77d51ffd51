"""MIL-NCE S3D from TF-Hub: load it with clear errors, embed videos and sentences, batch CLI.

The module (Miech et al., CVPR 2020) lives at :data:`HANDLE` (tfhub.dev now redirects to
Kaggle Models, whose own handle is :data:`KAGGLE_HANDLE`; TF-Hub caches the two separately).
It is in TF1 Hub format; ``hub.load`` returns an object whose ``.signatures`` are:

* ``video``: ``images`` float32 ``[B, T, H, W, 3]`` RGB in [0, 1] -> ``video_embedding``
  ``[B, 512]`` and ``mixed_5c`` ``[B, 1024]``;
* ``text``: ``words`` tf.string ``[B]`` -> ``text_embedding`` ``[B, 512]``.

Similarity is the plain dot product ``text_embedding @ video_embedding.T``.

Tiny mode (see :mod:`helpers.config`) puts a stand-in with the same interface into the tiny
TF-Hub cache under the handle's folder, so the same ``hub.load(HANDLE)`` call loads it: a small
model trained here on generated clips (:mod:`helpers.training.standin`), not MIL-NCE.

Command line (``python -m helpers.milnce embed --help``)::

    python -m helpers.milnce embed --video a.gif --video b.mp4 --text "a dog" --out emb.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from helpers import checks, config, resources
from helpers.words import sentence_list

HANDLE = "https://tfhub.dev/deepmind/mil-nce/s3d/1"
#: The handle below the ``tfhub`` base URL of :mod:`helpers.config`.
HANDLE_PATH = "deepmind/mil-nce/s3d/1"
#: The same model on Kaggle Models (where tfhub.dev redirects). A different handle: TF-Hub
#: caches it in another folder, so loading it downloads the module again.
KAGGLE_HANDLE = "https://www.kaggle.com/models/deepmind/mil-nce/TensorFlow1/s3d/1"
#: Name under which the mode of this resource is resolved and reported.
RESOURCE = "MIL-NCE S3D module"
#: Name of the sample-video resource (the official colab's Wikimedia GIFs).
GALLERY_RESOURCE = "MIL-NCE sample videos"

VIDEO_SIGNATURE, TEXT_SIGNATURE = "video", "text"


class MilnceError(RuntimeError):
    """Loading or calling the MIL-NCE module failed; the message says why and what to do."""

    def __init__(self, problem: str, fix: str = "", handle: str | None = None):
        self.problem, self.fix, self.handle = problem, fix, handle
        where = f" ({handle})" if handle else ""
        message = f"MIL-NCE{where}: {problem}"
        if fix:
            message += f"\nWhat to do: {fix}"
        super().__init__(message)


# --------------------------------------------------------------------------------------------
# Importing TensorFlow and tensorflow_hub, with the fixes for known breakages
# --------------------------------------------------------------------------------------------

def import_tensorflow():
    """Import TensorFlow without its start-up chatter (:func:`helpers.gpu.import_tensorflow`);
    return it. Raises :class:`MilnceError` with the fix when TensorFlow is not installed."""
    from helpers import gpu

    try:
        tf = gpu.import_tensorflow()
    except ModuleNotFoundError as err:
        if err.name != "tensorflow":
            raise
        raise MilnceError("TensorFlow is not installed",
                          "pip install tensorflow (see requirements.txt for the tested version)"
                          ) from None
    return tf


def _tf_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        return ""


def import_hub():
    """Import ``tensorflow_hub``; known breakages become :class:`MilnceError` with the fix.

    * tf-keras missing: TF >= 2.16 ships Keras 3, and tensorflow_hub needs Keras 2 (tf-keras).
    * setuptools >= 82: tensorflow_hub 0.16.1 imports ``pkg_resources``, which it removed
      (80.9 to 81.x still have it but warn; that warning is silenced here).
    """
    import_tensorflow()
    tf_minor = ".".join(_tf_version().split(".")[:2])
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pkg_resources.*")
            import tensorflow_hub as hub
    except ModuleNotFoundError as err:
        if err.name == "pkg_resources" or "pkg_resources" in str(err):
            raise MilnceError(
                "tensorflow_hub 0.16.1 imports pkg_resources, which setuptools >= 82 removed",
                'pip install "setuptools<80.9", then restart the Python runtime (in Colab: '
                "Runtime > Restart session)") from None
        if err.name == "tf_keras" or "tf_keras" in str(err):
            pin = f"=={tf_minor}.*" if tf_minor else ""
            raise MilnceError(
                "tensorflow_hub needs tf-keras (Keras 2) because TensorFlow >= 2.16 comes with "
                "Keras 3", f'pip install "tf-keras{pin}" (the same minor version as TensorFlow), '
                "then restart the Python runtime") from None
        if err.name == "tensorflow_hub":
            raise MilnceError("tensorflow_hub is not installed",
                              'pip install "tensorflow-hub==0.16.1"') from None
        raise
    return hub


# --------------------------------------------------------------------------------------------
# Mode and loading
# --------------------------------------------------------------------------------------------

def cache_folder(handle: str, mode: str) -> Path:
    """Where TF-Hub caches ``handle`` in ``mode``'s cache: ``<tfhub cache>/sha1(handle)``.

    Only computes the path (the layout of ``config.tfhub_cache_dir``): asking about the real
    cache from tiny mode creates nothing there.
    """
    from helpers.downloads import hub_cache_folder

    if mode not in ("real", "tiny"):
        raise ValueError(f"mode must be 'real' or 'tiny', got {mode!r}")
    return hub_cache_folder(handle, config.cache_root() / mode / "tfhub_modules")


def _is_cached(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def default_handle() -> str:
    """The official handle, :data:`HANDLE`, built from the ``tfhub`` base URL of
    :mod:`helpers.config` (the test suite points that base at a local server; users never do).
    """
    return config.url("tfhub", HANDLE_PATH)


def resolve_mode(handle: str | None = None) -> str:
    """``real`` or ``tiny`` for the module (``config.resolve``); tiny installs the stand-in.

    In tiny mode the stand-in (:mod:`helpers.training.standin`: a small model trained here on
    generated clips, not MIL-NCE) is trained once per cache (about a minute on 2 CPU cores) and
    installed into the tiny TF-Hub cache under ``sha1(handle)``, where ``hub.load(handle)``
    finds it without any network access.
    Also points ``TFHUB_CACHE_DIR`` at the mode's cache. ``handle``: default
    :func:`default_handle`.
    """
    handle = handle or default_handle()
    mode = resources.mode(RESOURCE, handle=handle)
    config.tfhub_cache_dir(mode)
    if mode == "tiny":
        resources.path(RESOURCE, "tiny", handle=handle)
    return mode


# hub.load downloads the real module itself (into TFHUB_CACHE_DIR), so "fetching" it is
# naming its handle; the registry decides, and builds the stand-in (helpers.resources).
resources.register(RESOURCE, "milnce", is_cached=lambda handle: _is_cached(cache_folder(handle, "real")),
                   probe_url=lambda handle: handle, fetch=lambda handle: handle)


def _looks_local(handle: str) -> bool:
    return "://" not in handle or handle.startswith("file://")


#: Where the module can be downloaded by hand, and the call that installs the downloaded
#: archive: the manual route offered when the model host refuses (HTTP 403) or the network is
#: too flaky for TF-Hub's downloader, which cannot resume.
MANUAL_PAGE = "https://www.kaggle.com/models/deepmind/mil-nce (variation TensorFlow1/s3d, version 1)"


def _install_call(handle: str) -> str:
    extra = "" if handle == default_handle() else f", {handle!r}"
    return f"helpers.milnce.install_archive(path_to_tar_gz{extra})"


def load(handle: str | os.PathLike | None = None, tags=None, *, timeout: float = 60.0,
         retries: int = 2):
    """Load the MIL-NCE module with ``hub.load`` and check it has its two signatures.

    ``handle``: a TF-Hub handle (default :func:`default_handle`, i.e. :data:`HANDLE`) or a
    local SavedModel folder.
    ``tags``: graph variant for TF1 Hub modules (default: the empty tags; ``{"train"}`` exists).
    ``timeout`` / ``retries``: for the download (see :func:`helpers.downloads.hub_load`).
    A handle is loaded through :func:`helpers.downloads.hub_load` into the mode's TF-Hub cache
    (``config.tfhub_cache_dir``): leftovers of a killed download and damaged cache entries are
    cleared first, a stall times out, a dropped connection is retried.
    Returns the loaded object; use ``module.signatures["video"]`` / ``["text"]``.
    Raises :class:`MilnceError` naming the problem and the fix (offline, HTTP 403 from the
    model host, tf-keras or setuptools trouble, a broken cache folder, not a MIL-NCE module);
    for a handle its cause is the :class:`helpers.downloads.DownloadError`, whose cause is
    tensorflow_hub's own error.
    """
    handle = str(handle) if handle is not None else default_handle()
    module = load_hub_module(handle, MilnceError, resolve_mode, tags=tags, timeout=timeout,
                             retries=retries, page=MANUAL_PAGE, install=_install_call(handle))
    check_signatures(module, handle)
    return module


def load_hub_module(handle: str, error=MilnceError, resolve=resolve_mode, *, tags=None,
                    **download):
    """``hub.load`` a local SavedModel folder, or a handle into the TF-Hub cache of the mode
    ``resolve(handle)`` chooses (:func:`helpers.downloads.hub_load`, with ``download``'s
    options); every failure becomes ``error(problem, fix, handle)``. Shared by MIL-NCE and the
    MMV TF-Hub modules (:func:`helpers.mmv.hub.load`)."""
    from helpers import downloads

    try:  # the known breakages (tf-keras, setuptools) come with their fix
        hub, tf = import_hub(), import_tensorflow()
    except MilnceError as err:
        raise error(err.problem, err.fix) from err
    if not _looks_local(handle):
        mode = resolve(handle)
        try:
            return downloads.hub_load(handle, config.tfhub_cache_dir(mode), tags=tags, **download)
        except downloads.DownloadError as err:
            raise error(err.problem, err.fix, handle) from err
    local = Path(handle.removeprefix("file://")).expanduser()
    if not local.is_dir():
        raise error(f"the folder {local} does not exist",
                    "pass a TF-Hub handle (URL) or a folder holding saved_model.pb")
    try:
        return hub.load(str(local), tags=tags)
    except (OSError, ValueError, RuntimeError, tf.errors.OpError) as err:
        raise error(f"the folder {local} could not be loaded as a SavedModel "
                    f"({type(err).__name__}: {str(err)[:300]})",
                    "pass a folder holding a complete SavedModel (saved_model.pb and variables/), "
                    "e.g. an unpacked module archive or an export-tfhub output", str(local)) from err


def check_signatures(module, handle: str | None = None, required=(VIDEO_SIGNATURE, TEXT_SIGNATURE),
                     error=MilnceError, what: str = "the MIL-NCE module",
                     fix: str = f"load {HANDLE} (or a copy of it)") -> None:
    """Raise ``error`` unless ``module`` has the ``required`` signatures (MIL-NCE's by default)."""
    signatures = getattr(module, "signatures", None)
    names = sorted(signatures.keys()) if signatures is not None else []
    missing = [name for name in required if name not in names]
    if missing:
        raise error(f"this is not {what}: its signatures are {names or 'none'}, missing "
                    f"{', '.join(missing)}", fix, handle)


def install_archive(archive, handle: str | None = None) -> Path:
    """Unpack a module archive downloaded by hand (``.tar.gz``) into the real TF-Hub cache.

    The fix for HTTP 403: download the archive in a browser, then call this; afterwards
    ``load(handle)`` finds it without a download. Members that would land outside the folder
    are refused. Returns the module folder.
    """
    import shutil
    import tarfile
    import tempfile

    archive = Path(archive)
    target = cache_folder(handle or default_handle(), "real")
    if _is_cached(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")  # refuses absolute paths, "..", devices
            else:  # Python without extraction filters: check the members ourselves
                for member in tar.getmembers():
                    name = Path(member.name)
                    if name.is_absolute() or ".." in name.parts or not (
                            member.isfile() or member.isdir()):
                        raise MilnceError(f"{archive} has an unsafe member {member.name!r}",
                                          "download the archive again from Kaggle Models")
                tar.extractall(tmp)
        roots = [p for p in tmp.iterdir()]
        source = roots[0] if len(roots) == 1 and roots[0].is_dir() and not \
            (tmp / "saved_model.pb").exists() else tmp
        if not (source / "saved_model.pb").exists():
            raise MilnceError(f"{archive} holds no saved_model.pb",
                              "download the TensorFlow1 / s3d / version 1 archive")
        if target.exists():
            target.rmdir()
        os.rename(source, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def keras_layer(handle: str | None = None, signature: str = VIDEO_SIGNATURE, **kwargs):
    """``hub.KerasLayer`` for one signature, returning the outputs as a dict.

    The module has no ``default`` signature, so ``hub.KerasLayer(handle)`` fails with
    "Unknown signature default"; the signature must be named. Needs tf-keras.
    """
    if signature in (None, "default"):
        raise MilnceError("the MIL-NCE module has no 'default' signature",
                          "pass signature='video' or signature='text' (and "
                          "signature_outputs_as_dict=True)")
    handle = str(handle) if handle is not None else default_handle()
    if not _looks_local(handle):
        resolve_mode(handle)
    hub = import_hub()
    return hub.KerasLayer(handle, signature=signature, signature_outputs_as_dict=True, **kwargs)


def explain(error: BaseException) -> str:
    """Turn an error seen while calling the module by hand into advice (or its own message)."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, MilnceError):
        return str(error)
    if "Unknown signature default" in text or "signature default" in text:
        return ("The MIL-NCE module has no 'default' signature: name one, e.g. "
                "hub.KerasLayer(handle, signature='video', signature_outputs_as_dict=True).")
    if "float64" in text or "double" in text:
        return ("The video signature takes float32 only: cast the clip first, e.g. "
                "tf.constant(clip, tf.float32) or clip.astype(np.float32).")
    if "uint8" in text:
        return "The video signature takes float32 in [0, 1]: divide uint8 frames by 255."
    return text


# --------------------------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------------------------

def _signature(model, name):
    signatures = getattr(model, "signatures", None)
    if signatures is None:
        raise TypeError("model must be the object helpers.milnce.load() returns (it has "
                        f".signatures); got {type(model).__name__}")
    if name not in signatures:
        raise MilnceError(f"the module has no '{name}' signature; it has {sorted(signatures)}")
    return signatures[name]


def _output_dim(signature, key: str, default: int) -> int:
    try:
        dim = signature.structured_outputs[key].shape[-1]
        return int(dim) if dim is not None else default
    except (AttributeError, KeyError, TypeError, IndexError):
        return default


def _check_clip(clip, index: int) -> np.ndarray:
    clip = np.asarray(clip)
    if clip.dtype == np.uint8:
        raise ValueError(f"clip {index} is uint8; the model takes float32 RGB in [0, 1]: use "
                         f"helpers.video.center_crop_resize, or divide by 255")
    # An empty T or H would give NaN embeddings (a mean over nothing), NaN pixels NaN scores.
    clip = checks.check_array(clip, f"clip {index}", ndim=4, last_dim=3, kind="f",
                              value_range=(0.0, 1.0),
                              layout="[T, H, W, 3] float RGB in [0, 1] (clips as [N, T, H, W, 3])")
    return clip.astype(np.float32, copy=False)  # float64 would be refused by the module


def embed_videos(model, clips, batch_size: int = 8, progress: bool | None = None) -> dict:
    """Run the ``video`` signature over clips in batches.

    ``clips``: float ``[N, T, H, W, 3]`` RGB in [0, 1], or a list of ``[T, H, W, 3]`` clips
    (clips of different shapes are run apart). float64 is cast to float32; uint8 or values
    outside [0, 1] raise ``ValueError``. ``progress``: a progress bar (default: when there is
    more than one batch). Returns ``{"video_embedding": [N, 512], "mixed_5c": [N, 1024]}``,
    float32 numpy arrays.
    """
    from helpers.progress import bar as tqdm

    tf = import_tensorflow()
    signature = _signature(model, VIDEO_SIGNATURE)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    items = list(clips) if not isinstance(clips, np.ndarray) or clips.ndim == 5 else None
    if items is None:
        raise ValueError(f"clips has shape {np.shape(clips)}; expected [N, T, H, W, 3] "
                         f"(one clip: clips[None])")
    keys = ("video_embedding", "mixed_5c")
    outputs = {key: [] for key in keys}
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    show = len(batches) > 1 if progress is None else progress
    done = 0
    for batch in tqdm(batches, desc="embedding videos", unit="batch", disable=not show,
                      leave=False):
        checked = [_check_clip(clip, done + j) for j, clip in enumerate(batch)]
        done += len(batch)
        groups = [checked] if len({c.shape for c in checked}) == 1 else [[c] for c in checked]
        first = done - len(batch)
        for group in groups:
            result = signature(images=tf.constant(np.stack(group)))
            for key in keys:
                value = result[key].numpy().astype(np.float32, copy=False)
                checks.check_finite(value, f"MIL-NCE video signature output {key!r} for clips "
                                           f"{first}..{first + len(group) - 1} (finite inputs)")
                outputs[key].append(value)
            first += len(group)
    dims = {"video_embedding": _output_dim(signature, "video_embedding", 512),
            "mixed_5c": _output_dim(signature, "mixed_5c", 1024)}
    return {key: np.concatenate(outputs[key]) if outputs[key]
            else np.zeros((0, dims[key]), np.float32) for key in keys}


def embed_video_windows(model, windows, batch_size: int = 8, progress: bool | None = None) -> dict:
    """Evaluation protocol: embed every window and average per video.

    ``windows``: ``[V, N, T, H, W, 3]`` (e.g. stacked :func:`helpers.video.eval_windows`).
    Returns ``{"video_embedding": [V, 512], "mixed_5c": [V, 1024]}`` (means over the N windows).
    """
    windows = np.asarray(windows)
    if windows.ndim != 6:
        raise ValueError(f"windows has shape {windows.shape}; expected [V, N, T, H, W, 3]")
    videos, per_video = windows.shape[:2]
    flat = embed_videos(model, windows.reshape((-1,) + windows.shape[2:]), batch_size, progress)
    return {key: value.reshape(videos, per_video, -1).mean(axis=1)
            for key, value in flat.items()}


def embed_texts(model, sentences, batch_size: int = 256) -> np.ndarray:
    """Run the ``text`` signature: list of N sentences -> float32 ``[N, 512]``.

    A single string counts as one sentence. The module lowercases and tokenises itself.
    ``sentences`` must be a string or a sequence of strings (a dict or a set is refused: their
    keys or their order would be embedded silently). Raises ``ValueError`` / ``TypeError``;
    :class:`helpers.checks.NonFiniteError` if the module returns NaN.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    sentences = sentence_list(sentences)
    tf = import_tensorflow()
    signature = _signature(model, TEXT_SIGNATURE)
    parts = []
    for start in range(0, len(sentences), batch_size):
        words = tf.constant(sentences[start:start + batch_size], dtype=tf.string)
        value = signature(words=words)["text_embedding"].numpy().astype(np.float32)
        parts.append(checks.check_finite(
            value, f"MIL-NCE text signature output for sentences {start}..{start + len(value) - 1}"))
    if not parts:
        return np.zeros((0, _output_dim(signature, "text_embedding", 512)), np.float32)
    return np.concatenate(parts)


# --------------------------------------------------------------------------------------------
# Sample videos: the official colab's three GIFs (real) or generated clips (tiny)
# --------------------------------------------------------------------------------------------

def _commons(name: str, md5_prefix: str):
    from helpers.downloads import Resource

    return Resource(
        name=name, base="wikimedia", path=f"{md5_prefix}/{name}", filename=name,
        licence=f"from Wikimedia Commons; licence and author on "
                f"https://commons.wikimedia.org/wiki/File:{name}",
        browser_user_agent=True)


#: The official colab's videos (path below upload.wikimedia.org/wikipedia/commons; the folder
#: is the MD5 of the file name, as Wikimedia stores uploads) and its query for each.
COLAB_VIDEOS = (
    (_commons("YosriAirTerjun.gif", "b/b0"), "waterfall"),
    (_commons("Guitar_solo_gif.gif", "e/e6"), "playing guitar"),
    (_commons("2009-08-16-autodrift-by-RalfR-gif-by-wau.gif", "3/30"), "car drifting"),
)
COLAB_QUERIES = tuple(query for _, query in COLAB_VIDEOS)
#: Published scores of the official colab's pipeline (rows: COLAB_QUERIES, columns: the
#: videos in COLAB_VIDEOS' order), from an executed copy of the tensorflow/docs notebook
#: "Text-to-Video retrieval with S3D MIL-NCE". Dot products, not normalised.
PUBLISHED_COLAB_SCORES = np.array([[4.71, -4.17, -1.63],
                                   [-1.79, 6.50, -2.67],
                                   [-1.07, -2.17, 8.78]], dtype=np.float64)
PUBLISHED_SOURCE = ("tensorflow/docs, site/en/hub/tutorials/"
                    "text_to_video_retrieval_with_s3d_milnce.ipynb (executed copy)")
PUBLISHED_TOLERANCE = 0.1


@dataclasses.dataclass(frozen=True)
class SampleVideo:
    """One gallery video: file, a caption that describes it, a class label, and its source."""

    path: Path
    caption: str
    label: str
    credit: str


def _gallery_cached() -> bool:
    folder = config.cache_root() / "real" / "milnce_gallery"  # looked at, not created
    return all((folder / res.filename).exists() for res, _ in COLAB_VIDEOS)


def _fetch_gallery() -> list[SampleVideo]:
    from helpers import downloads

    folder = config.cache_dir("real", "milnce_gallery")
    out = []
    for resource, query in COLAB_VIDEOS:
        path = downloads.fetch(resource, folder)
        out.append(SampleVideo(path, query, query, f"{resource.filename} {resource.licence}"))
    return out


resources.register(GALLERY_RESOURCE, "milnce_gallery", is_cached=_gallery_cached,
                   probe_url=lambda: config.url("wikimedia"), fetch=_fetch_gallery)


def gallery_mode() -> str:
    """``real`` (the colab's Wikimedia GIFs) or ``tiny`` (generated clips) for the gallery."""
    return resources.mode(GALLERY_RESOURCE)


def sample_videos(mode: str | None = None) -> list[SampleVideo]:
    """The gallery: in real mode the colab's three GIFs (downloaded once, verified, cached);
    in tiny mode generated clips (written once to ``data/``); see :mod:`helpers.resources`."""
    mode = mode or gallery_mode()
    if mode == "real":
        return resources.path(GALLERY_RESOURCE, "real")
    return [SampleVideo(Path(c["path"]), c["caption"], c["label"], "generated stand-in clip")
            for c in resources.path(GALLERY_RESOURCE, mode)]


def compare_with_published(scores) -> tuple[str, bool]:
    """Compare our colab-pipeline scores (3 x 3) with :data:`PUBLISHED_COLAB_SCORES`.

    Returns ``(table, ok)``: a printable table (ours, published, difference per cell) and
    whether every cell is within :data:`PUBLISHED_TOLERANCE` and each query ranks its own
    video first.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != PUBLISHED_COLAB_SCORES.shape:
        raise ValueError(f"expected a {PUBLISHED_COLAB_SCORES.shape} score matrix, got "
                         f"{scores.shape}")
    diff = scores - PUBLISHED_COLAB_SCORES
    diagonal_first = bool(np.all(np.argmax(scores, axis=1) == np.arange(len(scores))))
    close = bool(np.all(np.abs(diff) <= PUBLISHED_TOLERANCE))
    names = [res.filename[:22] for res, _ in COLAB_VIDEOS]
    lines = [f"{'query':<16}{'video':<24}{'ours':>8}{'published':>11}{'diff':>8}  ok"]
    for i, query in enumerate(COLAB_QUERIES):
        for j, name in enumerate(names):
            ok = abs(diff[i, j]) <= PUBLISHED_TOLERANCE
            lines.append(f"{query:<16}{name:<24}{scores[i, j]:>8.2f}"
                         f"{PUBLISHED_COLAB_SCORES[i, j]:>11.2f}{diff[i, j]:>+8.2f}  "
                         f"{'yes' if ok else 'NO'}")
    lines.append(f"each query ranks its own video first: {'yes' if diagonal_first else 'NO'}; "
                 f"all within {PUBLISHED_TOLERANCE}: {'yes' if close else 'NO'}")
    lines.append(f"published: {PUBLISHED_SOURCE}")
    return "\n".join(lines), diagonal_first and close


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def embed_video_files(model, paths, *, sampling: str = "colab", num_frames: int | None = None,
                      num_windows: int = 10, fps: float = 5.0, size: int = 224,
                      batch_size: int = 8, progress: bool | None = None):
    """Decode, embed and drop video files ``batch_size`` at a time (memory stays flat).

    ``sampling``: ``colab`` (the first ``num_frames`` frames, default 32) or ``windows``
    (``num_windows`` windows of ``num_frames`` frames, default 16, at ``fps``; embeddings
    averaged per video). Only one batch of clips is alive at any time, so the peak memory does
    not grow with the number of videos. Unreadable files are skipped.
    Returns ``(embeddings, ok_paths, failures)``: ``{"video_embedding": [N, 512], "mixed_5c":
    [N, 1024]}`` for the ``N`` readable files, those files, and a
    :class:`helpers.video.VideoError` per skipped file.
    """
    from helpers import progress as progress_bars
    from helpers import video

    if sampling not in ("colab", "windows"):
        raise ValueError(f"sampling must be 'colab' or 'windows', got {sampling!r}")
    num_frames = num_frames or (32 if sampling == "colab" else 16)
    for name, value in (("num_frames", num_frames), ("num_windows", num_windows),
                        ("size", size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a finite number above 0, got {fps!r}")
    paths = [Path(p) for p in paths]
    if sampling == "colab":
        sampler, options = video.colab_clip, dict(num_frames=num_frames, size=size)
    else:
        sampler, options = video.eval_windows, dict(num_windows=num_windows,
                                                    num_frames=num_frames, fps=fps, size=size)
    keys = ("video_embedding", "mixed_5c")
    outputs = {key: [] for key in keys}
    ok_paths, failures = [], []
    show = len(paths) > batch_size if progress is None else progress
    with progress_bars.bar(total=len(paths), desc="embedding videos", unit="video",
                           disable=not show, leave=False) as bar:
        for start in range(0, len(paths), batch_size):
            clips, ok, failed = video.load_clips(paths[start:start + batch_size], sampler,
                                                 progress=False, **options)
            failures += failed
            if ok:
                if sampling == "colab":
                    part = embed_videos(model, clips, batch_size, progress=False)
                else:
                    part = embed_video_windows(model, clips, batch_size, progress=False)
                for key in keys:
                    outputs[key].append(part[key])
                ok_paths += ok
            del clips  # the batch's frames go before the next batch is decoded
            bar.update(min(batch_size, len(paths) - start))
    dims = {"video_embedding": 512, "mixed_5c": 1024}
    embeddings = {key: np.concatenate(outputs[key]) if outputs[key]
                  else np.zeros((0, dims[key]), np.float32) for key in keys}
    return embeddings, ok_paths, failures


def _parser() -> argparse.ArgumentParser:
    from helpers import cli

    parser = cli.ArgumentParser(prog="python -m helpers.milnce",
                                description="MIL-NCE S3D (TF-Hub) batch tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser(
        "embed", help="embed video files and sentences into one .npz",
        description="Embed videos (video_embedding [N,512], mixed_5c [N,1024]) and sentences "
                    "(text_embedding [M,512]) with the notebooks' preprocessing. Unreadable "
                    "videos are skipped and listed. Videos are decoded and embedded a batch at "
                    "a time, so memory does not grow with their number. In tiny mode "
                    "(COURSE_MODE=tiny, or offline) the module is a small model trained here "
                    "on generated clips, not MIL-NCE.")
    embed.add_argument("--handle", default=None,
                       help=f"TF-Hub handle or local SavedModel folder (default {HANDLE}; "
                            f"Kaggle: {KAGGLE_HANDLE})")
    embed.add_argument("--video", action="append", default=[], metavar="FILE",
                       help="a video file (GIF, MP4, AVI, WebM); repeat for more")
    embed.add_argument("--text", action="append", default=[], metavar="SENTENCE",
                       help="a sentence; repeat for more")
    embed.add_argument("--out", required=True, type=cli.suffixed(cli.output_file, ".npz"),
                       help="output .npz file (checked writable before anything loads)")
    embed.add_argument("--sampling", choices=("colab", "windows"), default="colab",
                       help="colab: the first --frames frames (default); windows: --windows "
                            "windows of --frames frames at --fps, embeddings averaged")
    embed.add_argument("--frames", type=cli.positive_int, default=None,
                       help="frames per clip (default 32 for colab, 16 for windows)")
    embed.add_argument("--windows", type=cli.positive_int, default=10,
                       help="windows per video (windows)")
    embed.add_argument("--fps", type=cli.positive_float, default=5.0,
                       help="frame rate of windows")
    embed.add_argument("--size", type=cli.positive_int, default=224, help="crop side in pixels")
    embed.add_argument("--batch-size", type=cli.positive_int, default=8,
                       help="clips per model call (and videos decoded at a time)")
    return parser


def _embed_command(args) -> int:
    from helpers import atomic, report

    if not args.video and not args.text:
        print("error: give at least one --video or --text", file=sys.stderr)
        return 2
    handle = str(args.handle) if args.handle else default_handle()
    mode = "local" if _looks_local(handle) else resolve_mode(handle)
    if mode == "tiny":
        report.banner({RESOURCE: "tiny"})
    module = load(handle)

    frames = args.frames or (32 if args.sampling == "colab" else 16)
    video_files, skipped = [], []
    embeddings = {"video_embedding": np.zeros((0, 512), np.float32),
                  "mixed_5c": np.zeros((0, 1024), np.float32)}
    if args.video:
        with warnings.catch_warnings():  # each skipped file is reported once, below
            warnings.simplefilter("ignore", UserWarning)
            embeddings, ok, skipped = embed_video_files(
                module, args.video, sampling=args.sampling, num_frames=frames,
                num_windows=args.windows, fps=args.fps, size=args.size,
                batch_size=args.batch_size)
        video_files = [str(p) for p in ok]
        if not video_files:  # bad input, not a result: nothing is written
            for failure in skipped:
                print(f"error: {failure.path}: {failure.cause}", file=sys.stderr)
            print(f"error: none of the {len(args.video)} videos could be read; "
                  f"{args.out} was not written", file=sys.stderr)
            return 2
    text_embedding = embed_texts(module, args.text) if args.text else \
        np.zeros((0, 512), np.float32)
    atomic.save_npz(
        args.out,
        video_embedding=embeddings["video_embedding"], mixed_5c=embeddings["mixed_5c"],
        text_embedding=text_embedding,
        video_files=np.array(video_files, dtype=str), texts=np.array(args.text, dtype=str),
        skipped_files=np.array([f.path for f in skipped], dtype=str),
        skipped_reasons=np.array([f.cause for f in skipped], dtype=str),
        handle=np.array(handle), mode=np.array(mode), sampling=np.array(args.sampling),
        frames=np.array(frames), size=np.array(args.size))
    label = f" ({config.standin_label({RESOURCE: mode})}: not MIL-NCE's numbers)" if mode == "tiny" else ""
    print(f"wrote {args.out}: {len(video_files)} videos, {len(args.text)} sentences "
          f"(mode: {mode}, sampling: {args.sampling}, {frames} frames){label}")
    for failure in skipped:
        print(f"skipped {failure.path}: {failure.cause}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    """``python -m helpers.milnce embed ...``; exit status 2 for any bad input (one line)."""
    from helpers import cli

    return cli.main(_parser(), _embed_command, argv)
