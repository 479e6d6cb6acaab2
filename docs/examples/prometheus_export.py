"""Publish a stream's statistics to Prometheus while receiving (spead2.tools.prometheus).

Usage: python prometheus_export.py [UDP_PORT [METRICS_PORT]]
Prometheus scrapes http://HOST:METRICS_PORT/metrics; the figures are read at scrape time.
"""

import asyncio
import sys

import prometheus_client

import spead2
import spead2.recv.asyncio
from spead2.tools.prometheus import StreamCollector


async def main(udp_port, metrics_port):
    stream = spead2.recv.asyncio.Stream(spead2.ThreadPool())
    stream.add_udp_reader(udp_port)
    prometheus_client.REGISTRY.register(StreamCollector({"beam0": stream}))
    prometheus_client.start_http_server(metrics_port, addr="127.0.0.1")
    item_group = spead2.ItemGroup()
    async for heap in stream:
        item_group.update(heap)
    # What a scrape sees (here, once the stream has ended):
    for line in prometheus_client.generate_latest().decode().splitlines():
        if line.startswith(("spead2_recv_heaps_total", "spead2_recv_packets_total")):
            print(line)


if __name__ == "__main__":
    udp_port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    metrics_port = int(sys.argv[2]) if len(sys.argv) > 2 else 9100
    asyncio.run(main(udp_port, metrics_port))
