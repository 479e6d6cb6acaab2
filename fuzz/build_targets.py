"""Builds the kernel fuzz target in its flavours (into fuzz/build/).

    python fuzz/build_targets.py [libfuzzer|gcc-asan|clang-asan|plain] ...

* ``libfuzzer``: clang, ``-fsanitize=fuzzer,address,undefined`` (the long run, fuzz/run.sh);
* ``gcc-asan`` / ``clang-asan``: the standalone driver (replay + blind mutation) under
  AddressSanitizer and UndefinedBehaviorSanitizer, for machines without libFuzzer;
* ``plain``: the standalone driver without sanitizers, for valgrind (fuzz/valgrind.sh).

Every flavour compiles the kernel's C files as they are, with ``-Wall -Wextra -Werror``.
:func:`build` returns the binary, or raises :class:`Unavailable` saying why it cannot be built here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NATIVE = ROOT / "spead2" / "_native"
BUILD = HERE / "build"

WARNINGS = ["-Wall", "-Wextra", "-Werror"]
COMMON = ["-std=c11", "-D_GNU_SOURCE", '-DSP2_BUILD_ID="fuzz"', f"-I{NATIVE}", "-pthread", "-g"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]

FLAVOURS: dict[str, tuple[str, list[str]]] = {
    "libfuzzer": (
        "clang",
        [
            "-O1",
            "-fsanitize=fuzzer,address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
        ],
    ),
    "gcc-asan": ("gcc", ["-O1", "-DSP2_FUZZ_MAIN", *SANITIZE]),
    "clang-asan": ("clang", ["-O1", "-DSP2_FUZZ_MAIN", *SANITIZE]),
    "plain": ("gcc", ["-O1", "-DSP2_FUZZ_MAIN"]),
}


class Unavailable(RuntimeError):
    """The flavour cannot be built on this machine (no compiler, or no sanitizer runtime)."""


#: Fuzz targets: the kernel, and the capture-file walker / BPF interpreter (pcap.c, when present).
TARGETS = {"kernel": "fuzz_kernel.c", "pcap": "fuzz_pcap.c"}


def sources(target: str = "kernel") -> list[Path]:
    return [HERE / TARGETS[target], *sorted(NATIVE.glob("*.c"))]


def _works(cc: str, flags: list[str], program: str) -> str | None:
    """None if cc can build and run a trivial program with these flags, else why not."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "t.c"
        src.write_text(program)
        exe = Path(tmp) / "t"
        proc = subprocess.run([cc, *flags, str(src), "-o", str(exe)], capture_output=True, text=True)
        if proc.returncode != 0:
            return f"{cc} {' '.join(flags)} cannot link: {proc.stderr.strip().splitlines()[-1:]}"
    return None


def build(flavour: str, force: bool = False, target: str = "kernel") -> Path:
    cc, flags = FLAVOURS[flavour]
    if shutil.which(cc) is None:
        raise Unavailable(f"{cc} is not installed")
    if target == "pcap":
        if not (NATIVE / "pcap.c").exists():
            raise Unavailable("this tree has no pcap.c")
        if "-DSP2_FUZZ_MAIN" in flags:
            raise Unavailable("the pcap target is libFuzzer-only")
    out = BUILD / f"fuzz_{target}-{flavour}"
    deps = [*sources(target), *NATIVE.glob("*.h"), *NATIVE.glob("api/*.h"), Path(__file__)]
    newest = max(p.stat().st_mtime for p in deps)
    if out.exists() and not force and out.stat().st_mtime > newest:
        return out
    probe = (
        "#include <stdint.h>\n#include <stddef.h>\n"
        "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void) d; (void) n; return 0; }\n"
        if flavour == "libfuzzer"
        else "int main(void) { return 0; }\n"
    )
    why = _works(cc, [f for f in flags if f.startswith("-fsanitize")], probe)
    if why:
        raise Unavailable(why)
    BUILD.mkdir(exist_ok=True)
    tmp = out.with_suffix(".tmp")
    cmd = [cc, *COMMON, *WARNINGS, *flags, *map(str, sources(target)), "-o", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"build failed: {' '.join(cmd)}\n{proc.stderr}")
    tmp.replace(out)
    return out


def main() -> None:
    """Arguments: flavours, or TARGET:FLAVOUR (e.g. pcap:libfuzzer)."""
    for arg in sys.argv[1:] or ["libfuzzer"]:
        target, _, flavour = arg.rpartition(":")
        try:
            print(build(flavour, force=True, target=target or "kernel"))
        except Unavailable as exc:
            print(f"{flavour}: unavailable: {exc}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
