#!/usr/bin/env python3
"""UDP chunk receiver driven over stdin, one JSON command a line (``start``, ``stop``, ``exit``).

Runs the same code under any implementation of the spead2 API (ours or the reference's, in their
own venvs; numba and scipy needed): a ChunkRingStream whose place function (a numba cfunc given
as a scipy.LowLevelCallable) puts heap cnt c at chunk c // HEAPS, index c % HEAPS, and a
consumer thread that hands every chunk back.  Complete heaps are counted from the statistics
(heaps less incomplete, rejected and too-old ones), so a user stop, which drops the chunks
still being filled, loses no count.  Compare receiver CPU per packet with::

    .venv/bin/python bench/udp_lossless.py --receiver chunk [--pin]
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import numba
import numpy as np
import scipy
from numba import types

import spead2
import spead2.recv
from spead2.numba import intp_to_voidptr
from spead2.recv.numba import chunk_place_data

HEAPS = 8  # heaps per chunk
SLACK = 4096  # room per heap beyond heap_size: the sender's first heap also carries a descriptor
CHUNKS = 16  # chunks in circulation


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def make_place(slot: int) -> Any:
    @numba.cfunc(types.void(types.CPointer(chunk_place_data), types.size_t), nopython=True)
    def place(data_ptr: Any, data_size: Any) -> None:
        data = numba.carray(data_ptr, 1)
        items = numba.carray(intp_to_voidptr(data[0].items), 2, dtype=np.int64)
        cnt, length = items[0], items[1]
        if 0 <= length <= slot and cnt >= 0:
            data[0].chunk_id = cnt // HEAPS
            data[0].heap_index = cnt % HEAPS
            data[0].heap_offset = (cnt % HEAPS) * slot

    return scipy.LowLevelCallable(place.ctypes, signature="void (void *, size_t)")


def start(pool: spead2.ThreadPool, cmd: dict[str, Any]) -> tuple[Any, threading.Thread]:
    slot = cmd["heap_size"] + SLACK
    chunk_config = spead2.recv.ChunkStreamConfig(
        items=[spead2.HEAP_CNT_ID, spead2.HEAP_LENGTH_ID], max_chunks=4, place=make_place(slot)
    )
    data_ring, free_ring = spead2.recv.ChunkRingbuffer(CHUNKS), spead2.recv.ChunkRingbuffer(CHUNKS)
    stream = spead2.recv.ChunkRingStream(
        pool, spead2.recv.StreamConfig(max_heaps=8), chunk_config, data_ring, free_ring
    )
    for _ in range(CHUNKS):
        stream.add_free_chunk(
            spead2.recv.Chunk(present=np.zeros(HEAPS, np.uint8), data=np.ones(HEAPS * slot, np.uint8))
        )

    def consume() -> None:
        for chunk in data_ring:
            stream.add_free_chunk(chunk)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    stream.add_udp_reader(
        cmd["port"], max_size=cmd["max_packet"], buffer_size=cmd["buffer"], bind_hostname=cmd["host"]
    )
    return stream, consumer


def main() -> int:
    pool = spead2.ThreadPool()
    stream: Any = None
    consumer: threading.Thread | None = None
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["cmd"] == "start":
            stream, consumer = start(pool, cmd)
            reply({"ready": True, "impl": f"chunks, spead2 {spead2.__version__} ({spead2.__file__})"})
        elif cmd["cmd"] == "stop":
            stream.stop()
            assert consumer is not None
            consumer.join()
            s = stream.stats
            lost = s["incomplete_heaps_evicted"] + s["incomplete_heaps_flushed"]
            complete = s["heaps"] - lost - s["rejected_heaps"] - s["too_old_heaps"]
            reply({"heaps": complete, "packets": s["packets"], "too_old": s["too_old_heaps"]})
        elif cmd["cmd"] == "exit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
