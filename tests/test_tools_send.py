"""spead2_send: the reference's options, heaps that our receiver decodes, the summary line, and
one-line errors."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import numpy as np
import pytest

import spead2
import spead2.recv

COMMAND = [sys.executable, "-m", "spead2.tools.send"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=120)


def received(stream: spead2.recv.Stream) -> list[dict[str, object]]:
    group = spead2.ItemGroup()
    return [dict(group.update(heap)) for heap in stream]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sends_heaps(thread_pool: spead2.ThreadPool, transport: str) -> None:
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(max_heaps=8))
    if transport == "tcp":
        sock.listen(1)
        stream.add_tcp_reader(sock)
    else:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        stream.add_udp_reader(sock)
    port = sock.getsockname()[1]
    extra = ["--tcp", "--packet", "9000"] if transport == "tcp" else ["--rate", "0.2"]
    proc = run(
        f"127.0.0.1:{port}", "--heaps", "4", "--heap-size", "65536", "--items", "2", "--dtype", "<u2", *extra
    )
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"Sent \d+ bytes in [\d.]+s, [\d.]+ Gb/s\n", proc.stdout), proc.stdout
    heaps = received(stream)
    assert len(heaps) == 4
    assert sorted(heaps[0]) == ["Test item 0", "Test item 1"]
    value = heaps[0]["Test item 1"].value  # type: ignore[attr-defined]
    assert value.dtype == np.uint16 and value.shape == (16384,) and not value.any()
    sock.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["127.0.0.1:1", "--ibv"], "ibverbs is not supported"),
        (["nonsense"], "not HOST:PORT"),
        (["--tcp", "127.0.0.1:1", "127.0.0.1:2"], "only one destination"),
        (["--tcp", "127.0.0.1:1", "--heaps", "1"], "cannot open the stream"),
    ],
)
def test_errors(args: list[str], message: str) -> None:
    proc = run(*args)
    assert proc.returncode != 0
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
