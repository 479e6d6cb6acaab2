"""Receiving SPEAD streams: configuration, heaps, statistics and the blocking Stream.

The asyncio Stream is in :mod:`spead2.recv.asyncio`.
"""

from __future__ import annotations

from spead2._rawitem import RawItem
from spead2.recv import stream_stat_indices
from spead2.recv._chunk_config import Chunk, ChunkStreamConfig, ChunkStreamGroupConfig
from spead2.recv._chunk_group import ChunkStreamGroupMember, ChunkStreamRingGroup
from spead2.recv._chunk_ring import ChunkRingbuffer
from spead2.recv._chunk_stream import ChunkRingPair, ChunkRingStream
from spead2.recv._config import RingStreamConfig, StreamConfig, StreamStatConfig
from spead2.recv._heap import Heap, IncompleteHeap
from spead2.recv._stats import DROP_REASONS, StreamStats
from spead2.recv._stream import Ringbuffer, Stream

__all__ = [
    "DROP_REASONS",
    "Chunk",
    "ChunkRingPair",
    "ChunkRingStream",
    "ChunkRingbuffer",
    "ChunkStreamConfig",
    "ChunkStreamGroupConfig",
    "ChunkStreamGroupMember",
    "ChunkStreamRingGroup",
    "Heap",
    "IncompleteHeap",
    "RawItem",
    "RingStreamConfig",
    "Ringbuffer",
    "Stream",
    "StreamConfig",
    "StreamStatConfig",
    "StreamStats",
    "stream_stat_indices",
]
