"""A sender for the interop tests, written against the reference's public send API: the
reference runs it (in its venv, see refvenv.py) to test our receiver, and our own interpreter runs
it to test our send side (test_interop.py, test_send_interop.py).

    python -E -s sender.py '{"transport": "udp", "host": "127.0.0.1", "port": 8888, ...}'

Settings (JSON): transport (udp, mcast, tcp), host, port, heaps (how many), mode (serial: one
ItemGroup, descriptors and values sent once each; inflight: self-contained heaps sent in groups of
four with their packets interleaved; substreams: self-contained heaps from two streams, odd and
even heap cnts, at the same time), packet_size, rate (bytes/s, 0: unlimited), end (send the
end-of-stream heap).  Prints one JSON line: the reference's version and what was sent.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from scenarios import ITEMS, heap_items, value

import spead2.send  # (the reference's or ours, whichever interpreter runs this)

GROUP = 4  # heaps in flight at once (inflight mode)


def make_group(specs: list[Any]) -> Any:
    group = spead2.send.ItemGroup()
    for spec in specs:
        group.add_item(
            spec.id,
            spec.name,
            spec.description,
            shape=spec.shape,
            dtype=spec.dtype,
            format=spec.format,
            order=spec.order,
        )
    return group


def self_contained(heap: int) -> Any:
    specs = heap_items(heap)
    group = make_group(specs)
    for spec in specs:
        group[spec.name].value = value(spec, heap)
    return group.get_heap(descriptors="all", data="all")


def make_stream(settings: dict[str, Any], pool: Any) -> Any:
    config = spead2.send.StreamConfig(
        max_packet_size=settings["packet_size"], rate=float(settings["rate"]), max_heaps=2 * GROUP
    )
    endpoint = [(settings["host"], settings["port"])]
    transport = settings["transport"]
    if transport == "udp":
        return spead2.send.UdpStream(pool, endpoint, config, 8 * 1024 * 1024)
    if transport == "mcast":
        return spead2.send.UdpStream(pool, endpoint, config, 8 * 1024 * 1024, 0, "127.0.0.1")
    if transport == "tcp":
        return spead2.send.TcpStream(pool, endpoint, config)
    raise ValueError(f"unknown transport {transport}")


def main() -> None:
    settings = json.loads(sys.argv[1])
    host = settings["host"]
    if not (host in ("127.0.0.1", "::1") or host.startswith("239.255.")):
        sys.exit(f"refusing to send to {host}: loopback only")
    n = settings["heaps"]
    pool = spead2.ThreadPool(2)
    mode = settings["mode"]
    if mode == "serial":
        stream = make_stream(settings, pool)
        group = make_group(ITEMS)
        for heap in range(n):
            for spec in heap_items(heap):
                group[spec.name].value = value(spec, heap)
            stream.send_heap(group.get_heap())
        end = group.get_end()
    elif mode == "inflight":
        stream = make_stream(settings, pool)
        heaps = [self_contained(heap) for heap in range(n)]
        for first in range(0, n, GROUP):
            refs = [spead2.send.HeapReference(h) for h in heaps[first : first + GROUP]]
            stream.send_heaps(refs, spead2.send.GroupMode.ROUND_ROBIN)
        end = make_group([]).get_end()
    elif mode == "substreams":
        streams = [make_stream(settings, pool) for _ in range(2)]
        streams[0].set_cnt_sequence(1, 2)
        streams[1].set_cnt_sequence(2, 2)

        def run(index: int) -> None:
            for heap in range(index, n, 2):  # heap i has cnt i + 1
                streams[index].send_heap(self_contained(heap))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stream = streams[0]
        end = make_group([]).get_end()
    else:
        raise ValueError(f"unknown mode {mode}")
    if settings["end"]:
        stream.send_heap(end)
    print(json.dumps({"version": spead2.__version__, "file": spead2.__file__, "heaps": n}), flush=True)


if __name__ == "__main__":
    main()
