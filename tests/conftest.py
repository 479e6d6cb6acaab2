"""Shared test configuration: every async test runs on the stdlib loop and on uvloop."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed wherever it exists
    uvloop = None

import spead2

sys.path.insert(0, str(Path(__file__).parent / "interop"))
import refvenv

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
if uvloop is not None:
    LOOP_FACTORIES["uvloop"] = uvloop.new_event_loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return LOOP_FACTORIES


@pytest.fixture(params=list(LOOP_FACTORIES))
def thread_pool(request: pytest.FixtureRequest) -> Iterator[spead2.ThreadPool]:
    """A ThreadPool whose thread runs the stdlib loop or uvloop (the blocking façade's readers
    run on it, so both loops get exercised)."""
    pool = spead2.ThreadPool(loop_factory=LOOP_FACTORIES[request.param])
    yield pool
    pool.stop()
    gc.collect()


@pytest.fixture(scope="session")
def reference() -> Path:
    """The reference spead2's interpreter, in a venv of its own made once (tests/interop/refvenv.py);
    tests that need it skip, saying why, when it cannot be had."""
    try:
        python, _ = refvenv.reference_python()
    except refvenv.Unavailable as exc:
        pytest.skip(f"reference spead2 unavailable: {exc}")
    return python
