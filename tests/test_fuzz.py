"""The short fuzz run of the test command, and the fuzz regressions.

* every saved input in ``fuzz/regressions/`` is replayed through cffi (always) and under
  AddressSanitizer + UndefinedBehaviorSanitizer (when the C compiler has them);
* a few seconds of blind random mutation through cffi, over seeds made from the interop vectors
  and synthetic traffic, with the fuzz target's invariants checked in Python;
* a few seconds of the same blind mutation in the C driver under gcc's sanitizers, and of
  libFuzzer when clang has it (skipped, saying why, where the toolchain is missing).

The long coverage-guided run is ``fuzz/run.sh`` (see fuzz/README.md).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
REGRESSIONS = FUZZ / "regressions"
sys.path.insert(0, str(FUZZ))

import build_targets as fuzz_build  # noqa: E402
import fuzz_input as fi  # noqa: E402
import make_seeds  # noqa: E402

#: Seconds of blind mutation per engine (cffi, sanitized C driver, libFuzzer).
QUICK_SECONDS = float(os.environ.get("SPEAD2_QUICK_FUZZ_SECONDS", "2"))
SEED = int(os.environ.get("SPEAD2_FUZZ_SEED", "20261125"))
SANITIZER_ENV = {
    "ASAN_OPTIONS": "allocator_may_return_null=1:detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}


def regression_files() -> list[Path]:
    return sorted(p for p in REGRESSIONS.iterdir() if p.is_file() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeds as fuzz/make_seeds.py writes them (vectors when present, synthetic always)."""
    out = tmp_path_factory.mktemp("seeds")
    seeds = make_seeds.synthetic_seeds() + make_seeds.hostile_seeds()
    vectors = make_seeds.default_vectors()
    if vectors.is_dir():
        seeds += make_seeds.vector_seeds(vectors)
    for i, seed in enumerate(seeds):
        (out / f"seed-{i:04d}").write_bytes(seed)
    return out


def test_regressions_exist() -> None:
    assert regression_files(), "fuzz/regressions/ holds the inputs the fuzzers found"


@pytest.mark.parametrize("path", regression_files(), ids=lambda p: p.name)
def test_regression_replay(path: Path) -> None:
    fi.replay(path.read_bytes())


def test_seeds_replay(seed_dir: Path) -> None:
    totals = {"packets_in": 0, "popped": 0}
    for path in sorted(seed_dir.iterdir()):
        counts = fi.replay(path.read_bytes())
        for key in totals:
            totals[key] += counts[key]
    # the seeds are real traffic: most of it decodes and yields heaps
    assert totals["packets_in"] > 1000
    assert totals["popped"] > 300


def test_quick_fuzz_cffi(seed_dir: Path) -> None:
    rng = random.Random(SEED)
    corpus = [p.read_bytes() for p in sorted(seed_dir.iterdir())]
    corpus += [p.read_bytes() for p in regression_files()]
    small = [c for c in corpus if len(c) <= 8192]
    deadline = time.monotonic() + QUICK_SECONDS
    runs = 0
    while time.monotonic() < deadline:
        data = fi.mutate(rng, rng.choice(small), small)
        try:
            fi.replay(data)
        except fi.InvariantError as exc:
            raise AssertionError(f"input {data.hex()} broke an invariant: {exc}") from exc
        runs += 1
    assert runs > 50


def _sanitized_binary() -> Path:
    try:
        return fuzz_build.build("gcc-asan")
    except fuzz_build.Unavailable as exc:
        pytest.skip(f"no sanitizer build of the fuzz target here: {exc}")


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **SANITIZER_ENV}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_regressions_sanitized(tmp_path: Path) -> None:
    binary = _sanitized_binary()
    proc = _run([str(binary), *map(str, regression_files())], tmp_path, 120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"replayed {len(regression_files())} inputs" in proc.stdout


def test_quick_fuzz_sanitized(seed_dir: Path, tmp_path: Path) -> None:
    binary = _sanitized_binary()
    cmd = [
        str(binary),
        "-t",
        str(QUICK_SECONDS),
        "-s",
        str(SEED),
        "-o",
        str(tmp_path),
        str(seed_dir),
        str(REGRESSIONS),
    ]
    proc = _run(cmd, tmp_path, 120 + QUICK_SECONDS)
    crashes = list(tmp_path.glob("crash-*"))
    assert proc.returncode == 0 and not crashes, (
        f"the sanitized fuzz driver failed; failing input saved as {crashes}\n"
        f"{proc.stdout}{proc.stderr[-6000:]}"
    )
    assert "mutated inputs" in proc.stdout


def libfuzzer(target: str) -> Path:
    try:
        return fuzz_build.build("libfuzzer", target=target)
    except fuzz_build.Unavailable as exc:
        pytest.skip(f"libFuzzer target {target} is not available: {exc}")


@pytest.mark.parametrize("target", ["kernel", "pcap"])
def test_quick_libfuzzer(target: str, seed_dir: Path, tmp_path: Path) -> None:
    binary = libfuzzer(target)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if target == "kernel":
        inputs = [seed_dir, REGRESSIONS]
    else:
        seeds = tmp_path / "seeds"
        seeds.mkdir()
        vectors = make_seeds.default_vectors()
        for i, seed in enumerate(make_seeds.pcap_seeds(vectors) if vectors.is_dir() else []):
            (seeds / f"seed-{i:04d}").write_bytes(seed)
        inputs = [seeds, *[p for p in [FUZZ / "regressions-pcap"] if p.is_dir()]]
    cmd = [
        str(binary),
        f"-max_total_time={max(1, round(QUICK_SECONDS))}",
        "-max_len=65536",
        f"-seed={SEED}",
        "-print_final_stats=1",
        f"-artifact_prefix={tmp_path}/",
        str(corpus),
        *map(str, inputs),
    ]
    proc = _run(cmd, tmp_path, 120 + QUICK_SECONDS)
    crashes = [p for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-", "timeout-", "oom-"))]
    assert proc.returncode == 0 and not crashes, f"libFuzzer found {crashes}\n{proc.stderr[-6000:]}"
    assert "stat::number_of_executed_units" in proc.stderr
