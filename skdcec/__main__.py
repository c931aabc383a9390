"""``python -m skdcec``: the ``skdcec`` command line."""

import sys

from skdcec.cli import main

sys.exit(main())
