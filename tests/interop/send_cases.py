"""Random heaps cut into packets with the public send API (``PacketGenerator``), for comparing
our encoder with the reference's byte for byte.  Both interpreters run this same script:

    python send_cases.py SEED COUNT

and print one line per heap: ``N ok HEX HEX ...`` (the packets) or ``N ErrorType message``.  The
heaps come from a seeded ``random.Random``, so both make the same heaps: every flavour the tests
know, numpy and legacy items of many types and shapes, descriptors, start/end items,
repeat_pointers, and packet sizes from the smallest allowed up.
"""

from __future__ import annotations

import random
import sys
from typing import Any

import numpy as np

import spead2
import spead2.send

FLAVOURS = [(48, 0), (40, 0), (40, 7), (56, 0), (24, 0), (40, 1), (40, 2), (40, 4)]
DTYPES = ["u1", "<u2", ">i4", "<f8", "c8", ">u8", "i1", "S3", [("a", "<u2"), ("b", ">f4")]]
FORMATS = [
    [("u", 32)],
    [("u", 8)],
    [("i", 16), ("f", 64)],
    [("c", 8)],
    [("u", 5), ("b", 1)],
    [("f", 32)],
    [("u", 48)],
    [("i", 12)],
]


def legacy_value(rng: random.Random, fmt: list[tuple[str, int]]) -> Any:
    fields: list[Any] = []
    for code, bits in fmt:
        if code == "u":
            fields.append(rng.getrandbits(bits))
        elif code == "i":
            fields.append(rng.getrandbits(bits) - (1 << (bits - 1)))
        elif code == "f":
            fields.append(rng.random())
        elif code == "c":
            fields.append(rng.choice(b"abc").to_bytes(1, "big"))
        else:
            fields.append(rng.random() < 0.5)
    return tuple(fields) if len(fields) > 1 else fields[0]


def random_item(rng: random.Random, index: int, heap_address_bits: int) -> Any:
    item_id = (0x10 + index) if heap_address_bits == 56 else 0x1000 + index
    name = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(0, 8)))
    description = "".join(rng.choice("xyz ") for _ in range(rng.randint(0, 30)))
    if rng.random() < 0.5:
        dtype = np.dtype(rng.choice(DTYPES))  # type: ignore[call-overload]
        shape = tuple(rng.randint(0, 5) for _ in range(rng.randint(0, 3)))
        order = rng.choice("CF")
        item = spead2.Item(item_id, name, description, shape, dtype=dtype, order=order)
        n = int(np.prod(shape)) if shape else 1
        raw = bytes(rng.getrandbits(8) for _ in range(n * dtype.itemsize))
        array = np.frombuffer(raw, dtype=dtype)
        item.value = array.reshape(shape, order=order) if shape else array[0]
        return item
    fmt = rng.choice(FORMATS)
    variable = rng.random() < 0.3
    shape = (None,) if variable else tuple(rng.randint(1, 4) for _ in range(rng.randint(0, 2)))
    item = spead2.Item(item_id, name, description, shape, format=fmt)
    if variable:
        item.value = [legacy_value(rng, fmt) for _ in range(rng.randint(0, 6))]
    elif shape:
        flat = iter([legacy_value(rng, fmt) for _ in range(int(np.prod(shape)))])
        item.value = (
            [[next(flat) for _ in range(shape[1])] for _ in range(shape[0])]
            if len(shape) == 2
            else [next(flat) for _ in range(shape[0])]
        )
    else:
        item.value = legacy_value(rng, fmt)
    return item


def case(rng: random.Random) -> str:
    bits, bug_compat = rng.choice(FLAVOURS)
    flavour = spead2.Flavour(4, 64, bits, bug_compat)
    heap = spead2.send.Heap(flavour)
    items = [random_item(rng, i, bits) for i in range(rng.randint(0, 12))]
    try:
        for item in items:
            r = rng.random()
            if r < 0.3 or r >= 0.9:
                heap.add_descriptor(item)
            if r >= 0.3:
                heap.add_item(item)
        if rng.random() < 0.1:
            heap.add_start()
        if rng.random() < 0.1:
            heap.add_end()
        if rng.random() < 0.15:
            heap.repeat_pointers = True
        size = rng.choice([56, 64, 100, 200, 1472, 1500, 9000, rng.randint(50, 3000)])
        cnt = rng.getrandbits(min(bits, rng.choice([8, 20, 40])))
        packets = [bytes(p) for p in spead2.send.PacketGenerator(heap, cnt, size)]
        return "ok " + " ".join(p.hex() for p in packets)
    except Exception as exc:
        return f"{type(exc).__name__} {exc}"


def main() -> None:
    rng = random.Random(int(sys.argv[1]))
    for n in range(int(sys.argv[2])):
        print(n, case(rng))


if __name__ == "__main__":
    main()
