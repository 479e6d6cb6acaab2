"""What the sending tools (spead2_send, spead2_bench's master) share: the reference's sender
options turned into a StreamConfig, and the UdpStream form those options select."""

from __future__ import annotations

from collections.abc import Sequence

import spead2
import spead2.send
import spead2.send.asyncio


def stream_config(
    *, packet: int, rate: float, burst: int, max_heaps: int, burst_rate_ratio: float, rate_method: str
) -> spead2.send.StreamConfig:
    """``rate`` in bytes per second (0: unlimited); ``rate_method`` one of SW, HW, AUTO."""
    return spead2.send.StreamConfig(
        max_packet_size=packet,
        rate=rate,
        burst_size=burst,
        max_heaps=max_heaps,
        burst_rate_ratio=burst_rate_ratio,
        rate_method=spead2.send.RateMethod[rate_method],
    )


def udp_stream(
    pool: spead2.ThreadPool,
    endpoints: Sequence[tuple[str, int]],
    config: spead2.send.StreamConfig,
    buffer_size: int | None,
    ttl: int | None,
    bind: str | None,
) -> spead2.send.asyncio.UdpStream:
    """An asyncio UdpStream, with the multicast TTL (and interface) or the source address the
    options give, as the reference's tools make it."""
    buffer = buffer_size or spead2.send.asyncio.UdpStream.DEFAULT_BUFFER_SIZE
    endpoints = list(endpoints)
    if ttl is None:
        return spead2.send.asyncio.UdpStream(pool, endpoints, config, buffer, bind or "")
    if bind:
        return spead2.send.asyncio.UdpStream(pool, endpoints, config, buffer, ttl, bind)
    return spead2.send.asyncio.UdpStream(pool, endpoints, config, buffer, ttl)
