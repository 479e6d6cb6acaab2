"""A receiver for the interop tests, written against the public receive API: the reference runs it
(in its venv) to decode what our send side sends.

    python -E -s receiver.py '{"transport": "udp", "host": "127.0.0.1", "heaps": 9, "mode": "serial"}'

Binds a free port on host and prints it ({"port": N}), then receives until the end-of-stream heap
(or the TCP peer closes), checks every heap against scenarios.py (mode serial: one ItemGroup;
inflight: each heap on its own), and prints one JSON line: version, file, heaps, and the first
failure (or null).
"""

from __future__ import annotations

import json
import sys
import traceback

from scenarios import check_update

import spead2
import spead2.recv


def main() -> None:
    settings = json.loads(sys.argv[1])
    host = settings["host"]
    pool = spead2.ThreadPool()
    stream = spead2.recv.Stream(
        pool,
        spead2.recv.StreamConfig(max_heaps=8),
        spead2.recv.RingStreamConfig(heaps=16, contiguous_only=False),
    )
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if settings["transport"] == "tcp":
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((host, 0))
        sock.listen(1)
        stream.add_tcp_reader(sock)
    else:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.bind((host, 0))
        stream.add_udp_reader(sock)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    failure = None
    heaps = 0
    group = spead2.ItemGroup()
    for heap in stream:
        try:
            assert isinstance(heap, spead2.recv.Heap), f"heap {heap.cnt} is incomplete"
            if settings["mode"] != "serial":
                group = spead2.ItemGroup()
            check_update(group.update(heap), heap.cnt - 1)
        except Exception:
            failure = failure or traceback.format_exc()
        heaps += 1
    report = {"version": spead2.__version__, "file": spead2.__file__, "heaps": heaps, "failure": failure}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
