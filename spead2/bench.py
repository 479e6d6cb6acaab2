"""``python -m spead2.bench``: the same as the ``spead2_bench`` command (see spead2.tools.bench)."""

from __future__ import annotations

import sys

from spead2.tools.bench import main

if __name__ == "__main__":
    sys.exit(main())
