"""The tiny-mode MIL-NCE stand-in: the model of :mod:`helpers.training`, trained here once.

:func:`ensure_trained_in_cache` trains a run with a fixed seed and configuration (once per
cache: the run folder is keyed by everything that changes it, built under a lock so parallel
processes wait for one training instead of each training their own, and renamed into place when
complete), exports it in MIL-NCE's TF1 Hub format and installs it where ``hub.load(handle)``
looks in the tiny TF-Hub cache. The random stand-ins of :mod:`helpers.standins.milnce` stay for
the format tests.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from helpers import hub_format

#: Seed of the tiny-mode model (its corpus, initialisation and batches).
SEED = 0
LOSS = "milnce"
#: What the stand-in is, for banners and labels.
NOTE = "tiny stand-in: a small model trained here on generated clips, not MIL-NCE"
#: Its training steps, pinned so that a change of the command line's default does not retrain
#: it: the default, 600 (budget: 90 s on 2 cores, measured in ``benchmarks/run.py --only
#: training``).
STEPS = 600


def standin_config():
    """The stand-in's :class:`helpers.training.train.TrainConfig`: the defaults,
    :data:`STEPS` steps."""
    import dataclasses

    from helpers.training import train

    return dataclasses.replace(train.TrainConfig(), steps=STEPS)


def run_key(seed: int = SEED, loss: str = LOSS, config=None) -> str:
    """Hash of everything that changes the trained stand-in: code versions, loss, seed, config."""
    from helpers.training import train

    config = config or standin_config()
    blob = json.dumps({"train_version": train.VERSION, "export_version": EXPORT_VERSION,
                       "standin_version": hub_format.STANDIN_VERSION, "loss": loss, "seed": seed,
                       "config": config.to_dict(), "vocab": train.vocabulary()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: Bump when the exported graph changes (the run folder stays valid; the module is rebuilt).
EXPORT_VERSION = 2


def ensure_trained_run(cache_dir, seed: int = SEED, loss: str = LOSS, config=None,
                       log=None) -> Path:
    """The run folder ``<cache_dir>/trained_milnce/<key>`` (trained now if missing; one
    training at a time, renamed into place when complete: :func:`helpers.hub_format.install_folder`)."""
    from helpers.training import train

    config = config or standin_config()

    def build(dest):
        if log:
            log("training the tiny-mode stand-in once (a small model on generated clips) ...")
        train.save_run(train.train(loss, seed, config, log=log), dest)

    return hub_format.install_folder(Path(cache_dir) / "trained_milnce" / run_key(seed, loss, config),
                                     build, lambda folder: (folder / "report.json").exists(),
                                     lambda folder: True)


def ensure_trained_in_cache(tfhub_cache_dir, handle: str, run_cache_dir=None, log=None) -> Path:
    """Make ``<tfhub_cache_dir>/sha1(handle)`` hold the exported trained stand-in; return it.

    ``run_cache_dir``: where the run folder lives (default: beside the TF-Hub cache). A
    folder that is not a course stand-in (a real module) is refused; an older stand-in (random,
    or trained with other code or settings) is replaced (:func:`helpers.hub_format.install_folder`).
    """
    from helpers.training import export

    tfhub_cache_dir = Path(tfhub_cache_dir)
    run_cache_dir = Path(run_cache_dir) if run_cache_dir else tfhub_cache_dir.parent
    key = run_key()

    def is_current(target):
        marker = hub_format.read_marker(target)
        return bool(marker and marker.get("trained_key") == key)

    def build(dest):
        run_dir = ensure_trained_run(run_cache_dir, log=log)
        export.export_run_folder(run_dir, dest)
        report = json.loads((run_dir / "report.json").read_text())
        marker = {"standin": "milnce-s3d", "version": hub_format.STANDIN_VERSION, "seed": SEED,
                  "tf1_style": True, "trained": True, "trained_key": key, "loss": LOSS,
                  "test": report["test"], "chance_r1": report["chance_r1"], "note": NOTE}
        (dest / hub_format.MARKER).write_text(json.dumps(marker, indent=1))

    return hub_format.install_folder(tfhub_cache_dir / hub_format.cache_folder_name(handle),
                                     build, is_current,
                                     lambda target: hub_format.read_marker(target) is not None)
