"""Helpers for place functions written with numba (``pip install aiospead2[numba]``)."""

from __future__ import annotations

from typing import Any

import numba.extending
from numba import types

__all__ = ["intp_to_voidptr"]


@numba.extending.intrinsic
def intp_to_voidptr(typingctx: Any, src: Any) -> Any:
    if src not in (types.intp, types.uintp):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return types.voidptr(src), codegen


intp_to_voidptr.__doc__ = """Turns an integer (intp or uintp) into a void pointer.

numba records cannot hold pointers, so the pointer fields of
:data:`spead2.recv.numba.chunk_place_data` are integers: turn them into pointers with this, then
into arrays with :func:`numba.carray`."""
