"""Twisted on the asyncio reactor: heaps arrive as Deferreds (spead2.recv.twisted).

Usage: python twisted_asyncio.py [PORT]
"""

import sys

from twisted.internet import asyncioreactor

asyncioreactor.install()  # before anything imports twisted.internet.reactor

from twisted.internet import defer, task  # noqa: E402

import spead2  # noqa: E402
import spead2.recv.asyncio  # noqa: E402
from spead2.recv.twisted import heaps, next_heap  # noqa: E402


async def main(reactor, port):
    stream = spead2.recv.asyncio.Stream(spead2.ThreadPool())
    stream.add_udp_reader(port)
    item_group = spead2.ItemGroup()
    first = await next_heap(stream)  # a Deferred; cancelling it cancels the wait
    item_group.update(first)
    print(f"first heap {first.cnt}: {sorted(item_group.keys())}")
    async for heap in heaps(stream):  # async iteration inside an ensureDeferred coroutine
        updated = item_group.update(heap)
        print(f"heap {heap.cnt}: {len(updated)} items")
    print("done")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, port)))
