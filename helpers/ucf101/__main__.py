"""``python -m helpers.ucf101``: the UCF101 command line (see :func:`helpers.ucf101.main`)."""

import sys

from helpers.ucf101 import main

sys.exit(main())
