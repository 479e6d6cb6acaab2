"""The fuzz input format of fuzz_kernel.c, in Python: writing seeds, and replaying inputs through cffi.

An input is 8 config bytes followed by operations (opcode byte, 16-bit little-endian length,
data); ``fuzz_kernel.c`` documents the fields.  :func:`replay` runs an input against the kernel
through cffi with the same invariant checks as the C target (so the saved regression inputs are
replayed on machines without a C toolchain for the sanitizers), and :func:`mutate` is the blind
mutator the in-suite quick fuzz uses.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OP_DATAGRAM = 0
OP_DATAGRAMS = 1
OP_BYTES = 2
OP_BYTES_MAX = 3
OP_POP = 4
OP_STOP_RECEIVED = 5
OP_RING_STOP = 6
OP_POLL = 7

ALLOC_MALLOC = 0
ALLOC_MMAP = 1
ALLOC_POOL = 2
ALLOC_DEFAULT = 3

MAX_OP = 0xFFFF
MAX_PENDING = 1 << 20


@dataclass
class FuzzConfig:
    allow_out_of_order: bool = False
    allow_unsized_heaps: bool = True
    stop_on_stop_item: bool = True
    contiguous_only: bool = True
    keep_payload_ranges: bool = False
    memcpy_nontemporal: bool = False
    allocator: int = ALLOC_MALLOC
    max_heaps: int = 4  # 1..16
    substreams: int = 1  # 1..8
    ring_heaps: int = 8  # 1..8
    max_heap_pointers: int | None = None  # None: the kernel's default, else 1..64
    max_heap_ranges: int = 16  # 1..16
    max_heap_size_log2: int = 24  # 0..24, or 30
    bug_compat: int = 0  # 0..15
    pool_log2: int = 16  # 6..17

    def encode(self) -> bytes:
        flags = (
            int(self.allow_out_of_order)
            | int(self.allow_unsized_heaps) << 1
            | int(self.stop_on_stop_item) << 2
            | int(self.contiguous_only) << 3
            | int(self.keep_payload_ranges) << 4
            | int(self.memcpy_nontemporal) << 5
            | self.allocator << 6
        )
        pointers = 0x80 if self.max_heap_pointers is None else self.max_heap_pointers - 1
        return bytes(
            [
                flags,
                self.max_heaps - 1,
                self.substreams - 1,
                self.ring_heaps - 1,
                pointers,
                self.max_heap_ranges - 1,
                250 if self.max_heap_size_log2 == 30 else self.max_heap_size_log2,
                self.bug_compat | ((self.pool_log2 - 6) << 4),
            ]
        )

    @classmethod
    def decode(cls, b: bytes) -> FuzzConfig:
        b = (b + bytes(8))[:8]
        return cls(
            allow_out_of_order=bool(b[0] & 1),
            allow_unsized_heaps=bool(b[0] & 2),
            stop_on_stop_item=bool(b[0] & 4),
            contiguous_only=bool(b[0] & 8),
            keep_payload_ranges=bool(b[0] & 16),
            memcpy_nontemporal=bool(b[0] & 32),
            allocator=b[0] >> 6,
            max_heaps=1 + b[1] % 16,
            substreams=1 + b[2] % 8,
            ring_heaps=1 + b[3] % 8,
            max_heap_pointers=None if b[4] & 0x80 else 1 + b[4] % 64,
            max_heap_ranges=1 + b[5] % 16,
            max_heap_size_log2=30 if b[6] >= 250 else b[6] % 25,
            bug_compat=b[7] & 15,
            pool_log2=6 + (b[7] >> 4) % 12,
        )


def op(code: int, data: bytes = b"") -> bytes:
    if len(data) > MAX_OP:
        raise ValueError("an operation holds at most 65535 bytes")
    return struct.pack("<BH", code, len(data)) + data


def datagrams_op(packets: Sequence[bytes]) -> bytes:
    return op(OP_DATAGRAMS, b"".join(struct.pack("<H", len(p)) + p for p in packets))


def build(config: FuzzConfig, ops: Iterable[bytes]) -> bytes:
    return config.encode() + b"".join(ops)


def parse(data: bytes) -> tuple[FuzzConfig, list[tuple[int, bytes]]]:
    """The config and the (opcode % 8, data) operations of an input, read as the C target reads
    them (short reads are zero-padded or truncated)."""
    config = FuzzConfig.decode(data[:8])
    ops: list[tuple[int, bytes]] = []
    pos = 8
    while pos < len(data):
        code = data[pos]
        rest = data[pos + 1 : pos + 3] + bytes(2)
        length = rest[0] | rest[1] << 8
        pos += 3
        ops.append((code % 8, data[pos : pos + length]))
        pos += length
    return config, ops


def split_batch(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    while pos < len(data) and len(out) < 64:
        rest = data[pos : pos + 2] + bytes(2)
        n = rest[0] | rest[1] << 8
        pos += 2
        out.append(data[pos : pos + n])
        pos += n
    return out


# ---- replay through cffi ----------------------------------------------------------------------


class InvariantError(AssertionError):
    pass


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise InvariantError(what)


def replay(data: bytes) -> dict[str, int]:
    """Runs one input against the kernel through cffi, checking the same invariants as the C
    target.  Returns a few counts (packets, heaps popped, drops)."""
    from spead2._kernel import ffi, lib
    from spead2._kstream import kernel_config

    config, ops = parse(data)
    pointers = {} if config.max_heap_pointers is None else {"max_heap_pointers": config.max_heap_pointers}
    cfg = kernel_config(
        allow_out_of_order=config.allow_out_of_order,
        allow_unsized_heaps=config.allow_unsized_heaps,
        stop_on_stop_item=config.stop_on_stop_item,
        contiguous_only=config.contiguous_only,
        keep_payload_ranges=config.keep_payload_ranges,
        memcpy_nontemporal=config.memcpy_nontemporal,
        max_heaps=config.max_heaps,
        substreams=config.substreams,
        ring_heaps=config.ring_heaps,
        max_heap_ranges=config.max_heap_ranges,
        max_heap_size=1 << config.max_heap_size_log2,
        bug_compat=config.bug_compat,
        full_wait_ns=0,
        **pointers,
    )
    pool = 1 << config.pool_log2
    if config.allocator == ALLOC_MALLOC:
        alloc = lib.sp2_allocator_malloc_new()
    elif config.allocator == ALLOC_MMAP:
        alloc = lib.sp2_allocator_mmap_new(0, config.bug_compat & 1)
    elif config.allocator == ALLOC_POOL:
        alloc = lib.sp2_pool_new(pool // 2, pool, 2, config.bug_compat & 1, 0, 0, ffi.NULL)
    else:
        alloc = ffi.NULL
    out = ffi.new("sp2_stream **")
    status = lib.sp2_stream_new(cfg, alloc, out)
    if alloc != ffi.NULL:
        lib.sp2_allocator_release(alloc)
    _check(status == lib.SP2_OK, "sp2_stream_new")
    stream = out[0]
    info = ffi.new("sp2_packet_info *")
    counts = {"packets_in": 0, "popped": 0}
    decode_drops = [0] * lib.SP2_DROP_COUNT
    pending = bytearray()

    def check_heap(h: object) -> None:
        hp = ffi.cast("sp2_heap *", h)
        hab = hp.heap_address_bits
        _check(8 <= hab <= 56 and hab % 8 == 0, "heap address bits")
        _check(0 <= hp.cnt < 1 << hab, "cnt")
        _check(hp.bug_compat == config.bug_compat, "bug_compat")
        max_size = 1 << config.max_heap_size_log2
        if hp.heap_length >= 0:
            _check(hp.received_length <= hp.heap_length <= max_size, "heap length")
        _check(hp.received_length <= max_size, "received length")
        if config.max_heap_pointers is not None:
            _check(hp.n_items + hp.n_descriptors <= config.max_heap_pointers, "pointer count")
        # a heap holding the stop is only delivered as the reference does: flushed at the stop,
        # never when it completed with its length known
        stop = hp.end_of_stream and config.stop_on_stop_item
        _check(not (stop and hp.complete and hp.heap_length >= 0), "complete stop heap delivered")
        if config.contiguous_only:
            _check(bool(hp.complete), "incomplete heap with contiguous_only")
        payload = ffi.buffer(hp.payload, hp.payload_size) if hp.payload != ffi.NULL else b""
        for i in range(hp.n_items):
            it = hp.items[i]
            _check(it.id > 4, "special item id")
            if it.is_immediate:
                _check(it.id != 5 and it.length == hab // 8 and it.value < 1 << hab, "immediate")
            else:
                _check(bool(hp.complete) and it.length > 0, "addressed item")
                _check(it.value + it.length <= len(payload), "item past the payload")
                bytes(payload[it.value : it.value + it.length])
        for i in range(hp.n_descriptors):
            it = hp.descriptors[i]
            _check(bool(hp.complete) and it.id == 5 and not it.is_immediate, "descriptor")
            _check(0 < it.length and it.value + it.length <= len(payload), "descriptor past the payload")
        if hp.complete:
            _check(hp.n_ranges == 0, "ranges on a complete heap")
            if hp.heap_length >= 0:
                _check(hp.received_length == hp.heap_length, "complete length")
            if hp.payload != ffi.NULL:
                _check(hp.payload_size == hp.received_length, "payload size")
            else:
                _check(hp.received_length == 0 and hp.n_descriptors == 0, "no payload")
        else:
            _check(hp.payload == ffi.NULL and hp.n_descriptors == 0, "incomplete payload")
            if not config.keep_payload_ranges:
                _check(hp.n_ranges == 0, "ranges kept")
            else:
                total = 0
                prev = -1
                for i in range(hp.n_ranges):
                    start, end = hp.ranges[2 * i], hp.ranges[2 * i + 1]
                    _check(start < end and start > prev, "ranges sorted and disjoint")
                    if hp.heap_length >= 0:
                        _check(end <= hp.heap_length, "range past the heap")
                    total += end - start
                    prev = end
                _check(total == hp.received_length, "ranges add up")

    def pop(limit: int) -> None:
        for _ in range(limit):
            h = lib.sp2_ring_pop(stream, 0)
            if h == ffi.NULL:
                return
            try:
                check_heap(h)
            finally:
                lib.sp2_heap_free(h)
            counts["popped"] += 1

    def after_add(status: int) -> None:
        _check(
            status in (lib.SP2_OK, lib.SP2_FULL, lib.SP2_STOPPED, lib.SP2_BAD_PACKET, lib.SP2_PARTIAL),
            "status",
        )
        if status == lib.SP2_STOPPED:
            _check(bool(lib.sp2_stream_is_stopped(stream)), "stopped")
        if status == lib.SP2_FULL:
            pop(8)
            lib.sp2_ring_space_ack(stream)

    def count_datagram(d: bytes) -> None:
        why = lib.sp2_decode_packet(d, len(d), 1, info)
        if why == lib.SP2_DROP_NONE:
            _check(info.size == len(d), "datagram size")
            counts["packets_in"] += 1
        else:
            decode_drops[why] += 1

    try:
        for code, payload in ops:
            if code == OP_DATAGRAM:
                stopped = lib.sp2_stream_is_stopped(stream)
                status = lib.sp2_stream_add_datagram(stream, payload, len(payload))
                if stopped:
                    _check(status == lib.SP2_STOPPED, "input after the stop")
                else:
                    count_datagram(payload)
                after_add(status)
            elif code == OP_DATAGRAMS:
                batch = split_batch(payload)
                ptrs = ffi.new("const uint8_t *[]", [ffi.from_buffer(p) for p in batch] or 1)
                sizes = ffi.new("size_t[]", [len(p) for p in batch] or 1)
                consumed = ffi.new("size_t *")
                status = lib.sp2_stream_add_datagrams(stream, ptrs, sizes, len(batch), consumed)
                _check(consumed[0] <= len(batch), "consumed")
                if status == lib.SP2_OK:
                    _check(consumed[0] == len(batch), "consumed all")
                for p in batch[: consumed[0]]:
                    count_datagram(p)
                after_add(status)
            elif code in (OP_BYTES, OP_BYTES_MAX):
                max_packet = 0 if code == OP_BYTES else 16 + (payload[0] if payload else 0) * 64
                if len(pending) + len(payload) > MAX_PENDING:
                    pending.clear()
                pending += payload
                consumed = ffi.new("size_t *")
                buf = bytes(pending)
                status = lib.sp2_stream_add_bytes(stream, buf, len(buf), max_packet, consumed)
                n = consumed[0]
                _check(n <= len(buf), "consumed bytes")
                if status == lib.SP2_OK:
                    _check(n == len(buf), "consumed all bytes")
                pos = 0
                while pos < n:
                    _check(
                        lib.sp2_decode_packet(buf[pos:n], n - pos, 0, info) == lib.SP2_DROP_NONE, "framing"
                    )
                    _check(max_packet == 0 or info.size <= max_packet, "max packet")
                    pos += info.size
                    counts["packets_in"] += 1
                _check(pos == n, "whole packets consumed")
                if status == lib.SP2_BAD_PACKET:
                    rest = buf[n:]
                    why = lib.sp2_decode_packet(rest, len(rest), 0, info)
                    bad = why != lib.SP2_DROP_NONE
                    _check(bad or (max_packet > 0 and info.size > max_packet), "bad packet decodes")
                    decode_drops[
                        why if bad and why != lib.SP2_DROP_TOO_SHORT else lib.SP2_DROP_TOO_LARGE
                    ] += 1
                    pending.clear()
                else:
                    del pending[:n]
                after_add(status)
            elif code == OP_POP:
                pop(payload[0] % 8 if payload else 1)
            elif code == OP_STOP_RECEIVED:
                lib.sp2_stream_stop_received(stream)
            elif code == OP_RING_STOP:
                lib.sp2_ring_stop(stream)
            else:
                _check(lib.sp2_ring_size(stream) <= lib.sp2_ring_capacity(stream), "ring size")
        lib.sp2_stream_stop_received(stream)
        pop(1 << 62)
        _check(lib.sp2_ring_pop(stream, 1000) == ffi.NULL and lib.sp2_ring_drained(stream), "drained")
        st = ffi.new("sp2_stats *")
        lib.sp2_stream_get_stats(stream, st)
        # every packet is counted in `packets` or dropped for a decoding reason (BEYOND_HEAP and
        # BAD_FLAVOUR are also heap-assembly reasons)
        assembly = 0
        for i in range(lib.SP2_DROP_COUNT):
            if i in (lib.SP2_DROP_BEYOND_HEAP, lib.SP2_DROP_BAD_FLAVOUR):
                _check(st.drops[i] >= decode_drops[i], f"drops (reason {i})")
                assembly += st.drops[i] - decode_drops[i]
            elif i <= lib.SP2_DROP_TOO_LARGE:
                _check(st.drops[i] == decode_drops[i], f"undecodable packets counted (reason {i})")
            else:
                assembly += st.drops[i]
        _check(st.packets == counts["packets_in"], "every decoded packet counted")
        _check(assembly <= st.packets, "assembly drops")
        _check(counts["popped"] <= st.heaps, "heaps")
        counts["heaps"] = int(st.heaps)
        counts["drops"] = sum(int(st.drops[i]) for i in range(lib.SP2_DROP_COUNT))
        return counts
    finally:
        lib.sp2_stream_free(stream)


# ---- blind mutation ---------------------------------------------------------------------------

INTERESTING = (
    0,
    1,
    2,
    7,
    8,
    0xFF,
    0xFFFF,
    0x10000,
    0xFFFFFFFF,
    1 << 40,
    (1 << 40) - 1,
    (1 << 48) - 1,
    (1 << 56) - 1,
    (1 << 64) - 1,
    1 << 63,
    0x5304000300000000,
    0x8000010000000000,
    0x8000020000000000,
    0x8000030000000000,
    0x8000040000000000,
    0x8000060000000002,
    0x0000050000000000,
)


def mutate(rng: random.Random, data: bytes, others: Sequence[bytes], cap: int = 1 << 16) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(8)
        if kind == 0 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif kind == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif kind == 2 and len(buf) >= 8:
            v = (rng.choice(INTERESTING) + rng.choice((-1, 0, 0, 1))) % (1 << 64)
            at = rng.randrange(len(buf) - 7)
            buf[at : at + 8] = v.to_bytes(8, "big")
        elif kind == 3 and len(buf) > 1:
            at = rng.randrange(len(buf))
            del buf[at : at + rng.randint(1, 64)]
        elif kind == 4 and buf and len(buf) < cap:
            at = rng.randrange(len(buf))
            chunk = buf[at : at + rng.randint(1, 256)]
            to = rng.randrange(len(buf) + 1)
            buf[to:to] = chunk
        elif kind == 5 and others:
            other = rng.choice(others)
            if other and buf:
                start = rng.randrange(len(other))
                piece = other[start : start + rng.randint(1, 512)]
                at = rng.randrange(len(buf))
                buf[at : at + len(piece)] = piece
        elif kind == 6 and len(buf) >= 8:
            buf[rng.randrange(8)] = rng.randrange(256)
        elif kind == 7 and buf:
            del buf[rng.randint(1, len(buf)) :]
    return bytes(buf[:cap])
