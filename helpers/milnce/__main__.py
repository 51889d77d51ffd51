"""``python -m helpers.milnce``: the MIL-NCE command line (see :func:`helpers.milnce.main`)."""

import sys

from helpers.milnce import main

sys.exit(main())
