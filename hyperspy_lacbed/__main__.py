"""``python -m hyperspy_lacbed``: the command line."""

import sys

from hyperspy_lacbed.cli import main

sys.exit(main())
