"""bench/compare.py (the local comparison that was spead2_bench): the built-in decode benchmark,
the harness wrapper, and what it says when the reference or the harness is missing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_tools_recv import TIMEOUT, assert_one_line_error

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH_DIR))
import compare as bench  # noqa: E402


def run_tool(_module: str, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH_DIR / "compare.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


TINY = ["--total-mib", "1", "--heap-sizes", "65536", "--packet-sizes", "1472", "--reps", "1", "--warmup", "0"]
NO_REF = ["--ref-python", "/nonexistent/python"]


def test_builtin_decode_without_reference(tmp_path: Path) -> None:
    proc = run_tool("spead2.bench", *NO_REF, "--bench-dir", str(tmp_path), "decode", *TINY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "note: no reference spead2 at /nonexistent/python" in out
    assert f"note: benchmark harness not found (looked in: {tmp_path})" in out
    assert re.search(r"^runs: aiospead2 \S+ \(.*spead2/__init__.py\) under ", out, re.MULTILINE)
    assert re.search(
        r"^ +64 KiB +1472  aiospead2 +\d+\.\d\d +\d+ +\d+\.\d\d +\d+\.\d\d +1\.00$", out, re.MULTILINE
    ), out


def test_udp_needs_harness_and_reference(tmp_path: Path) -> None:
    proc = run_tool("spead2.tools.bench", *NO_REF, "--bench-dir", str(tmp_path), "udp")
    assert proc.returncode == 1
    assert_one_line_error(proc, 1, "the UDP benchmark needs the harness (udp_lossless.py)")


def test_bad_arguments() -> None:
    assert_one_line_error(run_tool("spead2.tools.bench", "--heap-sizes", "x"), 2, "comma-separated list")
    assert_one_line_error(run_tool("spead2.tools.bench", "bogus"), 2, "invalid choice")


def test_finding_the_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in bench.HARNESS_FILES:
        (tmp_path / name).write_text("")
    assert bench.find_bench_dir(str(tmp_path))[0] == tmp_path.resolve()
    monkeypatch.setenv("SPEAD2_BENCH_DIR", str(tmp_path))
    assert bench.find_bench_dir(None)[0] == tmp_path.resolve()
    monkeypatch.delenv("SPEAD2_BENCH_DIR")
    _, looked = bench.find_bench_dir(None)
    root = bench.source_root()
    assert looked == [root / "bench", root.parent / "shared" / "bench"]
    monkeypatch.setenv("SPEAD2_REF_PYTHON", "/x/python")
    assert bench.find_ref_python(None) == Path("/x/python")
    monkeypatch.delenv("SPEAD2_REF_PYTHON")
    monkeypatch.setenv("SPEAD2_REF_VENV", "/venv")
    assert bench.find_ref_python(None) == Path("/venv/bin/python")


def test_our_interpreter_is_not_the_reference() -> None:
    """Pointing --ref-python at this package's interpreter is refused (it would compare us with us)."""
    import argparse

    ref, why = bench.reference(argparse.Namespace(ref_python=sys.executable))
    assert ref is None and "imports this package" in why


# ---------------------------------------------------------------- with the reference


def reference_python() -> str:
    python = bench.find_ref_python(None)
    assert python is not None
    if bench.probe(python) is None:
        pytest.skip(f"no reference spead2 at {python} (bench/setup.sh makes one)")
    return str(python)


@pytest.mark.interop
def test_builtin_decode_with_reference(tmp_path: Path) -> None:
    ref = reference_python()
    proc = run_tool("spead2.bench", "--ref-python", ref, "--builtin", "decode", *TINY, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^runs: reference spead2 4\.5\.1 ", proc.stdout, re.MULTILINE)
    assert re.search(r"^ +64 KiB +1472  reference .* 1\.00$", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^ +64 KiB +1472  aiospead2 ", proc.stdout, re.MULTILINE), proc.stdout


@pytest.mark.interop
def test_harness_decode_with_reference() -> None:
    ref = reference_python()
    bench_dir, looked = bench.find_bench_dir(None)
    if bench_dir is None:
        pytest.skip(f"benchmark harness not found (looked in {looked})")
    harness_args = ["--total-mib", "8", "--heap-sizes", "65536", "--packet-sizes", "1472"]
    harness_args += ["--reps", "1", "--rounds", "1", "--warmup", "0"]
    proc = run_tool("spead2.bench", "--ref-python", ref, "decode", "--", *harness_args, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"harness: {bench_dir}" in proc.stdout
    assert re.search(r"^ +65536 +1472 ref ", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^ +65536 +1472 mine ", proc.stdout, re.MULTILINE), proc.stdout
