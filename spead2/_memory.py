"""Memory allocators for heap payloads: thin owners of the kernel's C allocators."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

from spead2._kernel import check_pointer, ffi, lib

if TYPE_CHECKING:
    from spead2._threadpool import ThreadPool


def _size(value: Any, name: str) -> int:
    value = operator.index(value)
    if value < 0:
        raise TypeError(f"{name} must be non-negative, not {value}")
    return value


class MemoryAllocator:
    """The default allocator: ``malloc``.  Base class of all allocators."""

    _handle: Any

    def __init__(self) -> None:
        self._adopt(lib.sp2_allocator_malloc_new(), "MemoryAllocator")

    def _adopt(self, handle: Any, what: str) -> None:
        # Freed with ffi.gc at allocation; streams and heaps hold references of their own in C.
        self._handle = ffi.gc(check_pointer(handle, what), lib.sp2_allocator_release)


class MmapAllocator(MemoryAllocator):
    """Allocates with mmap(2); ``prefer_huge`` tries huge pages first."""

    def __init__(self, flags: int = 0, prefer_huge: bool = False) -> None:
        self._adopt(lib.sp2_allocator_mmap_new(operator.index(flags), bool(prefer_huge)), "MmapAllocator")


class MemoryPool(MemoryAllocator):
    """A pool of buffers of ``upper`` bytes serving requests of ``lower`` to ``upper`` bytes.

    ``MemoryPool(lower, upper, max_free, initial, allocator=None)``, or with background refill
    ``MemoryPool(thread_pool, lower, upper, max_free, initial, low_water, allocator=None)``:
    whenever fewer than ``low_water`` buffers are free, a background thread allocates new ones
    until ``initial`` are.  (The refill runs on a thread of the pool's own rather than on
    ``thread_pool``, whose loops must never block on an allocation.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from spead2._threadpool import ThreadPool

        if (args and isinstance(args[0], ThreadPool)) or "thread_pool" in kwargs:
            self._init_refill(*args, **kwargs)
        else:
            self._init(*args, **kwargs)

    def _init(
        self, lower: int, upper: int, max_free: int, initial: int, allocator: MemoryAllocator | None = None
    ) -> None:
        self._setup(lower, upper, max_free, initial, 0, False, allocator)

    def _init_refill(
        self,
        thread_pool: ThreadPool,
        lower: int,
        upper: int,
        max_free: int,
        initial: int,
        low_water: int,
        allocator: MemoryAllocator | None = None,
    ) -> None:
        self._setup(lower, upper, max_free, initial, low_water, True, allocator)

    def _setup(
        self,
        lower: int,
        upper: int,
        max_free: int,
        initial: int,
        low_water: int,
        refill: bool,
        allocator: MemoryAllocator | None,
    ) -> None:
        if allocator is not None and not isinstance(allocator, MemoryAllocator):
            raise TypeError(f"allocator must be a MemoryAllocator, not {type(allocator).__name__}")
        base = allocator._handle if allocator is not None else ffi.NULL
        handle = lib.sp2_pool_new(
            _size(lower, "lower"),
            _size(upper, "upper"),
            _size(max_free, "max_free"),
            _size(initial, "initial"),
            _size(low_water, "low_water"),
            refill,
            base,
        )
        self._adopt(handle, "MemoryPool")

    @property
    def warn_on_empty(self) -> bool:
        return bool(lib.sp2_pool_get_warn_on_empty(self._handle))

    @warn_on_empty.setter
    def warn_on_empty(self, value: bool) -> None:
        lib.sp2_pool_set_warn_on_empty(self._handle, bool(value))

    @property
    def _free_count(self) -> int:
        """Buffers currently free in the pool (for tests and diagnostics)."""
        return int(lib.sp2_pool_free_count(self._handle))

    @property
    def _empty_events(self) -> int:
        return int(lib.sp2_pool_empty_events(self._handle))
