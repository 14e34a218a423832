#!/usr/bin/env python3
"""UDP echo server the plain way: one blocking recvfrom/sendto pair per datagram.

    python3 echo_blocking.py PORT

Binds 127.0.0.1:PORT and sends every datagram back to its sender. This is the
straightforward loop most first UDP servers are written as, so it shows what
the simple approach costs. SIGTERM or SIGINT ends it.
"""
import signal
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    # SIGTERM raises SystemExit inside recvfrom (Python retries interrupted
    # calls only when the handler returns normally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    try:
        while True:
            data, peer = sock.recvfrom(2048)
            try:
                sock.sendto(data, peer)
            except OSError:
                pass  # one unreachable sender must not stop the server
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


if __name__ == "__main__":
    main()
