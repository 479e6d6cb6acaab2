"""InprocQueue: packets passed between threads of one process, for tests and simulations."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class InprocQueue:
    """A thread-safe queue of packets that ``add_inproc_reader`` streams read from.

    Each packet is copied on the way in and read by exactly one reader.  ``stop`` ends the
    readers' input once they have read what is queued.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packets: deque[bytes] = deque()
        self._stopped = False
        self._listeners: list[Callable[[], None]] = []

    def add_packet(self, packet: Any) -> None:
        self._add_packets([bytes(memoryview(packet).cast("B"))])

    def _add_packets(self, packets: list[bytes]) -> None:
        """Adds packets that are already bytes, with one wake-up (the send side's path)."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("the InprocQueue has been stopped")
            self._packets.extend(packets)
            listeners = list(self._listeners)
        for wake in listeners:
            wake()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            listeners = list(self._listeners)
        for wake in listeners:
            wake()

    def _subscribe(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(wake)

    def _unsubscribe(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if wake in self._listeners:
                self._listeners.remove(wake)

    def _take(self, limit: int) -> tuple[list[bytes], bool]:
        """Up to ``limit`` packets, and whether the queue is stopped and now empty."""
        with self._lock:
            n = min(limit, len(self._packets))
            taken = [self._packets.popleft() for _ in range(n)]
            return taken, self._stopped and not self._packets
