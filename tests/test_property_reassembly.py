"""Property: random valid heaps, split into packets that are shuffled, duplicated and partly
dropped, come out of the receiver exactly as a simple reference model says.

The model (written here from the SPEAD rules and the documented stream behaviour, not from the
kernel) keeps, per substream, a ring of ``max_heaps`` slots with a head pointer:

* a packet joins the live heap with its cnt, or starts a new one;
* a packet is refused (and counted as a drop) if its payload overlaps what the heap already has
  (out-of-order mode), or does not start where the heap's data ends (in-order mode);
* a heap whose bytes have all arrived is finished at once; one that is not is put in the slot
  at the head (finishing, as evicted, the heap there) and the head moves on;
* at the end of the input the live heaps are finished (flushed), oldest slot first;
* a finished heap is a ``Heap`` when its data is contiguous (every byte up to the last payload
  end and item address, and all of HEAP_LENGTH when known), with each addressed item running to
  the next address; otherwise an ``IncompleteHeap`` with only immediate items, which is dropped
  when ``contiguous_only``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_harness import Kernel
from rawpackets import Encoder, Heap, Item

import spead2
import spead2.recv

# ---- the packets, as the model reads them ------------------------------------------------------


@dataclass(frozen=True)
class Pkt:
    cnt: int
    heap_length: int | None
    offset: int
    length: int
    pointers: tuple[tuple[int, int, bool], ...]  # (id, address or value, immediate), not 1-4
    payload: bytes
    raw: bytes


def parse(raw: bytes) -> Pkt:
    (header,) = struct.unpack_from(">Q", raw)
    hab = ((header >> 32) & 0xFF) * 8
    n = header & 0xFFFF
    fields: dict[int, int] = {}
    pointers = []
    for i in range(n):
        (p,) = struct.unpack_from(">Q", raw, 8 + 8 * i)
        imm = bool(p >> 63)
        item_id = (p >> hab) & ((1 << (63 - hab)) - 1)
        value = p & ((1 << hab) - 1)
        if 1 <= item_id <= 4:
            fields[item_id] = value
        else:
            pointers.append((item_id, value, imm))
    payload = raw[8 + 8 * n :]
    assert len(payload) == fields[4]
    return Pkt(fields[1], fields.get(2), fields[3], fields[4], tuple(pointers), payload, raw)


# ---- the model ------------------------------------------------------------------------------------


@dataclass
class MHeap:
    cnt: int
    heap_length: int | None = None
    data: dict[int, int] = field(default_factory=dict)  # byte offset -> value
    ranges: list[tuple[int, int]] = field(default_factory=list)
    pointers: dict[tuple[int, int, bool], None] = field(default_factory=dict)  # ordered set
    max_end: int = 0

    @property
    def received(self) -> int:
        return len(self.data)

    def accepts(self, p: Pkt, out_of_order: bool) -> bool:
        if out_of_order:
            return all(p.offset + p.length <= a or b <= p.offset for a, b in self.ranges) or p.length == 0
        return p.offset == self.received

    def add(self, p: Pkt) -> None:
        for i, b in enumerate(p.payload):
            self.data[p.offset + i] = b
        if p.length:
            self.ranges = merge([*self.ranges, (p.offset, p.offset + p.length)])
        if p.heap_length is not None:
            self.heap_length = p.heap_length
        self.max_end = max(self.max_end, p.offset + p.length)
        for ptr in p.pointers:
            if ptr not in self.pointers:
                self.pointers[ptr] = None
                if not ptr[2]:
                    self.max_end = max(self.max_end, ptr[1])

    def complete(self) -> bool:
        return self.heap_length is not None and self.received == self.heap_length

    def contiguous(self) -> bool:
        return self.received == self.max_end and (
            self.heap_length is None or self.received == self.heap_length
        )


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def heap_items(h: MHeap, hab: int) -> list[tuple[int, bool, bytes]]:
    """Items of a contiguous heap: each addressed item runs to the next address (or the end)."""
    size = h.heap_length if h.heap_length is not None else h.received
    payload = bytes(h.data[i] for i in range(size))
    ptrs = list(h.pointers)
    addressed = sorted((p for p in ptrs if not p[2]), key=lambda p: p[1])  # stable: ties in arrival order
    out = []
    for k, (item_id, addr, _) in enumerate(addressed):
        end = addressed[k + 1][1] if k + 1 < len(addressed) else size
        if end > addr and item_id != 0:
            out.append((item_id, False, payload[addr:end]))
    out += immediates(h, hab)
    return sorted(out)


def immediates(h: MHeap, hab: int) -> list[tuple[int, bool, bytes]]:
    return sorted(
        (i, True, v.to_bytes(hab // 8, "big")) for i, v, imm in h.pointers if imm and i not in (0, 5)
    )


@dataclass
class Cfg:
    max_heaps: int
    substreams: int
    out_of_order: bool
    contiguous_only: bool
    keep_ranges: bool


Result = tuple[Any, ...]


def model(cfg: Cfg, packets: list[Pkt], hab: int) -> tuple[list[Result], dict[str, int]]:
    slots: list[list[MHeap | None]] = [[None] * cfg.max_heaps for _ in range(cfg.substreams)]
    heads = [0] * cfg.substreams
    out: list[Result] = []
    stats = dict.fromkeys(
        [
            "heaps",
            "incomplete_heaps_evicted",
            "incomplete_heaps_flushed",
            "packets",
            "single_packet_heaps",
            "drops",
        ],
        0,
    )

    def finish(h: MHeap, why: str | None) -> None:
        stats["heaps"] += 1
        if why and not h.complete():
            stats[f"incomplete_heaps_{why}"] += 1
        if h.contiguous():
            out.append(("heap", h.cnt, heap_items(h, hab)))
        elif not cfg.contiguous_only:
            length = -1 if h.heap_length is None else h.heap_length
            ranges = h.ranges if cfg.keep_ranges else []
            out.append(("incomplete", h.cnt, length, h.received, immediates(h, hab), ranges))

    for p in packets:
        stats["packets"] += 1
        sub = p.cnt % cfg.substreams
        live = next((h for h in slots[sub] if h is not None and h.cnt == p.cnt), None)
        if live is not None:
            if not live.accepts(p, cfg.out_of_order):
                stats["drops"] += 1
                continue
            live.add(p)
            if live.complete():
                slots[sub][slots[sub].index(live)] = None
                finish(live, None)
            continue
        new = MHeap(p.cnt)
        if not new.accepts(p, cfg.out_of_order):
            stats["drops"] += 1
            continue
        new.add(p)
        if p.heap_length is not None and p.offset == 0 and p.length == p.heap_length:
            stats["single_packet_heaps"] += 1
        if new.complete():
            finish(new, None)
            continue
        old = slots[sub][heads[sub]]
        if old is not None:
            finish(old, "evicted")
        slots[sub][heads[sub]] = new
        heads[sub] = (heads[sub] + 1) % cfg.max_heaps
    for sub in range(cfg.substreams):
        for i in range(cfg.max_heaps):
            h = slots[sub][(heads[sub] + i) % cfg.max_heaps]
            if h is not None:
                finish(h, "flushed")
    return out, stats


# ---- what the receiver says ------------------------------------------------------------------------


def observed(heaps: list[Any]) -> list[Result]:
    out: list[Result] = []
    for h in heaps:
        items = sorted((it.id, bool(it.is_immediate), bytes(it)) for it in h.get_items())
        if isinstance(h, spead2.recv.IncompleteHeap):
            out.append(("incomplete", h.cnt, h.heap_length, h.received_length, items, h.payload_ranges))
        else:
            out.append(("heap", h.cnt, items))
    return out


# ---- traffic --------------------------------------------------------------------------------------


@dataclass
class Scenario:
    cfg: Cfg
    hab: int
    heaps: list[Heap]
    sized: list[bool]
    packets: list[Pkt]  # as delivered


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    hab = draw(st.sampled_from((40, 48)))
    n_heaps = draw(st.integers(1, 6))
    cnts = draw(st.lists(st.integers(1, 1 << 20), min_size=n_heaps, max_size=n_heaps, unique=True))
    heaps = []
    for cnt in cnts:
        items = []
        for i in range(draw(st.integers(0, 3))):
            if draw(st.booleans()):
                items.append(Item(0x1000 + i, draw(st.integers(0, (1 << hab) - 1)), immediate=True))
            else:
                items.append(Item(0x1000 + i, draw(st.binary(max_size=300))))
        heaps.append(Heap(cnt, items))
    enc = Encoder(heap_address_bits=hab, max_packet_size=draw(st.integers(112, 400)))
    sized = [draw(st.booleans()) or not draw(st.booleans()) for _ in heaps]  # 3/4 sized
    repeat = draw(st.booleans())
    raw = [
        p
        for h, s in zip(heaps, sized, strict=True)
        for p in enc.packets(h, repeat_pointers=repeat, heap_length=s)
    ]
    order = list(range(len(raw)))
    if draw(st.booleans()):
        order = draw(st.permutations(order))
    dropped = (
        draw(st.sets(st.sampled_from(order), max_size=len(order) // 3)) if draw(st.booleans()) else set()
    )
    order = [i for i in order if i not in dropped]
    for i in draw(st.lists(st.sampled_from(range(len(raw))), max_size=len(raw) // 2)):
        order.insert(draw(st.integers(0, len(order))), i)
    cfg = Cfg(
        max_heaps=draw(st.integers(1, 6)),
        substreams=draw(st.integers(1, 3)),
        out_of_order=draw(st.booleans()),
        contiguous_only=draw(st.booleans()),
        keep_ranges=draw(st.booleans()),
    )
    return Scenario(cfg, hab, heaps, sized, [parse(raw[i]) for i in order])


def check_model_sanity(s: Scenario, expected: list[Result]) -> None:
    """The model's complete sized heaps hold exactly the items that were sent."""
    sent = {
        h.cnt: sorted(
            (
                it.id,
                it.immediate,
                it.value.to_bytes(s.hab // 8, "big") if isinstance(it.value, int) else it.value,
            )
            for it in h.items
            if it.immediate or it.value
        )
        for h, sized in zip(s.heaps, s.sized, strict=True)
        if sized
    }
    for r in expected:
        if r[0] == "heap" and r[1] in sent:
            assert r[2] == sent[r[1]]


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios())
def test_kernel_matches_model(s: Scenario) -> None:
    k = Kernel(
        max_heaps=s.cfg.max_heaps,
        substreams=s.cfg.substreams,
        allow_out_of_order=s.cfg.out_of_order,
        contiguous_only=s.cfg.contiguous_only,
        keep_payload_ranges=s.cfg.keep_ranges,
        ring_heaps=1 << 12,
    )
    for p in s.packets:
        assert k.datagram(p.raw) == 0
    k.stop()
    expected, expected_stats = model(s.cfg, s.packets, s.hab)
    check_model_sanity(s, expected)
    assert observed(k.heaps()) == expected
    stats = k.stats()
    drops = sum(v for name, v in stats.items() if name.startswith("drop_"))
    assert {**{n: stats[n] for n in expected_stats if n != "drops"}, "drops": drops} == expected_stats


@pytest.fixture(scope="module")
def pool() -> Iterator[spead2.ThreadPool]:
    pool = spead2.ThreadPool()
    yield pool
    pool.stop()


@settings(PROPERTY, max_examples=60)
@given(scenarios())
def test_stream_matches_model(pool: spead2.ThreadPool, s: Scenario) -> None:
    """The same through the public blocking Stream (buffer reader, real loop thread)."""
    stream = spead2.recv.Stream(
        pool,
        spead2.recv.StreamConfig(
            max_heaps=s.cfg.max_heaps, substreams=s.cfg.substreams, allow_out_of_order=s.cfg.out_of_order
        ),
        spead2.recv.RingStreamConfig(
            heaps=64, contiguous_only=s.cfg.contiguous_only, incomplete_keep_payload_ranges=s.cfg.keep_ranges
        ),
    )
    stream.add_buffer_reader(b"".join(p.raw for p in s.packets))
    heaps = list(stream)
    stream.stop()
    expected, expected_stats = model(s.cfg, s.packets, s.hab)
    assert observed(heaps) == expected
    stats = stream.stats
    assert {n: stats[n] for n in expected_stats if n != "drops"} == {
        n: v for n, v in expected_stats.items() if n != "drops"
    }
    assert sum(stats.drops.values()) == expected_stats["drops"]
