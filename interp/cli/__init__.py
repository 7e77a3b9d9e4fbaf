"""The ``interp`` command line (typer). Every command has ``--help``.

One module per group of commands; importing this package registers them all on ``app``, in the
order ``interp --help`` lists them. Heavy libraries load inside the commands, so ``--help``,
``--version`` and ``models`` answer in well under a second.
"""

# isort: off
from interp.cli import heads  # noqa: F401 (registers models, info, scan, validate)
from interp.cli import discovery  # noqa: F401 (circuit, families)
from interp.cli import text  # noqa: F401 (calibrate, generate, anchors)
from interp.cli import serve  # noqa: F401 (dashboard)
from interp.cli import runs  # noqa: F401 (train-toy, sweep, cache-dir)

# isort: on
from interp.cli.common import app, main

__all__ = ["app", "main"]
