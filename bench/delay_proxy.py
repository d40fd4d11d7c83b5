#!/usr/bin/env python3
"""A TCP relay that adds a fixed one-way delay in each direction: a stand-in for a WAN link when
benchmarking replication on one machine (no netem needed).

    delay_proxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS

Prints "listening PORT" once bound. Each byte is delivered DELAY_MS after it was received, so a
request/answer exchange costs twice DELAY_MS; bandwidth is not limited, only latency added.
"""
import collections
import socket
import sys
import threading
import time


def pump(src, dst, delay):
    queue = collections.deque()
    ready = threading.Condition()

    def reader():
        while True:
            try:
                data = src.recv(1 << 20)
            except OSError:
                data = b""
            with ready:
                queue.append((time.monotonic() + delay, data))
                ready.notify()
            if not data:
                return

    threading.Thread(target=reader, daemon=True).start()
    while True:
        with ready:
            while not queue:
                ready.wait()
            due, data = queue.popleft()
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if not data:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        try:
            dst.sendall(data)
        except OSError:
            return


def serve(client, target, delay):
    host, port = target.rsplit(":", 1)
    server = socket.create_connection((host, int(port)))
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=pump, args=(server, client, delay), daemon=True).start()
    pump(client, server, delay)


def main():
    port, target, delay_ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    print("listening %d" % listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, target, delay_ms / 1000.0), daemon=True).start()


if __name__ == "__main__":
    main()
