#!/usr/bin/env python3
"""UDP echo server on asyncio's DatagramProtocol.

    python3 echo_asyncio.py PORT

Binds 127.0.0.1:PORT and sends every datagram back to its sender from the
event loop's datagram callback. SIGTERM or SIGINT ends it.
"""
import asyncio
import signal
import sys


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

    def error_received(self, exc):
        pass  # an ICMP error from one sender is no reason to stop


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", port))
    try:
        await stop
    finally:
        transport.close()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
