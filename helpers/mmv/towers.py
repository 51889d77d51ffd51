"""MMV's audio and text towers in Haiku, eval mode, with the official parameter trees.

Taught in notebook 05 (``05_mmv_audio_and_text.ipynb``). The two towers and their heads:

* **audio**: a ResNet50 v2 (pre-activation bottlenecks, 3-4-6-3 blocks of 256-512-1024-2048
  channels, strides 1-2-2-2 after a 7x7/2 conv and a 3x3/2 max-pool) on a log-mel spectrogram
  ``[B, T', F, 1]`` -> final BN + ReLU -> mean over (time, frequency) = ``aud_repr`` (2048).
  ``audio_embd`` (Linear 2048 -> 512) puts it in the **va** space; by FAC, ReLU of that and the
  *video's* ``vis_embd`` head put it in **vat** (256).
* **text**: word ids ``[B, N]`` -> embedding rows (300) -> ``text_conv1`` (a width-1 1-D
  convolution, i.e. the same Linear 300 -> 2048 on every word) + ReLU -> max over the N positions
  (padding included: id 0 is a real row) = ``txt_repr`` (2048). ``txt_embd`` (Linear -> 256) is
  its **vat** embedding, ``txt2audio_embd`` (Linear -> 512) its embedding for audio.

Module paths are those of DeepMind's checkpoints (``text_audio_video/audio_module/~/res_net_v2/
~/block_group_0/block_0/~/conv_0``, ``text_audio_video/text_module/~/embed``, ...): a module
built in ``__init__`` is ``parent/~/child``, in ``__call__`` ``parent/child``, in another method
``m`` ``parent/~m/child``; each module below is built where the original builds it.

What the JAX release does not include (so the course supplies its own, see
:mod:`helpers.mmv.frontend`): the waveform-to-spectrogram front end and the word -> id vocabulary
of the 65,536 embedding rows.
"""

from __future__ import annotations

import functools

import haiku as hk
import jax
import jax.numpy as jnp

from helpers.mmv.models import _bn_relu, _conv2d, _max_pool, _VideoToTextHead

VOCAB_SIZE, WORD_DIM, SENTENCE_DIM = 65536, 300, 2048
AUDIO_DIM = 2048
VA_DIM, VAT_DIM = 512, 256
#: ResNet50: (blocks, output channels, stride) of the four block groups.
RESNET50_GROUPS = ((3, 256, 1), (4, 512, 2), (6, 1024, 2), (3, 2048, 2))


# --------------------------------------------------------------------------- audio ResNet50 v2


class _Bottleneck(hk.Module):
    """Pre-activation bottleneck: (BN-ReLU, conv) x3 with 1x1, 3x3/s, 1x1 convs.

    The projection shortcut (block 0 of a group) is a strided 1x1 conv of the first BN-ReLU
    output; otherwise the shortcut is the block's input itself.
    """

    def __init__(self, channels, stride, projection, name=None):
        super().__init__(name=name)
        self._proj = _conv2d(channels, 1, stride, name="shortcut_conv") if projection else None
        self._convs = (_conv2d(channels // 4, 1, name="conv_0"),
                       _conv2d(channels // 4, 3, stride, name="conv_1"),
                       _conv2d(channels, 1, name="conv_2"))

    def __call__(self, x):
        shortcut, net = x, x
        for index, conv in enumerate(self._convs):
            net = _bn_relu(net)
            if index == 0 and self._proj is not None:
                shortcut = self._proj(net)
            net = conv(net)
        return net + shortcut


class _BlockGroup(hk.Module):
    def __init__(self, blocks, channels, stride, name=None):
        super().__init__(name=name)
        self._blocks, self._channels, self._stride = blocks, channels, stride

    def __call__(self, x):
        projection = x.shape[-1] != self._channels  # block 0 changes the width
        for index in range(self._blocks):
            x = _Bottleneck(self._channels, self._stride if index == 0 else 1,
                            projection and index == 0, name=f"block_{index}")(x)
        return x


class ResNetV2(hk.Module):
    """ResNet50 v2 on ``[B, H, W, C]``; returns ``(pooled [B, 2048], last_conv [B, h, w, 2048])``.

    ``last_conv`` is the residual stream after the last block (before the final BN + ReLU).
    """

    def __init__(self, name="res_net_v2"):
        super().__init__(name=name)
        self._initial_conv = _conv2d(64, 7, 2, name="initial_conv")
        self._groups = [_BlockGroup(blocks, channels, stride, name=f"block_group_{i}")
                        for i, (blocks, channels, stride) in enumerate(RESNET50_GROUPS)]

    def __call__(self, x):
        x = _max_pool(self._initial_conv(x), (3, 3), (2, 2))
        for group in self._groups:
            x = group(x)
        last_conv = x
        return jnp.mean(_bn_relu(x), axis=(1, 2)), last_conv


class _AudioModule(hk.Module):
    def __init__(self, name="audio_module"):
        super().__init__(name=name)
        self._cnn = ResNetV2()

    def __call__(self, spectrogram):
        return self._cnn(spectrogram)


# --------------------------------------------------------------------------- text


class _TextModule(hk.Module):
    """Embedding lookup -> ``text_conv1`` (width-1 Conv1D 300 -> 2048) + ReLU -> max over words."""

    def __init__(self, vocab_size=VOCAB_SIZE, name="text_module"):
        super().__init__(name=name)
        self._embed = hk.Embed(vocab_size, WORD_DIM, name="embed")
        self._conv = hk.Conv1D(SENTENCE_DIM, 1, name="text_conv1")

    def __call__(self, word_ids):
        words = self._embed(word_ids)  # [B, N, 300]
        return jnp.max(jax.nn.relu(self._conv(words)), axis=1)


# --------------------------------------------------------------------------- heads and root


class _LinearHead(hk.Module):
    """``EmbeddingModule`` in "linear" mode without BN: ``final_projection`` (w, b)."""

    def __init__(self, size, name=None):
        super().__init__(name=name)
        self._size = size

    def __call__(self, x):
        return hk.Linear(self._size, name="final_projection")(x)


class AudioText(hk.Module):
    """The audio and text halves of MMV's ``text_audio_video`` model (FAC graph, eval mode)."""

    def __init__(self, vocab_size=VOCAB_SIZE, name="text_audio_video"):
        super().__init__(name=name)
        self._vocab_size = vocab_size

    def _get_pair_embedding_heads(self, kind):
        if kind == "audio":  # audio -> va, and the video's va -> vat head (FAC)
            return _LinearHead(VA_DIM, name="audio_embd"), _VideoToTextHead(name="vis_embd")
        return _LinearHead(VAT_DIM, name="txt_embd"), _LinearHead(VA_DIM, name="txt2audio_embd")

    def __call__(self, spectrogram=None, word_ids=None):
        out = {}
        if spectrogram is not None:
            if spectrogram.ndim == 3:
                spectrogram = spectrogram[..., None]
            aud_repr, last_conv = _AudioModule()(spectrogram)
            to_va, to_vat = self._get_pair_embedding_heads("audio")
            va = to_va(aud_repr)
            out["audio"] = {"aud_repr": aud_repr, "last_conv": last_conv, "va": va,
                            "vat": to_vat(va)}  # _VideoToTextHead applies the ReLU first
        if word_ids is not None:
            txt_repr = _TextModule(self._vocab_size)(word_ids)
            to_vat, to_va = self._get_pair_embedding_heads("text")
            out["text"] = {"txt_repr": txt_repr, "vat": to_vat(txt_repr), "va": to_va(txt_repr)}
        return out


@functools.lru_cache(maxsize=None)
def transformed(vocab_size: int = VOCAB_SIZE) -> hk.TransformedWithState:
    """``apply(params, state, spectrogram=None, word_ids=None) -> (outputs, state)``.

    ``spectrogram``: ``[B, T', F, 1]`` (or ``[B, T', F]``) float32; ``word_ids``: ``[B, N]``
    int32 in ``[0, vocab_size)``. ``outputs["audio"]``: ``aud_repr [B, 2048]``, ``last_conv
    [B, h, w, 2048]``, ``va [B, 512]``, ``vat [B, 256]``; ``outputs["text"]``: ``txt_repr
    [B, 2048]``, ``vat [B, 256]``, ``va [B, 512]``. ``vocab_size``: rows of the embedding table
    (65,536 in the checkpoints; an exported module may keep fewer).
    """
    return hk.without_apply_rng(hk.transform_with_state(
        lambda spectrogram=None, word_ids=None: AudioText(vocab_size)(spectrogram, word_ids)))


def tree_shapes(spectrogram_shape=(1, 96, 40, 1), words_shape=(1, 16), vocab_size=VOCAB_SIZE):
    """Shapes/dtypes of the (params, state) trees both towers create, without computing anything."""
    spectrogram = jax.ShapeDtypeStruct(spectrogram_shape, jnp.float32)
    word_ids = jax.ShapeDtypeStruct(words_shape, jnp.int32)
    return jax.eval_shape(transformed(vocab_size).init, jax.random.PRNGKey(0), spectrogram, word_ids)


__all__ = ["AudioText", "ResNetV2", "transformed", "tree_shapes", "VOCAB_SIZE", "WORD_DIM",
           "SENTENCE_DIM", "AUDIO_DIM", "VA_DIM", "VAT_DIM"]
