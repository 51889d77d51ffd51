# Loaded into every notebook kernel the tests start (conftest.py points IPYTHONDIR here): a
# figure's text/plain form lists its texts (titles, axis titles, stamped labels), so the
# checks in tests/notebook_output_checks.py can read what a figure says without OCR.


def _describe_figure(fig, printer, cycle):
    texts = [t.get_text() for t in fig.texts]
    texts += [ax.get_title() for ax in fig.axes if ax.get_title()]
    if getattr(fig, "_suptitle", None) is not None:
        texts.append(fig._suptitle.get_text())
    label = getattr(fig, "standin_label", "")
    printer.text(f"<Figure texts={texts!r} standin_label={label!r}>")


def _register():
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        formatter = shell.display_formatter.formatters["text/plain"]
        formatter.for_type_by_name("matplotlib.figure", "Figure", _describe_figure)


_register()
del _register
