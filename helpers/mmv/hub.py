"""DeepMind's TF-Hub MMV modules (all three modalities), loaded through the course's TF-Hub loader.

    from helpers.mmv import hub
    module = hub.load("s3d")                         # deepmind/mmv/s3d/1 (tiny: a stand-in)
    hub.embed_videos(module, clips)   # [B, T, H, W, 3] in [0, 1] -> before_head, va (512), vat (256)
    hub.embed_audio(module, waves)    # [B, 153600] 48 kHz in [-1, 1] -> va, vat, last_conv
    hub.embed_texts(module, ["a dog"])  # -> vat (256)

Handles: :data:`helpers.mmv.TFHUB_HANDLE`. Loading goes through
:func:`helpers.downloads.hub_load` (the MIL-NCE loader's: leftovers of killed downloads cleared,
stalls time out, dropped connections retried, damaged cache entries removed, the mode's cache).
Text and video meet in ``vat``, audio and video in ``va`` (and ``vat``); similarity is the dot
product.

Tiny mode installs (through :mod:`helpers.resources`), under each handle's cache folder, a
SavedModel exported by the course from the tiny stand-in checkpoint (:mod:`helpers.mmv.export`): the same signatures and output names,
random weights; its ``video`` signature equals the JAX model on that checkpoint by construction,
its audio front end and vocabulary are the course's own.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from helpers import config, downloads, gpu, milnce, resources
from helpers.mmv import frontend
from helpers.mmv.checkpoint import BACKBONES, _check_backbone
from helpers.mmv.inputs import check_clips
from helpers.mmv.encoder import DISPLAY_NAME
from helpers.words import sentence_list

SIGNATURES = ("video", "audio", "text")
HANDLE_PATH = {"s3d": "deepmind/mmv/s3d/1", "tsm_resnet_x1": "deepmind/mmv/tsm-resnet50/1",
               "tsm_resnet_x2": "deepmind/mmv/tsm-resnet50x2/1"}
#: Where to look by hand when the download is refused: tfhub.dev handles redirect to Kaggle
#: Models (this page is the usual place for DeepMind's modules; not checked by the course).
MANUAL_PAGE = "https://www.kaggle.com/models/deepmind/mmv"
VIDEO_KEYS, AUDIO_KEYS, TEXT_KEYS = ("before_head", "va", "vat"), ("va", "vat", "last_conv"), ("vat",)


class MmvHubError(RuntimeError):
    """Loading or calling an MMV TF-Hub module failed; the message says why and what to do."""

    def __init__(self, problem: str, fix: str = "", handle: str | None = None):
        self.problem, self.fix, self.handle = problem, fix, handle
        message = f"MMV TF-Hub{f' ({handle})' if handle else ''}: {problem}"
        super().__init__(message + (f"\nWhat to do: {fix}" if fix else ""))


def resource_name(backbone: str) -> str:
    return f"MMV {DISPLAY_NAME[backbone]} TF-Hub module"


def default_handle(backbone: str) -> str:
    """The official handle (``https://tfhub.dev/deepmind/mmv/...``) from the ``tfhub`` base URL."""
    return config.url("tfhub", HANDLE_PATH[_check_backbone(backbone)])


def resolve_mode(backbone: str, handle: str | None = None) -> str:
    """``real`` or ``tiny`` for ``backbone``'s module; tiny installs the stand-in (once, through
    :mod:`helpers.resources`)."""
    handle = handle or default_handle(backbone)
    mode = resources.mode(resource_name(backbone), handle=handle, backbone=backbone)
    if mode == "tiny":
        resources.path(resource_name(backbone), "tiny", handle=handle, backbone=backbone)
    return mode


# hub.load downloads the real module itself, so "fetching" it is naming its handle.
for _backbone in BACKBONES:
    resources.register(
        resource_name(_backbone), "mmv_hub", probe_url=lambda handle, **_: handle,
        is_cached=lambda handle, **_: any(downloads.hub_cache_folder(
            handle, config.cache_root() / "real" / "tfhub_modules").glob("*")),
        fetch=lambda handle, **_: handle)
del _backbone

#: Clips with sound. None are published with the models, so both modes use the generated ones
#: (notebook 05 replaces them with a learner's own files).
SOUND_CLIPS = "MMV clips with sound"


def _no_published_sound_clips():
    raise FileNotFoundError("no clips with sound are published with MMV; use your own files "
                            "(helpers.mmv.hub.read_audio) or the generated ones (sound_clips())")


resources.register(SOUND_CLIPS, "sound_clips", is_cached=lambda: False, probe_url=lambda: "",
                   fetch=_no_published_sound_clips)


def sound_clips() -> dict[str, Path]:
    """``{name: mp4 path}`` of the generated clips with sound (:mod:`helpers.standins.sound_clips`)."""
    return resources.path(SOUND_CLIPS, "tiny")


def load(backbone: str = "s3d", handle: str | os.PathLike | None = None, *, timeout: float = 60.0,
         retries: int = 2):
    """``hub.load`` the MMV module of ``backbone`` (or ``handle``: a URL or a local SavedModel
    folder) and check it has the ``video``, ``audio`` and ``text`` signatures.

    Raises :class:`MmvHubError` naming the problem and the fix; for a download its cause is the
    :class:`helpers.downloads.DownloadError`, whose cause is tensorflow_hub's own error.
    """
    handle = str(handle) if handle is not None else default_handle(backbone)
    module = milnce.load_hub_module(handle, MmvHubError, lambda h: resolve_mode(backbone, h),
                                    timeout=timeout, retries=retries, page=MANUAL_PAGE)
    check_signatures(module, handle)
    return module


def check_signatures(module, handle: str | None = None) -> None:
    """Raise :class:`MmvHubError` unless ``module`` has the three MMV signatures."""
    milnce.check_signatures(module, handle, SIGNATURES, MmvHubError, "an MMV module",
                            "load one of helpers.mmv.TFHUB_HANDLE")


def call_signature(signature, tensor) -> dict:
    """Call a one-input signature by the input's declared name (whatever the module calls it)."""
    _, kwargs = signature.structured_input_signature
    with gpu.quiet_startup():  # the first call may compile with XLA, which TF 2.20 logs
        if len(kwargs) == 1:
            return signature(**{next(iter(kwargs)): tensor})
        return signature(tensor)


def _numpy(result, keys):
    return {k: result[k].numpy().astype(np.float32, copy=False) for k in keys if k in result}


def embed_videos(module, clips, batch_size: int = 8) -> dict:
    """``video`` signature on clips ``[B, T, H, W, 3]`` float32 in [0, 1], in batches ->
    ``before_head``, ``va``, ``vat`` (numpy float32)."""
    clips = check_clips(clips, "tsm_resnet_x1")  # shape, range, dtype (evenness: the module's)
    return _batched(module.signatures["video"], clips, batch_size, VIDEO_KEYS)


def _batched(signature, inputs, batch_size, keys):
    """Run ``signature`` over ``inputs`` in batches of one size: the last batch is padded with
    copies of its last item (dropped after), so XLA-compiled modules compile one program."""
    tf = milnce.import_tensorflow()
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    size = min(batch_size, len(inputs))
    parts = []
    for start in range(0, len(inputs), size):
        batch = inputs[start:start + size]
        if len(batch) < size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], size - len(batch), axis=0)])
        parts.append(_numpy(call_signature(signature, tf.constant(batch)), keys))
    return {k: np.concatenate([p[k] for p in parts])[:len(inputs)] for k in parts[0]}


def embed_audio(module, waveforms, batch_size: int = 8) -> dict:
    """``audio`` signature on ``[B, 153600]`` 48 kHz waveforms in [-1, 1] -> ``va``, ``vat``,
    ``last_conv``."""
    wave = frontend.check_waveforms(waveforms)
    if wave.shape[1] != frontend.NUM_SAMPLES:
        raise frontend.AudioError(f"waveforms have {wave.shape[1]} samples; the TF-Hub modules "
                                  f"take {frontend.NUM_SAMPLES} (3.2 s at 48 kHz): use "
                                  "helpers.mmv.hub.fit_length")
    return _batched(module.signatures["audio"], wave, batch_size, AUDIO_KEYS)


def embed_texts(module, sentences) -> dict:
    """``text`` signature on sentences (the module tokenises them) -> ``vat`` ``[N, 256]``."""
    tf = milnce.import_tensorflow()
    sentences = sentence_list(sentences)
    result = call_signature(module.signatures["text"], tf.constant(sentences, dtype=tf.string))
    return _numpy(result, TEXT_KEYS)


# --------------------------------------------------------------------------- sound files


def fit_length(waveform: np.ndarray, num_samples: int | None = None) -> np.ndarray:
    """First ``num_samples`` (default 153,600) samples of a 1-D waveform, zero-padded if shorter."""
    num_samples = num_samples or frontend.NUM_SAMPLES
    out = np.zeros(num_samples, np.float32)
    piece = np.asarray(waveform, np.float32)[:num_samples]
    out[:len(piece)] = piece
    return out


def read_audio(path, sample_rate: int | None = None) -> np.ndarray:
    """Decode the first audio stream of ``path`` (wav, mp4, webm, ...) with PyAV -> mono float32
    in [-1, 1] at ``sample_rate`` (default 48 kHz). Raises :class:`helpers.mmv.frontend.AudioError`."""
    import av

    sample_rate = sample_rate or frontend.SAMPLE_RATE
    path = Path(path)
    if not path.is_file():
        raise frontend.AudioError(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise frontend.AudioError(f"{path}: has no audio stream (a silent video?)")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks = []
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except frontend.AudioError:
        raise
    except (av.FFmpegError, ValueError) as err:
        raise frontend.AudioError(f"{path}: cannot decode its audio ({err})") from None
    if not chunks:
        raise frontend.AudioError(f"{path}: the audio stream holds no samples")
    return np.clip(np.concatenate(chunks).astype(np.float32), -1.0, 1.0)
