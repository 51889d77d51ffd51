"""Search a library's windows by text: exact with numpy, or approximate with usearch.

Scores are MIL-NCE's plain dot products ``text_embedding @ video_embedding`` (not cosines), as
everywhere in the course.

* :class:`ExactIndex`: one matrix product and a partial sort. The right tool up to about a
  million 512-d windows on a laptop (1M x 512 float32 is 2 GB; one query reads it all once).
* :class:`ApproximateIndex`: usearch's HNSW graph on the inner product. It answers in a
  fraction of the time at large sizes and may miss some true neighbours; its recall@10 against
  exact search and its speed-up at 1M synthetic vectors are measured in
  ``benchmarks/library_bench.py`` (the default settings' figures are in its docstring).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from helpers.library.store import Library


@dataclasses.dataclass(frozen=True)
class Hit:
    """One search result: a window of a video and its score."""

    video: str
    start_s: float
    end_s: float
    score: float
    row: int

    def __str__(self) -> str:
        return f"{self.video}\t{self.start_s:.2f}\t{self.end_s:.2f}\t{self.score:.4f}"


def _queries(query) -> np.ndarray:
    query = np.asarray(query, np.float32)
    return query[None] if query.ndim == 1 else query


class ExactIndex:
    """Exact top-k by dot product over ``embeddings [N, D]`` (float32, kept as given)."""

    def __init__(self, embeddings):
        self.embeddings = np.ascontiguousarray(np.asarray(embeddings, np.float32))

    def __len__(self) -> int:
        return len(self.embeddings)

    def search(self, query, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``query [D]`` or ``[Q, D]`` -> ``(rows [Q, k'], scores [Q, k'])``, best first,
        ``k' = min(k, N)``."""
        queries = _queries(query)
        k = min(int(k), len(self.embeddings))
        if k <= 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        scores = queries @ self.embeddings.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


class ApproximateIndex:
    """usearch HNSW index on the inner product over ``embeddings [N, D]``.

    ``connectivity`` / ``expansion_add`` / ``expansion_search``: usearch's graph degree and
    beam widths (larger: better recall, slower). Scores returned are dot products, like
    :class:`ExactIndex` (usearch's ``ip`` distance is ``1 - dot``).

    Why ``expansion_search=1024``: recall falls with the library's size at a fixed beam, and
    this index is for a million windows and more (below that, exact search). Measured on one
    build of 1,000,000 x 512 clustered synthetic vectors (connectivity 16, expansion_add 128;
    2 cores, 2026-12-06), recall@10 against exact search was 0.688 / 0.859 / 0.942 / 0.972 /
    0.992 at expansion_search 128 / 256 / 512 / 768 / 1024, at 1.2-1.5 / 2.0-2.2 / 2.3-2.9 /
    2.8-3.3 / 3.9 ms per query in a batch of 100 (exact numpy: 52-64 ms), so 1024 keeps a
    13-16x speed-up (35-50x for a query asked alone) with 0.99 recall; 768 (0.97, 19x) is the
    cheaper choice for a million. 100,000 vectors reached 1.0 at 128. A larger
    ``connectivity`` was not tried at 1M: that build took 1,841 s on the shared 2 cores.
    ``expansion_search`` can be changed on a built index (:attr:`expansion_search`).
    """

    def __init__(self, embeddings, connectivity: int = 16, expansion_add: int = 128,
                 expansion_search: int = 1024, threads: int = 0):
        from usearch.index import Index

        embeddings = np.ascontiguousarray(np.asarray(embeddings, np.float32))
        self._index = Index(ndim=embeddings.shape[1], metric="ip", dtype="f32",
                            connectivity=connectivity, expansion_add=expansion_add,
                            expansion_search=expansion_search)
        self._threads = threads
        self.connectivity, self.expansion_add = connectivity, expansion_add
        if len(embeddings):
            self._index.add(np.arange(len(embeddings), dtype=np.uint64), embeddings,
                            threads=threads)
        self._size = len(embeddings)

    def __len__(self) -> int:
        return self._size

    @property
    def expansion_search(self) -> int:
        """The search beam width; set it to trade speed for recall without rebuilding."""
        return int(self._index.expansion_search)

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"expansion_search must be at least 1, got {value}")
        self._index.expansion_search = int(value)

    def search(self, query, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        queries = _queries(query)
        k = min(int(k), self._size)
        if k <= 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        found = self._index.search(queries, k, threads=self._threads)
        # One query gives usearch's Matches (1-d, as many as it found), several BatchMatches
        # ([Q, k] padded, with counts); both become [Q, k], gaps marked -1 / -inf.
        counts = np.asarray(getattr(found, "counts", [len(found.keys)])).reshape(-1)
        keys = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        found_keys = np.asarray(found.keys).reshape(len(queries), -1)
        found_distances = np.asarray(found.distances, np.float32).reshape(len(queries), -1)
        for q, count in enumerate(counts):
            keys[q, :count] = found_keys[q, :count]
            scores[q, :count] = 1.0 - found_distances[q, :count]
        return keys, scores


def recall_at_k(exact_rows, approximate_rows, k: int = 10) -> float:
    """Fraction of the exact top-``k`` rows that the approximate top-``k`` also returns."""
    exact_rows, approximate_rows = np.asarray(exact_rows)[:, :k], np.asarray(approximate_rows)[:, :k]
    found = sum(len(set(e.tolist()) & set(a.tolist())) for e, a in zip(exact_rows, approximate_rows))
    return found / exact_rows.size


def make_index(library: Library, approximate: bool = False):
    """:class:`ExactIndex` (default) or :class:`ApproximateIndex` over a loaded library."""
    return ApproximateIndex(library.embeddings) if approximate else ExactIndex(library.embeddings)


def search(library: Library, text_embedding, k: int = 5, index=None) -> list[Hit]:
    """The ``k`` best windows of ``library`` for one ``text_embedding [D]``, best first.

    ``index``: a prebuilt index over ``library.embeddings`` (default: exact search).
    """
    index = index if index is not None else ExactIndex(library.embeddings)
    rows, scores = index.search(np.asarray(text_embedding, np.float32).reshape(-1), k)
    return [Hit(str(library.videos[r]), float(library.start_s[r]), float(library.end_s[r]),
                float(s), int(r)) for r, s in zip(rows[0], scores[0]) if r >= 0]


def search_text(library: Library, model, sentence: str, k: int = 5, index=None) -> list[Hit]:
    """Embed ``sentence`` with ``model`` (:func:`helpers.milnce.embed_texts`), then
    :func:`search`. Raises :class:`~helpers.library.store.LibraryError` for an index of a
    model without a text tower (``mmv-s3d``)."""
    from helpers import milnce
    from helpers.library import encoders

    encoders.check_text_search(library)

    return search(library, milnce.embed_texts(model, [sentence])[0], k, index)
