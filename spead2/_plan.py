"""The per-heap fast path of ItemGroup.update: a plan per item, kept while the descriptors hold.

How an item's bytes become its value depends only on its descriptor and the byte order asked for:
which numpy dtype, shape and order, how many bytes it needs, whether it is a string or a legacy
integer.  An entry of the plan holds those facts, so that applying a received heap costs a numpy
view (or an int, or a str) per item instead of a parse.  What an entry does not cover (an
immediate numpy value, a legacy format without a numpy type, a value without enough bytes, which
is an error, a zero-size value) goes through ``Item.set_from_raw``, which stays the one
definition of every value and every error; so does anything that raises on the fast path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spead2._constants import STREAM_CTRL_ID

if TYPE_CHECKING:
    from spead2._items import Item

_logger = logging.getLogger("spead2")

#: One raw item of a heap: (id, immediate value or payload offset, length, is_immediate).
Record = tuple[int, int, int, int]

GENERIC, ARRAY, STRING, INT = range(4)

# An entry: (kind, item, shape, order, *facts), shape and order as the item had them (a changed
# descriptor attribute makes a new entry).
#   ARRAY:  dtype, target dtype or None (same layout), bytes, 0-d
#   STRING: characters or None (all the bytes)
#   INT:    bits, bytes, signed
Entry = tuple[Any, ...]


def make_entry(item: Item, new_order: str) -> Entry:
    shape, order = item.shape, item.order
    head: tuple[Any, ...] = (item, shape, order)
    try:
        if item._is_string and len(shape) == 1:
            return (STRING, *head, shape[0])
        fast = item._fast_dtype
        if fast is not None and not item.is_variable_size():
            nbytes = math.prod(shape) * fast.itemsize
            if nbytes > 0:
                target = item._target_dtype(new_order)
                return (ARRAY, *head, fast, None if target is fast else target, nbytes, len(shape) == 0)
        elif fast is None and shape == () and len(item.format) == 1 and item.format[0][0] in ("u", "i"):
            bits = item.format[0][1]
            return (INT, *head, bits, (bits + 7) // 8, item.format[0][0] == "i")
    except Exception:  # e.g. a bad new_order: set_from_raw raises it in its place
        pass
    return (GENERIC, *head)


def _value(entry: Entry, record: Record, payload: Callable[[], np.ndarray], hab: int) -> Any:
    """The item's new value from the entry, or NotImplemented where set_from_raw must decide."""
    kind = entry[0]
    _, where, length, immediate = record
    if kind == ARRAY:
        _, _, shape, order, dtype, target, nbytes, scalar = entry
        if immediate or length < nbytes:
            return NotImplemented
        value = np.ndarray(shape, dtype, payload(), where, None, order)  # order=: 190 ns more
        if target is not None:
            value = value.astype(target)
        return value[()] if scalar else value
    if kind == INT:
        _, _, _, _, bits, nbytes, signed = entry
        if immediate:
            if bits > 8 * (hab // 8):
                return NotImplemented
            word = (where & ((1 << (8 * nbytes)) - 1)) >> (8 * nbytes - bits)
        else:
            if length * 8 < bits:
                return NotImplemented
            data = payload()
            word = int.from_bytes(data[where : where + nbytes].tobytes(), "big") >> (8 * nbytes - bits)
        if signed and word >> (bits - 1):
            word -= 1 << bits
        return word
    if kind == STRING:
        count = entry[4]
        if immediate or (count is not None and length < count):
            return NotImplemented
        end = where + (length if count is None else count)
        return payload()[where:end].tobytes().replace(b"\0", b"").decode("ascii")
    return NotImplemented


def apply(
    plan: dict[int, Entry],
    by_id: dict[Any, Item],
    new_order: str,
    records: Sequence[Record],
    payload: Callable[[], np.ndarray],
    hab: int,
    raw_item: Callable[[int], Any],
) -> dict[str, Item]:
    """Sets the items of one heap (``records``) as ItemGroup.update does; ``raw_item(index)``
    gives the RawItem of a record for set_from_raw."""
    updated: dict[str, Item] = {}
    for index, record in enumerate(records):
        item_id = record[0]
        if item_id <= STREAM_CTRL_ID:
            continue
        entry = plan.get(item_id)
        if entry is None or entry[2] is not entry[1].shape or entry[3] is not entry[1].order:
            item = by_id.get(item_id)
            if item is None:
                _logger.warning("Item with ID %#x received but there is no descriptor", item_id)
                continue
            entry = plan[item_id] = make_entry(item, new_order)
        item = entry[1]
        try:
            value = _value(entry, record, payload, hab)
        except Exception:
            value = NotImplemented  # set_from_raw raises it, with its note
        if value is NotImplemented:
            from spead2._items import _add_note

            try:
                item.set_from_raw(raw_item(index), new_order=new_order)
            except Exception as exc:
                _add_note(exc, f"in the value of item {item_id:#x} ({item.name!r})")
                raise
            item.version += 1
        else:
            item._value = value
            item.version += 2  # as set_from_raw's assignment and update's own increment
        updated[item.name] = item
    return updated
