"""cffi builder for the C receive kernel (out-of-line API mode).

The public headers in ``spead2/_native/api/`` are written without preprocessor directives so that
they double as the cffi cdef; every ``.c`` file in ``spead2/_native/`` is compiled into the
extension ``spead2._native_kernel``. The build id (a hash of those sources) is compiled in, so
that ``spead2._kernel`` can tell a stale extension from a current one.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
NATIVE = HERE / "spead2" / "_native"
API = NATIVE / "api"
# Order matters: later headers use types declared by earlier ones.
API_HEADERS = ["kernel.h", "alloc.h", "readers.h", "send.h", "chunk.h", "capture.h"]


def sources() -> list[Path]:
    return sorted(NATIVE.glob("*.c"))


def build_id() -> str:
    """Hash of everything compiled in; ``spead2._kernel.source_build_id`` computes the same."""
    h = hashlib.sha256()
    for path in sorted([*NATIVE.glob("*.c"), *NATIVE.glob("*.h"), *API.glob("*.h")]):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cdef_text() -> str:
    return "\n".join((API / name).read_text() for name in API_HEADERS)


def compile_args() -> list[str]:
    if sys.platform == "win32":
        return ["/O2"]
    args = ["-O3", "-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra"]
    if os.environ.get("SPEAD2_WERROR"):
        args.append("-Werror")
    if os.environ.get("SPEAD2_SANITIZE"):
        args += ["-fsanitize=" + os.environ["SPEAD2_SANITIZE"], "-fno-omit-frame-pointer", "-g"]
    return args


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "spead2._native_kernel",
    '#include "internal.h"\n#include "api/capture.h"\n',
    sources=[str(p.relative_to(HERE)) for p in sources()],
    include_dirs=[str(NATIVE.relative_to(HERE))],
    define_macros=[("SP2_BUILD_ID", '"' + build_id() + '"'), ("_GNU_SOURCE", "1")],
    extra_compile_args=compile_args(),
    extra_link_args=(
        ["-fsanitize=" + os.environ["SPEAD2_SANITIZE"]] if os.environ.get("SPEAD2_SANITIZE") else []
    )
    + ([] if sys.platform in ("win32", "darwin") else ["-pthread"]),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
