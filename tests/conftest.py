"""Shared test configuration: every async test runs on the stdlib loop and on uvloop."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator, Mapping

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed wherever it exists
    uvloop = None

import spead2


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture
def thread_pool() -> Iterator[spead2.ThreadPool]:
    pool = spead2.ThreadPool()
    yield pool
    pool.stop()
    gc.collect()
