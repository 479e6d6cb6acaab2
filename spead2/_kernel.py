"""The only module that imports the compiled C kernel: loading, build checks, status mapping."""

from __future__ import annotations

import errno
import hashlib
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any, NoReturn

_PACKAGE = Path(__file__).resolve().parent
_NATIVE = _PACKAGE / "_native"
_SOURCE_ROOT = _PACKAGE.parent
_REBUILD = (
    "rebuild it from the source tree with `pip install -e .` (or `pip install .`); "
    "that needs a C compiler and the Python headers"
)


def source_build_id() -> str | None:
    """Hash of the kernel sources, as ``build_native.build_id`` computes it, or None when this is
    not a source checkout (an installed wheel cannot go stale: it is installed whole)."""
    if not (_SOURCE_ROOT / "build_native.py").is_file():
        return None
    h = hashlib.sha256()
    paths = [*_NATIVE.glob("*.c"), *_NATIVE.glob("*.h"), *(_NATIVE / "api").glob("*.h")]
    for path in sorted(paths):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _has_kernel(package: Path) -> bool:
    return any((package / f"_native_kernel{suffix}").is_file() for suffix in EXTENSION_SUFFIXES)


def _installed_elsewhere() -> Path | None:
    """Another ``spead2`` package with a compiled kernel on ``sys.path`` (an installed copy hidden
    by this source tree), or None."""
    for entry in sys.path:
        candidate = (Path(entry or ".") / "spead2").resolve()
        if candidate != _PACKAGE and candidate.is_dir() and _has_kernel(candidate):
            return candidate
    return None


def _missing_kernel_message(exc: ImportError) -> str:
    what = f"spead2's C kernel (spead2._native_kernel) is missing or cannot be loaded ({exc})"
    if _has_kernel(_PACKAGE):
        return f"{what}; {_REBUILD}"
    if source_build_id() is None:
        return f"{what}; this installation is incomplete: reinstall aiospead2"
    # A checkout without a build: typically Python's current directory is the checkout root, so
    # `import spead2` finds the source tree before the copy that `pip install .` installed.
    where = f"Python imported spead2 from the source tree {_PACKAGE}, which has no compiled kernel"
    installed = _installed_elsewhere()
    if installed is not None:
        where += f", instead of the installed copy in {installed}"
    return (
        f"{what}. {where} (the current directory or PYTHONPATH comes first on sys.path). Either run "
        f"from another directory to use the installed copy, or build the kernel into this tree with "
        f"`pip install -e .` (needs a C compiler and the Python headers)."
    )


try:
    from spead2._native_kernel import ffi, lib
except ImportError as exc:
    raise ImportError(_missing_kernel_message(exc)) from exc

BUILD_ID: str = ffi.string(lib.sp2_build_id()).decode()
_expected = source_build_id()
if _expected is not None and _expected != BUILD_ID and not os.environ.get("SPEAD2_ALLOW_STALE_KERNEL"):
    raise ImportError(
        "spead2's C kernel is stale: it was built from other sources "
        f"(build {BUILD_ID}, sources {_expected}); {_REBUILD}"
    )

__all__ = ["BUILD_ID", "ensure", "enum_names", "ffi", "lib", "raise_status"]


def raise_status(
    status: int, what: str, invalid: type[Exception] = ValueError, detail: Any = None
) -> NoReturn:
    """Raises the Python exception of a negative ``sp2_status``: MemoryError, ``invalid`` (for
    SP2_E_INVALID; ``detail``, a C string saying why, replaces "invalid argument"), or OSError
    with errno."""
    if status == lib.SP2_E_NOMEM:
        raise MemoryError(f"{what}: out of memory")
    if status == lib.SP2_E_INVALID:
        why = "invalid argument" if detail is None or detail == ffi.NULL else detail
        raise invalid(f"{what}: {why if isinstance(why, str) else ffi.string(why).decode()}")
    if status == lib.SP2_E_OS:
        code = ffi.errno
        raise OSError(code, f"{what}: {os.strerror(code)}")
    raise RuntimeError(f"{what}: unexpected status {status}")


def ensure(status: int, what: str, invalid: type[Exception] = ValueError, detail: Any = None) -> int:
    """The one status check (pynacl's ``ensure`` habit): returns a non-negative status as it is,
    raises for an error status (see raise_status)."""
    if status < 0:
        raise_status(status, what, invalid, detail)
    return status


def check_pointer(ptr: Any, what: str) -> Any:
    """Returns ``ptr`` unless it is NULL, in which case errno says why."""
    if ptr == ffi.NULL:
        code = ffi.errno or errno.ENOMEM
        if code == errno.ENOMEM:
            raise MemoryError(f"{what}: out of memory")
        if code == errno.EINVAL:
            raise ValueError(f"{what}: invalid argument")
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return ptr


def enum_names(ctype: str, prefix: str) -> dict[int, str]:
    """The values of a C enum of the kernel's by number, named as Python sees them: ``prefix``
    removed, lower case (``SP2_DROP_TOO_SHORT`` -> ``too_short``).  Lists that follow a C enum
    are derived from it here, never kept in step by hand."""
    elements: dict[int, str] = ffi.typeof(ctype).elements
    return {value: name.removeprefix(prefix).lower() for value, name in sorted(elements.items())}
