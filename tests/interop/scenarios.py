"""What the interop tests send: deterministic items and heaps, built the same way by the reference
sender (in the reference's venv) and by the test that checks our receiver.

Only numpy is used here (both venvs have it), and values come from formulas, not from a random
generator, so that they do not depend on the numpy version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ItemSpec:
    id: int
    name: str
    shape: tuple[int | None, ...]
    dtype: str | list[tuple[str, str]] | None = None
    format: list[tuple[str, int]] | None = None
    order: str = "C"

    @property
    def description(self) -> str:
        return f"interop item {self.name}"


ITEMS: list[ItemSpec] = [
    ItemSpec(0x1000, "scalar_u32", (), format=[("u", 32)]),  # an immediate
    ItemSpec(0x1001, "scalar_f64", (), format=[("f", 64)]),
    ItemSpec(0x1002, "text", (None,), format=[("c", 8)]),  # variable length
    ItemSpec(0x1003, "var_u8", (None,), format=[("u", 8)]),
    ItemSpec(0x1004, "i8", (7,), dtype="i1"),
    ItemSpec(0x1005, "be_i16", (5, 7), dtype=">i2"),
    ItemSpec(0x1006, "le_u32", (3, 4), dtype="<u4"),
    ItemSpec(0x1007, "be_f32", (6,), dtype=">f4"),
    ItemSpec(0x1008, "f64", (10,), dtype="<f8"),
    ItemSpec(0x1009, "c64", (4,), dtype="<c8"),
    ItemSpec(0x100A, "bools", (2, 3), dtype="?"),
    ItemSpec(0x100B, "fortran", (3, 5), dtype="<f4", order="F"),
    ItemSpec(0x100C, "record", (3,), dtype=[("a", "<u2"), ("b", "<f8")]),
    ItemSpec(0x100D, "block_4k", (4096,), dtype="u1"),
    ItemSpec(0x100E, "block_64k", (32768,), dtype="<u2"),
    ItemSpec(0x100F, "block_1m", (262144,), dtype="<f4"),
    ItemSpec(0x1010, "block_2m", (2097152,), dtype="u1"),
]
BY_NAME = {spec.name: spec for spec in ITEMS}

#: Which items each heap carries (heap i uses PLAN[i % len(PLAN)]): small and large heaps, one
#: packet and many.
SMALL = ["scalar_u32", "scalar_f64", "text", "var_u8", "i8", "be_i16", "le_u32", "be_f32", "f64"]
PLAN: list[list[str]] = [
    [spec.name for spec in ITEMS if spec.name != "block_2m"],  # everything but the largest
    ["scalar_u32"],
    ["text", "var_u8", "c64", "bools", "fortran", "record"],
    ["block_2m", "scalar_u32"],
    SMALL,
    ["block_64k", "block_4k"],
    ["block_1m"],
    ["i8", "block_4k", "record"],
]


def value(spec: ItemSpec, heap: int) -> Any:
    """The value of an item in heap number ``heap`` (0-based)."""
    k = heap + 1
    if spec.format is not None and spec.shape == ():
        # (the reference decodes these legacy scalars to numpy scalars)
        return (
            np.uint32((k * 1000003) % (1 << 32)) if spec.format[0][0] == "u" else np.float64(k * 0.25 - 3.5)
        )
    if spec.name == "text":
        return f"heap {heap}: " + "spead" * (heap % 5)
    if spec.name == "var_u8":
        return (np.arange(3 + 5 * heap) * (k + 2) % 256).astype("u1")
    assert spec.dtype is not None
    dtype = np.dtype(spec.dtype)  # type: ignore[arg-type]
    shape = tuple(int(n) for n in spec.shape if n is not None)
    n = int(np.prod(shape))
    base = np.arange(n, dtype=np.int64)
    if dtype.names:
        arr = np.zeros(n, dtype)
        arr["a"] = (base * 7 + k) % 65536
        arr["b"] = base * 0.5 - k
    elif dtype.kind == "b":
        arr = (base + k) % 3 == 0
    elif dtype.kind == "c":
        arr = (base + 1j * k).astype(dtype)
    elif dtype.kind == "f":
        arr = (base * 0.5 + k / 8).astype(dtype)
    else:
        info = np.iinfo(dtype)
        span = int(info.max) - int(info.min) + 1
        arr = ((base * (2 * k + 1) + k) % span + int(info.min)).astype(dtype)
    arr = arr.reshape(shape)
    return np.asfortranarray(arr) if spec.order == "F" else arr


def heap_items(heap: int) -> list[ItemSpec]:
    return [BY_NAME[name] for name in PLAN[heap % len(PLAN)]]


def compare(actual: Any, expected: Any, spec: ItemSpec) -> None:
    """Asserts that a decoded value is the value sent (type, shape, dtype and contents)."""
    if isinstance(expected, np.ndarray) and expected.ndim > 0:
        actual = np.asarray(actual)
        assert actual.shape == expected.shape, spec.name
        if spec.dtype is not None:
            assert actual.dtype == expected.dtype.newbyteorder("="), spec.name
        assert np.array_equal(actual, expected), spec.name
    else:
        assert type(actual) is type(expected), spec.name
        assert actual == expected, spec.name


def check_update(updated: dict[str, Any], heap: int) -> None:
    """Asserts that ``ItemGroup.update`` gave exactly heap number ``heap``'s items and values."""
    specs = heap_items(heap)
    assert sorted(updated) == sorted(spec.name for spec in specs), f"heap {heap}"
    for spec in specs:
        compare(updated[spec.name].value, value(spec, heap), spec)
