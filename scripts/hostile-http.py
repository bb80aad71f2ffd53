#!/usr/bin/env python3
"""hostile-http.py --port PORT [--clients N] [--seconds S] [--scrapes K] [--pid PID]
[--keep-alive] [--kinds K,...] [--json FILE]: hostile clients against an HTTP endpoint on
127.0.0.1 (tcpalive watch --metrics) while scrapes are timed.

N connections (default 1000) are held open for S seconds (default 30), shared
out in turn among the kinds (--kinds, default all four; --attacker-nice N runs
them at that nice value):
  silent      connect and send nothing;
  slowloris   a request head one byte every second, never finished;
  oversized   a 100 KB header, never reading the answer;
  pipelined   50 requests at once, never reading the answers.
Whatever the server closes (it closes silent and slow clients after its head
timeout, answers the others and shuts them) is opened again, at most once a
second per client, so N hostile connections stay open for the whole run. The
attackers run in a child process, so the scraper's timing never waits for them
(Python's GIL).

Meanwhile the scraper sends K GET /metrics (default 200), each on a new
connection (or, with --keep-alive, all on one kept-alive connection as
Prometheus does), spread over the run. Each is timed (connect, first byte,
whole answer) and its answer checked (status 200, a body of the length said,
`# TYPE tcpalive_` series, no partial line). With --pid (the server's process),
each scrape also reads the schedstat of the server's `metrics-http` thread
before and after: CPU time it used and time it spent runnable waiting for a CPU
(run-queue delay); and the scraper's own run-queue delay. A latency made of
run-queue delay is the machine's load, not the server's cost.

Prints one line per figure and, with --json FILE, the figures as JSON.
Exit 1 when a scrape failed or none was answered. Loopback only; bounded in
count and time.
"""

import argparse
import json
import os
import select
import socket
import sys
import time

HOST = "127.0.0.1"
KINDS = ["silent", "slowloris", "oversized", "pipelined"]
HEAD = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"


def first_bytes(kind):
    if kind == "slowloris":
        return HEAD
    if kind == "oversized":
        return HEAD + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    if kind == "pipelined":
        return (HEAD + b"\r\n") * 50
    return b""


def attack(port, clients, kinds, seconds, gap, report_fd):
    """The child process: keeps `clients` hostile connections open."""
    ep = select.epoll()
    live = {}  # fd -> [socket, kind, pending bytes, slot]
    slot_kind = [kinds[i % len(kinds)] for i in range(clients)]
    last_open = [0.0] * clients
    due = []  # slots to (re)open: (time, slot)
    stats = {"opened": 0, "refused": 0, "closed_by_server": 0, "most_open": 0}

    def mask(kind, pending):
        m = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
        if kind in ("silent", "slowloris"):
            m |= select.EPOLLIN  # they read: an answer or EOF
        if pending:
            m |= select.EPOLLOUT
        return m

    def open_slot(slot):
        kind = slot_kind[slot]
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((HOST, port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            stats["refused"] += 1
            due.append((time.monotonic() + gap, slot))
            return
        last_open[slot] = time.monotonic()
        pending = first_bytes(kind)
        live[s.fileno()] = [s, kind, pending, slot]
        ep.register(s.fileno(), mask(kind, pending))
        stats["opened"] += 1
        stats["most_open"] = max(stats["most_open"], len(live))

    def close_and_reopen(fd, by_server):
        s, _, _, slot = live.pop(fd)
        try:
            ep.unregister(fd)
        except OSError:
            pass
        s.close()
        if by_server:
            stats["closed_by_server"] += 1
        due.append((max(time.monotonic(), last_open[slot] + gap), slot))

    for slot in range(clients):
        open_slot(slot)
    next_drip = time.monotonic() + 1
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for fd, ev in ep.poll(0.05):
            entry = live.get(fd)
            if entry is None:
                continue
            s, kind, pending, _ = entry
            if ev & (select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP):
                close_and_reopen(fd, True)
                continue
            if ev & select.EPOLLIN:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    close_and_reopen(fd, True)
                    continue
            if ev & select.EPOLLOUT and pending:
                try:
                    n = s.send(pending)
                    entry[2] = pending = pending[n:]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    close_and_reopen(fd, True)
                    continue
                if not pending:
                    ep.modify(fd, mask(kind, b""))
        now = time.monotonic()
        if due:
            ready = [d for d in due if d[0] <= now]
            due[:] = [d for d in due if d[0] > now]
            for _, slot in ready:
                open_slot(slot)
        if now >= next_drip:
            next_drip = now + 1
            for fd, (s, kind, _, _) in list(live.items()):
                if kind == "slowloris":
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
    os.write(report_fd, json.dumps(stats).encode())
    for s, *_ in live.values():
        s.close()


def thread_of(pid, name):
    """The TID of the thread called `name` in process `pid`, or None."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    return int(tid)
    except OSError:
        pass
    return None


def schedstat(path):
    """(ns on the CPU, ns runnable waiting for one) from a schedstat file."""
    try:
        with open(path) as f:
            on, wait, _ = f.read().split()
            return int(on), int(wait)
    except (OSError, ValueError):
        return 0, 0


REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def read_answer(s, buf):
    """Reads one HTTP answer from `s` (bytes already read in `buf`); returns
    (status line, headers dict, body, rest, first byte time)."""
    first = None
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before the head ({len(buf)} bytes)")
        first = first or time.monotonic()
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "-1"))
    if length < 0:
        raise ConnectionError("no content-length")
    while len(buf) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {length} body bytes")
        buf += chunk
    return lines[0], headers, buf[:length], buf[length:], first


def well_formed(status, body):
    if not status.startswith("HTTP/1.1 200"):
        return f"status {status!r}"
    text = body.decode("utf-8", "replace")
    if "# TYPE tcpalive_" not in text:
        return "no tcpalive_ series"
    if not text.endswith("\n"):
        return "body does not end with a newline"
    return None


class Scraper:
    def __init__(self, port, keep_alive):
        self.port = port
        self.keep_alive = keep_alive
        self.conn = None
        self.rest = b""

    def scrape(self):
        """(connect s, first byte s, total s, error or None)."""
        started = time.monotonic()
        if self.conn is not None and self.closed_by_server():
            # As an HTTP client's pool does (Go's, Prometheus'): a kept-alive
            # connection the server has closed while idle is not reused.
            self.drop()
        if self.conn is None:
            self.conn = socket.create_connection((HOST, self.port), timeout=15)
            self.rest = b""
        connected = time.monotonic()
        close = b"" if self.keep_alive else b"Connection: close\r\n"
        try:
            self.conn.sendall(REQUEST + close + b"\r\n")
            status, headers, body, self.rest, first = read_answer(self.conn, self.rest)
        except (OSError, ConnectionError, ValueError) as e:
            self.drop()
            return connected - started, None, time.monotonic() - started, str(e)
        done = time.monotonic()
        # The server closes a kept-alive connection at its lifetime, saying so.
        if not self.keep_alive or headers.get("connection", "").lower() == "close":
            self.drop()
        err = well_formed(status, body)
        return connected - started, (first or done) - started, done - started, err

    def closed_by_server(self):
        r, _, _ = select.select([self.conn], [], [], 0)
        if not r:
            return False
        try:
            return self.conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--scrapes", type=int, default=200)
    ap.add_argument("--pid", type=int, help="the server's process, for its schedstat")
    ap.add_argument("--keep-alive", action="store_true")
    ap.add_argument("--gap", type=float, default=1.0, help="least seconds between reopens of one client")
    ap.add_argument("--json", help="write the figures here as JSON")
    ap.add_argument("--attacker-nice", type=int, default=0,
                    help="the attackers' nice value (the scraper keeps its own)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="which kinds, shared out in turn")
    a = ap.parse_args()
    kinds = a.kinds.split(",")
    if not kinds or any(k not in KINDS for k in kinds):
        ap.error(f"--kinds: each one of {','.join(KINDS)}")

    r, w = os.pipe()
    child = os.fork() if a.clients > 0 else -1
    if child == 0:
        os.close(r)
        if a.attacker_nice:
            os.nice(a.attacker_nice)
        try:
            attack(a.port, a.clients, kinds, a.seconds, a.gap, w)
        finally:
            os._exit(0)
    os.close(w)
    # Let the attackers connect first.
    time.sleep(min(3.0, a.seconds / 4) if a.clients else 0)
    tid = thread_of(a.pid, "metrics-http") if a.pid else None
    server = f"/proc/{a.pid}/task/{tid}/schedstat" if tid else None
    me = "/proc/thread-self/schedstat"
    cpu0, t0 = (schedstat(server)[0] if server else 0), time.monotonic()
    gap = max(0.0, (a.seconds - 4) / max(1, a.scrapes)) if a.clients else 0.05
    if a.keep_alive:
        # The server answers a connection 2 requests a second beyond its first
        # 10; a scraper asking faster on one connection would time the pace.
        gap = max(gap, 0.5)
    scraper = Scraper(a.port, a.keep_alive)
    total, connect, first, cpu, wait, mine, errors = [], [], [], [], [], [], []
    for _ in range(a.scrapes):
        s0 = schedstat(server) if server else (0, 0)
        m0 = schedstat(me)
        try:
            c, f, t, err = scraper.scrape()
        except OSError as e:
            c, f, t, err = None, None, None, f"connect: {e}"
        s1 = schedstat(server) if server else (0, 0)
        m1 = schedstat(me)
        if err:
            errors.append(err)
        if t is not None and not err:
            total.append(t)
            connect.append(c)
            first.append(f)
            cpu.append((s1[0] - s0[0]) / 1e9)
            wait.append((s1[1] - s0[1]) / 1e9)
            mine.append((m1[1] - m0[1]) / 1e9)
        time.sleep(gap)
    scraper.drop()
    cpu_share = (schedstat(server)[0] - cpu0) / 1e9 / (time.monotonic() - t0) if server else None
    stats = {}
    if child > 0:
        os.waitpid(child, 0)
        data = os.read(r, 4096)
        stats = json.loads(data) if data else {}

    def ms(x):
        return None if x is None else round(x * 1000, 2)

    def summary(v):
        return {"p50": ms(pct(v, 0.5)), "p99": ms(pct(v, 0.99)), "max": ms(max(v) if v else None)}

    figures = {
        "clients": a.clients,
        "scrapes": a.scrapes,
        "answered": len(total),
        "failed": len(errors),
        "errors": sorted(set(errors))[:5],
        "keep_alive": a.keep_alive,
        "total_ms": summary(total),
        "connect_ms": summary(connect),
        "first_byte_ms": summary(first),
        "server_cpu_ms": summary(cpu) if server else None,
        "server_runqueue_ms": summary(wait) if server else None,
        "scraper_runqueue_ms": summary(mine),
        "server_cpu_share": None if cpu_share is None else round(cpu_share, 4),
        "attack": stats,
    }
    f = figures
    print(f"hostile clients {a.clients}: {f['answered']} scrapes answered, {f['failed']} failed"
          + (f" ({'; '.join(f['errors'])})" if errors else ""))
    for key, what in [("total_ms", "scrape latency"), ("connect_ms", "  connect"),
                      ("first_byte_ms", "  first byte"), ("server_cpu_ms", "server thread CPU per scrape"),
                      ("server_runqueue_ms", "server thread run-queue wait per scrape"),
                      ("scraper_runqueue_ms", "scraper run-queue wait per scrape")]:
        v = f[key]
        if v:
            print(f"{what:40} ms: p50 {v['p50']} p99 {v['p99']} max {v['max']}")
    if cpu_share is not None:
        print(f"server thread CPU over the scrapes: {cpu_share * 100:.1f} % of one CPU")
    if stats:
        print(f"attack: {stats['opened']} connections opened (at most {stats['most_open']} at once), "
              f"{stats['closed_by_server']} closed by the server, {stats['refused']} refused")
    if a.json:
        with open(a.json, "w") as out:
            json.dump(figures, out)
    sys.exit(1 if errors or not total else 0)


if __name__ == "__main__":
    main()
