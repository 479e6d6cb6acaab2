"""A Tornado service: a consumer on the IOLoop keeps the latest values of a SPEAD stream, and
an HTTP handler serves them as JSON (GET /latest).  Tornado runs on asyncio, so the asyncio
stream works inside it unchanged.

Usage: python tornado_service.py [UDP_PORT [HTTP_PORT]]
(For this example the service exits when the sender stops the stream.)
"""

import sys

import numpy as np
import tornado.ioloop
import tornado.web

import spead2
import spead2.recv.asyncio

latest = {"heaps": 0}


class LatestHandler(tornado.web.RequestHandler):
    def get(self):
        self.write(latest)


def jsonable(value):
    if isinstance(value, np.ndarray):
        return {"dtype": str(value.dtype), "shape": list(value.shape), "mean": float(np.abs(value).mean())}
    return value.item() if isinstance(value, np.generic) else value


async def consume(stream):
    item_group = spead2.ItemGroup()
    async for heap in stream:
        for name, item in item_group.update(heap).items():
            latest[name] = jsonable(item.value)
        latest["heaps"] += 1
        print(f"heap {heap.cnt}: {latest['heaps']} heaps so far")


async def main(udp_port, http_port):
    app = tornado.web.Application([(r"/latest", LatestHandler)])
    app.listen(http_port, address="127.0.0.1")
    stream = spead2.recv.asyncio.Stream(spead2.ThreadPool())
    stream.add_udp_reader(udp_port)
    await consume(stream)  # a real service would run this as a task and serve forever
    print(f"done: {latest['heaps']} heaps, label {latest.get('label')!r}")


if __name__ == "__main__":
    udp_port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    http_port = int(sys.argv[2]) if len(sys.argv) > 2 else 8080
    tornado.ioloop.IOLoop.current().run_sync(lambda: main(udp_port, http_port))
