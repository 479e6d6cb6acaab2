"""Sample SPEAD traffic for the demo mode of ``spead2_recv``, the documentation and the tests.

:func:`packets` gives the packets of a small sample stream (descriptors, heaps holding several
item types, a large heap now and then, and a stop heap); :class:`DemoSender` sends them over
UDP to a port on the loopback interface, paced so that a default socket buffer keeps up.
The packets come from the send side's encoder (:class:`spead2.send.PacketGenerator`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

import spead2
import spead2.send

_logger = logging.getLogger("spead2")

#: The flavour of the sample stream: SPEAD-64-48, as MeerKAT uses.
HEAP_ADDRESS_BITS = 48
#: The payload of one UDP datagram of the sample stream (a standard 1500-byte MTU).
PACKET_SIZE = 1472

TIMESTAMP_ID = 0x1600
FREQUENCY_ID = 0x1601
LABEL_ID = 0x1602
SPECTRUM_ID = 0x1603
VISIBILITIES_ID = 0x1604
IMAGE_ID = 0x1605

SPECTRUM_CHANNELS = 1024
VISIBILITY_BASELINES = 256
IMAGE_SHAPE = (512, 1024)  # uint16: 1 MiB, about 720 packets
#: Every this many heaps, one also carries the image (a large heap).
IMAGE_EVERY = 5


def _item_group() -> spead2.send.ItemGroup:
    group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, HEAP_ADDRESS_BITS, 0))
    group.add_item(
        TIMESTAMP_ID, "timestamp", "ADC sample count (immediate)", (), format=[("u", HEAP_ADDRESS_BITS)]
    )
    group.add_item(FREQUENCY_ID, "frequency", "Centre frequency [Hz]", (), dtype="<f8")
    group.add_item(LABEL_ID, "label", "Free-text label", (None,), format=[("c", 8)])
    group.add_item(SPECTRUM_ID, "spectrum", "Power spectrum", (SPECTRUM_CHANNELS,), dtype="<f4")
    group.add_item(
        VISIBILITIES_ID, "visibilities", "Complex visibilities", (VISIBILITY_BASELINES,), dtype="<c8"
    )
    group.add_item(IMAGE_ID, "image", "Dirty image (sent every few heaps)", IMAGE_SHAPE, dtype="<u2")
    return group


def heap_values(index: int) -> dict[str, Any]:
    """The values heap ``index`` (0-based) of the sample stream carries, by item name."""
    rng = np.random.default_rng(index)
    values: dict[str, Any] = {
        "timestamp": 1_000_000 + 4096 * index,
        "frequency": 1.284e9 + 1e6 * index,
        "label": f"demo heap {index}",
        "spectrum": (np.arange(SPECTRUM_CHANNELS, dtype="<f4") * 0.5 + index).astype("<f4"),
        "visibilities": (
            rng.standard_normal(VISIBILITY_BASELINES) + 1j * rng.standard_normal(VISIBILITY_BASELINES)
        ).astype("<c8"),
    }
    if index % IMAGE_EVERY == IMAGE_EVERY - 1:
        values["image"] = (
            (np.arange(IMAGE_SHAPE[0] * IMAGE_SHAPE[1], dtype=np.uint32) + index)
            .astype("<u2")
            .reshape(IMAGE_SHAPE)
        )
    return values


def heaps(
    n_heaps: int = 20, *, stop: bool = True, first_cnt: int = 1
) -> Iterator[tuple[int, spead2.send.Heap]]:
    """The sample stream as (cnt, heap): descriptors travel with the first heap, each heap carries
    the values that changed (the image every few heaps)."""
    group = _item_group()
    for index in range(n_heaps):
        for name, value in heap_values(index).items():
            group[name].value = value
        yield first_cnt + index, group.get_heap(descriptors="all" if index == 0 else "none")
    if stop:
        yield first_cnt + n_heaps, group.get_end()


def heap_packets(n_heaps: int = 20, *, stop: bool = True) -> list[list[bytes]]:
    """The packets of the sample stream (``n_heaps`` data heaps, then a stop heap), by heap."""
    return [
        list(spead2.send.PacketGenerator(heap, cnt, PACKET_SIZE)) for cnt, heap in heaps(n_heaps, stop=stop)
    ]


def packets(n_heaps: int = 20, *, stop: bool = True) -> list[bytes]:
    """Like :func:`heap_packets`, in one list.  Back to back they form a buffer for
    ``add_buffer_reader``; one by one they are datagrams."""
    return [packet for heap in heap_packets(n_heaps, stop=stop) for packet in heap]


def _loopback(host: str) -> str:
    address = ipaddress.ip_address(socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)[0][4][0])
    if not address.is_loopback:
        raise ValueError(f"the demo sender only sends to the loopback interface, not {host}")
    return str(address)


class DemoSender:
    """Sends the sample stream over UDP to ``host:port`` (loopback only) from a thread.

    ``rate`` is the heap rate (heaps per second); within a heap, packets go out in bursts paced
    to ``max_bytes_per_second`` so that a small socket buffer on the receiver keeps up.
    """

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        n_heaps: int = 20,
        rate: float = 10.0,
        max_bytes_per_second: float = 200e6,
        stop: bool = True,
    ) -> None:
        self.host = _loopback(host)
        self.port = port
        self.n_heaps = n_heaps
        self.rate = rate
        self.max_bytes_per_second = max_bytes_per_second
        self.stop_heap = stop
        self.heaps_sent = 0
        self.packets_sent = 0
        self._cancelled = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spead2-demo-sender", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def run(self) -> None:
        """Sends everything from the calling thread."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            period = 1.0 / self.rate if self.rate > 0 else 0.0
            start = time.monotonic()
            for i, heap in enumerate(heap_packets(self.n_heaps, stop=self.stop_heap)):
                if self._cancelled.is_set():
                    return
                due = start + i * period
                delay = due - time.monotonic()
                if delay > 0 and self._cancelled.wait(delay):
                    return
                self._send_heap(sock, heap)
                self.heaps_sent += 1

    def _send_heap(self, sock: socket.socket, heap: list[bytes]) -> None:
        burst = 64
        for first in range(0, len(heap), burst):
            chunk = heap[first : first + burst]
            t0 = time.monotonic()
            for pkt in chunk:
                sock.sendto(pkt, (self.host, self.port))
            self.packets_sent += len(chunk)
            if len(heap) > burst and self.max_bytes_per_second > 0:
                wait = sum(map(len, chunk)) / self.max_bytes_per_second - (time.monotonic() - t0)
                if wait > 0:
                    time.sleep(wait)

    def _run(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # reported by whoever waits for the sender
            _logger.error("demo sender failed: %s", exc)
            self.error = exc
