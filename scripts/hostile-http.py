#!/usr/bin/env python3
"""hostile-http.py PORT CLIENTS SECONDS [SCRAPES]: hostile clients against an
HTTP endpoint on 127.0.0.1 (tcpalive watch --metrics), while scrapes are timed.

CLIENTS connections are held open for SECONDS, a quarter of each kind:
  silent      connect and send nothing;
  slowloris   a request head one byte every second, never finished;
  oversized   a 100 KB header, never reading the answer;
  pipelined   50 requests at once, never reading the answers.
A silent or slowloris client the server closes is opened again at once (those
stay at their number); the oversized and pipelined ones never read, so they hold
their descriptor until the end. Meanwhile a scraper sends SCRAPES (default 50) GET /metrics, each on a
new connection, spread over the run, and prints their latency (min, median, p99,
max, in ms) and how many failed. Loopback only; bounded in count and time.
"""

import selectors
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def open_client(port, kind):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((HOST, port))
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        return None
    return s


def first_bytes(kind):
    if kind == "slowloris":
        return b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
    if kind == "oversized":
        return b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    if kind == "pipelined":
        return b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 50
    return b""


def attack(port, clients, seconds, stats, stop):
    kinds = ["silent", "slowloris", "oversized", "pipelined"]
    sel = selectors.DefaultSelector()
    live = {}  # socket -> [kind, pending bytes]

    def add(kind):
        s = open_client(port, kind)
        if s is None:
            stats["refused"] += 1
            return
        live[s] = [kind, first_bytes(kind)]
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        stats["opened"] += 1

    def drop(s):
        sel.unregister(s)
        live.pop(s, None)
        s.close()

    for i in range(clients):
        add(kinds[i % 4])
    next_drip = time.monotonic() + 1
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stop.is_set():
        for key, ev in sel.select(timeout=0.1):
            s = key.fileobj
            kind, pending = live.get(s, [None, b""])
            if kind is None:
                continue
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    # Closed by the server: the attack goes on with a new one.
                    stats["closed_by_server"] += 1
                    drop(s)
                    add(kind)
                    continue
                if kind in ("oversized", "pipelined"):
                    # These never read their answers; stop watching for input.
                    pass
            if ev & selectors.EVENT_WRITE:
                if pending:
                    try:
                        n = s.send(pending)
                        live[s][1] = pending[n:]
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        drop(s)
                        add(kind)
                        continue
                if not live.get(s, [None, b""])[1]:
                    # Nothing more to send: wake only for input (or not at all
                    # for clients that never read).
                    mask = selectors.EVENT_READ if kind in ("silent", "slowloris") else 0
                    if mask:
                        sel.modify(s, mask)
                    else:
                        sel.unregister(s)
        now = time.monotonic()
        if now >= next_drip:
            next_drip = now + 1
            for s, (kind, _) in list(live.items()):
                if kind == "slowloris":
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
    for s in list(live):
        try:
            s.close()
        except OSError:
            pass


def scrape(port):
    started = time.monotonic()
    with socket.create_connection((HOST, port), timeout=15) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    took = time.monotonic() - started
    return took, reply.startswith(b"HTTP/1.1 200")


def main():
    port, clients, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    scrapes = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    stats = {"opened": 0, "refused": 0, "closed_by_server": 0}
    stop = threading.Event()
    t = threading.Thread(target=attack, args=(port, clients, seconds, stats, stop))
    t.start()
    time.sleep(min(2.0, seconds / 4))  # let the attackers connect first
    gap = max(0.0, (seconds - 3) / scrapes)
    took, failed = [], 0
    for _ in range(scrapes):
        try:
            d, ok = scrape(port)
            took.append(d)
            failed += 0 if ok else 1
        except OSError:
            failed += 1
        time.sleep(gap)
    stop.set()
    t.join()
    took.sort()
    ms = lambda x: f"{x * 1000:.1f}"
    if took:
        p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
        print(
            f"hostile clients {clients}: scrapes {len(took)} ok, {failed} failed; latency ms "
            f"min {ms(took[0])} median {ms(took[len(took) // 2])} p99 {ms(p99)} max {ms(took[-1])}"
        )
    else:
        print(f"hostile clients {clients}: no scrape answered ({failed} failed)")
    print(
        f"attack: {stats['opened']} connections opened, {stats['closed_by_server']} closed by "
        f"the server, {stats['refused']} refused"
    )
    sys.exit(1 if failed or not took else 0)


if __name__ == "__main__":
    main()
