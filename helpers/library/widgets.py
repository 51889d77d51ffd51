"""The search box of notebook 07: type a sentence, see the best clips of the library play.

:func:`search_box` builds a :class:`SearchBox`: an ipywidgets ``Text`` (the query) above an
``HTML`` widget (the hits, as small looping GIFs from :func:`helpers.plots.animations_html`, the
stand-in label heading them in tiny mode). Only API present in both ipywidgets 7 (Colab's) and 8
is used: ``Text(continuous_update=False)`` observed on ``value`` (so a search runs on Enter or
when the box loses focus, not at every key), ``HTML``, ``VBox``. The callback's work is
:meth:`SearchBox.render`, a plain function of the query returning HTML, which the tests call
directly.
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import numpy as np

from helpers.library import search as searching
from helpers.library.store import Library
from helpers.library.windows import Windows

#: What the box shows before the first search and for an empty query.
EMPTY_MESSAGE = "Type a sentence (e.g. \u201ca red circle moving left\u201d) and press Enter."


def best_per_video(library: Library, text_embedding, k: int, index=None) -> list:
    """The ``k`` best videos for ``text_embedding [D]``, each by its best window, best first
    (:class:`helpers.library.search.Hit`)."""
    hits, seen = [], set()
    for hit in searching.search(library, text_embedding, len(library), index):
        if hit.video not in seen:
            seen.add(hit.video)
            hits.append(hit)
            if len(hits) == k:
                break
    return hits


def preview_frames(library: Library, hit, size: int = 96) -> np.ndarray:
    """The frames of ``hit``'s window, uint8 ``[T, size, size, 3]``, decoded afresh from its
    video at ``size`` pixels (the index keeps embeddings only). Raises
    :class:`helpers.video.VideoError`."""
    from helpers.library import windows as cutter

    windows = dataclasses.replace(Windows(**library.manifest["windows"]), size=size)
    plan = cutter.plan(hit.video, windows)
    spans = plan.spans()
    row = min(range(len(spans)), key=lambda i: abs(spans[i][0] - hit.start_s)
              + abs(spans[i][1] - hit.end_s))
    for _, _, _, frames in cutter.iter_windows(hit.video, windows, [row], the_plan=plan):
        return frames
    raise ValueError(f"{hit.video}: window {hit.start_s}-{hit.end_s} s not found")


class SearchBox:
    """A text box and the hits it found. ``widget``: the ipywidgets ``VBox`` to display;
    ``text`` and ``results``: its ``Text`` and ``HTML`` parts."""

    def __init__(self, library: Library, model, k: int = 4, size: int = 96, fps: float = 5.0,
                 index=None, standin=None):
        import ipywidgets

        from helpers.library import encoders

        encoders.check_text_search(library)  # an mmv-s3d index has no text tower
        self.library, self.model, self.k, self.size, self.fps = library, model, k, size, fps
        self.index = index if index is not None else searching.ExactIndex(library.embeddings)
        self.standin = standin
        self.text = ipywidgets.Text(value="", placeholder="a red circle moving left",
                                    description="Search:", continuous_update=False,
                                    layout=ipywidgets.Layout(width="60%"))
        self.results = ipywidgets.HTML(value=f"<p>{html.escape(EMPTY_MESSAGE)}</p>")
        self.text.observe(self.on_change, names="value")
        self.widget = ipywidgets.VBox([self.text, self.results])

    def render(self, query: str) -> str:
        """The HTML shown for ``query``: the ``k`` best videos as animated previews titled by
        rank, file name, window and score; a message for an empty query."""
        from helpers import milnce, plots

        query = (query or "").strip()
        if not query:
            return f"<p>{html.escape(EMPTY_MESSAGE)}</p>"
        if len(self.library) == 0:
            return "<p>The index holds no windows yet: build it first.</p>"
        text_embedding = milnce.embed_texts(self.model, [query])[0]
        hits = best_per_video(self.library, text_embedding, self.k, self.index)
        clips, titles, notes = [], [], []
        for rank, hit in enumerate(hits, 1):
            title = (f"{rank}. {Path(hit.video).name} {hit.start_s:.1f}-{hit.end_s:.1f} s, "
                     f"score {hit.score:.2f}")
            try:
                clips.append(preview_frames(self.library, hit, self.size))
                titles.append(title)
            except Exception as err:  # noqa: BLE001 - a moved or damaged file: list it, go on
                notes.append(f"<p>{html.escape(title)} (no preview: {html.escape(str(err))})</p>")
        head = f"<p>Best {len(hits)} videos for <b>{html.escape(query)}</b>:</p>"
        shown = plots.animations_html(clips, titles, fps=self.fps, width=self.size,
                                      standin=self.standin) if clips else ""
        return head + shown + "".join(notes)

    def on_change(self, change) -> None:
        """The widget's callback (``observe(names="value")``): render the new query."""
        self.results.value = self.render(change["new"])


def search_box(library: Library, model, k: int = 4, **kwargs) -> SearchBox:
    """A :class:`SearchBox` over ``library`` that embeds queries with ``model``; display its
    ``widget``. ``kwargs``: ``size`` (preview pixels), ``fps``, ``index``, ``standin``."""
    return SearchBox(library, model, k, **kwargs)
