"""Receive a SPEAD stream over UDP with asyncio and print what each heap updates.

Usage: python asyncio_receive.py [PORT]    (default 8888; ends when the sender stops the stream)
"""

import asyncio
import sys

import numpy as np

import spead2
import spead2.recv.asyncio


def describe(value):
    """A short text for an item value: arrays by dtype and shape, other values as they are."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return f"{value.dtype}{list(value.shape)}"
    return repr(value)


async def main(port):
    stream = spead2.recv.asyncio.Stream(spead2.ThreadPool())
    stream.add_udp_reader(port)
    item_group = spead2.ItemGroup()
    async for heap in stream:  # ends when the stream stops
        try:
            updated = item_group.update(heap)
        except ValueError as exc:  # a heap that cannot be decoded (bad descriptor or size)
            print(f"heap {heap.cnt}: skipped ({exc})")
            continue
        for name, item in updated.items():
            print(f"heap {heap.cnt}: {name} = {describe(item.value)}")
    print(f"done: {stream.stats['heaps']} heaps")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8888))
