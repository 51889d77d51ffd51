"""``python -m helpers.mmv``: the MMV command line (see :func:`helpers.mmv.main`)."""

import sys

from helpers.mmv import main

sys.exit(main())
