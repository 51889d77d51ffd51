"""``python -m helpers.library``: the video-library command line (:mod:`helpers.library.commands`)."""

import sys

from helpers.library.commands import main

sys.exit(main())
