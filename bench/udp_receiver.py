#!/usr/bin/env python3
"""Receiver for ../shared/bench/udp_lossless.py (its line-JSON protocol) that also reports the
reader's batch statistics: the minimal receiver's API (blocking Stream, add_udp_reader, iteration
in a thread, stop) or, with --asyncio, the asyncio Stream on uvloop.

    cd ../shared/bench
    ./udp_lossless.py --receiver spead2-blocking \\
        --receiver "mine-stats=$MINE /work/main/bench/udp_receiver.py" \\
        --receiver "mine-asyncio=$MINE /work/main/bench/udp_receiver.py --asyncio"

It runs under any implementation of the receive API (statistics it lacks are reported as null).
stdout carries the protocol only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from typing import Any

import spead2
import spead2.recv


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def stat(stream: Any, name: str) -> Any:
    try:
        return stream.stats[name]
    except Exception:
        return None


def report(stream: Any, heaps: int) -> dict[str, Any]:
    names = ["packets", "batches", "max_batch", "worker_blocked", "incomplete_heaps_evicted"]
    return {"heaps": heaps, **{name: stat(stream, name) for name in names}}


def run_blocking() -> None:
    pool = spead2.ThreadPool()
    state: dict[str, Any] = {}

    def consume(stream: Any, counter: list[int]) -> None:
        for _ in stream:
            counter[0] += 1

    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["cmd"] == "start":
            stream = spead2.recv.Stream(pool, spead2.recv.StreamConfig(), spead2.recv.RingStreamConfig())
            stream.add_udp_reader(
                cmd["port"], max_size=cmd["max_packet"], buffer_size=cmd["buffer"], bind_hostname=cmd["host"]
            )
            counter = [0]
            thread = threading.Thread(target=consume, args=(stream, counter), daemon=True)
            thread.start()
            state.update(stream=stream, thread=thread, counter=counter)
            reply({"ready": True, "impl": f"spead2 {spead2.__version__} blocking ({spead2.__file__})"})
        elif cmd["cmd"] == "stop":
            state["stream"].stop()
            state["thread"].join()
            reply(report(state["stream"], state["counter"][0]))
        elif cmd["cmd"] == "exit":
            return


async def run_asyncio() -> None:
    import spead2.recv.asyncio

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    state: dict[str, Any] = {}

    async def consume(stream: Any, counter: list[int]) -> None:
        async for _ in stream:
            counter[0] += 1

    while True:
        line = await reader.readline()
        if not line:
            return
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["cmd"] == "start":
            stream = spead2.recv.asyncio.Stream(
                spead2.ThreadPool(), spead2.recv.StreamConfig(), spead2.recv.RingStreamConfig()
            )
            stream.add_udp_reader(cmd["port"], cmd["max_packet"], cmd["buffer"], cmd["host"])
            counter = [0]
            state.update(stream=stream, task=asyncio.ensure_future(consume(stream, counter)), counter=counter)
            reply({"ready": True, "impl": f"spead2 {spead2.__version__} asyncio ({spead2.__file__})"})
        elif cmd["cmd"] == "stop":
            state["stream"].stop()
            await state["task"]
            reply(report(state["stream"], state["counter"][0]))
        elif cmd["cmd"] == "exit":
            return


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--asyncio", action="store_true", help="the asyncio Stream (on uvloop if installed)")
    args = parser.parse_args()
    if not args.asyncio:
        run_blocking()
        return
    try:
        import uvloop

        uvloop.run(run_asyncio())
    except ImportError:
        asyncio.run(run_asyncio())


if __name__ == "__main__":
    main()
