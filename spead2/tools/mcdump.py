"""``mcdump`` (also ``python -m spead2.tools.mcdump``): spead2_capture with the reference's mcdump
command line (see spead2.tools.capture)."""

from __future__ import annotations

import sys

from spead2.tools.capture import mcdump_main

if __name__ == "__main__":
    sys.exit(mcdump_main())
