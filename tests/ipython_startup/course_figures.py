# Loaded into every notebook kernel the tests start (the root conftest.py points IPYTHONDIR
# here): a figure's text form lists its texts (titles, axis titles, stamped labels), so the
# checks in tests/notebook_output_checks.py can read what a figure says without OCR. The
# inline backend shows a figure as a PNG plus this text.
import matplotlib.figure as _figure


def _describe_figure(fig):
    texts = [t.get_text() for t in fig.texts]
    texts += [ax.get_title() for ax in fig.axes if ax.get_title()]
    if getattr(fig, "_suptitle", None) is not None:
        texts.append(fig._suptitle.get_text())
    return f"<Figure texts={texts!r} standin_label={getattr(fig, 'standin_label', '')!r}>"


_figure.Figure.__repr__ = _describe_figure
del _figure
