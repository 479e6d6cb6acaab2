"""Our send side against the reference (spead2 4.5.1 in its own venv, tests/interop/refvenv.py):

- the packets of the same heaps are byte for byte the reference's (``PacketGenerator`` over
  random heaps of every flavour), but where the reference is wrong: when padding and item bytes
  share a packet, the reference puts the padding's zeros before the item bytes (its receiver then
  reads a shifted value); ours puts them where its NULL item points (docs/differences.rst);
- the reference's receiver decodes exactly our items, over UDP (IPv4, IPv6) and TCP, from our
  blocking and asyncio streams.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

import spead2
import spead2.send
import spead2.send.asyncio

sys.path.insert(0, str(Path(__file__).parent / "interop"))
import refvenv
import scenarios
from sender import make_group

pytestmark = pytest.mark.interop

INTEROP = Path(__file__).parent / "interop"
HEAPS = 9


def run_cases(python: list[str], seed: int, count: int) -> list[str]:
    proc = subprocess.run(
        [*python, str(INTEROP / "send_cases.py"), str(seed), str(count)],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        env=refvenv.clean_env(),
        timeout=300,
        check=True,
    )
    return proc.stdout.splitlines()


def split(packet: bytes) -> tuple[bytes, bytes]:
    """(header and item pointers, payload)."""
    n = int.from_bytes(packet[6:8], "big")
    return packet[: 8 + 8 * n], packet[8 + 8 * n :]


def is_reference_padding_bug(ref: list[bytes], ours: list[bytes]) -> bool:
    """The reference's known fault: same headers and pointers; in a packet that holds both item
    bytes and k bytes of padding, it sends the k zeros first and the item bytes shifted after."""
    if len(ref) != len(ours):
        return False
    faults = 0
    for mine, theirs in zip(ours, ref, strict=True):
        (my_head, my_payload), (their_head, their_payload) = split(mine), split(theirs)
        if my_head != their_head:
            return False
        if my_payload != their_payload:
            k = len(my_payload) - len(my_payload.rstrip(b"\0"))
            shifted = bytes(k) + my_payload[: len(my_payload) - k]
            if k == 0 or their_payload != shifted:
                return False
            faults += 1
    return faults == 1


@pytest.mark.parametrize("seed", [1, 2])
def test_packets_as_the_reference(reference: Path, seed: int) -> None:
    count = 400
    theirs = run_cases(refvenv.command(reference), seed, count)
    ours = run_cases([sys.executable], seed, count)
    assert len(theirs) == len(ours) == count
    ok = padding_faults = 0
    for mine, ref in zip(ours, theirs, strict=True):
        if mine == ref:
            ok += " ok " in mine
            continue
        assert " ok " in mine and " ok " in ref, (mine[:200], ref[:200])
        my_packets = [bytes.fromhex(p) for p in mine.split()[2:]]
        ref_packets = [bytes.fromhex(p) for p in ref.split()[2:]]
        assert is_reference_padding_bug(ref_packets, my_packets), (mine[:300], ref[:300])
        padding_faults += 1
    assert ok > 0.9 * count
    assert padding_faults < 0.02 * count


# ---- the reference receives ----


def start_receiver(reference: Path, settings: dict[str, Any]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        refvenv.command(reference, str(INTEROP / "receiver.py"), json.dumps(settings)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),
        env=refvenv.clean_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"the reference receiver did not start: {proc.communicate()[1]}")
    return proc, json.loads(line)["port"]


def finish_receiver(proc: subprocess.Popen[str]) -> None:
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["version"] == refvenv.VERSION
    assert report["failure"] is None, report["failure"]
    assert report["heaps"] == HEAPS


@pytest.mark.parametrize(
    ("transport", "host", "mode"),
    [("udp", "127.0.0.1", "serial"), ("udp", "::1", "inflight"), ("tcp", "127.0.0.1", "serial")],
)
def test_reference_receives_blocking(reference: Path, transport: str, host: str, mode: str) -> None:
    """Our blocking streams, driven by the same script that drives the reference's sender."""
    settings = {"transport": transport, "host": host, "heaps": HEAPS, "mode": mode}
    receiver, port = start_receiver(reference, settings)
    sender = {
        **settings,
        "port": port,
        "packet_size": 9000,
        "rate": 0 if transport == "tcp" else 50e6,
        "end": True,
    }
    subprocess.run(
        [sys.executable, str(INTEROP / "sender.py"), json.dumps(sender)],
        check=True,
        capture_output=True,
        cwd=tempfile.gettempdir(),
        env=refvenv.clean_env(),
        timeout=120,
    )
    finish_receiver(receiver)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_reference_receives_asyncio(reference: Path, transport: str) -> None:
    settings = {"transport": transport, "host": "127.0.0.1", "heaps": HEAPS, "mode": "serial"}
    receiver, port = start_receiver(reference, settings)
    pool = spead2.ThreadPool()
    config = spead2.send.StreamConfig(
        max_packet_size=8972, rate=50e6 if transport == "udp" else 0.0, max_heaps=4
    )
    stream: spead2.send.asyncio.AsyncStream
    if transport == "tcp":
        stream = await spead2.send.asyncio.TcpStream.connect(pool, [("127.0.0.1", port)], config)
    else:
        stream = spead2.send.asyncio.UdpStream(pool, [("127.0.0.1", port)], config, 8 << 20)
    group = make_group(scenarios.ITEMS)
    futures = []
    for heap in range(HEAPS):
        for spec in scenarios.heap_items(heap):
            group[spec.name].value = scenarios.value(spec, heap)
        futures.append(stream.async_send_heap(group.get_heap()))
        if len(futures) == 4:
            await futures.pop(0)
    await asyncio.gather(*futures)
    await stream.async_send_heap(group.get_end())
    await asyncio.get_running_loop().run_in_executor(None, finish_receiver, receiver)
