"""Fuzzing the chunk kernel (chunk.c): hostile packets through a hostile place function written in C.

A few seconds of random inputs (``SPEAD2_QUICK_FUZZ_SECONDS``, seeded by ``SPEAD2_FUZZ_SEED``), each a
run of mostly well-formed packets whose immediate items steer the place function's answer (chunk id,
heap index, heap offset, extra offset and size: anything from 0 to 2**48 - 1, or absent: -1), with
bytes flipped and datagrams cut.  The test drives the window as the stream core does (moving it when
the kernel keeps a packet aside, and in half the inputs lending it spare chunks to move the window
alone) and checks after every input:

* bounds: every chunk's data, present and extra sit between guard bytes, which stay untouched, and
  a chunk that has left the window is never written again;
* counts: every datagram is either counted as a packet or as a decode drop; every heap started ends
  (after the flush) in the heap count; heaps the place function rejected are counted as rejected;
  no heap whose place is inside its chunk is counted out of range.
"""

from __future__ import annotations

import importlib.util
import os
import random
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cffi
import pytest
from chunk_support import PLACE_DATA_C

from spead2._kernel import ffi, lib
from spead2._kstream import kernel_config, new_stream

QUICK_SECONDS = float(os.environ.get("SPEAD2_QUICK_FUZZ_SECONDS", "2"))
SEED = int(os.environ.get("SPEAD2_FUZZ_SEED", "20261125"))
GUARD = 16
GUARD_BYTE = 0xA5
#: Immediate items whose values the place function answers with (see PLACE_SOURCE).
STEER_IDS = (0x1001, 0x1002, 0x1003, 0x1004, 0x1005)
EDGES = (0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 63, 64, 255, 256, 2**47, 2**48 - 1)

PLACE_SOURCE = (
    PLACE_DATA_C
    + """
#include <string.h>

/* What the test tells the place function (the chunks' sizes) and what it counts. */
typedef struct fuzz_context {
    uint64_t data_size, present_size, extra_size, max_heap_extra, packet_presence;
    uint64_t calls, rejected, bad;
} fuzz_context;

/* items: HEAP_CNT, HEAP_LENGTH, then the five steering items (-1 where absent). */
void place(void *raw, size_t size, void *context)
{
    place_data *d = raw;
    fuzz_context *c = context;
    if (size != sizeof(place_data))
        return;
    const int64_t *it = d->items;
    c->calls++;
    d->chunk_id = it[2] < 0 ? -1 : it[2] - 4;
    d->heap_index = (size_t) it[3];
    d->heap_offset = (size_t) it[4];
    d->extra_offset = (size_t) it[5];
    d->extra_size = (size_t) it[6];
    memset(d->extra, 0x5A, d->extra_size < c->max_heap_extra ? d->extra_size : c->max_heap_extra);
    d->batch_stats[1]++;
    if (d->chunk_id < 0)
    {
        c->rejected++;
        return;
    }
    int64_t length = it[1];
    if (d->heap_offset > c->data_size || (length >= 0 && (uint64_t) length > c->data_size - d->heap_offset)
        || (!c->packet_presence && c->present_size && d->heap_index >= c->present_size)
        || d->extra_size > c->max_heap_extra
        || (d->extra_size
            && (d->extra_offset > c->extra_size || d->extra_size > c->extra_size - d->extra_offset)))
        c->bad++;
}
"""
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Any:
    builder = cffi.FFI()
    builder.cdef(
        "typedef struct fuzz_context { uint64_t data_size, present_size, extra_size, max_heap_extra,"
        " packet_presence; uint64_t calls, rejected, bad; } fuzz_context;"
        "void place(void *, size_t, void *);"
    )
    builder.set_source("_chunk_fuzz_place", PLACE_SOURCE)
    path = Path(builder.compile(tmpdir=str(tmp_path_factory.mktemp("fuzzplace"))))
    spec = importlib.util.spec_from_file_location("_chunk_fuzz_place", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.setdefault("_chunk_fuzz_place", module)
    return module


# ---- inputs ----


#: Per steering item: the answers that fit the chunks of most inputs, drawn 70% of the time.
SANE = (range(4, 12), range(0, 4), range(0, 256, 16), (0, 8), (0, 0, 8))


def _value(rng: random.Random, sane: Any) -> int | None:
    roll = rng.random()
    if roll < 0.7:
        return rng.choice(sane)
    if roll < 0.75:
        return None
    if roll < 0.9:
        return rng.choice(EDGES)
    return rng.randrange(2**48)


def _packet(rng: random.Random, cnt: int, length: int | None, offset: int, payload: bytes) -> bytes:
    pointers = [(1, cnt)] + ([] if length is None else [(2, length)]) + [(3, offset), (4, len(payload))]
    for item_id, sane in zip(STEER_IDS, SANE, strict=True):
        value = _value(rng, sane)
        if value is not None:
            pointers.append((item_id, value))
    if rng.random() < 0.05:
        pointers.append((6, 2))  # stream control: stop
    rng.shuffle(pointers)
    out = struct.pack(">BBBBxxH", 0x53, 4, 2, 6, len(pointers))
    out += b"".join(struct.pack(">Q", (1 << 63) | (item_id << 48) | value) for item_id, value in pointers)
    return out + payload


def _heap_packets(rng: random.Random) -> list[bytes]:
    cnt = rng.randrange(1, 8)
    size = rng.choice((0, 1, 8, 16, 40, 64, 100, 300))
    data = bytes(rng.randrange(256) for _ in range(size))
    step = rng.choice((1, 4, 8, 16, 64, size or 1))
    length = None if rng.random() < 0.2 else (size if rng.random() < 0.9 else rng.choice(EDGES))
    steps = list(range(0, max(size, 1), step))
    if rng.random() < 0.3:
        rng.shuffle(steps)
    return [_packet(rng, cnt, length, o, data[o : o + step]) for o in steps]


def _corrupt(rng: random.Random, datagram: bytes) -> bytes:
    raw = bytearray(datagram)
    roll = rng.random()
    if roll < 0.05 and raw:
        del raw[rng.randrange(len(raw)) :]
    elif roll < 0.15 and raw:
        for _ in range(rng.randrange(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
    elif roll < 0.17:
        raw = bytearray(rng.randrange(256) for _ in range(rng.randrange(64)))
    return bytes(raw)


def make_datagrams(rng: random.Random) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(rng.randrange(1, 12)):
        out += _heap_packets(rng)
    if rng.random() < 0.5:
        rng.shuffle(out)
    return [_corrupt(rng, d) for d in out]


# ---- the chunks, between guard bytes ----


@dataclass
class Geometry:
    data: int
    present: int
    extra: int


@dataclass
class FuzzChunk:
    """One chunk's three buffers in one bytearray: guard data guard present guard extra guard."""

    geometry: Geometry
    memory: bytearray = field(init=False)
    buf: Any = field(init=False)
    view: Any = field(init=False)

    def __post_init__(self) -> None:
        g = self.geometry
        self.memory = bytearray([GUARD_BYTE]) * (4 * GUARD + g.data + g.present + g.extra)
        for start, size in self._regions():
            self.memory[start : start + size] = bytes(size)
        self.view = ffi.from_buffer("uint8_t[]", self.memory)
        self.buf = ffi.new("sp2_chunk_buf *")
        (data, _), (present, _), (extra, _) = self._regions()
        self.buf.data, self.buf.data_size = self.view + data, g.data
        self.buf.present, self.buf.present_size = self.view + present, g.present
        self.buf.extra, self.buf.extra_size = self.view + extra, g.extra

    def _regions(self) -> list[tuple[int, int]]:
        g = self.geometry
        data = GUARD
        present = data + g.data + GUARD
        extra = present + g.present + GUARD
        return [(data, g.data), (present, g.present), (extra, g.extra)]

    def check(self) -> None:
        memory = self.memory
        (data, n_data), (present, n_present), (extra, n_extra) = self._regions()
        for start, end in (
            (0, data),
            (data + n_data, present),
            (present + n_present, extra),
            (extra + n_extra, len(memory)),
        ):
            assert memory[start:end] == bytes([GUARD_BYTE]) * (end - start), (
                "a write went past a chunk's buffers"
            )
        assert set(memory[present : present + n_present]) <= {0, 1}, "present holds only 0 and 1"


# ---- one input ----


@dataclass
class Run:
    """A chunk kernel over a kernel stream, its window driven as ChunkCore drives it."""

    rng: random.Random
    compiled: Any
    max_chunks: int
    geometry: Geometry
    chunk: Any = None
    stream: Any = None
    context: Any = None
    head: int = 0
    window: list[FuzzChunk | None] = field(default_factory=list)
    retired: list[tuple[FuzzChunk, bytes]] = field(default_factory=list)
    parks: int = 0
    lend: bool = False  # hands down spare chunks, so that the kernel moves the window alone
    spares: list[FuzzChunk] = field(default_factory=list)

    def move_window(self) -> tuple[Any, int] | None:
        data = ffi.new("const uint8_t **")
        size = ffi.new("size_t *")
        wanted_p = ffi.new("int64_t *")
        if not lib.sp2_chunk_parked(self.chunk, data, size, wanted_p):
            return None
        self.parks += 1
        wanted = int(wanted_p[0])
        while wanted - self.head >= self.max_chunks:
            if not self.window:
                assert lib.sp2_chunk_set_head(self.chunk, wanted - self.max_chunks + 1) == lib.SP2_OK
                self.head = wanted - self.max_chunks + 1
            else:
                self.pop_head()
        while self.head + len(self.window) <= wanted:
            if self.spares:
                assert lib.sp2_chunk_push_spare(self.chunk) == lib.SP2_OK
                self.window.append(self.spares.pop(0))
                continue
            fuzz_chunk = FuzzChunk(self.geometry) if self.rng.random() < 0.9 else None
            buf = fuzz_chunk.buf if fuzz_chunk is not None else ffi.new("sp2_chunk_buf *")
            assert lib.sp2_chunk_push_tail(self.chunk, buf) == lib.SP2_OK
            self.window.append(fuzz_chunk)
        lib.sp2_chunk_unpark(self.chunk)
        return data[0], int(size[0])

    def pop_head(self) -> None:
        assert lib.sp2_chunk_pop_head(self.chunk, 0) == lib.SP2_OK
        self.retire(self.window.pop(0))
        self.head += 1

    def retire(self, gone: FuzzChunk | None) -> None:
        if gone is not None:
            self.retired.append((gone, bytes(gone.memory)))

    def sync(self) -> None:
        """Mirrors what the kernel moved alone, and lends it spares again."""
        lent = []
        while self.lend and len(self.spares) + len(lent) < self.max_chunks and self.rng.random() < 0.7:
            lent.append(FuzzChunk(self.geometry))
        bufs = ffi.new("sp2_chunk_buf[]", [spare.buf[0] for spare in lent] or 1)
        left = ffi.new("int64_t[]", 2 * self.max_chunks)
        moves = ffi.new("uint32_t[2]")
        head = ffi.new("int64_t *")
        status = lib.sp2_chunk_sync(self.chunk, bufs, len(lent), left, moves, moves + 1, head)
        assert status == lib.SP2_OK
        n_left, joined = moves[0], moves[1]
        assert joined <= len(self.spares)
        self.window += self.spares[:joined]
        del self.spares[:joined]
        self.spares += lent
        assert n_left <= len(self.window)
        for _ in range(n_left):
            self.retire(self.window.pop(0))
        self.head = int(head[0])

    def feed(self, datagram: bytes) -> int:
        status = lib.sp2_stream_add_datagram(self.stream, datagram, len(datagram))
        self.sync()
        for _ in range(4):
            if status != lib.SP2_FULL:
                break
            parked = self.move_window()
            assert parked is not None, "SP2_FULL without a kept packet"
            status = lib.sp2_stream_add_datagram(self.stream, *parked)
            self.sync()
        assert status != lib.SP2_FULL, "a kept packet found no chunk after the window moved to it"
        if self.window and self.rng.random() < 0.05:
            self.pop_head()  # a group moving on
        return int(status)


def _new_run(rng: random.Random, compiled: Any) -> Run:
    geometry = Geometry(rng.choice((0, 7, 64, 256, 256, 256)), rng.choice((0, 1, 4)), rng.choice((0, 8, 16)))
    run = Run(rng, compiled, rng.randrange(1, 5), geometry, lend=rng.random() < 0.5)
    packet_presence = rng.choice((0, 0, 1, 8, 16))
    max_heap_extra = rng.choice((0, 8, 64))
    ctx = compiled.ffi.new("fuzz_context *")
    ctx.data_size, ctx.present_size, ctx.extra_size = geometry.data, geometry.present, geometry.extra
    ctx.max_heap_extra, ctx.packet_presence = max_heap_extra, packet_presence
    run.context = ctx
    items = ffi.new("uint64_t[]", [1, 2, *STEER_IDS])
    cfg = ffi.new("sp2_chunk_config *")
    cfg.items, cfg.n_items = items, 2 + len(STEER_IDS)
    cfg.max_chunks = run.max_chunks
    cfg.max_heaps = rng.randrange(1, 5)
    cfg.place = ffi.cast(
        "void *", int(compiled.ffi.cast("uintptr_t", compiled.ffi.addressof(compiled.lib, "place")))
    )
    cfg.place_context = ffi.cast("void *", int(compiled.ffi.cast("uintptr_t", ctx)))
    cfg.place_has_context = 1
    cfg.max_heap_extra = max_heap_extra
    cfg.packet_presence_payload_size = packet_presence
    cfg.n_stats = 2
    cfg.allow_out_of_order = rng.random() < 0.5
    cfg.stop_on_stop_item = rng.random() < 0.8
    out = ffi.new("sp2_chunk_stream **")
    assert lib.sp2_chunk_new(cfg, out) == lib.SP2_OK
    run.chunk = ffi.gc(out[0], lib.sp2_chunk_free)
    run.stream = new_stream(kernel_config(allow_out_of_order=cfg.allow_out_of_order))
    lib.sp2_chunk_attach(run.chunk, run.stream)
    return run


def _decodes(datagram: bytes) -> bool:
    info = ffi.new("sp2_packet_info *")
    return lib.sp2_decode_packet(datagram, len(datagram), 1, info) == lib.SP2_DROP_NONE


def fuzz_one(rng: random.Random, compiled: Any) -> None:
    run = _new_run(rng, compiled)
    fed = undecodable = 0
    for datagram in make_datagrams(rng):
        if run.feed(datagram) == lib.SP2_STOPPED:
            fed += 1  # the stop packet itself is counted
            break
        fed += 1
        undecodable += not _decodes(datagram)
    lib.sp2_chunk_flush_heaps(run.chunk)
    stats = ffi.new("sp2_stats *")
    lib.sp2_stream_get_stats(run.stream, stats)
    counters = ffi.new("sp2_chunk_counters *")
    place_stats = ffi.new("uint64_t[2]")
    lib.sp2_chunk_get_counters(run.chunk, counters, place_stats, 2)
    ctx = run.context
    for fuzz_chunk in run.window + run.spares:
        if fuzz_chunk is not None:
            fuzz_chunk.check()
    for spare in run.spares:
        assert bytes(spare.memory) == bytes(FuzzChunk(run.geometry).memory), "a spare was written"
    for fuzz_chunk, snapshot in run.retired:
        fuzz_chunk.check()
        assert bytes(fuzz_chunk.memory) == snapshot, "a chunk was written after it left the window"
    assert stats.packets + undecodable == fed, "a datagram was neither a packet nor a decode drop"
    placed_calls = ctx.calls - run.parks
    assert stats.heaps == placed_calls, "a heap that was started did not end"
    assert place_stats[1] == placed_calls, "the place function's statistics were lost"
    assert counters.rejected_heaps == ctx.rejected
    assert counters.out_of_range_heaps <= ctx.bad, "a heap placed inside its chunk was refused"


def test_quick_fuzz_chunk(compiled: Any) -> None:
    rng = random.Random(SEED)
    deadline = time.monotonic() + QUICK_SECONDS
    runs = 0
    while time.monotonic() < deadline:
        seed = rng.randrange(2**32)
        try:
            fuzz_one(random.Random(seed), compiled)
        except AssertionError as exc:
            raise AssertionError(f"chunk fuzz input with seed {seed} failed: {exc}") from exc
        runs += 1
    print(f"{runs} chunk fuzz inputs")
    assert runs > 20
