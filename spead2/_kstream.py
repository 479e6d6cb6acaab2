"""A kernel stream without a loop: the one ``sp2_config`` builder, and a stream made from it.

Every user of the receive kernel builds its configuration here -- the stream core, the
descriptor decoder (a throwaway in-order stream), the test harness and the fuzz replayer -- so
that the kernel's defaults (``sp2_config_init``) apply wherever a field is not given, and a
misspelt field is an error rather than a silently ignored attribute.
"""

from __future__ import annotations

from typing import Any

from spead2._kernel import check_pointer, ensure, ffi, lib

#: The fields of sp2_config, by name.
CONFIG_FIELDS: frozenset[str] = frozenset(name for name, _ in ffi.typeof("sp2_config").fields)


def kernel_config(**fields: int) -> Any:
    """An ``sp2_config *``: the kernel's defaults, with ``fields`` (sp2_config's names) set."""
    unknown = set(fields) - CONFIG_FIELDS
    if unknown:
        raise TypeError(f"sp2_config has no field(s) {', '.join(sorted(unknown))}")
    config = ffi.new("sp2_config *")
    lib.sp2_config_init(config)
    for name, value in fields.items():
        setattr(config, name, int(value))
    return config


def new_stream(config: Any, allocator: Any = None) -> Any:
    """A kernel stream (``sp2_stream *``, freed when collected).  ``allocator`` is an
    ``sp2_allocator *`` or None for the kernel's own malloc allocator."""
    out = ffi.new("sp2_stream **")
    ensure(lib.sp2_stream_new(config, ffi.NULL if allocator is None else allocator, out), "Stream")
    return ffi.gc(check_pointer(out[0], "Stream"), lib.sp2_stream_free)


def pop_heap(stream: Any) -> Any:
    """The next finished heap (``sp2_heap *``, freed when collected) without waiting, or None."""
    raw = lib.sp2_ring_pop(stream, 0)
    return None if raw == ffi.NULL else ffi.gc(raw, lib.sp2_heap_free)
