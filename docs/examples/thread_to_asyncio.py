"""A blocking stream read in a thread that feeds an asyncio application.

This is the shape of much existing spead2 code: a receiver thread iterates over a blocking
stream, and hands results to the event loop with ``call_soon_threadsafe`` (the only loop method
that is safe to call from another thread).  The asyncio side never blocks on the network.

Usage: python thread_to_asyncio.py [PORT]
"""

import asyncio
import sys
import threading

import spead2
import spead2.recv


def receive(stream, loop, queue):
    """Runs in the receiver thread: decode heaps, pass (cnt, values) to the loop, then None."""
    item_group = spead2.ItemGroup()
    try:
        for heap in stream:  # blocks this thread only
            values = {name: item.value for name, item in item_group.update(heap).items()}
            loop.call_soon_threadsafe(queue.put_nowait, (heap.cnt, values))
    finally:
        loop.call_soon_threadsafe(queue.put_nowait, None)


async def main(port):
    thread_pool = spead2.ThreadPool()
    stream = spead2.recv.Stream(thread_pool)
    stream.add_udp_reader(port)
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    thread = threading.Thread(target=receive, args=(stream, loop, queue), name="receiver")
    thread.start()
    try:
        while (entry := await queue.get()) is not None:
            cnt, values = entry
            if "timestamp" in values:
                print(f"heap {cnt}: timestamp {values['timestamp']}, {len(values)} items")
    finally:
        stream.stop()  # also ends the thread's loop if we leave early
        await loop.run_in_executor(None, thread.join)
    print("done")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8888))
