"""SPEAD flavour: protocol version, pointer widths and bug-compatibility flags."""

from __future__ import annotations

import operator
from typing import Any


class Flavour:
    """A SPEAD flavour, SPEAD-64-40 by default.  Immutable; equal when every field is."""

    __slots__ = ("_bug_compat", "_heap_address_bits")

    def __init__(
        self,
        version: int | None = None,
        item_pointer_bits: int | None = None,
        heap_address_bits: int | None = None,
        bug_compat: int = 0,
    ) -> None:
        given = (version, item_pointer_bits, heap_address_bits)
        if all(v is None for v in given) and bug_compat == 0:
            version, item_pointer_bits, heap_address_bits = 4, 64, 40
        elif any(v is None for v in given):
            raise TypeError(
                "Flavour() takes no arguments, or version, item_pointer_bits and heap_address_bits"
            )
        assert version is not None and item_pointer_bits is not None and heap_address_bits is not None
        version = operator.index(version)
        item_pointer_bits = operator.index(item_pointer_bits)
        heap_address_bits = operator.index(heap_address_bits)
        bug_compat = operator.index(bug_compat)
        if version != 4:
            raise ValueError("Version is not supported")
        if item_pointer_bits != 64:
            raise ValueError("item_pointer_bits not supported")
        if not 0 < heap_address_bits < item_pointer_bits:
            raise ValueError("heap_address_bits out of range")
        if heap_address_bits % 8 != 0:
            raise ValueError("heap_address_bits not a multiple of 8")
        if not 0 <= bug_compat < 2**32:
            # The reference rejects these at argument conversion, with a TypeError.
            raise TypeError(f"bug_compat must be a non-negative 32-bit integer, not {bug_compat}")
        self._heap_address_bits = heap_address_bits
        self._bug_compat = bug_compat

    @classmethod
    def _make(cls, heap_address_bits: int, bug_compat: int) -> Flavour:
        """Builds a flavour from fields already validated (the receive path)."""
        f = cls.__new__(cls)
        f._heap_address_bits = heap_address_bits
        f._bug_compat = bug_compat
        return f

    @property
    def version(self) -> int:
        return 4

    @property
    def item_pointer_bits(self) -> int:
        return 64

    @property
    def heap_address_bits(self) -> int:
        return self._heap_address_bits

    @property
    def bug_compat(self) -> int:
        return self._bug_compat

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Flavour):
            return NotImplemented
        return (self._heap_address_bits, self._bug_compat) == (other._heap_address_bits, other._bug_compat)

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((self._heap_address_bits, self._bug_compat))

    def __repr__(self) -> str:
        return f"Flavour(4, 64, {self._heap_address_bits}, {self._bug_compat})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Flavour, (4, 64, self._heap_address_bits, self._bug_compat))
