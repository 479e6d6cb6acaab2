"""The ring's hand-off policy between a producer and a consumer that share one CPU or not.

Both sides run on one fresh thread pinned (or not) to CPUs, with a producer that may wait in C
(``full_wait_ns`` > 0, as under the blocking façade): the ring reads the thread's affinity itself.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable

import pytest
from kernel_harness import EncHeap, Encoder, Item, Kernel

from spead2._kernel import lib

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")


def run_pinned(cpus: set[int], body: Callable[[], None]) -> None:
    """Runs ``body`` on a new thread pinned to ``cpus`` (the ring caches affinity per thread)."""
    errors: list[BaseException] = []

    def main() -> None:
        try:
            os.sched_setaffinity(0, cpus)
            body()
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def readable(fd: int) -> bool:
    return select.select([fd], [], [], 0)[0] == [fd]


def small_heaps(n: int) -> bytes:
    return b"".join(Encoder().stream_packets([EncHeap(c, [Item(0x1000, b"abc")]) for c in range(1, n + 1)]))


def pops_until_space(k: Kernel, data: bytes) -> tuple[int, int]:
    """Feeds until the producer pauses; returns the heaps queued then, and the pops until it may
    go on."""
    status, _ = k.feed(data)
    assert status == lib.SP2_FULL
    queued = k.stats()["heaps"]
    fd = lib.sp2_ring_space_fd(k.stream)
    assert not readable(fd)
    for n in range(1, queued + 1):
        assert k.pop() is not None
        if readable(fd):
            return queued, n
    raise AssertionError("the producer was never told to go on")


@pytest.mark.parametrize(
    ("pinned", "full_wait_ns", "overfills", "left"),
    [
        (True, 1, True, 0),  # producer and consumer share one CPU: resume once the ring is empty
        (False, 1, True, 2),  # several CPUs: resume once it is half empty
        (True, 0, True, 2),  # the consumer's own thread (asyncio façade: the producer never waits in C)
    ],
    ids=["one-cpu", "several-cpus", "one-thread"],
)
def test_paused_producer_resumes_at_the_resume_level(
    pinned: bool, full_wait_ns: int, overfills: bool, left: int
) -> None:
    cpus = os.sched_getaffinity(0)
    if pinned:
        cpus = {min(cpus)}
    elif len(cpus) < 2:
        pytest.skip("needs two CPUs")
    result: list[tuple[int, int]] = []
    kernel = lambda: Kernel(ring_heaps=4, full_wait_ns=full_wait_ns)  # noqa: E731
    run_pinned(cpus, lambda: result.append(pops_until_space(kernel(), small_heaps(100))))
    [(queued, pops)] = result
    # A paused producer costs two context switches (or a trip through the loop), and waking it
    # on another CPU takes tens of µs: it goes on past a full ring of small heaps, a bounded way.
    assert 4 < queued <= 64 if overfills else queued == 4
    assert pops == queued - left


def test_a_producer_sharing_the_cpu_pauses_at_the_end_of_its_batch() -> None:
    # A full ring defers the pause to the end of the batch (one recvmmsg for UDP), not further.
    packets = list(Encoder().stream_packets([EncHeap(c, [Item(0x1000, b"abc")]) for c in range(1, 11)]))
    result: list[tuple[int, int, int]] = []

    def body() -> None:
        k = Kernel(ring_heaps=4, full_wait_ns=1)
        status, consumed = k.datagrams(packets[:7])
        result.append((status, consumed, k.stats()["heaps"]))
        status, consumed = k.datagrams(packets[7:])
        result.append((status, consumed, k.stats()["heaps"]))

    run_pinned({min(os.sched_getaffinity(0))}, body)
    # (a reader would wait for room before its next batch; this one does not, and is told again)
    assert result == [(lib.SP2_FULL, 7, 7), (lib.SP2_FULL, 3, 10)]


def test_the_overfill_is_bounded_in_bytes() -> None:
    # Heaps of 1.5 MiB: four are past the overfill's 4 MiB, so the producer pauses at capacity.
    result: list[tuple[int, int]] = []
    data = b"".join(
        Encoder().stream_packets([EncHeap(c, [Item(0x1000, bytes(3 << 19))]) for c in range(1, 7)])
    )
    run_pinned(
        {min(os.sched_getaffinity(0))},
        lambda: result.append(pops_until_space(Kernel(ring_heaps=4, full_wait_ns=1), data)),
    )
    assert result == [(4, 4)]


def test_a_blocked_consumer_gets_the_heaps_of_a_batch_that_did_not_fill_the_ring() -> None:
    # The wake-up of a waiting consumer is deferred to the end of the producer's batch.
    def body() -> None:
        k = Kernel(ring_heaps=8, full_wait_ns=1)
        got: list[int] = []
        waiting = threading.Event()

        def consume() -> None:
            waiting.set()
            for _ in range(3):
                raw = lib.sp2_ring_pop(k.stream, -1)  # until a heap comes or the stop
                got.append(int(raw.cnt) if raw else -1)
                if raw:
                    lib.sp2_heap_free(raw)

        consumer = threading.Thread(target=consume, daemon=True)  # inherits the pinning
        consumer.start()
        waiting.wait()
        wait_until(lambda: lib.sp2_ring_waiters(k.stream) == 1)  # asleep in the ring
        data = b"".join(Encoder().stream_packets([EncHeap(c, [Item(0x1000, b"abc")]) for c in (1, 2, 3)]))
        try:
            assert k.feed(data)[0] == lib.SP2_OK
            consumer.join(timeout=30)  # only a lost wake-up takes that long
            assert not consumer.is_alive(), "the consumer was not woken"
        finally:
            k.stop()
            consumer.join()
        assert got == [1, 2, 3]

    run_pinned({min(os.sched_getaffinity(0))}, body)
