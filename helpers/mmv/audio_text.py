"""MMV's audio and text towers on DeepMind's JAX checkpoints (eval mode), ready to call.

    from helpers.mmv import audio_text
    towers = audio_text.load("s3d")                      # the same checkpoint as the video model
    towers.embed_spectrograms(spec)   # [B, T', F, 1] -> {"aud_repr" 2048, "va" 512, "vat" 256}
    towers.embed_word_ids(ids)        # [B, N] int    -> {"txt_repr" 2048, "vat" 256, "va" 512}
    towers.embed_waveforms(wave)      # [B, samples] 48 kHz, via the course's front end
    towers.embed_texts(["a dog"])     # via the course's vocabulary (see helpers.mmv.frontend)

The checkpoint is read with ``parts=("audio", "text")`` (the audio ResNet50, the word
embeddings, ``text_conv1``, the heads ``audio_embd``, ``txt_embd``, ``txt2audio_embd`` and the
video's ``vis_embd``, through which FAC puts audio into vat). Tiny mode generates a full
stand-in checkpoint (random weights). Waveforms and sentences go through the course's own front
end and vocabulary (DeepMind did not publish theirs with the JAX code), so ``embed_waveforms``
and ``embed_texts`` show the computation, not DeepMind's numbers: those come from the TF-Hub
modules (:mod:`helpers.mmv.hub`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from helpers import resources
from helpers.mmv import frontend
from helpers.mmv.checkpoint import (CheckpointError, _check_backbone, check_parts, count_params,
                                    extract_visual, load_checkpoint)
from helpers.mmv.encoder import resolve_mode

PARTS = ("audio", "text")


@functools.lru_cache(maxsize=None)
def _compiled(vocab_size: int):
    import jax

    from helpers.mmv import towers

    apply = towers.transformed(vocab_size).apply
    audio = jax.jit(lambda p, s, spec: apply(p, s, spectrogram=spec)[0]["audio"])
    text = jax.jit(lambda p, s, ids: apply(p, s, word_ids=ids)[0]["text"])
    return audio, text


def _vocab_size(checkpoint) -> int:
    table = checkpoint["params"].get("text_audio_video/text_module/~/embed", {}).get("embeddings")
    return int(np.shape(table)[0]) if table is not None else 0


class AudioTextEncoder:
    """MMV's audio and text towers with their heads, on loaded checkpoint arrays (numpy out)."""

    def __init__(self, checkpoint: dict, source: str = "in memory"):
        import jax

        self.source = source
        self.vocab_size = _vocab_size(checkpoint)
        self.num_params = count_params(checkpoint["params"])
        self.params = jax.device_put(checkpoint["params"])
        self.state = jax.device_put(checkpoint["state"])
        self._audio, self._text = _compiled(self.vocab_size or 1)

    def __repr__(self):
        return f"AudioTextEncoder({self.num_params:,} parameters, from {self.source})"

    def embed_spectrograms(self, spectrograms, last_conv: bool = False) -> dict:
        """``[B, T', F, 1]`` (or ``[B, T', F]``) float32 -> ``aud_repr``, ``va``, ``vat``
        (and the ResNet's ``last_conv`` map when asked)."""
        spec = np.asarray(spectrograms, np.float32)
        if spec.ndim == 3:
            spec = spec[..., None]
        if spec.ndim != 4 or spec.shape[-1] != 1 or 0 in spec.shape:
            raise ValueError(f"spectrograms have shape {spec.shape}; expected [B, T', F, 1]")
        out = {k: np.asarray(v) for k, v in self._audio(self.params, self.state, spec).items()}
        if not last_conv:
            out.pop("last_conv")
        return out

    def embed_word_ids(self, word_ids) -> dict:
        """``[B, N]`` int ids in ``[0, vocab_size)`` -> ``txt_repr``, ``vat``, ``va``."""
        ids = np.asarray(word_ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"word ids have shape {ids.shape} and dtype {ids.dtype}; expected "
                             "[B, N] integers")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"word ids must be in [0, {self.vocab_size}); got "
                             f"[{ids.min()}, {ids.max()}]")
        out = self._text(self.params, self.state, ids.astype(np.int32))
        return {k: np.asarray(v) for k, v in out.items()}

    def embed_waveforms(self, waveforms) -> dict:
        """48 kHz waveforms ``[B, samples]`` in [-1, 1] -> the course's log-mel front end -> audio tower."""
        wave = frontend.check_waveforms(waveforms)
        return self.embed_spectrograms(frontend.log_mel_spectrogram(wave))

    def embed_texts(self, sentences) -> dict:
        """Sentences -> the course's vocabulary (:func:`helpers.mmv.frontend.word_ids`) -> text tower."""
        return self.embed_word_ids(frontend.word_ids(sentences))


def load(backbone: str = "s3d", checkpoint=None) -> AudioTextEncoder:
    """:class:`AudioTextEncoder` from a checkpoint path, a loaded dict, or ``None`` (the mode's
    checkpoint: downloaded, or in tiny mode a full stand-in). Raises :class:`CheckpointError`."""
    if checkpoint is None:
        checkpoint = full_checkpoint_path(backbone)
    if isinstance(checkpoint, (str, os.PathLike)):
        source = str(checkpoint)
        checkpoint = load_checkpoint(checkpoint, backbone, parts=PARTS)
    else:
        source = "in memory"
        if not isinstance(checkpoint, dict) or not {"params", "state"} <= set(checkpoint):
            raise CheckpointError("checkpoint must be a path or a dict with 'params' and 'state'")
        checkpoint = extract_visual(checkpoint, _check_backbone(backbone), source,
                                    check_parts(PARTS))
    return AudioTextEncoder(checkpoint, source)


def full_checkpoint_path(backbone: str, mode: str | None = None) -> Path:
    """The checkpoint with all three towers: the official file (real; it always has them) or,
    in tiny mode, a *full* stand-in (random weights), from :mod:`helpers.resources`."""
    return resources.path(f"mmv_{_check_backbone(backbone)}", mode or resolve_mode(backbone),
                          full=True)
