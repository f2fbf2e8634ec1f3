"""``python -m verl_toolmaster.eval``: see :mod:`verl_toolmaster.eval.cli`."""

import sys

from .cli import main

sys.exit(main())
