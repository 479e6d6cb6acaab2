"""Every reader feeds a chunk stream as it feeds a heap stream: UDP (native drain and the
portable path), TCP from our sender, a pcap file, and a buffer written by the reference."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chunk_support import HEAP_SIZE, HEAPS, chunk_config, heap, make_chunk, summary

import spead2
import spead2.recv
import spead2.send
from spead2.recv._readers import udp as udp_reader

pytest.importorskip("numba")
pytest.importorskip("scipy")

N_CHUNKS = 6


@pytest.fixture(scope="module")
def place() -> Any:
    from chunk_support import numba_place

    return numba_place()


def make_stream(thread_pool: spead2.ThreadPool, place: Any, free: int = 2) -> spead2.recv.ChunkRingStream:
    """Few free chunks: the stream keeps waiting for the consumer, pausing its readers."""
    stream = spead2.recv.ChunkRingStream(
        thread_pool,
        spead2.recv.StreamConfig(max_heaps=4),
        chunk_config(place),
        spead2.recv.ChunkRingbuffer(free),
        spead2.recv.ChunkRingbuffer(free),
    )
    for _ in range(free):
        stream.add_free_chunk(make_chunk())
    return stream


def consume(stream: spead2.recv.ChunkRingStream, n_chunks: int) -> list[Any]:
    """Takes n_chunks chunks (recycling each), then stops the stream."""
    got = []
    for chunk in stream.data_ringbuffer:
        got.append(summary(chunk))
        stream.add_free_chunk(chunk)
        if len(got) == n_chunks:
            stream.stop()
    return got


def full_chunks(n: int) -> list[Any]:
    return [(i, [1] * HEAPS, [(i * HEAPS + j) & 0xFF for j in range(HEAPS)]) for i in range(n)]


@pytest.mark.parametrize("native", [True, False], ids=["native", "portable"])
def test_udp(
    thread_pool: spead2.ThreadPool, place: Any, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(udp_reader, "USE_NATIVE", native and udp_reader.USE_NATIVE)
    stream = make_stream(thread_pool, place)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    stream.add_udp_reader(sock)
    sock.close()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # chunk N_CHUNKS moves the window past the last chunk wanted
    for cnt in range((N_CHUNKS + 2) * HEAPS):
        for pkt in heap(cnt, per_packet=8):
            sender.sendto(pkt, ("127.0.0.1", port))
    sender.close()
    assert consume(stream, N_CHUNKS) == full_chunks(N_CHUNKS)


def test_tcp_from_our_sender(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stream.add_tcp_reader(listener)
    port = listener.getsockname()[1]
    listener.close()
    flavour = spead2.Flavour(4, 64, 48, 0)
    item = spead2.Item(0x1000, "data", "", shape=(HEAP_SIZE,), dtype=np.uint8)
    sender = spead2.send.TcpStream(
        spead2.ThreadPool(), [("127.0.0.1", port)], spead2.send.StreamConfig(max_packet_size=80)
    )
    for cnt in range(N_CHUNKS * HEAPS):
        item.value = np.full(HEAP_SIZE, cnt & 0xFF, np.uint8)
        send_heap = spead2.send.Heap(flavour)
        send_heap.add_item(item)
        sender.send_heap(send_heap, cnt=cnt)
    del sender  # closes the connection: the stream ends and hands every chunk over
    got = [summary(chunk) for chunk in iter_recycling(stream)]
    assert got == full_chunks(N_CHUNKS)


def iter_recycling(stream: spead2.recv.ChunkRingStream) -> Any:
    for chunk in stream.data_ringbuffer:
        yield chunk
        stream.add_free_chunk(chunk)


def write_pcap(path: Path, datagrams: list[bytes]) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, payload in enumerate(datagrams):
        udp = struct.pack(">HHHH", 9000, 8888, 8 + len(payload), 0) + payload
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp  # fmt: skip
        frame = b"\0" * 12 + b"\x08\x00" + ip
        out.append(struct.pack("<IIII", 0, i, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def test_pcap(thread_pool: spead2.ThreadPool, place: Any, tmp_path: Path) -> None:
    stream = make_stream(thread_pool, place)
    path = tmp_path / "chunks.pcap"
    write_pcap(path, [pkt for cnt in range(N_CHUNKS * HEAPS) for pkt in heap(cnt, per_packet=4)])
    stream.add_udp_pcap_file_reader(str(path))
    assert [summary(chunk) for chunk in iter_recycling(stream)] == full_chunks(N_CHUNKS)


def test_inproc_from_another_thread(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    queue = spead2.InprocQueue()
    stream.add_inproc_reader(queue)

    def produce() -> None:
        for cnt in range(N_CHUNKS * HEAPS):
            for pkt in heap(cnt, per_packet=8):
                queue.add_packet(pkt)
        queue.stop()

    producer = threading.Thread(target=produce)
    producer.start()
    assert [summary(chunk) for chunk in iter_recycling(stream)] == full_chunks(N_CHUNKS)
    producer.join()


@pytest.mark.interop
def test_reference_sender(
    thread_pool: spead2.ThreadPool, place: Any, reference: Path, tmp_path: Path
) -> None:
    """Heaps written by the reference's BytesStream (in its own venv) fill our chunks."""
    import refvenv

    script = f"""
import numpy as np, spead2, spead2.send, sys
stream = spead2.send.BytesStream(spead2.ThreadPool(), spead2.send.StreamConfig(max_packet_size=80))
ig = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 48, 0))
ig.add_item(0x1000, "data", "", shape=({HEAP_SIZE},), dtype=np.uint8)
stream.set_cnt_sequence(0, 1)
for cnt in range({N_CHUNKS * HEAPS}):
    ig["data"].value = np.full({HEAP_SIZE}, cnt & 0xff, np.uint8)
    stream.send_heap(ig.get_heap(descriptors="none", data="all"))
sys.stdout.buffer.write(stream.getvalue())
"""
    data = subprocess.run(
        [str(reference), "-c", script], capture_output=True, check=True, env=refvenv.clean_env(), cwd=tmp_path
    ).stdout
    stream = make_stream(thread_pool, place)
    stream.add_buffer_reader(data)
    assert [summary(chunk) for chunk in iter_recycling(stream)] == full_chunks(N_CHUNKS)
