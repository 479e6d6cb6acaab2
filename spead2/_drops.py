"""Why the kernel drops packets: the reasons (from the C enum) and the reference's log lines.

The kernel counts each dropped packet under one ``sp2_drop_reason`` and notes the first packet of
each reason (``sp2_drop_note``: what its header said).  :func:`drop_message` turns a reason and
its note into the line the reference logs for that condition, at the reference's level
(spead2 4.5.1's exact wording, which users grep for); reasons the reference does not have get
ours.  The stream core logs it on a condition's first occurrence (repeats are summarised), and
the descriptor decoder for every packet it drops, as the reference does.
"""

from __future__ import annotations

import logging
from typing import Any

from spead2._kernel import enum_names, lib

#: Why packets were dropped (``StreamStats.drops``), in the order of sp2_drop_reason.
REASON_VALUES: dict[str, int] = {
    name: value
    for value, name in enum_names("sp2_drop_reason", "SP2_DROP_").items()
    if 0 < value < lib.SP2_DROP_COUNT
}
DROP_REASONS: tuple[str, ...] = tuple(REASON_VALUES)


def drop_reason_value(name: str) -> int:
    """The kernel's sp2_drop_reason of a name of DROP_REASONS."""
    return REASON_VALUES[name]


def drops_from_kernel(raw: Any) -> dict[str, int]:
    """``StreamStats.drops`` from a kernel statistics array (``sp2_stats.drops``)."""
    return {name: int(raw[value]) for name, value in REASON_VALUES.items()}


_REJECTED = "packet rejected because "
_OUT_OF_ORDER = (
    _REJECTED + "it is out-of-order in the heap "
    "(you might need to set allow_out_of_order to false in the stream config)"
)
#: Reasons with one wording: (level, message).
_FIXED: dict[int, tuple[int, str]] = {
    lib.SP2_DROP_BAD_MAGIC: (logging.INFO, _REJECTED + "magic or version did not match"),
    lib.SP2_DROP_BAD_VERSION: (logging.INFO, _REJECTED + "magic or version did not match"),
    lib.SP2_DROP_MISSING_FIELD: (logging.INFO, _REJECTED + "it does not have required items"),
    lib.SP2_DROP_BEYOND_HEAP: (logging.INFO, _REJECTED + "payload would overflow given heap length"),
    lib.SP2_DROP_UNSIZED: (logging.INFO, _REJECTED + "it has no HEAP_LEN"),
    lib.SP2_DROP_INCONSISTENT_LENGTH: (
        logging.INFO,
        _REJECTED + "its HEAP_LEN is inconsistent with the heap",
    ),
    lib.SP2_DROP_OUT_OF_ORDER: (logging.WARNING, _OUT_OF_ORDER),
    # ours (the reference has no such limits)
    lib.SP2_DROP_HEAP_TOO_LARGE: (logging.INFO, _REJECTED + "its heap is larger than max_heap_size"),
    lib.SP2_DROP_TOO_COMPLEX: (
        logging.WARNING,
        _REJECTED + "its heap has more item pointers or payload pieces than the kernel tracks",
    ),
    lib.SP2_DROP_NO_MEMORY: (logging.WARNING, _REJECTED + "no memory could be allocated for its heap"),
}


def _too_short(note: Any) -> str:
    size, need = int(note.bytes), int(note.info.size)
    if size < 8:
        return _REJECTED + f"too small ({size} bytes)"
    if size < 8 + 8 * int(note.info.n_items):
        return _REJECTED + "the items overflow the packet"
    return _REJECTED + f"payload length overflows packet size ({need} > {size})"


def drop_message(reason: int, note: Any, allow_out_of_order: bool) -> tuple[int, str]:
    """The level and line the reference logs for a packet dropped for ``reason``; ``note`` is
    its sp2_drop_note."""
    if reason in _FIXED:
        return _FIXED[reason]
    if reason == lib.SP2_DROP_TOO_SHORT:
        return logging.INFO, _too_short(note)
    if reason == lib.SP2_DROP_SIZE_MISMATCH:
        if note.info.size > note.bytes:
            return logging.INFO, _too_short(note)
        return logging.INFO, f"discarding packet due to size mismatch ({note.info.size} != {note.bytes})"
    if reason == lib.SP2_DROP_BAD_FLAVOUR:
        hab, ipb = int(note.info.header_address_bits), int(note.info.header_pointer_bits)
        if note.decoded:
            return logging.INFO, _REJECTED + "its flavour is inconsistent with the heap"
        if hab == 0 or hab >= ipb:
            return logging.INFO, _REJECTED + "flavour is invalid"
        return logging.INFO, _REJECTED + "flavour is not SPEAD-64-*"
    if reason == lib.SP2_DROP_DUPLICATE:
        if allow_out_of_order:
            return logging.DEBUG, _REJECTED + "it partially overlaps existing payload"
        return logging.WARNING, _OUT_OF_ORDER
    assert reason == lib.SP2_DROP_TOO_LARGE
    # a UDP reader counts its truncated datagrams without a packet; a byte stream has one
    if note.bytes:
        return logging.INFO, "dropping packet due to truncation"
    return logging.INFO, "dropped packet due to truncation"
