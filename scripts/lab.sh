#!/usr/bin/env bash
# tcpalive lab: pull cables, reboot and kill peers inside network namespaces and
# check that `tcpalive connect` notices what the kernel notices, when predicted.
#
#   scripts/lab.sh list
#   scripts/lab.sh SCENARIO [--out DIR] [--pcap] [--fault-after S] [--max-wait S]
#                           [--ct-timeout S] [--nat-reset] [--nat-loose] [tcpalive connect options...]
#
# The nat-* scenarios put a router doing NAT (nftables masquerade) between the ends:
# its conntrack forgets an established TCP flow idle for --ct-timeout seconds
# (default 8; nf_conntrack_tcp_loose 0, so a later packet of the flow is invalid),
# and invalid packets are dropped, or with --nat-reset answered with a TCP reset.
# --nat-loose sets tcp_loose 1: an outbound packet of a forgotten flow is picked up
# as new (the mapping comes back), so only the inbound direction dies.
# nat-limit runs `tcpalive idle-limit` (with the remaining options) instead of connect.
# firewall-limit does the same through a stateful firewall without NAT (conntrack
# timeout --ct-timeout, tcp_loose 1) that lets one side's packets pass even for a
# flow it forgot (picked up again) and drops the other side's silently: --firewall
# in (default) drops the server's, as a firewall in front of clients does; --firewall
# out the client's (one in front of a server: only SYNs open flows from outside).
# proxy-limit does the same through a TCP proxy in the router namespace (--proxy
# haproxy: `mode tcp`, `timeout client/server`; nginx: stream `proxy_timeout`;
# socat: `-T`), each closing flows idle for --proxy-timeout seconds (default 6).
#
# Every run makes its own namespaces (tca-<abbrev>-<slot>-{c,r,s}), veth pairs and a
# /29 out of 198.18.0.0/15 (RFC 2544 benchmarking range), allocated from a lock
# directory so parallel runs never share names, addresses or ports; everything is
# removed on exit, on failure and on Ctrl-C.
#
# Exit codes: 0 verdict as expected, 1 verdict not as expected (or the run broke),
# 2 usage, 77 lab unavailable (not root, no iproute2/jq/tcpdump/ss -K, netns failed).
#
# --pcap: tcpdump on the client's veth writes capture.pcap (Ethernet) and its text
# pcap.txt, and one on the server's every interface capture-server.pcap (Linux
# cooked SLL2), for `tcpalive explain` (the fidelity, zero-window, ka-intvl,
# late-timer and syn scenarios capture the client side always).
#
# Environment: TCPALIVE (binary; default target/debug/tcpalive, else PATH),
# LAB_OUT (same as --out), LAB_PCAP=1 (same as --pcap), LAB_LOCK_DIR.

set -u -o pipefail

readonly EXIT_FAIL=1 EXIT_USAGE=2 EXIT_UNAVAILABLE=77
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# jq reads tcpalive's JSON Lines; these definitions go in front of every program
# that does (jq -n -R "$JQ_LIB"'PROGRAM'). Lines are read raw and parsed with
# `fromjson?`, so a line cut short by a killed process is skipped, not fatal.
JQ_LIB='
# epoch: seconds since the epoch (float) of "2026-11-21T10:00:05.001Z" or
# "...05.001+01:00"; null when unparsable. fromdateiso8601 takes neither a fraction
# nor an offset, so both are split off and added back.
def epoch:
  [try (capture("^(?<d>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ](?<h>[0-9]{2}:[0-9]{2}:[0-9]{2})(?<f>[.][0-9]+)?(?<z>[Zz]|[+-][0-9]{2}:[0-9]{2})?$")
       | ((.d + "T" + .h + "Z") | fromdateiso8601)
         + (if .f then "0" + .f | tonumber else 0 end)
         - (if .z and (.z | test("^[+-]")) then
              (.z[0:1] + "1" | tonumber) * ((.z[1:3] | tonumber) * 3600 + (.z[4:6] | tonumber) * 60)
            else 0 end))
   catch empty] | first;
def spaces($n): [range($n)] | map(" ") | join("");
def lpad($n): tostring | if length < $n then spaces($n - length) + . else . end;
def rpad($n): tostring | if length < $n then . + spaces($n - length) else . end;
# round($n): the number rounded to $n decimals (what "%.Nf" kept, as a JSON number)
def round($n): pow(10; $n) as $m | (. * $m | round) / $m;
# fixed($n): the number as text with exactly $n decimals, like printf "%.Nf"
def fixed($n):
  (if . < 0 then "-" else "" end) as $sign
  | (fabs * pow(10; $n) | round | tostring) as $i
  | if $n == 0 then $sign + $i
    else (if ($i | length) <= $n then ([range($n + 1 - ($i | length))] | map("0") | join("")) + $i else $i end) as $p
      | $sign + $p[0:($p | length) - $n] + "." + $p[($p | length) - $n:]
    end;
# g6: six significant digits, integers as they are (the precision the verdict
# always had: awk printed its numbers with "%.6g")
def g6:
  if . == null or . == floor then .
  else (fabs | log10 | floor) as $e
    | if $e <= 5 then pow(10; 5 - $e) as $m | (. * $m | round) / $m
      else pow(10; $e - 5) as $m | (. / $m | round) * $m end
  end;
# the events of the input lines, in order (lines that are not JSON objects skipped)
def events: inputs | fromjson? | objects;
# render: one human timeline line of one event:
# "10:00:05.103    5.103s  end           outcome=timeout errno=ETIMEDOUT ..."
def render:
  ((.time // "") | tostring | .[11:23] | rpad(12)) + " "
  + ((.t // 0) | fixed(3) | lpad(8)) + "s  "
  + ((.event // "") | rpad(13))
  + (to_entries
     | map(select(.key != "event" and .key != "t" and .key != "time" and .key != "conn")
           | " " + .key + "="
             + (.value | if type == "string" then (if test(" ") then "\"" + . + "\"" else . end) else tojson end))
     | join(""));
# timeline FILE: every line rendered, a line that is not a JSON object as it is
def timeline: inputs | . as $l | "  " + (try (fromjson | render) catch $l);
'

# name|abbrev|topology|expected outcomes|scenario connect args|description
SCENARIOS='
alive|al|direct|alive|--for 4.5|peer alive: probes are answered, --for elapses
cable-pull|cp|switch|timeout||cable pull: `ip link set down` on the far host, behind a switch; probes go unanswered
reboot|rb|switch|reset||peer reboot: far side loses its socket silently (link down, ss -K, link up); next probe gets RST
exits|ex|direct|eof||peer process exits: listener SIGKILLed, its kernel sends FIN
aborts|ab|direct|reset||peer aborts: `listen --reset-after` sends RST
busy|bz|switch|timeout,unreachable|--send-every 200ms --send-size 100 --user-timeout 4s|busy connection: data in flight when the cable is pulled; TCP_USER_TIMEOUT bounds it (ETIMEDOUT, or EHOSTUNREACH once ARP failed)
icmp-idle|ii|router|timeout||router answers ICMP host-unreachable, idle connection: Linux ignores ICMP for probes
icmp-busy|ib|router|unreachable|--send-every 200ms --send-size 100 --user-timeout 3s|router answers ICMP host-unreachable, data in flight: soft error EHOSTUNREACH at the user timeout
fidelity|fd|switch|timeout||cable pull with tcpdump on the client: every wire keepalive probe has its probe event within 50 ms
reconnect|rc|switch|alive|--reconnect --count 2 --connect-timeout 1s|reconnecting monitor: pull the cable, restore it after the outage, pull again; two outages logged
cable-pull-direct|cd|direct|timeout||cable pull on a direct veth pair: the local NIC loses carrier too (probes dropped locally can come 0.5 s late)
nat-drop|nd|nat|timeout|--idle 12 --intvl 1 --cnt 2|NAT router forgets idle flows after --ct-timeout (8 s): keepalive idle 12 s is too late, its first probe is dropped (--nat-reset: answered with RST)
nat-kept|nk|nat|alive|--idle 5 --intvl 1 --cnt 2 --for 20|NAT router forgets idle flows after --ct-timeout (8 s): keepalive idle 5 s refreshes the flow in time
nat-limit|nl|nat|alive||idle-limit through the NAT router: finds --ct-timeout within +-1 s (args go to idle-limit, not connect)
firewall-limit|fl|firewall|alive||idle-limit through a one-way stateful firewall (routed, no NAT) forgetting idle flows after --ct-timeout: --firewall in (default) silently drops the packets of a forgotten flow from the server side, the client side picked up again; --firewall out the other way
proxy-limit|pl|router|alive||idle-limit through a TCP proxy in the router (--proxy haproxy, nginx or socat; --proxy-timeout S, default 6): finds its idle timeout, drop mode closed
zero-window-uto|zu|switch|timeout|--send-every 50ms --send-size 65536 --user-timeout 4s|peer stops reading (listen --no-read --rcvbuf 4096) but its kernel answers every window probe: the user timeout ends it 4 s after the first window probe
zero-window-pull|zp|switch|timeout|--send-every 50ms --send-size 65536|peer stops reading, then its cable is pulled: tcp_retries2 (2 in the client namespace) unanswered window probes end it
ka-intvl|ki|switch|timeout|--idle 1 --intvl 2 --cnt 2|intvl longer than idle: the probe after an answered one comes intvl after it, not idle after the answer; cable pulled after the first answer
late-timer|lt|switch|timeout|--idle 3 --intvl 3 --cnt 1|3 s keepalive timers (timer-wheel level 2, 256 ms granularity at HZ=250) fire late without any warning
syn-uto|su|switch|connect-failed|--user-timeout 3s --connect-timeout 10s|connect to a host that never answers: SYNs at 0, 1, 2 s; the user timeout ends the attempt at 3 s
syn-retries|sr|switch|connect-failed|--connect-timeout 30s|connect to a host that never answers with tcp_syn_retries 2 in the client namespace: SYNs 1 s apart (linear timeouts), the 7 s budget ends it
'

die()   { echo "lab: $*" >&2; exit $EXIT_FAIL; }
unavailable() { echo "lab unavailable: $*" >&2; exit $EXIT_UNAVAILABLE; }
usage() {
    cat >&2 <<EOF
usage: scripts/lab.sh list
       scripts/lab.sh SCENARIO [--out DIR] [--pcap] [--fault-after SECONDS] [--max-wait SECONDS]
                               [--ct-timeout S] [--nat-reset] [--nat-loose]   (nat-* scenarios)
                               [--ct-timeout S] [--firewall in|out]            (firewall-limit)
                               [--proxy haproxy|nginx|socat] [--proxy-timeout S] (proxy-limit)
                               [tcpalive connect options, e.g. --idle 5 --intvl 5 --cnt 3]
Defaults passed to connect: --idle 1 --intvl 1 --cnt 3 (any you give replaces its default).
nat-limit passes the options to idle-limit instead, e.g. --direction out --verify --idle 6.
EOF
    exit $EXIT_USAGE
}
now() { date +%s.%N; }
passed() { jq -e '.pass == true' "$WORK/verdict.json" >/dev/null 2>&1; }
log() { printf 'lab: %s\n' "$*" >&2; }

scenario_field() {  # scenario_field NAME FIELDNO
    printf '%s\n' "$SCENARIOS" | awk -F'|' -v n="$1" -v f="$2" '$1 == n { print $f; found = 1 } END { exit !found }'
}

list_scenarios() {
    printf '%-11s %-20s %s\n' SCENARIO EXPECTED DESCRIPTION
    printf '%s\n' "$SCENARIOS" | awk -F'|' 'NF >= 6 { printf "%-11s %-20s %s\n", $1, $4, $6 }'
}

# ---------------------------------------------------------------- arguments
[ $# -ge 1 ] || usage
case $1 in
    list) list_scenarios; exit 0 ;;
    -h|--help|help) usage ;;
esac
SCENARIO=$1; shift
scenario_field "$SCENARIO" 1 >/dev/null || { echo "lab: unknown scenario '$SCENARIO'" >&2; list_scenarios >&2; exit $EXIT_USAGE; }
ABBR=$(scenario_field "$SCENARIO" 2)
TOPO=$(scenario_field "$SCENARIO" 3)
EXPECTED=$(scenario_field "$SCENARIO" 4)
SCEN_ARGS=$(scenario_field "$SCENARIO" 5)

OUT=${LAB_OUT:-}
PCAP=${LAB_PCAP:-0}
# Asked for (--pcap, LAB_PCAP=1): the server's end is captured too.
PCAP_SERVER=$PCAP
case $SCENARIO in fidelity|zero-window-*|ka-intvl|late-timer|syn-*) PCAP=1 ;; esac
FAULT_AFTER=0.5
# the zero-window cable pull waits for a few answered window probes; ka-intvl for the
# first answered keepalive probe (at 1 s)
case $SCENARIO in zero-window-pull) FAULT_AFTER=2.5 ;; ka-intvl) FAULT_AFTER=1.5 ;; esac
MAX_WAIT=60
CT_TIMEOUT=8
NAT_RESET=0
NAT_LOOSE=0
FIREWALL=in
PROXY=socat
PROXY_TIMEOUT=6
PROXY_PID=''
MAX_WAIT_GIVEN=0
USER_ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
        --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
        --out=*) OUT=${1#--out=}; shift ;;
        --pcap) PCAP=1; PCAP_SERVER=1; shift ;;
        --fault-after) [ $# -ge 2 ] || usage; FAULT_AFTER=$2; shift 2 ;;
        --max-wait) [ $# -ge 2 ] || usage; MAX_WAIT=$2; MAX_WAIT_GIVEN=1; shift 2 ;;
        --ct-timeout) [ $# -ge 2 ] || usage; CT_TIMEOUT=$2; shift 2 ;;
        --nat-reset) NAT_RESET=1; shift ;;
        --nat-loose) NAT_LOOSE=1; shift ;;
        --firewall) [ $# -ge 2 ] || usage; FIREWALL=$2; shift 2 ;;
        --proxy) [ $# -ge 2 ] || usage; PROXY=$2; shift 2 ;;
        --proxy-timeout) [ $# -ge 2 ] || usage; PROXY_TIMEOUT=$2; shift 2 ;;
        *) USER_ARGS+=("$1"); shift ;;
    esac
done

# connect args: defaults, then the scenario's, then the user's; a flag the user gives
# replaces the default/scenario one (clap rejects repeated flags).
user_has() { local a; for a in "${USER_ARGS[@]+"${USER_ARGS[@]}"}"; do case $a in "$1"|"$1"=*) return 0 ;; esac; done; return 1; }
CONNECT_ARGS=()
scen_has() { local a; for a in $SCEN_ARGS; do [ "$a" = "$1" ] && return 0; done; return 1; }
add_default() {  # add_default FLAG [VALUE]
    user_has "$1" && return 0
    user_has --no-keepalive && case $1 in --idle|--intvl|--cnt) return 0 ;; esac
    CONNECT_ARGS+=("$@")
}
# nat-* scenarios bring their own keepalive (nat-limit runs idle-limit instead); a
# default the scenario sets itself is left out (clap rejects repeated flags)
case $SCENARIO in
    nat-*|proxy-*|firewall-*) ;;
    *) for flag in --idle --intvl --cnt; do
           case $flag in --idle|--intvl) value=1 ;; *) value=3 ;; esac
           scen_has "$flag" || add_default "$flag" "$value"
       done ;;
esac
[ "$SCENARIO" = nat-drop ] && [ "$NAT_RESET" = 1 ] && EXPECTED=reset
set -- $SCEN_ARGS
while [ $# -gt 0 ]; do
    if [ $# -ge 2 ] && [ "${2#--}" = "$2" ]; then add_default "$1" "$2"; shift 2   # --flag value
    else add_default "$1"; shift; fi                                             # --switch
done
CONNECT_ARGS+=("${USER_ARGS[@]+"${USER_ARGS[@]}"}")

# ---------------------------------------------------------------- prerequisites
[ "$(id -u)" = 0 ] || unavailable "needs root (network namespaces); run as root or under sudo"
command -v ip >/dev/null || unavailable "needs 'ip' from iproute2 (apt-get install iproute2)"
command -v jq >/dev/null || unavailable "needs jq to read tcpalive's JSON Lines (apt-get install jq)"
ip netns list >/dev/null 2>&1 || unavailable "'ip netns' does not work here"
if [ "$PCAP" = 1 ]; then
    command -v tcpdump >/dev/null || unavailable "needs tcpdump for packet capture (apt-get install tcpdump)"
fi
if [ "$TOPO" = nat ] || [ "$TOPO" = firewall ]; then
    command -v nft >/dev/null || unavailable "needs nft from nftables for the NAT router (apt-get install nftables)"
    case $CT_TIMEOUT in ''|*[!0-9]*) echo "lab: --ct-timeout takes whole seconds" >&2; exit $EXIT_USAGE ;; esac
fi
if [ "$TOPO" = firewall ]; then
    case $FIREWALL in in|out) ;; *) echo "lab: --firewall takes in or out" >&2; exit $EXIT_USAGE ;; esac
fi
if [ "$SCENARIO" = proxy-limit ]; then
    case $PROXY_TIMEOUT in ''|*[!0-9]*) echo "lab: --proxy-timeout takes whole seconds" >&2; exit $EXIT_USAGE ;; esac
    case $PROXY in
        haproxy) command -v haproxy >/dev/null || unavailable "needs haproxy (apt-get install haproxy)" ;;
        nginx) command -v nginx >/dev/null && ls /usr/lib/nginx/modules/ngx_stream_module.so >/dev/null 2>&1 \
                   || unavailable "needs nginx with the stream module (apt-get install nginx-light libnginx-mod-stream)" ;;
        socat) command -v socat >/dev/null || unavailable "needs socat (apt-get install socat)" ;;
        *) echo "lab: --proxy takes haproxy, nginx or socat" >&2; exit $EXIT_USAGE ;;
    esac
fi
if [ "$SCENARIO" = reboot ]; then
    command -v ss >/dev/null || unavailable "needs 'ss' from iproute2 to kill the peer's socket (reboot scenario)"
fi

if [ -n "${TCPALIVE:-}" ]; then
    BIN=$TCPALIVE
elif [ -x "$REPO_ROOT/target/debug/tcpalive" ]; then
    BIN=$REPO_ROOT/target/debug/tcpalive
else
    BIN=$(command -v tcpalive) || die "no tcpalive binary: set TCPALIVE, run 'cargo build', or put tcpalive on PATH"
fi
[ -x "$BIN" ] || command -v "$BIN" >/dev/null || die "TCPALIVE=$BIN is not executable"

# ---------------------------------------------------------------- state and cleanup
LOCK_DIR=${LAB_LOCK_DIR:-/run/tcpalive-lab}
SLOT='' SLOT_DIR='' NS_C='' NS_R='' NS_S='' WORK='' TMP_WORK=0
LISTEN_PID='' CONNECT_PID='' TCPDUMP_PID='' TCPDUMP_S_PID=''
NAMESPACES=()

stop_pid() {  # stop_pid PID SIGNAL: signal, wait up to 2 s, then SIGKILL
    local pid=$1 sig=$2 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null
    for i in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

cleanup() {
    local rc=$? ns p
    trap - EXIT INT TERM
    stop_pid "$TCPDUMP_PID" INT
    stop_pid "$TCPDUMP_S_PID" INT
    stop_pid "$CONNECT_PID" TERM
    stop_pid "$PROXY_PID" TERM
    stop_pid "$LISTEN_PID" TERM
    for ns in "${NAMESPACES[@]+"${NAMESPACES[@]}"}"; do
        # anything still running inside our own namespaces is ours
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    [ -n "$SLOT_DIR" ] && rm -rf "$SLOT_DIR"
    [ "$TMP_WORK" = 1 ] && [ -n "$WORK" ] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "lab: interrupted, cleaning up" >&2; exit 130' INT
trap 'echo "lab: terminated, cleaning up" >&2; exit 143' TERM

# A slot is a /29 in 198.18.0.0/15, a port and a name suffix, held by mkdir (atomic)
# for the life of this run. A slot whose owner died is reclaimed, with its leftovers.
alloc_slot() {
    local n i owner ns
    mkdir -p "$LOCK_DIR" || unavailable "cannot create $LOCK_DIR"
    for i in $(seq 200); do
        n=$(( (RANDOM * 32768 + RANDOM + $$) % 16384 ))
        if mkdir "$LOCK_DIR/$n" 2>/dev/null; then
            echo $$ > "$LOCK_DIR/$n/pid"; SLOT=$n; SLOT_DIR=$LOCK_DIR/$n; return 0
        fi
        owner=$(cat "$LOCK_DIR/$n/pid" 2>/dev/null)
        if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
            for ns in $(ip netns list | awk '{print $1}' | grep -E "^tca-[a-z]+-$n-[crs]\$"); do ip netns del "$ns" 2>/dev/null; done
            rm -rf "$LOCK_DIR/$n"
        fi
    done
    unavailable "no free lab slot in $LOCK_DIR"
}

# ---------------------------------------------------------------- topology
addr() {  # addr HOSTNO: 198.18.x.y, host HOSTNO of this slot's /29
    local off=$(( SLOT * 8 + $1 ))
    echo "198.$(( 18 + off / 65536 )).$(( off / 256 % 256 )).$(( off % 256 ))"
}

mkns() {
    ip netns add "$1" 2>"$WORK/netns.err" || unavailable "cannot create network namespace $1: $(cat "$WORK/netns.err")"
    NAMESPACES+=("$1")
    ip -n "$1" link set lo up || unavailable "cannot bring up lo in $1"
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
}

veth() {  # veth NS1 DEV1 ADDR1 NS2 DEV2 ADDR2 (addresses /30)
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4" 2>"$WORK/veth.err" \
        || unavailable "cannot create veth pair $2/$5: $(cat "$WORK/veth.err")"
    ip -n "$1" addr add "$3/30" dev "$2" && ip -n "$4" addr add "$6/30" dev "$5" \
        && ip -n "$1" link set "$2" up && ip -n "$4" link set "$5" up \
        || unavailable "cannot configure veth pair $2/$5"
}

setup_topology() {
    NS_C=tca-$ABBR-$SLOT-c; NS_S=tca-$ABBR-$SLOT-s
    DEV_C=tca${SLOT}c; DEV_S=tca${SLOT}s
    PORT=$(( 20000 + SLOT ))
    mkns "$NS_C"; mkns "$NS_S"
    if [ "$TOPO" = direct ]; then
        C_ADDR=$(addr 1); S_ADDR=$(addr 2)
        veth "$NS_C" "$DEV_C" "$C_ADDR" "$NS_S" "$DEV_S" "$S_ADDR"
    elif [ "$TOPO" = switch ]; then
        # client -- bridge -- server, one subnet: pulling the server's cable leaves the
        # client's NIC up, as behind a real switch
        NS_R=tca-$ABBR-$SLOT-r
        mkns "$NS_R"
        C_ADDR=$(addr 1); S_ADDR=$(addr 2)
        ip -n "$NS_R" link add br0 type bridge 2>"$WORK/veth.err" || unavailable "cannot create a bridge: $(cat "$WORK/veth.err")"
        ip link add "$DEV_C" netns "$NS_C" type veth peer name "tca${SLOT}wc" netns "$NS_R" \
            && ip link add "$DEV_S" netns "$NS_S" type veth peer name "tca${SLOT}ws" netns "$NS_R" \
            || unavailable "cannot create veth pairs"
        ip -n "$NS_R" link set "tca${SLOT}wc" master br0 up && ip -n "$NS_R" link set "tca${SLOT}ws" master br0 up \
            && ip -n "$NS_R" link set br0 up \
            && ip -n "$NS_C" addr add "$C_ADDR/30" dev "$DEV_C" && ip -n "$NS_C" link set "$DEV_C" up \
            && ip -n "$NS_S" addr add "$S_ADDR/30" dev "$DEV_S" && ip -n "$NS_S" link set "$DEV_S" up \
            || unavailable "cannot configure the switch topology"
    else
        NS_R=tca-$ABBR-$SLOT-r; DEV_RC=tca${SLOT}rc; DEV_RS=tca${SLOT}rs
        mkns "$NS_R"
        C_ADDR=$(addr 1); RC_ADDR=$(addr 2); RS_ADDR=$(addr 5); S_ADDR=$(addr 6)
        veth "$NS_C" "$DEV_C" "$C_ADDR" "$NS_R" "$DEV_RC" "$RC_ADDR"
        veth "$NS_R" "$DEV_RS" "$RS_ADDR" "$NS_S" "$DEV_S" "$S_ADDR"
        ip netns exec "$NS_R" sysctl -qw net.ipv4.ip_forward=1 || unavailable "cannot enable forwarding in $NS_R"
        # no ICMP rate limit in the router, so every probe gets its unreachable
        ip netns exec "$NS_R" sysctl -qw net.ipv4.icmp_ratelimit=0 || true
        ip -n "$NS_C" route add default via "$RC_ADDR" && ip -n "$NS_S" route add default via "$RS_ADDR" \
            || unavailable "cannot add routes"
        [ "$TOPO" = nat ] && setup_nat
        [ "$TOPO" = firewall ] && setup_firewall
    fi
}

# The router masquerades the client behind its outside address. Its conntrack
# forgets an idle established flow after CT_TIMEOUT s; with tcp_loose 0 a later
# packet of that flow is invalid (never picked up mid-stream) and is dropped, or
# answered with a reset -- in forward (client -> server) and input (server -> the
# router's outside address, no mapping left). nftables: `fwd` is a keyword.
setup_nat() {
    local verdict=drop
    [ "$NAT_RESET" = 1 ] && verdict='meta l4proto tcp reject with tcp reset'
    ip netns exec "$NS_R" nft -f - <<NFT 2>"$WORK/nft.err" || unavailable "nft failed in $NS_R: $(cat "$WORK/nft.err")"
table inet tca_nat {
    chain forward_filter { type filter hook forward priority filter; policy accept; ct state invalid $verdict; }
    chain input_filter { type filter hook input priority filter; policy accept; ct state invalid $verdict; }
    chain postrouting_nat { type nat hook postrouting priority srcnat; policy accept; oifname "$DEV_RS" masquerade; }
}
NFT
    ip netns exec "$NS_R" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established="$CT_TIMEOUT" \
        net.netfilter.nf_conntrack_tcp_loose="$NAT_LOOSE" 2>"$WORK/nft.err" \
        || unavailable "cannot set the conntrack timeouts in $NS_R: $(cat "$WORK/nft.err")"
}

# A stateful firewall, routed (no NAT): new flows only from the open side
# (--firewall in: the client's; out: SYNs from the client, anything from the
# server), established ones both ways. Its conntrack forgets an idle flow after
# CT_TIMEOUT s; with tcp_loose 1 (Linux's default) a later packet from the open
# side is picked up as a new flow and passes, one from the other side is new and
# not allowed: dropped without an answer.
setup_firewall() {
    local open=$DEV_RC syn=''
    if [ "$FIREWALL" = out ]; then
        open=$DEV_RS
        syn="iifname \"$DEV_RC\" tcp flags & (fin|syn|rst|ack) == syn ct state new accept"
    fi
    ip netns exec "$NS_R" nft -f - <<NFT 2>"$WORK/nft.err" || unavailable "nft failed in $NS_R: $(cat "$WORK/nft.err")"
table inet tca_fw {
    chain forward_filter {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "$open" accept
        $syn
    }
}
NFT
    ip netns exec "$NS_R" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established="$CT_TIMEOUT" \
        net.netfilter.nf_conntrack_tcp_loose=1 2>"$WORK/nft.err" \
        || unavailable "cannot set the conntrack timeouts in $NS_R: $(cat "$WORK/nft.err")"
}

# ---------------------------------------------------------------- running the tools
wait_event() {  # wait_event FILE EVENT TIMEOUT_S PID: 0 when the event line appeared
    local file=$1 ev=$2 deadline pid=$4
    deadline=$(awk -v n="$(now)" -v t="$3" 'BEGIN { printf "%.3f", n + t }')
    while :; do
        grep -Eq "\"event\": ?\"$ev\"" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { grep -Eq "\"event\": ?\"$ev\"" "$file" 2>/dev/null; return; }
        awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }' && return 1
        sleep 0.02
    done
}

wait_exit() {  # wait_exit PID TIMEOUT_S -> sets WAIT_RC (or empty when still running)
    local pid=$1 deadline
    deadline=$(awk -v n="$(now)" -v t="$2" 'BEGIN { printf "%.3f", n + t }')
    WAIT_RC=''
    while kill -0 "$pid" 2>/dev/null; do
        awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }' && return 1
        sleep 0.05
    done
    wait "$pid"; WAIT_RC=$?
}

record_fault() {  # record_fault DESCRIPTION [EPOCH]
    FAULT_EPOCH=${2:-$(now)}
    FAULT_DESC=$1
    printf '%s %s\n' "$FAULT_EPOCH" "$FAULT_DESC" > "$WORK/fault_at"
    log "fault at $(date -d "@$FAULT_EPOCH" +%T.%3N): $FAULT_DESC"
}

inject_fault() {
    case $SCENARIO in
        alive|nat-drop|nat-kept|zero-window-uto) FAULT_EPOCH=''; echo "none" > "$WORK/fault_at" ;;
        cable-pull|cable-pull-direct|fidelity|busy|zero-window-pull|ka-intvl|late-timer)
            record_fault "ip link set $DEV_S down (in $NS_S)"
            ip -n "$NS_S" link set "$DEV_S" down || die "link down failed" ;;
        reboot)
            record_fault "ip link set $DEV_S down; ss -K sport :$PORT; ip link set $DEV_S up (in $NS_S)"
            ip -n "$NS_S" link set "$DEV_S" down || die "link down failed"
            ip netns exec "$NS_S" ss -K -tn state established "( sport = :$PORT )" >/dev/null 2>"$WORK/ss.err"
            if ip netns exec "$NS_S" ss -Htn state established "( sport = :$PORT )" | grep -q .; then
                unavailable "ss -K could not destroy the socket (kernel without CONFIG_INET_DIAG_DESTROY?): $(cat "$WORK/ss.err")"
            fi
            ip -n "$NS_S" link set "$DEV_S" up || die "link up failed" ;;
        exits)
            record_fault "SIGKILL listener pid $LISTEN_PID"
            kill -KILL "$LISTEN_PID" ;;
        aborts)
            # the listener resets by itself; the fault time is its accept + reset-after
            local reset_at
            reset_at=$(jq -n -R -r --arg d "${RESET_AFTER%s}" \
                "$JQ_LIB"'first(events | select(.event == "connected") | .time | epoch | values) + ($d | tonumber) | fixed(6)' \
                "$WORK/listen.jsonl")
            record_fault "listen --reset-after $RESET_AFTER (RST)" "$reset_at" ;;
        reconnect)
            record_fault "ip link set $DEV_S down; up after the first outage; down again (in $NS_S)"
            ip -n "$NS_S" link set "$DEV_S" down || die "link down failed"
            wait_event "$WORK/connect.jsonl" down 30 "$CONNECT_PID" || die "connect logged no first outage"
            ip -n "$NS_S" link set "$DEV_S" up || die "link up failed"
            wait_event "$WORK/connect.jsonl" up 30 "$CONNECT_PID" || die "connect did not reconnect"
            sleep "$FAULT_AFTER"
            ip -n "$NS_S" link set "$DEV_S" down || die "second link down failed" ;;
        icmp-idle|icmp-busy)
            record_fault "ip link set $DEV_S down (in $NS_S); ip route replace unreachable $S_ADDR/32 (in $NS_R)"
            ip -n "$NS_S" link set "$DEV_S" down || die "link down failed"
            ip -n "$NS_R" route replace unreachable "$S_ADDR/32" || die "unreachable route failed" ;;
    esac
}

# ---------------------------------------------------------------- main
if [ -n "$OUT" ]; then
    mkdir -p "$OUT" || die "cannot create $OUT"
    WORK=$(cd "$OUT" && pwd)
    rm -f "$WORK"/{connect.jsonl,listen.jsonl,connect.exit,listen.exit,connect.err,listen.err,fault_at,pcap.txt,capture.pcap,capture-server.pcap,verdict.json}
else
    WORK=$(mktemp -d /tmp/tcpalive-lab.XXXXXX) || die "mktemp failed"; TMP_WORK=1
fi
alloc_slot
setup_topology
# per-namespace kernel settings some scenarios need (sysctls are per network namespace)
case $SCENARIO in
    zero-window-pull) ip netns exec "$NS_C" sysctl -qw net.ipv4.tcp_retries2=2 || unavailable "cannot set tcp_retries2 in $NS_C" ;;
    syn-retries) ip netns exec "$NS_C" sysctl -qw net.ipv4.tcp_syn_retries=2 || unavailable "cannot set tcp_syn_retries in $NS_C" ;;
esac
log "scenario $SCENARIO: $NS_C ($C_ADDR) -> $NS_S ($S_ADDR:$PORT)${NS_R:+ via $NS_R}"

LISTEN_ARGS=(--once --json)
# the monitor reconnects, so its listener must accept more than one connection
[ "$SCENARIO" = reconnect ] && LISTEN_ARGS=(--json)
# idle-limit opens many test flows at once
case $SCENARIO in nat-limit|proxy-limit|firewall-limit) LISTEN_ARGS=(--json) ;; esac
RESET_AFTER=''
if [ "$SCENARIO" = aborts ]; then RESET_AFTER=1.5s; LISTEN_ARGS+=(--reset-after "$RESET_AFTER"); fi
# a peer whose application stopped reading: its 4 KiB receive buffer fills at once
case $SCENARIO in zero-window-*) LISTEN_ARGS+=(--no-read --rcvbuf 4096) ;; esac

if [ "$PCAP" = 1 ]; then
    ip netns exec "$NS_C" tcpdump -i "$DEV_C" -n -tt -S -l -U -w "$WORK/capture.pcap" --print "tcp port $PORT" >"$WORK/pcap.txt" 2>"$WORK/tcpdump.err" &
    TCPDUMP_PID=$!
    for i in $(seq 500); do grep -q "listening on" "$WORK/tcpdump.err" 2>/dev/null && break; sleep 0.02; done
    grep -q 'listening on' "$WORK/tcpdump.err" || unavailable "tcpdump did not start: $(cat "$WORK/tcpdump.err")"
fi
# The server's end too when asked for, on every interface (Linux cooked SLL2
# frames), for `explain` (tests/explain.rs reads both ends of one run).
if [ "$PCAP_SERVER" = 1 ]; then
    ip netns exec "$NS_S" tcpdump -i any -y LINUX_SLL2 -n -U -w "$WORK/capture-server.pcap" "tcp port $PORT" 2>"$WORK/tcpdump-server.err" &
    TCPDUMP_S_PID=$!
    for i in $(seq 500); do grep -q "listening on" "$WORK/tcpdump-server.err" 2>/dev/null && break; sleep 0.02; done
    grep -q 'listening on' "$WORK/tcpdump-server.err" || unavailable "tcpdump (server side) did not start: $(cat "$WORK/tcpdump-server.err")"
fi

ip netns exec "$NS_S" "$BIN" listen "$S_ADDR:$PORT" "${LISTEN_ARGS[@]}" >"$WORK/listen.jsonl" 2>"$WORK/listen.err" &
LISTEN_PID=$!
wait_event "$WORK/listen.jsonl" listening 5 "$LISTEN_PID" \
    || die "listener did not report 'listening': $(tail -3 "$WORK/listen.err")"

# proxy-limit: the proxy listens on the router's client-side address and forwards
# to the listener; every one closes a flow idle for PROXY_TIMEOUT s.
TARGET=$S_ADDR:$PORT
if [ "$SCENARIO" = proxy-limit ]; then
    TARGET=$RC_ADDR:$PORT
    case $PROXY in
        haproxy)
            cat > "$WORK/haproxy.cfg" <<CFG
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client ${PROXY_TIMEOUT}s
    timeout server ${PROXY_TIMEOUT}s
listen idle
    bind $RC_ADDR:$PORT
    server s1 $S_ADDR:$PORT
CFG
            ip netns exec "$NS_R" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/proxy.log" 2>&1 & ;;
        nginx)
            cat > "$WORK/nginx.conf" <<CFG
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process off;
pid $WORK/nginx.pid;
error_log $WORK/proxy.log;
events { worker_connections 4096; }
stream { server { listen $RC_ADDR:$PORT; proxy_pass $S_ADDR:$PORT; proxy_timeout ${PROXY_TIMEOUT}s; } }
CFG
            ip netns exec "$NS_R" nginx -p "$WORK" -e "$WORK/proxy.log" -c "$WORK/nginx.conf" >>"$WORK/proxy.log" 2>&1 & ;;
        socat)
            ip netns exec "$NS_R" socat -T "$PROXY_TIMEOUT" "TCP-LISTEN:$PORT,bind=$RC_ADDR,fork,reuseaddr,backlog=1024" \
                "TCP:$S_ADDR:$PORT" >"$WORK/proxy.log" 2>&1 & ;;
    esac
    PROXY_PID=$!
    for i in $(seq 250); do
        ip netns exec "$NS_R" ss -Hltn "( sport = :$PORT )" | grep -q . && break
        kill -0 "$PROXY_PID" 2>/dev/null || break
        sleep 0.02
    done
    ip netns exec "$NS_R" ss -Hltn "( sport = :$PORT )" | grep -q . || die "$PROXY did not start: $(tail -3 "$WORK/proxy.log")"
    CT_TIMEOUT=$PROXY_TIMEOUT
fi

if [ "$SCENARIO" = nat-limit ] || [ "$SCENARIO" = proxy-limit ] || [ "$SCENARIO" = firewall-limit ]; then
    [ "$MAX_WAIT_GIVEN" = 1 ] || MAX_WAIT=300
    log "idle-limit ${USER_ARGS[*]+"${USER_ARGS[*]}"} (conntrack timeout ${CT_TIMEOUT}s, $([ "$NAT_RESET" = 1 ] && echo reset || echo drop))"
    ip netns exec "$NS_C" "$BIN" idle-limit "$TARGET" --json "${USER_ARGS[@]+"${USER_ARGS[@]}"}" \
        >"$WORK/idle-limit.jsonl" 2>"$WORK/idle-limit.err" &
    CONNECT_PID=$!
    if ! wait_exit "$CONNECT_PID" "$MAX_WAIT"; then
        log "idle-limit still running after ${MAX_WAIT}s, interrupting it"
        stop_pid "$CONNECT_PID" INT; wait "$CONNECT_PID" 2>/dev/null; WAIT_RC=$?
    fi
    echo "$WAIT_RC" > "$WORK/idle-limit.exit"; IL_RC=$WAIT_RC; CONNECT_PID=''
    # The listener owns the test flows too: once the run is over none of them may
    # be left on it (behind a NAT that forgot them the client's close never
    # arrives; DONE and the control flow's end close them). Counted 2 s after.
    sleep 2
    ORPHANS=$(ip netns exec "$NS_S" ss -Htan "( sport = :$PORT )" | grep -cv -e '^LISTEN' -e '^TIME-WAIT')
    stop_pid "$LISTEN_PID" TERM; LISTEN_PID=''
    # pass: the limit found is the configured timeout within the resolution it states
    # (+350 ms: nginx moves a timer only 300 ms or more; docs/kernel-facts.md) or 1 s,
    # nothing left
    jq -n -R -c --arg ct "$CT_TIMEOUT" --arg reset "$NAT_RESET" --arg rc "$IL_RC" --arg orphans "$ORPHANS" \
        --arg scen "$SCENARIO" --arg proxy "$PROXY" --arg fw "$FIREWALL" "$JQ_LIB"'
        ($ct | tonumber) as $ct | ($rc | tonumber? // 0) as $rc | ($orphans | tonumber) as $orphans
        | [events] as $evs | ($evs | map(select(.event == "end")) | last) as $end_ev
        | if $end_ev == null then {scenario: $scen, pass: false, reason: "no end line", exit_code: $rc, orphans: $orphans}
          else $end_ev.idle_limit_s as $limit
            | {scenario: $scen, proxy: (if $scen == "proxy-limit" then $proxy else null end),
               orphans: $orphans, drops: $end_ev.drops,
               firewall: (if $scen == "firewall-limit" then $fw else null end),
               pass: (($limit | type) == "number" and ($limit - $ct | fabs) <= ([1, $end_ev.resolution_s + 0.35] | max)
                      and $orphans == 0
                      and ($scen != "firewall-limit" or $end_ev.direction == $fw)),
               ct_timeout_s: $ct, nat_reset: ($reset == "1"),
               idle_limit_s: $limit, resolution_s: $end_ev.resolution_s,
               direction: $end_ev.direction, drop_mode: $end_ev.drop_mode,
               exit_code: $rc, wall_s: $end_ev.t, flows: $end_ev.flows,
               measure_s: ($evs | map(select(.event == "idle-round" and .round == 0) | .t) | first // $end_ev.t)}
          end' "$WORK/idle-limit.jsonl" > "$WORK/verdict.json" || die "cannot read $WORK/idle-limit.jsonl with jq"
    { echo "== idle-limit ($NS_C -> $TARGET via $(case $SCENARIO in proxy-limit) echo "$PROXY in" ;; firewall-limit) echo "a one-way firewall ($FIREWALL) in" ;; *) echo NAT ;; esac) $NS_R)"; jq -n -R -r "$JQ_LIB timeline" "$WORK/idle-limit.jsonl"; sed 's/^/  stderr: /' "$WORK/idle-limit.err" | head -20; echo "  exit code: $IL_RC"; }
    jq -r 'def f(k): if has(k) then .[k] | tostring else "" end;
        "\(if .pass == true then "PASS" else "FAIL" end) \(f("scenario")): idle limit \(f("idle_limit_s"))s +-\(f("resolution_s"))s"
        + " (configured \(f("ct_timeout_s"))s), direction \(f("direction")), drop mode \(f("drop_mode")),"
        + " exit \(f("exit_code")), \(f("wall_s"))s, \(f("flows")) flows, \(f("orphans")) left on the listener"' "$WORK/verdict.json"
    [ -n "$OUT" ] && log "results in $WORK"
    passed || exit $EXIT_FAIL
    exit 0
fi
# the connect-phase scenarios: the server host never answers (its replies to the
# client are blackholed in its namespace), before the SYN leaves
case $SCENARIO in syn-*)
    record_fault "ip route add blackhole $C_ADDR/32 (in $NS_S): the server never answers"
    ip -n "$NS_S" route add blackhole "$C_ADDR/32" || die "blackhole route failed" ;;
esac

log "connect ${CONNECT_ARGS[*]}"
ip netns exec "$NS_C" "$BIN" connect "$S_ADDR:$PORT" --json "${CONNECT_ARGS[@]}" >"$WORK/connect.jsonl" 2>"$WORK/connect.err" &
CONNECT_PID=$!
case $SCENARIO in
    syn-*) wait_event "$WORK/connect.jsonl" connecting 5 "$CONNECT_PID" \
        || die "connect did not report 'connecting': $(tail -3 "$WORK/connect.err")" ;;
    *) wait_event "$WORK/connect.jsonl" connected 5 "$CONNECT_PID" \
        || die "connect did not report 'connected': $(tail -3 "$WORK/connect.err")" ;;
esac

if [ "${SCENARIO%%-*}" = syn ]; then
    :   # the fault is in place since before the SYN
elif [ "$SCENARIO" = aborts ]; then
    wait_event "$WORK/listen.jsonl" connected 5 "$LISTEN_PID" || die "listener did not report 'connected'"
    inject_fault
else
    sleep "$FAULT_AFTER"
    inject_fault
fi

if ! wait_exit "$CONNECT_PID" "$MAX_WAIT"; then
    log "connect still running after ${MAX_WAIT}s, interrupting it"
    stop_pid "$CONNECT_PID" INT
    wait "$CONNECT_PID" 2>/dev/null; WAIT_RC=$?
fi
CONNECT_RC=$WAIT_RC; CONNECT_PID=''
echo "$CONNECT_RC" > "$WORK/connect.exit"

# the listener: give it a moment to end by itself, then stop it (SIGTERM, it prints its summary)
if [ -n "$LISTEN_PID" ]; then
    if ! wait_exit "$LISTEN_PID" 1; then stop_pid "$LISTEN_PID" TERM; wait "$LISTEN_PID" 2>/dev/null; WAIT_RC=$?; fi
    echo "$WAIT_RC" > "$WORK/listen.exit"; LISTEN_PID=''
fi
if [ -n "$TCPDUMP_PID" ]; then sleep 0.1; stop_pid "$TCPDUMP_PID" INT; TCPDUMP_PID=''; fi
if [ -n "$TCPDUMP_S_PID" ]; then stop_pid "$TCPDUMP_S_PID" INT; TCPDUMP_S_PID=''; fi

# ---------------------------------------------------------------- verdict
FAULT_EPOCH=${FAULT_EPOCH:-}
jq -n -R -c --arg scen "$SCENARIO" --arg expected "$EXPECTED" --arg rc "$CONNECT_RC" --arg fault "$FAULT_EPOCH" \
    --arg natreset "$NAT_RESET" "$JQ_LIB"'
# num: what the verdict prints of a number that may be missing
def num: if . == null then null else g6 end;
def is($n): $scen == $n;
[events] as $events
| def named($name): $events | map(select(.event == $name));
  ($rc | tonumber? // 0) as $rc
| (if $fault == "" then null else $fault | tonumber end) as $fault
| (named("connected") | first) as $connected
| (named("config") | last) as $config
| (named("connecting") | last) as $connecting
| (named("end") | last) as $end_ev
| named("probe-acked") as $acks
| ($connected | if . == null then null else (.time | epoch) as $e | if $e == null then null else $e - (.t // 0) end end) as $start
# the last contact: the last answered probe before the fault, else the connection
| (($acks | map(select($fault == null or ((.time | epoch) // -1) < $fault)) | last | .t) // $connected.t // 0) as $last
# keepalive settings: null without a config event, 0 for a value the config event lacks
| ($config | if . == null then {} else {idle: (.idle_s // 0), intvl: (.intvl_s // 0), cnt: (.cnt // 0), uto: (.user_timeout_ms // 0)} end)
| .idle as $idle | .intvl as $intvl | .cnt as $cnt | .uto as $uto
| ($end_ev.predicted_detect_s // $config.predicted_detect_s) as $pred
| ($config.predicted_busy_detect_s // $pred) as $bpred
| ((named("prediction") | last | .late_by_up_to_s) // 0) as $late
| ($connecting.t // 0) as $connecting_t
| $end_ev.outcome as $outcome
| ($end_ev.t // 0) as $end_t
| ($end_ev.time | if . == null then null else epoch end) as $end_epoch
| (if $fault != null and $start != null and $start != 0 then $fault - $start else null end) as $fault_rel
# the scenario model: when should the end come, in seconds after the last contact
| (if is("nat-drop") then
      # a 12 s keepalive timer fires up to 256 ms late (timer wheel), and each 1 s probe
      # timer a little more: the prediction states that allowance; with --nat-reset the
      # first probe is answered with RST
      {want: (if ($natreset | tonumber? // 0) != 0 then $idle else $pred end), tol: 0.15, late_ok: $late}
   elif is("cable-pull") or is("fidelity") or is("icmp-idle") or ($scen | startswith("zero-window-")) or is("ka-intvl") then
      {want: $pred}
   elif is("late-timer") then {want: $pred, late_ok: $late}   # the wheel may fire each timer up to its granularity late
   elif ($scen | startswith("syn-")) then {want: (($connecting.deadline // 0) - $connecting_t)}
   elif is("cable-pull-direct") then {want: $pred, tol: -1}
   elif is("reboot") and ($intvl // 0) > 0 then
      # the first probe after the reboot gets the RST
      {want: (0 | until($last + $idle + . * $intvl > ($fault_rel // 0) + 0.01; . + 1) | $idle + . * $intvl)}
   elif is("exits") or is("aborts") then {want: (($fault_rel // 0) - $last), tol: -1}   # judged by reaction_s below
   elif is("busy") or is("icmp-busy") then {want: $bpred, tol: -1}   # retransmission timing: reported, not judged
   else {want: null}
   end) as $model
| $model.want as $want | ($model.tol // 0.15) as $tol | ($model.late_ok // 0) as $late_ok
| (if ($scen | startswith("syn-")) then $end_t - $connecting_t
   elif $end_ev.detect_s != null then $end_ev.detect_s
   elif $end_t != 0 and $outcome != "alive" then $end_t - $last
   else null end) as $measured
# reaction: from the injected fault to the end event (wall clock), for faults the peer announces
| (if $fault != null and $end_epoch != null then $end_epoch - $fault else null end) as $reaction
| (if (is("exits") or is("aborts")) and $reaction != null then $reaction >= -0.05 and $reaction <= 0.15
   elif $want != null and $measured != null and $tol > 0 then ($measured - $want) as $d | $d >= 0 - $tol and $d <= $tol + $late_ok
   else null end) as $timing_ok
| any($expected | split(",")[]; . == $outcome) as $match_ok
| {"alive": 0, "connect-failed": 3, "eof": 4, "reset": 5, "timeout": 6, "unreachable": 7} as $want_code
| (($outcome | type) == "string" and ($want_code | has($outcome)) and $rc == $want_code[$outcome]
   and ($end_ev.exit_code == null or $end_ev.exit_code == $rc)) as $code_ok
| ((is("alive") or is("nat-kept")) and ($acks | length) < 2) as $few_acks
| {scenario: $scen,
   pass: ($match_ok and $code_ok and $timing_ok != false and ($few_acks | not)),
   reason: (if ($match_ok | not) then "outcome \($outcome // "(none)") is not \($expected)"
            elif ($code_ok | not) then "exit code \($rc) does not match outcome \($outcome // "")"
            elif $timing_ok == false and $tol < 0 then "ended \($reaction // 0 | fixed(3))s after the fault, expected within 0.15s"
            elif $timing_ok == false then
              "detected after \($measured | fixed(3))s, expected \($want | fixed(3))s -\($tol | fixed(2))s..+\($tol + $late_ok | fixed(2))s"
            elif $few_acks then "fewer than 2 probe-acked events"
            else "" end),
   expected_outcomes: $expected,
   outcome: $outcome,
   errno: (if ($end_ev.errno | type) == "string" and $end_ev.errno != "" then $end_ev.errno else null end),
   exit_code: $rc,
   detect_s: ($measured | num), predicted_detect_s: ($pred | num), expected_detect_s: ($want | num),
   timing_ok: $timing_ok,
   reaction_s: ($reaction | if . == null then null else round(3) end),
   last_contact_t: ($last | round(3)),
   fault_at: ($fault | if . == null then null else round(6) end),
   fault_at_t: ($fault_rel | if . == null then null else round(3) end),
   end_t: (if $end_t != 0 then $end_t | round(3) else null end),
   idle_s: ($idle | num), intvl_s: ($intvl | num), cnt: ($cnt | num), user_timeout_ms: ($uto | num),
   probes: (named("probe") | length), probes_acked: ($acks | length)}
' "$WORK/connect.jsonl" > "$WORK/verdict.json" || die "cannot read $WORK/connect.jsonl with jq"

# fidelity: every probe seen on the wire has its event, in order, within 50 ms. A
# keepalive or zero-window probe on the wire is a pure ACK (length 0) from the client
# after the handshake's ACK (the zero-window scenarios' peer sends no data, so the
# client sends no other pure ACK); a SYN retransmission is every client SYN after the
# first.
if [ "$PCAP" = 1 ]; then
    case $SCENARIO in
        zero-window-*) PROBE_EVENT=window-probe ;;
        syn-*) PROBE_EVENT=syn-retransmit ;;
        *) PROBE_EVENT=probe ;;
    esac
    # the events' times (seconds since the epoch, -1 when unparsable), then the wire
    EVENT_TIMES=$(jq -n -R -r --arg ev "$PROBE_EVENT" \
        "$JQ_LIB"'[events | select(.event == $ev) | (.time | epoch) // -1 | tostring] | join(" ")' "$WORK/connect.jsonl") \
        || die "cannot read $WORK/connect.jsonl with jq"
    awk -v evtimes="$EVENT_TIMES" '
    BEGIN { ne = split(evtimes, ev, " ") }
    evname == "syn-retransmit" && substr($3, 1, length(client) + 1) == client "." && $4 == ">" && / Flags \[S\],/ {
        if (!first_syn_seen) { first_syn_seen = 1; next }
        wire[++nw] = $1 + 0
    }
    evname != "syn-retransmit" && substr($3, 1, length(client) + 1) == client "." && $4 == ">" && / Flags \[\.\],/ && / length 0$/ {
        if (!handshake_seen) { handshake_seen = 1; next }
        wire[++nw] = $1 + 0
    }
    END {
        worst = 0; ok = (nw == ne && nw > 0)
        for (i = 1; i <= nw; i++) {
            if (i > ne) { ok = 0; break }
            d = ev[i] - wire[i]; if (d < 0) d = -d
            if (d > worst) worst = d
            if (d > 0.05) ok = 0
        }
        printf "{\"wire_probes\":%d,\"event_probes\":%d,\"worst_offset_ms\":%.1f,\"ok\":%s}\n", nw, ne, worst * 1000, ok ? "true" : "false"
    }' client="$C_ADDR" evname="$PROBE_EVENT" "$WORK/pcap.txt" > "$WORK/fidelity.json"
    # fold it into the verdict
    case $SCENARIO in fidelity|zero-window-*|ka-intvl|late-timer|syn-*) WIRE_JUDGED=true ;; *) WIRE_JUDGED=false ;; esac
    jq -c --argjson judged "$WIRE_JUDGED" --slurpfile fidelity "$WORK/fidelity.json" '
        if $judged and $fidelity[0].ok != true and .pass == true and .reason == "" then
            .pass = false | .reason = "wire probes and probe events disagree"
        else . end
        | .fidelity = $fidelity[0]' "$WORK/verdict.json" > "$WORK/verdict.json.new" \
        && mv "$WORK/verdict.json.new" "$WORK/verdict.json" || die "cannot fold $WORK/fidelity.json into the verdict"
fi

# ---------------------------------------------------------------- report
render_file() {
    echo "== $1"
    if [ -s "$2" ]; then jq -n -R -r "$JQ_LIB timeline" "$2"; else echo "  (no output)"; fi
    [ -s "$3" ] && sed 's/^/  stderr: /' "$3" | head -20
    [ -s "$4" ] && echo "  exit code: $(cat "$4")"
}
{
    render_file "listen ($NS_S, $S_ADDR:$PORT)" "$WORK/listen.jsonl" "$WORK/listen.err" "$WORK/listen.exit"
    render_file "connect ($NS_C -> $S_ADDR:$PORT, ${CONNECT_ARGS[*]})" "$WORK/connect.jsonl" "$WORK/connect.err" "$WORK/connect.exit"
    [ -n "$FAULT_EPOCH" ] && echo "== fault: $(cut -d' ' -f2- "$WORK/fault_at") at $(date -d "@$FAULT_EPOCH" +%T.%3N)"
    if [ "$PCAP" = 1 ]; then
        echo "== wire ($DEV_C)"; sed 's/^/  /' "$WORK/pcap.txt" | head -40
    fi
}
for f in netns.err veth.err ss.err tcpdump.err; do [ -s "$WORK/$f" ] || rm -f "$WORK/$f"; done

jq -r "$JQ_LIB"'def f(k): if has(k) then .[k] | tostring else "" end;
    "\(if .pass == true then "PASS" else "FAIL" end) \(f("scenario")): outcome \(f("outcome")) (errno \(f("errno"))), exit \(f("exit_code")),"
    + " detected \(if .detect_s == null then "-" else f("detect_s") end)s after last contact, predicted \(f("predicted_detect_s"))s"
    + (if .expected_detect_s != null and .expected_detect_s != .predicted_detect_s then ", expected \(f("expected_detect_s"))s" else "" end)
    + (if (.reason // "") != "" then " -- \(.reason)" else "" end)
    + (if has("fidelity") then
         "; wire probes \(.fidelity.wire_probes), probe events \(.fidelity.event_probes), worst offset \(.fidelity.worst_offset_ms | fixed(1)) ms"
       else "" end)' "$WORK/verdict.json"
[ -n "$OUT" ] && log "results in $WORK"
passed || exit $EXIT_FAIL
exit 0
