"""``python -m interp.cli``: the same command line as ``interp``."""

from interp.cli import main

main()
