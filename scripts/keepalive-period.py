#!/usr/bin/env python3
"""When the kernel's keepalive probes go out, read from TCP_INFO alone.

A loopback pair, keepalive on the client only (idle IDLE s, intvl INTVL s); the
client's TCP_INFO is read every 2 ms for SECONDS, and each time
tcpi_last_ack_recv restarts (the answer to a probe) the answer's time is noted.
Prints the gaps between answers: the period of the keepalive timer as the
timer wheel fires it (docs/kernel-facts.md, "A keepalive timer re-armed at its
own firing"). Loopback only; ends by itself.

    scripts/keepalive-period.py [IDLE] [INTVL] [SECONDS]
"""
import socket
import struct
import sys
import time

idle, intvl = int(sys.argv[1]) if len(sys.argv) > 1 else 1, int(sys.argv[2]) if len(sys.argv) > 2 else 1
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 9.0
lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen(1)
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 9)
c.connect(lst.getsockname())
s, _ = lst.accept()
t0 = time.monotonic()
contacts = [0.0]
while time.monotonic() - t0 < seconds:
    info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    now = time.monotonic() - t0
    # struct tcp_info: 8 bytes of u8 fields, 9 u32, then last_data_sent,
    # last_ack_sent, last_data_recv, last_ack_recv (milliseconds, in jiffies).
    contact = now - struct.unpack_from("I", info, 56)[0] / 1000
    if contact - contacts[-1] > 0.1:
        contacts.append(contact)
    time.sleep(0.002)
gaps = ["%.1f" % ((b - a) * 1000) for a, b in zip(contacts, contacts[1:])]
print(f"idle {idle} s intvl {intvl} s: answers at", ["%.3f" % x for x in contacts[1:]])
print("gaps (ms):", " ".join(gaps), "(each reading is in 4 ms jiffies at HZ=250)")
