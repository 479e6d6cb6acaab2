"""RawItem: one item of a received heap, zero-copy over the heap's memory."""

from __future__ import annotations

from typing import Any

import numpy as np


class RawItem(np.ndarray):
    """A raw item: a 1-D ``uint8`` array over the item's bytes in the heap, with its id.

    An ndarray subclass rather than a plain object because the reference's raw items support the
    buffer protocol, which pure-Python classes only gained in Python 3.12.  For an immediate
    item the bytes are the heap_address_bits / 8 big-endian bytes of ``immediate_value``.
    """

    id: int
    is_immediate: bool
    immediate_value: int

    def __array_finalize__(self, obj: Any) -> None:
        self.id = getattr(obj, "id", 0)
        self.is_immediate = getattr(obj, "is_immediate", False)
        self.immediate_value = getattr(obj, "immediate_value", 0)

    def __repr__(self) -> str:
        if self.is_immediate:
            return f"<RawItem id={self.id:#x} immediate={self.immediate_value:#x}>"
        return f"<RawItem id={self.id:#x} length={self.shape[0]}>"

    @classmethod
    def from_bytes(cls, id: int, data: Any) -> RawItem:
        """An addressed item over ``data`` (any buffer; not copied)."""
        item = np.frombuffer(data, dtype=np.uint8).view(cls)
        item.id = id
        return item

    @classmethod
    def immediate(cls, id: int, value: int, heap_address_bits: int) -> RawItem:
        """An immediate item: ``value`` as heap_address_bits / 8 big-endian bytes."""
        item = np.frombuffer(bytearray(value.to_bytes(heap_address_bits // 8, "big")), dtype=np.uint8).view(
            cls
        )
        item.id = id
        item.is_immediate = True
        item.immediate_value = value
        return item
