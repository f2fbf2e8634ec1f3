"""Prepare RL (and SFT) parquet from a benchmark's own files; see ``--help`` and docs/data.md."""

import sys

from verl_toolmaster.data.prepare import main

if __name__ == "__main__":
    sys.exit(main())
