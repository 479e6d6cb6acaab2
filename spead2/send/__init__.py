"""Sending SPEAD: heaps in, packets out.

Heaps are described once in Python (``Heap``, or ``ItemGroup.get_heap``); the C kernel cuts
them into packets, paces them and hands them to the transport.  The blocking streams here and
the asyncio streams in :mod:`spead2.send.asyncio` share one core (``spead2.send._core``).
"""

from __future__ import annotations

from spead2.send._config import GroupMode, RateMethod, StreamConfig
from spead2.send._generator import HeapGenerator, ItemGroup
from spead2.send._heap import Heap, HeapReference, HeapReferenceList, PacketGenerator
from spead2.send._streams import BytesStream, InprocStream, Stream, SyncStream, TcpStream, UdpStream

__all__ = [
    "BytesStream",
    "GroupMode",
    "Heap",
    "HeapGenerator",
    "HeapReference",
    "HeapReferenceList",
    "InprocStream",
    "ItemGroup",
    "PacketGenerator",
    "RateMethod",
    "Stream",
    "StreamConfig",
    "SyncStream",
    "TcpStream",
    "UdpStream",
]
