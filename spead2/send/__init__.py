"""Sending SPEAD: heaps in, packets out.

Heaps are described once in Python (``Heap``, or ``ItemGroup.get_heap``); the C kernel cuts
them into packets, paces them and hands them to the transport.  The blocking streams here and
the asyncio streams in :mod:`spead2.send.asyncio` share one core (``spead2.send._core``).
"""

from __future__ import annotations

from spead2.send._config import GroupMode, RateMethod, StreamConfig
from spead2.send._heap import Heap, HeapReference, HeapReferenceList, PacketGenerator

__all__ = [
    "GroupMode",
    "Heap",
    "HeapReference",
    "HeapReferenceList",
    "PacketGenerator",
    "RateMethod",
    "StreamConfig",
]
