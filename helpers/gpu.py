"""Let TensorFlow (MIL-NCE) and JAX (MMV) share one GPU in the same Python process.

By default each framework claims the GPU for itself: JAX preallocates 75 % of its memory at the
first JAX operation, and TensorFlow maps nearly all of it when it first touches the device.
Whichever comes second then fails with an out-of-memory error. The fix is two settings made
*before* either framework uses the GPU:

* JAX: ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (allocate on demand) and, optionally,
  ``XLA_PYTHON_CLIENT_MEM_FRACTION`` (an upper bound). These are read when JAX's backend starts.
* TensorFlow: ``tf.config.experimental.set_memory_growth(gpu, True)`` for each GPU, which must run
  before TensorFlow initialises the device.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

#: What TensorFlow's and XLA's C++ side print on import and on first looking for devices,
#: whatever TF_CPP_MIN_LOG_LEVEL says (some are logged before the level is read, the CUDA probe
#: on a machine without a GPU is logged as an error). Lines holding one of these are dropped;
#: anything else, real errors included, is passed on.
STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "absl::InitializeLog",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
    "cuda_executor.cc",
    "cpu_feature_guard",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
    "rebuild TensorFlow with the appropriate compiler flags",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    # TF 2.20 (Colab's) logs the first XLA compile of a jit-compiled function, such as the MMV
    # TF-Hub stand-in's signatures, as INFO whatever the level (2.21 does not).
    "Compiled cluster using XLA!",
    "MLIR V1 optimization pass is not enabled",
)


@contextlib.contextmanager
def quiet_startup():
    """Route file descriptor 2 through a filter that drops :data:`STARTUP_NOISE` lines."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (some embedded interpreters): do nothing
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines()
            kept = [line for line in lines if not any(n in line for n in STARTUP_NOISE)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def import_tensorflow():
    """``import tensorflow`` without its start-up chatter (errors still show); return it.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the user chose a level (INFO and WARNING lines off,
    errors on), and drops the :data:`STARTUP_NOISE` lines printed regardless. The first device
    query (where the CUDA probe logs) runs inside the filter too.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_startup():
        import tensorflow as tf

        tf.config.list_physical_devices()
    return tf


def share_gpu(jax_memory_fraction: float | None = None) -> dict[str, str]:
    """Apply the settings above; return what was set (also fine on a machine without a GPU).

    Call it before the first TensorFlow or JAX computation. If JAX's backend has already started,
    its settings can no longer change, and the returned dict says so.
    """
    applied: dict[str, str] = {}
    jax_started = _jax_backend_started()
    if jax_started:
        applied["jax"] = "backend already initialised: restart the kernel to change its memory settings"
    else:
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        applied["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        if jax_memory_fraction is not None:
            if not 0.0 < jax_memory_fraction <= 1.0:
                raise ValueError(f"jax_memory_fraction must be in (0, 1], got {jax_memory_fraction}")
            os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{jax_memory_fraction:.2f}"
            applied["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{jax_memory_fraction:.2f}"
    if "tensorflow" in sys.modules or _tf_installed():
        tf = import_tensorflow()

        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError as err:  # TF already initialised this GPU
                applied[f"tensorflow {gpu.name}"] = f"unchanged ({err})"
                continue
            applied[f"tensorflow {gpu.name}"] = "memory growth on"
        if not gpus:
            applied["tensorflow"] = "no GPU visible: nothing to share"
    return applied


def _jax_backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(getattr(xla_bridge, "_backends", {}))
    except ImportError:  # private layout changed: assume started, never claim a setting took effect
        return True


def _tf_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None
