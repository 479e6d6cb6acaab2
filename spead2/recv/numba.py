"""The numba type of a place function's argument (``pip install aiospead2[numba]``)."""

from __future__ import annotations

from numba import types

__all__ = ["chunk_place_data"]

chunk_place_data = types.Record.make_c_struct(
    [
        ("packet", types.intp),  # const uint8_t *: the heap's first packet
        ("packet_size", types.size_t),
        ("items", types.intp),  # const int64_t *: the requested items' values (-1: absent)
        ("chunk_id", types.int64),
        ("heap_index", types.size_t),
        ("heap_offset", types.size_t),
        ("batch_stats", types.intp),  # uint64_t *: the stream's statistics
        ("extra", types.intp),  # uint8_t *: max_heap_extra bytes
        ("extra_offset", types.size_t),
        ("extra_size", types.size_t),
    ]
)
"""numba record type of the structure a place function is given (the layout of
``sp2_chunk_place_data``, the reference's ``chunk_place_data``).  The pointers are integers
(numba records hold no pointers): use :func:`spead2.numba.intp_to_voidptr` and
:func:`numba.carray` to reach the memory they point to."""
