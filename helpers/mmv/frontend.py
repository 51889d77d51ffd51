"""The course's own audio front end and text vocabulary for MMV (not DeepMind's).

DeepMind's JAX release publishes the audio and text towers' weights, but neither the
waveform-to-spectrogram front end nor the word -> id vocabulary of the 65,536 embedding rows
(its evaluation script feeds zero dummies, ``[B, 96, 40, 1]`` spectrograms and ``[B, 16]`` ids).
So anything the course computes from raw sound or raw sentences *with the JAX checkpoints* goes
through the choices below, which are the course's own:

* **audio**: 48 kHz mono waveform in [-1, 1] -> frames of 25 ms (1200 samples) every 10 ms (480)
  -> periodic Hann window -> power spectrum (2048-point FFT) -> 80 mel bands (HTK mel scale,
  20 Hz .. 24 kHz, triangular, unnormalised) -> ``log(mel + 1e-6)`` -> ``[B, frames, 80, 1]``
  (318 frames for TF-Hub's 3.2 s input of 153,600 samples);
* **text**: lowercase, words are runs of letters, digits, ``_`` and ``'``; word ``i`` of
  :data:`VOCABULARY` gets embedding row ``i`` (row 0 is padding, which no word maps to);
  unknown words are dropped; at most :data:`MAX_WORDS` words, padded with id 0.

With real checkpoints these ids pick rows that were trained for *other* words, so text
embeddings made this way mean nothing: for meaningful audio and text embeddings use the TF-Hub
modules (:mod:`helpers.mmv.hub`), which contain DeepMind's own front end and vocabulary. The
functions here run on numpy and on JAX arrays (so they can be traced into a SavedModel).
"""

from __future__ import annotations

import functools

import numpy as np

from helpers import words
from helpers.words import MAX_WORDS, VOCABULARY, tokenize  # noqa: F401  (tokenize: re-exported)

SAMPLE_RATE = 48_000
#: TF-Hub's audio input: 3.2 s at 48 kHz.
NUM_SAMPLES = 153_600
FRAME_LENGTH, FRAME_STEP, FFT_LENGTH = 1200, 480, 2048
NUM_MEL_BINS, MEL_LOW_HZ, MEL_HIGH_HZ = 80, 20.0, 24_000.0
LOG_OFFSET = 1e-6


def num_frames(num_samples: int = NUM_SAMPLES) -> int:
    """Spectrogram frames for ``num_samples`` samples (318 for 153,600)."""
    if num_samples < FRAME_LENGTH:
        raise ValueError(f"{num_samples} samples is shorter than one frame ({FRAME_LENGTH})")
    return 1 + (num_samples - FRAME_LENGTH) // FRAME_STEP


def _hz_to_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


@functools.lru_cache(maxsize=None)
def mel_matrix() -> np.ndarray:
    """``[FFT_LENGTH // 2 + 1, NUM_MEL_BINS]`` float32: triangular filters on the HTK mel scale."""
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, FFT_LENGTH // 2 + 1)
    edges = np.linspace(_hz_to_mel(MEL_LOW_HZ), _hz_to_mel(MEL_HIGH_HZ), NUM_MEL_BINS + 2)
    mel = _hz_to_mel(freqs)[:, None]
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (mel - lower) / (centre - lower)
    falling = (upper - mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0  # no DC
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=None)
def _window() -> np.ndarray:
    n = np.arange(FRAME_LENGTH)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / FRAME_LENGTH)).astype(np.float32)


def log_mel_spectrogram(waveform, xp=None):
    """``[B, N]`` waveform at 48 kHz -> ``[B, frames, 80, 1]`` float32 log-mel spectrogram.

    ``xp``: the array module (``numpy`` or ``jax.numpy``; default: numpy for numpy input, else
    ``jax.numpy``). Frames are gathered with one index array, so the function traces to plain
    ops (gather, FFT, matmul) in JAX.
    """
    if xp is None:
        if isinstance(waveform, np.ndarray):
            xp = np
        else:
            import jax.numpy as xp  # noqa: N812
    frames = num_frames(int(waveform.shape[-1]))
    index = (np.arange(frames)[:, None] * FRAME_STEP + np.arange(FRAME_LENGTH)[None, :])
    framed = waveform[:, index] * _window()  # [B, frames, 1200]
    spectrum = xp.fft.rfft(framed, n=FFT_LENGTH, axis=-1)
    power = xp.real(spectrum) ** 2 + xp.imag(spectrum) ** 2
    mel = xp.matmul(power.astype(xp.float32), mel_matrix())
    return xp.log(mel + LOG_OFFSET)[..., None].astype(xp.float32)


class AudioError(ValueError):
    """A waveform has the wrong shape, type, range or rate; the message says which."""


def check_waveforms(waveforms, what: str = "waveforms") -> np.ndarray:
    """Validate ``[B, N]`` float waveforms in [-1, 1] (N >= one frame); return float32."""
    array = np.asarray(waveforms)
    if array.ndim == 1:
        raise AudioError(f"{what} has shape {array.shape}: one waveform; add a batch axis (w[None])")
    if array.ndim != 2 or 0 in array.shape:
        raise AudioError(f"{what} has shape {array.shape}; expected [B, samples] mono at 48 kHz")
    if not np.issubdtype(array.dtype, np.floating):
        raise AudioError(f"{what} has dtype {array.dtype}; expected float in [-1, 1] "
                         "(int16 samples: divide by 32768)")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise AudioError(f"{what} contains NaN or infinite values")
    peak = float(np.abs(array).max())
    if peak > 1 + 1e-3:
        raise AudioError(f"{what} has values up to {peak:.3g}; expected [-1, 1]"
                         + (" (int16 scale: divide by 32768)" if peak > 100 else ""))
    if array.shape[1] < FRAME_LENGTH:
        raise AudioError(f"{what} has {array.shape[1]} samples; at least {FRAME_LENGTH} "
                         f"(25 ms at 48 kHz) are needed, TF-Hub's modules take {NUM_SAMPLES}")
    return array


def vocabulary() -> list[str]:
    """The course's word list (index = embedding row; 0 is padding): :data:`helpers.words.VOCABULARY`."""
    return list(VOCABULARY)


def word_ids(sentences, max_words: int = MAX_WORDS) -> np.ndarray:
    """Sentences -> int32 ``[B, max_words]`` ids (unknown words dropped, padded with 0)."""
    return words.encode(sentences, VOCABULARY, max_words)
