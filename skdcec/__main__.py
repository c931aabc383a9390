"""``python -m skdcec``: the ``skdcec`` command line."""

from skdcec.cli import run

run()
