"""StreamConfig, RingStreamConfig and StreamStatConfig: what a stream is built with."""

from __future__ import annotations

import copy
import enum
import numbers
import operator
from typing import Any

from spead2._constants import _BUG_COMPAT_ALL, MEMCPY_NONTEMPORAL, MEMCPY_STD
from spead2._memory import MemoryAllocator


class StreamStatConfig:
    """Name and long-term update mode of one statistic."""

    class Mode(enum.Enum):
        COUNTER = 0
        MAXIMUM = 1

    __slots__ = ("_mode", "_name")

    def __init__(self, name: str, mode: StreamStatConfig.Mode = Mode.COUNTER) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if not isinstance(mode, StreamStatConfig.Mode):
            raise TypeError(f"mode must be a StreamStatConfig.Mode, not {type(mode).__name__}")
        self._name = name
        self._mode = mode

    @property
    def name(self) -> str:
        return self._name

    @property
    def mode(self) -> StreamStatConfig.Mode:
        return self._mode

    def combine(self, a: int, b: int) -> int:
        """Combines two samples: their sum for a counter, the larger for a maximum."""
        return max(a, b) if self._mode is StreamStatConfig.Mode.MAXIMUM else a + b

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamStatConfig):
            return NotImplemented
        return (self._name, self._mode) == (other._name, other._mode)

    def __hash__(self) -> int:
        return hash((self._name, self._mode))

    def __repr__(self) -> str:
        return f"StreamStatConfig({self._name!r}, {self._mode})"


_COUNTER = StreamStatConfig.Mode.COUNTER
CORE_STATS: tuple[StreamStatConfig, ...] = (
    StreamStatConfig("heaps"),
    StreamStatConfig("incomplete_heaps_evicted"),
    StreamStatConfig("incomplete_heaps_flushed"),
    StreamStatConfig("packets"),
    StreamStatConfig("batches"),
    StreamStatConfig("max_batch", StreamStatConfig.Mode.MAXIMUM),
    StreamStatConfig("single_packet_heaps"),
    StreamStatConfig("search_dist"),
    StreamStatConfig("worker_blocked"),
)


def _uint(value: Any, name: str, bits: int = 64) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if not 0 <= value < 2**bits:
        raise TypeError(f"{name} must be a non-negative integer of at most {bits} bits, not {value}")
    return value


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool | numbers.Integral):
        return bool(value)
    raise TypeError(f"{name} must be a bool, not {type(value).__name__}")


class _KwargsConfig:
    """Configuration settable by keyword arguments or properties, as the reference's."""

    _fields: tuple[str, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            if key not in self._fields:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {key!r}")
            setattr(self, key, value)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    def __copy__(self) -> Any:
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new


class StreamConfig(_KwargsConfig):
    """Configuration of a stream (everything except its ring of finished heaps).

    ``max_heap_size`` (not in the reference) bounds the payload a sender may claim for one heap,
    1 GiB by default: a packet claiming more is dropped and counted, so a hostile HEAP_LENGTH
    cannot make the receiver reserve memory.
    """

    DEFAULT_MAX_HEAPS = 4
    DEFAULT_MAX_HEAP_SIZE = 1 << 30
    _fields = (
        "max_heaps",
        "substreams",
        "bug_compat",
        "memcpy",
        "memory_allocator",
        "stop_on_stop_item",
        "allow_unsized_heaps",
        "allow_out_of_order",
        "stream_id",
        "explicit_start",
        "max_heap_size",
    )

    def __init__(self, **kwargs: Any) -> None:
        self._max_heaps = self.DEFAULT_MAX_HEAPS
        self._substreams = 1
        self._bug_compat = 0
        self._memcpy = MEMCPY_STD
        self._memory_allocator: MemoryAllocator | None = _default_allocator()
        self._stop_on_stop_item = True
        self._allow_unsized_heaps = True
        self._allow_out_of_order = False
        self._stream_id = 0
        self._explicit_start = False
        self._max_heap_size = self.DEFAULT_MAX_HEAP_SIZE
        self._stats = list(CORE_STATS)
        super().__init__(**kwargs)

    def __copy__(self) -> StreamConfig:
        new: StreamConfig = super().__copy__()
        new._stats = list(self._stats)
        return new

    @property
    def max_heaps(self) -> int:
        return self._max_heaps

    @max_heaps.setter
    def max_heaps(self, value: int) -> None:
        value = _uint(value, "max_heaps")
        if value == 0:
            raise ValueError("max_heaps cannot be 0")
        self._max_heaps = value

    @property
    def substreams(self) -> int:
        return self._substreams

    @substreams.setter
    def substreams(self, value: int) -> None:
        value = _uint(value, "substreams")
        if value == 0:
            raise ValueError("substreams cannot be 0")
        self._substreams = value

    @property
    def bug_compat(self) -> int:
        return self._bug_compat

    @bug_compat.setter
    def bug_compat(self, value: int) -> None:
        value = _uint(value, "bug_compat", 32)
        if value & ~_BUG_COMPAT_ALL:
            raise ValueError("unknown compatibility bits in bug_compat")
        self._bug_compat = value

    @property
    def memcpy(self) -> int:
        return self._memcpy

    @memcpy.setter
    def memcpy(self, value: int) -> None:
        value = _uint(value, "memcpy", 32)
        if value not in (MEMCPY_STD, MEMCPY_NONTEMPORAL):
            raise ValueError("Unknown memcpy function")
        self._memcpy = value

    @property
    def memory_allocator(self) -> MemoryAllocator | None:
        return self._memory_allocator

    @memory_allocator.setter
    def memory_allocator(self, value: MemoryAllocator | None) -> None:
        if value is not None and not isinstance(value, MemoryAllocator):
            raise TypeError(f"memory_allocator must be a MemoryAllocator, not {type(value).__name__}")
        self._memory_allocator = value

    @property
    def stop_on_stop_item(self) -> bool:
        return self._stop_on_stop_item

    @stop_on_stop_item.setter
    def stop_on_stop_item(self, value: bool) -> None:
        self._stop_on_stop_item = _bool(value, "stop_on_stop_item")

    @property
    def allow_unsized_heaps(self) -> bool:
        return self._allow_unsized_heaps

    @allow_unsized_heaps.setter
    def allow_unsized_heaps(self, value: bool) -> None:
        self._allow_unsized_heaps = _bool(value, "allow_unsized_heaps")

    @property
    def allow_out_of_order(self) -> bool:
        return self._allow_out_of_order

    @allow_out_of_order.setter
    def allow_out_of_order(self, value: bool) -> None:
        self._allow_out_of_order = _bool(value, "allow_out_of_order")

    @property
    def stream_id(self) -> int:
        return self._stream_id

    @stream_id.setter
    def stream_id(self, value: int) -> None:
        self._stream_id = _uint(value, "stream_id")

    @property
    def explicit_start(self) -> bool:
        return self._explicit_start

    @explicit_start.setter
    def explicit_start(self, value: bool) -> None:
        self._explicit_start = _bool(value, "explicit_start")

    @property
    def max_heap_size(self) -> int:
        return self._max_heap_size

    @max_heap_size.setter
    def max_heap_size(self, value: int) -> None:
        value = _uint(value, "max_heap_size")
        if value == 0:
            raise ValueError("max_heap_size cannot be 0")
        self._max_heap_size = value

    @property
    def stats(self) -> list[StreamStatConfig]:
        """All statistics of the stream, core ones first; positions are stat indices."""
        return list(self._stats)

    def add_stat(self, name: str, mode: StreamStatConfig.Mode = _COUNTER) -> int:
        """Registers a custom statistic and returns its index."""
        stat = StreamStatConfig(name, mode)
        if any(s.name == name for s in self._stats):
            raise ValueError(f"A statistic called {name} already exists")
        self._stats.append(stat)
        return len(self._stats) - 1

    def get_stat_index(self, name: str) -> int:
        for i, stat in enumerate(self._stats):
            if stat.name == name:
                return i
        raise IndexError(f"{name} is not a known statistic name")

    def next_stat_index(self) -> int:
        return len(self._stats)


class RingStreamConfig(_KwargsConfig):
    """Configuration of the ring of finished heaps between the readers and the consumer."""

    DEFAULT_HEAPS = 4
    _fields = ("heaps", "contiguous_only", "incomplete_keep_payload_ranges")

    def __init__(self, **kwargs: Any) -> None:
        self._heaps = self.DEFAULT_HEAPS
        self._contiguous_only = True
        self._incomplete_keep_payload_ranges = False
        super().__init__(**kwargs)

    @property
    def heaps(self) -> int:
        return self._heaps

    @heaps.setter
    def heaps(self, value: int) -> None:
        value = _uint(value, "heaps")
        if value == 0:
            raise ValueError("heaps must be at least 1")
        self._heaps = value

    @property
    def contiguous_only(self) -> bool:
        return self._contiguous_only

    @contiguous_only.setter
    def contiguous_only(self, value: bool) -> None:
        self._contiguous_only = _bool(value, "contiguous_only")

    @property
    def incomplete_keep_payload_ranges(self) -> bool:
        return self._incomplete_keep_payload_ranges

    @incomplete_keep_payload_ranges.setter
    def incomplete_keep_payload_ranges(self, value: bool) -> None:
        self._incomplete_keep_payload_ranges = _bool(value, "incomplete_keep_payload_ranges")


_DEFAULT_ALLOCATOR: MemoryAllocator | None = None


def _default_allocator() -> MemoryAllocator:
    """One shared malloc allocator, like the reference's default."""
    global _DEFAULT_ALLOCATOR
    if _DEFAULT_ALLOCATOR is None:
        _DEFAULT_ALLOCATOR = MemoryAllocator()
    return _DEFAULT_ALLOCATOR


def snapshot(config: Any) -> Any:
    """The copy a stream keeps, so that later changes to the caller's object do not reach it."""
    return copy.copy(config)
