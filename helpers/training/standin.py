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
import os
import shutil
import tempfile
from pathlib import Path

#: Seed of the tiny-mode model (its corpus, initialisation and batches).
SEED = 0
LOSS = "milnce"
#: What the stand-in is, for banners and labels.
NOTE = "tiny stand-in: a small model trained here on generated clips, not MIL-NCE"


def run_key(seed: int = SEED, loss: str = LOSS, config=None) -> str:
    """Hash of everything that changes the trained stand-in: code versions, loss, seed, config."""
    from helpers.standins import milnce as random_standin
    from helpers.training import train

    config = config or train.TrainConfig()
    blob = json.dumps({"train_version": train.VERSION, "export_version": EXPORT_VERSION,
                       "standin_version": random_standin.VERSION, "loss": loss, "seed": seed,
                       "config": config.to_dict(), "vocab": train.vocabulary()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: Bump when the exported graph changes (the run folder stays valid; the module is rebuilt).
EXPORT_VERSION = 1


def ensure_trained_run(cache_dir, seed: int = SEED, loss: str = LOSS, config=None,
                       log=None) -> Path:
    """The run folder ``<cache_dir>/trained_milnce/<key>`` (trained now if missing)."""
    from helpers import atomic
    from helpers.training import train

    config = config or train.TrainConfig()
    folder = Path(cache_dir) / "trained_milnce" / run_key(seed, loss, config)
    if (folder / "report.json").exists():
        return folder
    with atomic.locked(folder):
        if (folder / "report.json").exists():  # another process trained it while we waited
            return folder
        if log:
            log("training the tiny-mode stand-in once (a small model on generated clips) ...")
        run = train.train(loss, seed, config, log=log)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
        try:
            train.save_run(run, tmp / "run")
            if folder.exists():
                shutil.rmtree(folder)
            os.rename(tmp / "run", folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def ensure_trained_in_cache(tfhub_cache_dir, handle: str, run_cache_dir=None, log=None) -> Path:
    """Make ``<tfhub_cache_dir>/sha1(handle)`` hold the exported trained stand-in; return it.

    ``run_cache_dir``: where the run folder lives (default: beside the TF-Hub cache). A
    folder that is not a course stand-in (a real module) is refused; an older stand-in (random,
    or trained with other code or settings) is replaced.
    """
    from helpers import atomic
    from helpers.standins import milnce as random_standin
    from helpers.training import export

    tfhub_cache_dir = Path(tfhub_cache_dir)
    run_cache_dir = Path(run_cache_dir) if run_cache_dir else tfhub_cache_dir.parent
    key = run_key()
    target = tfhub_cache_dir / random_standin.cache_folder_name(handle)

    def current():
        marker = random_standin.read_marker(target)
        return bool(marker and marker.get("trained_key") == key)

    if current():
        return target
    run_dir = ensure_trained_run(run_cache_dir, log=log)
    # (Not locked as <target>.lock: that name is tensorflow_hub's own download lock.)
    with atomic.locked(run_cache_dir / "trained_milnce" / f"install-{target.name}"):
        if current():
            return target
        if target.exists() and any(target.iterdir()) and random_standin.read_marker(target) is None:
            raise FileExistsError(f"{target} holds a module that is not the course's stand-in; "
                                  f"refusing to overwrite it (is this a real TF-Hub cache?)")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=tfhub_cache_dir))
        try:
            export.export_run_folder(run_dir, tmp / "module")
            report = json.loads((run_dir / "report.json").read_text())
            marker = {"standin": "milnce-s3d", "version": random_standin.VERSION,
                      "seed": SEED, "tf1_style": True, "trained": True, "trained_key": key,
                      "loss": LOSS, "test": report["test"], "chance_r1": report["chance_r1"],
                      "note": NOTE}
            (tmp / "module" / random_standin.MARKER).write_text(json.dumps(marker, indent=1))
            if target.exists():
                os.replace(target, tmp / "old")
            os.rename(tmp / "module", target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
