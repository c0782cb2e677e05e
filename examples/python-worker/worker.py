#!/usr/bin/env python3
"""Runs the example Baton worker (the `baton_worker` package next to this file; see README.md).

    python worker.py

is the same as `python -m baton_worker` run from this directory. To serve a real model, replace
`example_model` in `baton_worker/cli.py` with yours.
"""

import sys

from baton_worker.cli import main

if __name__ == "__main__":
    sys.exit(main())
