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

import os
import sys


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
        import tensorflow as tf

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
