"""What a notebook shows about where it runs: versions, devices, mode, caches; and the tiny banner."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

from helpers import config

PACKAGES = ("tensorflow", "tf-keras", "tensorflow-hub", "jax", "jaxlib", "dm-haiku", "numpy",
            "scikit-learn", "av", "setuptools")


def in_colab() -> bool:
    return "google.colab" in sys.modules


def versions(packages=PACKAGES) -> dict[str, str]:
    """Installed versions of the course's main packages ('missing' where absent); no imports."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def devices(frameworks=("tensorflow", "jax")) -> dict[str, list[str]]:
    """Devices each framework sees. Imports the frameworks: call it only where they are needed."""
    out: dict[str, list[str]] = {}
    if "tensorflow" in frameworks:
        from helpers import gpu

        tf = gpu.import_tensorflow()
        out["tensorflow"] = [d.name for d in tf.config.list_logical_devices()]
    if "jax" in frameworks:
        from helpers import gpu

        with gpu.quiet_startup():  # JAX's CUDA probe logs like TensorFlow's
            import jax

            jax.devices()
        out["jax"] = [f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices()]
    return out


def environment(resources: dict[str, str] | None = None, frameworks=()) -> str:
    """A short plain-text environment report.

    ``resources``: resource name -> resolved mode (``real``/``tiny``), as returned by the model
    modules' ``resolve_mode()`` functions. ``frameworks``: which frameworks to ask for devices.
    """
    lines = ["Environment"]
    lines.append(f"  running in      : {'Google Colab' if in_colab() else 'local Python'} "
                 f"({platform.system()} {platform.machine()})")
    for name, version in versions().items():
        lines.append(f"  {name:<16}: {version}")
    if frameworks:
        for framework, names in devices(frameworks).items():
            lines.append(f"  {framework + ' devices':<16}: {', '.join(names)}")
    lines.append(f"  mode requested  : {config.requested_mode()}")
    for name, mode in (resources or {}).items():
        lines.append(f"  {name:<16}: {mode}{'  <-- generated stand-in' if mode == 'tiny' else ''}")
    lines.append(f"  cache root      : {config.cache_root()}")
    if os.environ.get("TFHUB_CACHE_DIR"):
        lines.append(f"  TFHUB_CACHE_DIR : {os.environ['TFHUB_CACHE_DIR']}")
    return "\n".join(lines)


TRAINED_BANNER_TEXT = (
    "TINY MODE: {what} is {note}. Its numbers show what that small model learnt, NOT results "
    "of the real model. Run with internet access (or COURSE_MODE=real) for real results."
)


def labelled(text: str, resources=None) -> str:
    """``text`` under the stand-in label line (as :func:`helpers.retrieval.format_metrics` puts
    it) when stand-ins made it; ``text`` unchanged when everything is real. ``resources`` as for
    :func:`helpers.config.standin_label`. Notebooks print every number a model made through it.
    """
    label = config.standin_label(resources)
    return f"[{label.upper()}]\n{text}" if label else text


def environment_line(resources: dict[str, str] | None = None, frameworks=()) -> str:
    """The one-line report notebooks 01 on print (notebook 00 prints :func:`environment`).

    Python and the main frameworks' versions, their devices (``frameworks``, as for
    :func:`devices`), and the mode of each resource (``name -> real | tiny``).
    """
    found = versions(("tensorflow", "jax", "dm-haiku", "numpy"))
    parts = [f"python {found.pop('python')}"]
    parts += [f"{name} {version}" for name, version in found.items() if version != "missing"]
    if frameworks:
        for framework, names in devices(frameworks).items():
            parts.append(f"{framework} on {', '.join(names)}")
    modes = resources or {}
    if modes:
        parts.append("mode: " + ", ".join(f"{name} {mode}" for name, mode in modes.items()))
    return " | ".join(parts)


BANNER_TEXT = (
    "TINY MODE: {what} {verb} with random weights, not the official ones. "
    "Every number below (similarities, accuracies, recalls) is meaningless and is NOT a result "
    "of the real models. Run with internet access (or COURSE_MODE=real) for real results."
)


def banner_text(resources: dict[str, str] | None = None) -> str | None:
    """The banner's text if any resource is a tiny stand-in, else None.

    With no argument, uses every resource this process has resolved to tiny.
    """
    tiny = [n for n, m in resources.items() if m == "tiny"] if resources is not None \
        else config.tiny_resources()
    if not tiny:
        return None
    # A stand-in with a note of its own (a model trained here) is named with that note.
    noted = {n: config.standin_label({n: "tiny"}) for n in tiny}
    trained = [n for n in tiny if noted[n] and noted[n] != config.DEFAULT_STANDIN_NOTE]
    random = [n for n in tiny if n not in trained]
    parts = []
    if random:
        verb = "is a generated stand-in" if len(random) == 1 else "are generated stand-ins"
        parts.append(BANNER_TEXT.format(what=", ".join(random), verb=verb))
    for name in trained:
        parts.append(TRAINED_BANNER_TEXT.format(
            what=name, note=noted[name].removeprefix("tiny stand-in: ")))
    # One banner: the mark "TINY MODE:" opens it once, however many kinds of stand-in it names.
    return " ".join([parts[0]] + [part.removeprefix("TINY MODE: ") for part in parts[1:]])


def banner(resources: dict[str, str] | None = None) -> None:
    """Show a loud banner if any resource is a tiny stand-in (see :func:`banner_text`).

    In a notebook the banner is one output with an HTML and a plain-text form (the front end
    shows one of them); elsewhere it is printed. Returns nothing, so a notebook cell ending with
    it shows it once.
    """
    text = banner_text(resources)
    if text is None:
        return
    plain = "!" * 78 + "\n!! " + text + "\n" + "!" * 78
    try:
        from IPython import get_ipython
        from IPython.display import display

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        # One output with two forms: JupyterLab and Colab draw the red box, a text-only front
        # end prints the plain form. Printing as well would show the warning twice.
        display({"text/html": '<div style="border:4px solid #c00;background:#fee;color:#900;'
                              f'padding:12px;font-size:1.2em;font-weight:bold">&#9888; {text}</div>',
                 "text/plain": plain}, raw=True)
    else:
        print(plain)
