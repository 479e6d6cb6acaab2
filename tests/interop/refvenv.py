"""The reference spead2 (from PyPI) in a venv of its own, created once and cached.

Both the reference and this project import as ``spead2``, so the reference runs as a separate
process: its interpreter started outside the checkout, without PYTHONPATH (``-E -s``).

Where it is: ``$SPEAD2_REF_PYTHON`` (an interpreter, used as is), else ``$SPEAD2_REF_VENV``,
else ``~/.cache/spead2-ref-venv`` (the venv the benchmarks use too).  A missing venv is created
with ``python -m venv`` and ``pip install spead2==4.5.1 numpy uvloop`` (network access to PyPI).
``$SPEAD2_REF_NO_INSTALL=1`` forbids installing.

Run this file to create (or check) it, e.g. from CI before the tests::

    python tests/interop/refvenv.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VERSION = os.environ.get("SPEAD2_REF_VERSION", "4.5.1")
PACKAGES = [f"spead2=={VERSION}", "numpy", "uvloop"]
INSTALL_TIMEOUT = 900


class Unavailable(Exception):
    """The reference cannot be used; the message says why (and how to fix it)."""


def venv_dir() -> Path:
    return Path(os.environ.get("SPEAD2_REF_VENV") or Path.home() / ".cache" / "spead2-ref-venv")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}


def command(python: str | Path, *args: str) -> list[str]:
    """How to start the reference interpreter (never picking up this checkout's spead2)."""
    return [str(python), "-E", "-s", *args]


def probe(python: str | Path) -> dict[str, str]:
    """The reference's version and location; raises Unavailable if it is not usable."""
    code = (
        "import json, spead2, spead2.send, numpy; "
        "print(json.dumps({'version': spead2.__version__, 'file': spead2.__file__}))"
    )
    try:
        proc = subprocess.run(
            command(python, "-c", code),
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
            env=clean_env(),
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"cannot run {python}: {exc}") from None
    if proc.returncode != 0:
        raise Unavailable(f"{python} cannot import the reference spead2: {proc.stderr.strip()[-500:]}")
    info: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    if info["version"] != VERSION:
        raise Unavailable(f"{python} has spead2 {info['version']}, not {VERSION}")
    checkout = str(Path(__file__).resolve().parents[2])
    if info["file"].startswith(checkout):
        raise Unavailable(f"{python} imports this checkout's spead2 ({info['file']}), not the reference")
    return info


def _create(target: Path) -> None:
    if os.environ.get("SPEAD2_REF_NO_INSTALL"):
        raise Unavailable(f"no reference venv at {target} and SPEAD2_REF_NO_INSTALL is set")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        base = getattr(sys, "_base_executable", sys.executable)
        steps = [
            [base, "-m", "venv", str(staging)],
            [
                str(staging / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *PACKAGES,
            ],
        ]
        for step in steps:
            try:
                proc = subprocess.run(
                    step, capture_output=True, text=True, env=clean_env(), timeout=INSTALL_TIMEOUT
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise Unavailable(
                    f"cannot create the reference venv ({' '.join(step[:4])}...): {exc}"
                ) from None
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip()[-800:]
                raise Unavailable(
                    f"cannot install the reference ({' '.join(PACKAGES)}) from PyPI into {target}: {tail}"
                )
        if target.exists():
            shutil.rmtree(target)  # a broken venv: replaced
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def reference_python() -> tuple[Path, dict[str, str]]:
    """The reference interpreter and what ``probe`` says of it, creating the venv if needed."""
    explicit = os.environ.get("SPEAD2_REF_PYTHON")
    if explicit:
        return Path(explicit), probe(explicit)
    target = venv_dir()
    python = target / "bin" / "python"
    try:
        return python, probe(python)
    except Unavailable:
        pass
    lock_path = target.parent / (target.name + ".lock")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # one creator at a time
        except ImportError:  # pragma: no cover - not POSIX
            pass
        try:
            return python, probe(python)  # made by another process meanwhile
        except Unavailable:
            _create(target)
    return python, probe(python)


def ensure_modules(python: str | Path, packages: dict[str, str]) -> None:
    """Makes the reference's interpreter import each module of ``packages`` (module name: pip
    requirement), installing what is missing into its venv from PyPI (the chunk benchmarks need
    numba and scipy there).  Raises Unavailable if that cannot be done."""
    missing = []
    for module, requirement in packages.items():
        proc = subprocess.run(
            command(python, "-c", f"import {module}"),
            capture_output=True,
            cwd=tempfile.gettempdir(),
            env=clean_env(),
            timeout=120,
        )
        if proc.returncode != 0:
            missing.append(requirement)
    if not missing:
        return
    if os.environ.get("SPEAD2_REF_NO_INSTALL"):
        raise Unavailable(f"{python} lacks {' '.join(missing)} and SPEAD2_REF_NO_INSTALL is set")
    step = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *missing]
    try:
        proc = subprocess.run(step, capture_output=True, text=True, env=clean_env(), timeout=INSTALL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"cannot install {' '.join(missing)} for {python}: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise Unavailable(f"cannot install {' '.join(missing)} for {python}: {tail}")


if __name__ == "__main__":
    try:
        where, found = reference_python()
    except Unavailable as exc:
        sys.exit(f"reference spead2 unavailable: {exc}")
    print(f"reference spead2 {found['version']} at {found['file']} (python: {where})")
