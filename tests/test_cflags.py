"""The C kernel (and the fuzz target) compile cleanly with -Wall -Wextra -Werror, at the
optimisation levels where different warnings appear, with gcc and (when installed) clang."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "spead2" / "_native"
SOURCES = [*sorted(NATIVE.glob("*.c")), ROOT / "fuzz" / "fuzz_kernel.c"]
if (NATIVE / "pcap.c").exists():
    SOURCES.append(ROOT / "fuzz" / "fuzz_pcap.c")
FLAGS = ["-std=c11", "-D_GNU_SOURCE", '-DSP2_BUILD_ID="werror"', f"-I{NATIVE}", "-Wall", "-Wextra", "-Werror"]
EXTRA = ["-Wshadow", "-Wpointer-arith", "-Wstrict-prototypes", "-Wformat=2", "-Wundef"]


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_werror(cc: str, opt: str, tmp_path: Path) -> None:
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    procs = []
    for src in SOURCES:
        extra = ["-DSP2_FUZZ_MAIN"] if src.name == "fuzz_kernel.c" else []
        cmd = [cc, *FLAGS, opt, *extra, "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))]
        procs.append((src, subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)))
    failures = []
    for src, proc in procs:
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failures.append(f"{src.name}:\n{err}")
    assert not failures, "\n".join(failures)


#: The packet path proper (the readers' C files are held to -Wall -Wextra -Werror above).
KERNEL = ["packet.c", "heap.c", "stream.c", "ring.c", "alloc.c", "copy.c"]


def test_stricter_warnings(tmp_path: Path) -> None:
    """A few warnings beyond -Wall -Wextra that the kernel also keeps clean."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    for src in [NATIVE / name for name in KERNEL]:
        cmd = ["gcc", *FLAGS, *EXTRA, "-O2", "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{src.name}:\n{proc.stderr}"


def test_build_uses_werror_switch() -> None:
    """build_native.py adds -Werror when SPEAD2_WERROR is set (for CI-style builds)."""
    text = (ROOT / "build_native.py").read_text()
    assert "SPEAD2_WERROR" in text and "-Werror" in text
