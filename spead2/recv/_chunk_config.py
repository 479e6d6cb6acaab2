"""Chunk, ChunkStreamConfig and ChunkStreamGroupConfig, and how a place function is given."""

from __future__ import annotations

import ctypes
import enum
import operator
from typing import Any, ClassVar

from spead2._kernel import ffi

#: The signatures a place function may have (exactly, as the reference spells them).
PLACE_SIGNATURES = ("void (void *, size_t)", "void (void *, size_t, void *)")
#: The name of capsules made here: a capsule keeps a pointer to its name, so it must live forever.
_CAPSULE_NAME = PLACE_SIGNATURES[0].encode()

_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype = ctypes.c_char_p
_capsule_name.argtypes = [ctypes.py_object]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_context = ctypes.pythonapi.PyCapsule_GetContext
_capsule_context.restype = ctypes.c_void_p
_capsule_context.argtypes = [ctypes.py_object]
_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_CapsuleType = type(ctypes.pythonapi.PyCapsule_New(id(0), b"probe", None))  # types.CapsuleType in 3.13


def _writable_buffer(value: Any) -> Any:
    if value is None:
        return None
    view = memoryview(value)
    if view.readonly:
        raise BufferError("Object is not writable.")
    if not view.c_contiguous:
        raise ValueError(f"{type(value).__name__} is not C-contiguous")
    return value


def _buffer_property(name: str, doc: str) -> property:
    """A buffer attribute of a Chunk: a writable C-contiguous buffer, or None."""
    attr = "_" + name

    def get(self: Chunk) -> Any:
        return getattr(self, attr)

    def set(self: Chunk, value: Any) -> None:
        setattr(self, attr, _writable_buffer(value))
        self._c_buf = None  # the C view of the buffers (made by the chunk streams) is stale

    return property(get, set, doc=doc)


class Chunk:
    """A chunk: ``data`` (heap payloads), ``present`` (one flag per heap, or per packet with
    packet presence), ``extra`` (what place functions write), ``chunk_id`` and ``stream_id``.
    The buffers are any writable C-contiguous buffer-protocol objects (numpy arrays,
    bytearray, memoryview) or None.  Subclasses keep their own attributes through the rings."""

    #: The chunk streams' C view of the buffers (see _chunk_core._chunk_buf), None when stale.
    _c_buf: Any = None

    def __init__(
        self,
        *,
        chunk_id: int = -1,
        stream_id: int = 0,
        present: Any = None,
        data: Any = None,
        extra: Any = None,
    ) -> None:
        self.chunk_id = chunk_id
        self.stream_id = stream_id
        self.present = present
        self.data = data
        self.extra = extra

    @property
    def chunk_id(self) -> int:
        return self._chunk_id

    @chunk_id.setter
    def chunk_id(self, value: int) -> None:
        value = operator.index(value)
        if not -(2**63) <= value < 2**63:
            raise OverflowError("chunk_id must fit in 64 bits")
        self._chunk_id = value

    @property
    def stream_id(self) -> int:
        return self._stream_id

    @stream_id.setter
    def stream_id(self, value: int) -> None:
        value = operator.index(value)
        if not 0 <= value < 2**64:
            raise OverflowError("stream_id must fit in 64 bits")
        self._stream_id = value

    present: Any = _buffer_property("present", "One flag per heap index (per packet with packet presence).")
    data: Any = _buffer_property("data", "The heaps' payloads.")
    extra: Any = _buffer_property("extra", "What place functions write as extra data.")


def place_pointer(place: Any) -> tuple[int, int, bool]:
    """(function address, context address, whether it takes the context) of a place function
    given in the reference's tuple form (a PyCapsule first; scipy.LowLevelCallable is one)."""
    capsule = tuple.__getitem__(place, 0)  # scipy.LowLevelCallable hides its items
    if not isinstance(capsule, _CapsuleType):
        raise TypeError("the first element of place must be a PyCapsule")
    raw_name = _capsule_name(capsule)
    name = raw_name.decode() if raw_name is not None else ""
    if name not in PLACE_SIGNATURES:
        raise TypeError(
            f"place function has the wrong signature {name!r}; expected one of {PLACE_SIGNATURES}"
        )
    function = _capsule_pointer(capsule, raw_name)
    context = _capsule_context(capsule) or 0
    return int(function), int(context), name == PLACE_SIGNATURES[1]


def _normalise_place(place: Any) -> tuple[Any, ...] | None:
    if place is None:
        return None
    if isinstance(place, ffi.CData):
        # A C function pointer made through cffi: wrapped in the tuple form (holding the pointer).
        address = int(ffi.cast("uintptr_t", place))
        if not address:
            raise ValueError("place is a NULL function pointer")
        return (_capsule_new(address, _CAPSULE_NAME, None), place)
    if not isinstance(place, tuple) or not place:
        raise TypeError(
            "place must be a tuple whose first element is a PyCapsule (e.g. scipy.LowLevelCallable)"
        )
    place_pointer(place)  # validates
    return place


class ChunkStreamConfig:
    """How heaps are placed into chunks: the immediate ``items`` given to the ``place``
    function, the window of ``max_chunks`` chunks, ``max_heap_extra`` bytes of extra data per
    heap, and optional packet presence."""

    DEFAULT_MAX_CHUNKS: ClassVar[int] = 2

    def __init__(
        self,
        *,
        items: list[int] | None = None,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
        place: Any = None,
        max_heap_extra: int = 0,
    ) -> None:
        self._items: list[int] = []
        self._max_chunks = self.DEFAULT_MAX_CHUNKS
        self._place: tuple[Any, ...] | None = None
        self._max_heap_extra = 0
        self._packet_presence_payload_size = 0
        self.items = [] if items is None else items
        self.max_chunks = max_chunks
        self.place = place
        self.max_heap_extra = max_heap_extra

    @property
    def items(self) -> list[int]:
        return list(self._items)

    @items.setter
    def items(self, value: list[int]) -> None:
        items = [operator.index(v) for v in value]
        if any(not 0 <= v < 2**64 for v in items):
            raise OverflowError("item ids must fit in 64 bits")
        self._items = items

    @property
    def max_chunks(self) -> int:
        return self._max_chunks

    @max_chunks.setter
    def max_chunks(self, value: int) -> None:
        value = operator.index(value)
        if value == 0:
            raise ValueError("max_chunks cannot be 0")
        if not 0 < value < 2**24:
            raise OverflowError("max_chunks is out of range")
        self._max_chunks = value

    @property
    def place(self) -> tuple[Any, ...] | None:
        return self._place

    @place.setter
    def place(self, value: Any) -> None:
        self._place = _normalise_place(value)

    @property
    def max_heap_extra(self) -> int:
        return self._max_heap_extra

    @max_heap_extra.setter
    def max_heap_extra(self, value: int) -> None:
        value = operator.index(value)
        if not 0 <= value <= 2**30:
            raise OverflowError("max_heap_extra is out of range")
        self._max_heap_extra = value

    def enable_packet_presence(self, payload_size: int) -> None:
        payload_size = operator.index(payload_size)
        if payload_size <= 0:
            raise ValueError("payload_size must not be zero")
        self._packet_presence_payload_size = payload_size

    def disable_packet_presence(self) -> None:
        self._packet_presence_payload_size = 0

    @property
    def packet_presence_payload_size(self) -> int:
        return self._packet_presence_payload_size

    def __repr__(self) -> str:
        return (
            f"ChunkStreamConfig(items={self._items!r}, max_chunks={self._max_chunks}, "
            f"place={self._place!r}, max_heap_extra={self._max_heap_extra})"
        )


class ChunkStreamGroupConfig:
    """The window shared by the streams of a group, and what happens when it must move on."""

    class EvictionMode(enum.Enum):
        #: force streams to release incomplete chunks
        LOSSY = 0
        #: a chunk is only marked ready when all streams have marked it ready
        LOSSLESS = 1

    DEFAULT_MAX_CHUNKS: ClassVar[int] = 2

    def __init__(
        self, *, max_chunks: int = DEFAULT_MAX_CHUNKS, eviction_mode: EvictionMode | None = None
    ) -> None:
        max_chunks = operator.index(max_chunks)
        if max_chunks == 0:
            raise ValueError("max_chunks cannot be 0")
        if not 0 < max_chunks < 2**24:
            raise OverflowError("max_chunks is out of range")
        mode = self.EvictionMode.LOSSY if eviction_mode is None else eviction_mode
        if not isinstance(mode, self.EvictionMode):
            raise TypeError("eviction_mode must be a ChunkStreamGroupConfig.EvictionMode")
        self._max_chunks = max_chunks
        self._eviction_mode = mode

    @property
    def max_chunks(self) -> int:
        return self._max_chunks

    @property
    def eviction_mode(self) -> ChunkStreamGroupConfig.EvictionMode:
        return self._eviction_mode

    def __repr__(self) -> str:
        return f"ChunkStreamGroupConfig(max_chunks={self._max_chunks}, eviction_mode={self._eviction_mode})"
