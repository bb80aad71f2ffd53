#!/usr/bin/env python3
"""soak-tune.py BIN SECONDS PAIRS [JSON]: `tune --pid` again and again for SECONDS
against a process holding PAIRS loopback connections (2 x PAIRS established
sockets, keepalive off), while signals arrive; each run is checked. Part of
scripts/soak.sh. Needs root (pidfd_getfd of another process); loopback only.

Each run asks for a new --idle, so every socket it reaches is changed. Runs take
turns: one left to finish, one sent SIGINT and one SIGTERM at a random moment
(0 to 1.5 x the last complete run's time, so before, during and after the
work). From its first line to its end every run also gets a barrage of signals
it must survive: SIGUSR1, SIGUSR2, SIGALRM (ignored by tcpalive), SIGWINCH,
SIGCHLD, SIGURG and a SIGSTOP/SIGCONT pair (makes a blocked system call return
EINTR), one every 2 ms.

Checked for every run (a run that breaks one is a failure, and the exit is 1):
- it ends (within 60 s), its exit code is its end line's, and the end is its
  last line; no other exit code than 0 (finished) or 130/143 (by the ending
  signal it was sent) and no line on stderr;
- the end is truthful: a finished run "changed C of N socket(s); A already as
  asked; 0 could not be changed" with N the sockets the owner holds, C + A = N
  and one `tuned` line per socket; an interrupted one "interrupted by SIG...
  after R of N socket(s): changed C; A already as asked; F could not be
  changed; U not touched" with one `tuned` line per socket reached (R), C + A +
  F = R, R + U = N, F = 0, and a dry run afterwards (same --idle) finds exactly
  N - C - A sockets still to change;
- the owner's descriptors are as many after as before (tune duplicates its
  sockets, it must never leave one there), and tune's own peak RSS is bounded
  (SOAK_TUNE_MAX_RSS_MIB, default 64).
Prints a summary and, with JSON, writes the figures there.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

OWNER = r"""
import resource, socket, sys
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * n + 100), hard))
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4096)
keep = []
for _ in range(n):
    c = socket.create_connection(l.getsockname()); a, _ = l.accept(); keep += [c, a]
print(l.getsockname()[1], flush=True)
sys.stdin.read()
"""

BARRAGE = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGWINCH,
           signal.SIGCHLD, signal.SIGURG, "stopcont"]
FINISHED = re.compile(r"^changed (\d+) of (\d+) socket\(s\); (\d+) already as asked; (\d+) could not be changed$")
STOPPED = re.compile(
    r"^interrupted by (SIGINT|SIGTERM) after (\d+) of (\d+) socket\(s\): changed (\d+); (\d+) already as asked; "
    r"(\d+) could not be changed; (\d+) not touched$")
DRY = re.compile(r"^would change (\d+) of (\d+) socket\(s\)")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


SENT = [0]


def barrage(pidfd, stop):
    """Signals through a pidfd: once the run is reaped they fail (ESRCH) instead
    of reaching whatever process gets its PID next."""
    i = 0
    while not stop.is_set():
        s = BARRAGE[i % len(BARRAGE)]
        i += 1
        try:
            if s == "stopcont":
                signal.pidfd_send_signal(pidfd, signal.SIGSTOP)
                signal.pidfd_send_signal(pidfd, signal.SIGCONT)
            else:
                signal.pidfd_send_signal(pidfd, s)
        except (ProcessLookupError, OSError):
            return
        SENT[0] += 1
        stop.wait(0.002)


def run_tune(bin_, owner, port, idle, ending, delay, dry=False):
    """One tune run; returns (exit code, lines, stderr, seconds, maxrss KiB)."""
    args = [bin_, "tune", "--pid", str(owner), "--port", str(port), "--idle", str(idle), "--json"]
    if dry:
        args.append("--dry-run")
    started = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Not reaped until wait4 below, so this is the run's own process.
    pidfd = os.pidfd_open(p.pid)
    stop = threading.Event()
    out = []

    def reader():
        first = True
        for line in p.stdout:
            out.append(line)
            if first and not dry:
                first = False
                barrager.start()

    barrager = threading.Thread(target=barrage, args=(pidfd, stop))
    errs = []
    rt = threading.Thread(target=reader)
    et = threading.Thread(target=lambda: errs.append(p.stderr.read()))
    rt.start()
    et.start()
    if ending is not None:
        time.sleep(delay)
        try:
            signal.pidfd_send_signal(pidfd, ending)
        except (ProcessLookupError, OSError):
            pass
    # os.wait4 gives the child's own peak RSS.
    deadline = started + 60
    status = None
    while status is None:
        pid, st, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            status = (st, ru)
            break
        if time.monotonic() > deadline:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            stop.set()
            if barrager.is_alive():
                barrager.join()
            os.wait4(p.pid, 0)
            os.close(pidfd)
            return None, [], b"did not end within 60 s", 60.0, 0
        time.sleep(0.005)
    took = time.monotonic() - started
    stop.set()
    rt.join()
    et.join()
    if barrager.is_alive():
        barrager.join()
    os.close(pidfd)
    p.returncode = os.waitstatus_to_exitcode(status[0])
    return p.returncode, out, b"".join(errs), took, status[1].ru_maxrss


def check(bin_, owner, port, total, idle, ending, code, out, err, took):
    """The problems with one run's output (an empty list when it is right)."""
    bad = []
    try:
        events = [json.loads(l) for l in out]
    except ValueError as e:
        return [f"a line is not JSON: {e}"], "?"
    if err.strip():
        bad.append(f"stderr: {err.decode(errors='replace').strip()[:200]}")
    if not events or events[-1].get("event") != "end":
        return bad + [f"last line is not the end: {out[-1][:200] if out else 'no output'}"], "?"
    end = events[-1]
    tuned = sum(1 for e in events if e.get("event") == "tuned")
    others = [e.get("event") for e in events[:-1] if e.get("event") != "tuned"]
    if others:
        bad.append(f"unexpected events {sorted(set(others))}")
    if end.get("exit_code") != code:
        bad.append(f"exit {code} but the end says {end.get('exit_code')}")
    msg = end.get("message", "")
    m = FINISHED.match(msg)
    s = STOPPED.match(msg)
    if m:
        c, n, a, f = map(int, m.groups())
        if code != 0 or (n, c + a, f, tuned) != (total, total, 0, total):
            bad.append(f"finished run, exit {code}, {tuned} tuned lines, of {total}: {msg}")
        return bad, "finished"
    if s:
        name, r, n, c, a, f, u = s.groups()
        r, n, c, a, f, u = map(int, (r, n, c, a, f, u))
        want = {"SIGINT": 130, "SIGTERM": 143}[name]
        if ending is None or want != 128 + ending or code != want:
            bad.append(f"exit {code}, sent {ending}: {msg}")
        if (n, tuned, c + a + f, r + u, f) != (total, r, r, total, 0):
            bad.append(f"{tuned} tuned lines, of {total}: {msg}")
        dcode, dout, derr, _, _ = run_tune(bin_, owner, port, idle, None, 0, dry=True)
        dend = json.loads(dout[-1]) if dout else {}
        d = DRY.match(dend.get("message", ""))
        if dcode != 0 or not d or int(d.group(1)) != total - c - a:
            bad.append(f"after {msg!r} the dry run says {dend.get('message')!r} (exit {dcode})")
        return bad, name
    return bad + [f"end message not understood: {msg}"], "?"


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else None


def main():
    bin_, seconds, pairs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    out_json = sys.argv[4] if len(sys.argv) > 4 else None
    max_rss = int(os.environ.get("SOAK_TUNE_MAX_RSS_MIB", "64")) * 1024
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(pairs)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    port = int(owner.stdout.readline())
    total = 2 * pairs
    fds0 = fds(owner.pid)
    end_at = time.monotonic() + seconds
    runs, failures, kinds, finished_s, rss = 0, [], {}, [], []
    last = 1.0
    idle = 100
    rnd = random.Random(os.getpid())
    while time.monotonic() < end_at:
        idle = 100 + (idle - 99) % 30000
        ending = [None, signal.SIGINT, signal.SIGTERM][runs % 3]
        delay = rnd.uniform(0, 1.5 * last)
        code, out, err, took, maxrss = run_tune(bin_, owner.pid, port, idle, ending, delay)
        runs += 1
        rss.append(maxrss)
        if code is None:
            failures.append(f"run {runs}: {err.decode()}")
            continue
        bad, kind = check(bin_, owner.pid, port, total, idle, ending, code, out, err, took)
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "finished":
            finished_s.append(took)
            last = took
        if maxrss > max_rss:
            bad.append(f"peak RSS {maxrss} KiB > {max_rss} KiB")
        failures += [f"run {runs} (idle {idle}, sent {ending}, after {delay:.3f} s): {b}" for b in bad]
    fds1 = fds(owner.pid)
    if fds1 != fds0:
        failures.append(f"the owner's descriptors went from {fds0} to {fds1}")
    owner.stdin.close()
    owner.wait()
    figures = {
        "sockets": total, "runs": runs, "ends": kinds, "failures": failures[:20],
        "failed_runs": len(failures),
        "finished_s": {"p50": pct(finished_s, 0.5), "max": max(finished_s) if finished_s else None},
        "tune_maxrss_kib": max(rss) if rss else None, "owner_fds": [fds0, fds1],
        "barrage_signals": SENT[0],
    }
    fin = figures["finished_s"]
    print(f"tune: {runs} runs of {total} sockets under a signal barrage: "
          + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) + f"; {SENT[0]} barrage signals; {len(failures)} problem(s)")
    if finished_s:
        print(f"tune: a finished run took p50 {fin['p50']:.3f} s, max {fin['max']:.3f} s; "
              f"tune's peak RSS {figures['tune_maxrss_kib']} KiB; owner fds {fds0} -> {fds1}")
    for f in failures[:20]:
        print(f"tune FAILED: {f}")
    if out_json:
        with open(out_json, "w") as f:
            json.dump(figures, f)
    sys.exit(1 if failures or not finished_s else 0)


if __name__ == "__main__":
    main()
