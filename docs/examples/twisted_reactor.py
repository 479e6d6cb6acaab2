"""Twisted on its default reactor: a HeapReader watches a blocking stream's fd and calls a
function on the reactor thread for each heap (spead2.recv.twisted).

Usage: python twisted_reactor.py [PORT]
"""

import sys

from twisted.internet import defer, task

import spead2
import spead2.recv
from spead2.recv.twisted import HeapReader


async def main(reactor, port):
    stream = spead2.recv.Stream(spead2.ThreadPool())  # its readers run on the ThreadPool
    stream.add_udp_reader(port)
    item_group = spead2.ItemGroup()

    def on_heap(heap):  # called on the reactor thread
        updated = item_group.update(heap)
        print(f"heap {heap.cnt}: {len(updated)} items")

    reader = HeapReader(stream, on_heap, reactor)
    count = await reader.finished  # fires once the stream has stopped and been drained
    print(f"done: {count} heaps ({type(reactor).__name__})")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, port)))
