"""Place functions written in C and compiled with cffi (no numba): as a cffi function pointer,
and in the reference's tuple form with a context pointer."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest
from chunk_support import HEAP_SIZE, HEAPS, compile_place, heaps, make_chunk, summary

import spead2
import spead2.recv


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return compile_place(tmp_path_factory.mktemp("cplace"), HEAPS, HEAP_SIZE)


def run(thread_pool: spead2.ThreadPool, place: Any, data: bytes) -> list[Any]:
    cfg = spead2.recv.ChunkStreamConfig(items=[spead2.HEAP_CNT_ID], place=place)
    stream = spead2.recv.ChunkRingStream(
        thread_pool,
        spead2.recv.StreamConfig(),
        cfg,
        spead2.recv.ChunkRingbuffer(4),
        spead2.recv.ChunkRingbuffer(4),
    )
    for _ in range(4):
        stream.add_free_chunk(make_chunk(extra=False))
    stream.add_buffer_reader(data)
    return [summary(chunk) for chunk in stream.data_ringbuffer]


def test_cffi_function_pointer(thread_pool: spead2.ThreadPool, compiled: Any) -> None:
    place = compiled.ffi.addressof(compiled.lib, "place")
    assert run(thread_pool, place, heaps(1, 2, 5)) == [
        (0, [0, 1, 1, 0], [0, 1, 2, 0]),
        (1, [0, 1, 0, 0], [0, 5, 0, 0]),
    ]


def test_tuple_form_with_context(thread_pool: spead2.ThreadPool, compiled: Any) -> None:
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    set_context = ctypes.pythonapi.PyCapsule_SetContext
    set_context.argtypes = [ctypes.py_object, ctypes.c_void_p]
    address = int(compiled.ffi.cast("uintptr_t", compiled.ffi.addressof(compiled.lib, "place_context")))
    capsule = new_capsule(address, b"void (void *, size_t, void *)", None)
    shift = ctypes.c_int64(4)  # heap cnt c is placed as c + 4
    set_context(capsule, ctypes.addressof(shift))
    place = (capsule, shift)
    got = run(thread_pool, place, heaps(1, 2))
    assert got == [(0, [0, 0, 0, 0], [0, 0, 0, 0]), (1, [0, 1, 1, 0], [0, 1, 2, 0])]


def test_wrong_signature_is_refused() -> None:
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    capsule = new_capsule(1234, b"void (void *)", None)
    with pytest.raises(TypeError, match="signature"):
        spead2.recv.ChunkStreamConfig(place=(capsule,))
