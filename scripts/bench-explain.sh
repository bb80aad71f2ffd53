#!/usr/bin/env bash
# explain's cost on big captures: wall time, CPU and peak RSS of
# `tcpalive explain --quiet` on two generated pcaps (Ethernet/IPv4):
#   many:  CONNS connections (default 20000), each a handshake, 5 request/reply
#          pairs, 3 unanswered keepalive probes and the prober's RST (19 frames);
#   long:  one connection of FRAMES data segments and their ACKs (default 1000000),
#          which the per-connection observation cap (20000) keeps bounded.
# Target: memory bounded by the connection count, not the file size; >= 200k frames/s.
#
#   scripts/bench-explain.sh [CONNS] [FRAMES]
source "$(dirname "$0")/bench-common.sh"
CONNS=${1:-20000}
FRAMES=${2:-1000000}
build_release
command -v python3 >/dev/null || { echo "bench-explain: needs python3 to write the captures" >&2; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$CONNS" "$FRAMES" <<'PY'
import struct, sys
work, conns, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def frame(src, dst, sport, dport, seq, ack, flags, payload=b"", win=64000):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, win, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp

S, A, F, R, P = 0x02, 0x10, 0x01, 0x04, 0x08
def write(name, records):
    with open(f"{work}/{name}", "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for t, data in records:
            sec, usec = int(t), int(round((t - int(t)) * 1e6))
            f.write(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)

def many():
    t0 = 1_796_000_000.0
    for i in range(conns):
        c = bytes([198, 18, (i >> 8) & 255, i & 255]); s = bytes([198, 19, 0, 1])
        cp, t = 10000 + i % 50000, t0 + i * 0.001
        cs, ss = 1000, 5000
        yield t, frame(c, s, cp, 80, cs, 0, S); yield t + 1e-4, frame(s, c, 80, cp, ss, cs + 1, S | A)
        cs += 1; ss += 1
        yield t + 2e-4, frame(c, s, cp, 80, cs, ss, A)
        for k in range(5):
            yield t + 0.01 * (k + 1), frame(c, s, cp, 80, cs, ss, P | A, b"ping")
            cs += 4
            yield t + 0.01 * (k + 1) + 1e-4, frame(s, c, 80, cp, ss, cs, P | A, b"pong")
            ss += 4
        for k in range(3):
            yield t + 60 + k * 5, frame(c, s, cp, 80, cs - 1, ss, A)
        yield t + 75, frame(c, s, cp, 80, cs, ss, R | A)

def long():
    c, s, t, cs, ss = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]), 1_796_000_000.0, 1, 1
    yield t, frame(c, s, 40000, 443, 0, 0, S); yield t, frame(s, c, 443, 40000, 0, 1, S | A)
    for k in range(frames // 2):
        yield t + k * 1e-5, frame(c, s, 40000, 443, cs & 0xffffffff, ss, A, b"x" * 100)
        cs += 100
        yield t + k * 1e-5 + 5e-6, frame(s, c, 443, 40000, ss, cs & 0xffffffff, A)

write("many.pcap", sorted(many(), key=lambda r: r[0]))
write("long.pcap", long())
PY

for name in many long; do
    f="$work/$name.pcap"
    size=$(stat -c %s "$f")
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$BIN" explain "$f" --quiet > "$work/out" 2>/dev/null || true
    read -r wall user sys rss < <(tail -1 "$work/time")
    ends=$(grep -c ' end ' "$work/out" || true)
    printf 'bench-explain: %-5s %6.1f MiB, %7d end line(s): %6.2f s wall, %6.2f s CPU, peak RSS %6.1f MiB\n' \
        "$name" "$(echo "$size / 1048576" | bc -l)" "$ends" "$wall" "$(echo "$user + $sys" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
done
