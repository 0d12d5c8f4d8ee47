"""``python -m layerhub``: the ``layerhub`` command line."""

from __future__ import annotations

import sys

from layerhub._private.cli.command import main

if __name__ == "__main__":
    sys.exit(main())
