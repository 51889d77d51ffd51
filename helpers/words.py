"""The course's words: one vocabulary and one tokenisation for every text tower it builds.

Shared by the stand-in builders (:mod:`helpers.standins.milnce`, the trained stand-in of
:mod:`helpers.training`) and the model code that feeds sentences to their weights
(:mod:`helpers.mmv.frontend`), so neither imports the other. The tokenisation is MIL-NCE's
(the authors' PyTorch port): lowercase, words are runs of ``[\\w']``, unknown words dropped, at
most 16 words, padded with id 0.
"""

from __future__ import annotations

import re

import numpy as np

MAX_WORDS = 16

#: Token pattern, in RE2 syntax for the graph: Python's ``[\w']`` on ``str`` is letters, digits,
#: underscore and apostrophe (Unicode-aware), i.e. ``[\pL\pN_']``.
NOT_WORD_RE2 = r"[^\pL\pN_']+"

#: The stand-in's vocabulary (id = line number in the asset file; id 0 is padding, "<pad>",
#: which the tokeniser can never produce). Enough words for the course's queries and prompts.
VOCABULARY = ["<pad>"] + sorted(set("""
a an the of in on at to and with from by for into over under up down left right top bottom
is are was being its it this that some one two three four five many people person man woman
men women child children boy girl dog cat horse bird fish baby player players team crowd
playing play plays playing guitar piano drums violin cello flute music song singing dancing
dance dancer waterfall water river sea ocean lake beach wave waves rain snow fire smoke sky
cloud clouds sun moon tree trees forest mountain mountains road street city car cars truck
bike bicycle motorcycle train boat drifting driving racing riding running walking jumping
swimming diving climbing skiing skating surfing cooking cutting chopping mixing pouring
eating drinking talking writing reading painting drawing typing cleaning washing brushing
teeth hair makeup face hands hand arm arms leg legs head ball basketball football soccer
tennis golf baseball volleyball boxing punching kicking throwing catching shooting hitting
push ups pushups pullups squats yoga exercise gym bench press lifting weights knitting
juggling archery fencing billiards bowling rowing kayaking sailing horse riding skydiving
red green blue yellow orange purple pink white black grey gray brown dark bright light
square squares circle circles ball balls stripe stripes striped checkerboard grid dots
noise pattern shape shapes block blocks line lines colour color colours colors gradient
moving moves move slowly quickly fast slow bouncing bounce spinning rotating turning
sliding flashing blinking growing shrinking scrolling falling rising flowing flying
video clip scene shot close view outdoors indoors inside outside kitchen room house
""".split()))


def tokenize(sentence: str) -> list[str]:
    """Lowercase; words are runs of ``[\\w']`` (what the graphs do with :data:`NOT_WORD_RE2`)."""
    return re.findall(r"[\w']+", sentence.lower())


def sentence_list(sentences) -> list:
    """A string (one sentence) or a sequence of strings -> a list; ``TypeError`` names the first
    item that is neither ``str`` nor ``bytes``. A dict or a set is refused (their keys or their
    order would be embedded silently), and so is an array of more than one axis."""
    if isinstance(sentences, (dict, set, frozenset)) or (
            hasattr(sentences, "keys") and not isinstance(sentences, (str, bytes))):
        raise TypeError(f"sentences is a {type(sentences).__name__}; pass a list of strings "
                        "(e.g. list(d.values()) for a dict of captions)")
    if isinstance(sentences, np.ndarray) and sentences.ndim > 1:
        raise ValueError(f"sentences has shape {sentences.shape}; pass a flat list of strings")
    sentences = [sentences] if isinstance(sentences, (str, bytes)) else list(sentences)
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, (str, bytes)):
            raise TypeError(f"sentence {index} is a {type(sentence).__name__}, not a string")
    return sentences


def encode(sentences, vocab, max_words: int = MAX_WORDS) -> np.ndarray:
    """Sentences (``str`` or UTF-8 ``bytes``) -> int32 ids ``[N, max_words]``: word ``i`` of
    ``vocab`` is id ``i`` (id 0, padding, is never produced), unknown words dropped, at most
    ``max_words`` kept, zero-padded."""
    sentences = sentence_list(sentences)
    index = {word: i for i, word in enumerate(vocab) if i}
    out = np.zeros((len(sentences), max_words), np.int32)
    for row, sentence in enumerate(sentences):
        if isinstance(sentence, bytes):
            sentence = sentence.decode("utf-8")
        ids = [index[w] for w in tokenize(sentence) if w in index][:max_words]
        out[row, :len(ids)] = ids
    return out
