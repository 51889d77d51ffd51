"""Support code for the video-text course (MIL-NCE and MMV).

Import the modules you need by name, e.g. ``from helpers import config, video``.
Importing this package is cheap: no TensorFlow or JAX is imported until a model
module asks for it.
"""

from helpers import config as _config
from helpers._project import __version__

_config.use_jax_compilation_cache()

__all__ = ["__version__"]
