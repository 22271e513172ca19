#!/usr/bin/env bash
# End-to-end comparison, in one run: scanwatch against tcpdump, argus and the
# floor (walking the pcap record headers), on the same warm capture.
#
#   bash benches/compare.sh [PACKETS] [RUNS]     # defaults: 5000000 5
#
# Installs tcpdump, argus-server and GNU time when missing (apt-get; sudo when
# not root), builds the release binaries, generates (once, cached in
# target/bench/ like benches/replay.rs) the "enterprise" capture and a "flood"
# capture with scanwatch-synth (seed 1, snaplen 256, classic pcap), warms the
# page cache, and runs each tool RUNS times, in rounds (each round runs
# every tool once, so that the VM's drift falls on all of them alike; the
# flood's file is warmed again before its rounds). Reported per tool: the median
# wall time and packets/s, the median peak RSS, scanwatch --threads 1's speed
# divided by the tool's, and the tool's speed as a share of the floor.
#
# The tools, on the enterprise capture:
#   floor      scanwatch-synth walk FILE: read(2) in 1 MiB chunks and walk the
#              record headers; its own timer (process start excluded)
#   tcpdump    tcpdump -n -r FILE -w /dev/null with scanwatch's default live
#              BPF filter (what the tracker needs, untagged, one and two VLAN
#              tags): a libpcap read loop plus the filter, no state
#   argus      argus -X -r FILE -w /dev/null: flow records for every flow
#   scanwatch  scanwatch replay -q --threads 1|2 FILE --events /dev/null
#              --alerts /dev/null (decoder, tracker, analytics, output)
# On the flood capture: scanwatch --threads 1 and 2, with the default
# config and with every source judged (detector.alert_external_sources:
# the flood's spoofed sources are public addresses), and argus with
# COMPARE_FLOOD_ARGUS=1, for throughput and memory under a SYN flood.
#
# Wall times are taken with bash's $EPOCHREALTIME around each run (GNU time's
# %e has 10 ms resolution), so they include process start and exit.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

source benches/common/lib.sh
args compare.sh "$@"
RUNS=${2:-5}
[[ $PACKETS =~ ^[0-9]+$ && $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || {
    echo "usage: bash benches/compare.sh [PACKETS] [RUNS]" >&2
    exit 2
}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/scanwatch
SYNTH=$TARGET/release/scanwatch-synth
CACHE=target/bench
ENT=$CACHE/enterprise-$PACKETS.pcap
FLOOD=$CACHE/flood-$PACKETS.pcap

# scanwatch's default live filter: FILTER_BASE and default_filter() in
# src/capture/live.rs (keep in sync). IPv6 TCP flags are read at a fixed
# offset: BPF's tcp[] covers IPv4 only.
BASE='(tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0)
 or (tcp[tcpflags] & tcp-ack == 0)
 or (icmp[icmptype] == icmp-unreach)
 or (ip6 and ip6[6] == 6 and (ip6[53] & 0x07 != 0 or ip6[53] & 0x10 == 0))
 or (ip6 and ip6[6] == 58 and ip6[40] == 1)
 or arp'
FILTER="$BASE or (vlan and ($BASE)) or (vlan and vlan and ($BASE))"

# (a) tools
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
ARGUS=$(command -v argus || echo /usr/sbin/argus)
missing=()
command -v tcpdump >/dev/null || [ -x /usr/sbin/tcpdump ] || missing+=(tcpdump)
[ -x "$ARGUS" ] || missing+=(argus-server)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} ..." >&2
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
TCPDUMP=$(command -v tcpdump || echo /usr/sbin/tcpdump)

# (b) build
cargo build --release --quiet

# (c) captures
mkdir -p "$CACHE"
generate enterprise "$ENT"
generate flood "$FLOOD"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# The filter must compile, for this capture's link type.
"$TCPDUMP" -d -r "$ENT" "$FILTER" >/dev/null 2>"$TMP/err" || {
    echo "tcpdump filter does not compile:" >&2
    cat "$TMP/err" >&2
    exit 1
}

# (d) warm the page cache
cat "$ENT" "$FLOOD" >/dev/null


# once I CMD...: one run of command I; appends its wall seconds to TIMES[I],
# its peak RSS to PEAKS[I] and its stdout to $TMP/outs.I.
declare -a TIMES PEAKS
once() {
    local i=$1 t0 t1
    shift
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -f '%e %M' -o "$TMP/time" "$@" >"$TMP/out" 2>"$TMP/err"; then
        echo "failed: $*" >&2
        cat "$TMP/err" >&2
        exit 1
    fi
    t1=$EPOCHREALTIME
    cat "$TMP/out" >>"$TMP/outs.$i"
    TIMES[$i]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }') "
    PEAKS[$i]+="$(tail -1 "$TMP/time" | awk '{ print $2 }') "
}

# rounds CMD_VAR...: RUNS rounds, each running every command once, in turn
# (each argument names an array holding one command). Interleaved, so that
# this VM's drift (a neighbour's load, the host's boost after a long run,
# DAMON paging out a capture left alone for a minute) falls on every tool
# alike instead of on whichever ran in a bad minute: the ratios are what
# this script is for.
rounds() {
    local r i
    TIMES=() PEAKS=()
    for ((i = 0; i < $#; i++)); do : >"$TMP/outs.$i"; done
    for ((r = 0; r < RUNS; r++)); do
        i=0
        for name in "$@"; do
            local -n cmd=$name
            once "$i" "${cmd[@]}"
            i=$((i + 1))
        done
    done
}

# result I: sets SECS (median wall seconds) and RSS_KB (median peak RSS) of command I.
result() {
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    SECS=$(median ${TIMES[$1]})
    # shellcheck disable=SC2086
    RSS_KB=$(median ${PEAKS[$1]})
}

# Results, in order: name, seconds, peak RSS kB.
NAMES=() SECONDS_=() RSS=()
record() {
    NAMES+=("$1") SECONDS_+=("$2") RSS+=("$3")
    printf '  %-34s %9.3f s  %8.1f MB\n' "$1" "$2" "$(awk -v k="$3" 'BEGIN { print k / 1024 }')" >&2
}

# table PACKETS (rows from NAMES/SECONDS_/RSS; row 0 is the reference floor
# when FLOOR_ROW=1, the scanwatch --threads 1 row is T1_ROW)
table() {
    local n=$1 i pps t1pps floorpps
    t1pps=$(awk -v n="$n" -v s="${SECONDS_[$T1_ROW]}" 'BEGIN { print n / s }')
    floorpps=$(awk -v n="$n" -v s="${SECONDS_[0]}" 'BEGIN { print n / s }')
    printf '%-34s %9s %12s %12s %13s' tool seconds packets/s "peak RSS MB" "t1 ÷ tool"
    [ "$FLOOR_ROW" = 1 ] && printf ' %10s' "% of floor"
    printf '\n'
    for i in "${!NAMES[@]}"; do
        pps=$(awk -v n="$n" -v s="${SECONDS_[$i]}" 'BEGIN { print n / s }')
        printf '%-34s %9.3f %10.2f M %12.1f %11.2fx' "${NAMES[$i]}" "${SECONDS_[$i]}" \
            "$(awk -v p="$pps" 'BEGIN { print p / 1e6 }')" \
            "$(awk -v k="${RSS[$i]}" 'BEGIN { print k / 1024 }')" \
            "$(awk -v a="$t1pps" -v b="$pps" 'BEGIN { print a / b }')"
        [ "$FLOOR_ROW" = 1 ] && printf ' %9.1f%%' "$(awk -v a="$pps" -v b="$floorpps" 'BEGIN { print 100 * a / b }')"
        printf '\n'
    done
}

# scanwatch replay -q --threads N FILE, events and alerts written and discarded
replay=("$BIN" replay -q --events /dev/null --alerts /dev/null --threads)

machine
echo "tools: $("$TCPDUMP" --version 2>&1 | head -2 | paste -sd ';' - | sed 's/;/, /'); $("$ARGUS" -h 2>&1 | grep -m1 -i version); scanwatch $(git describe --always --dirty 2>/dev/null || echo '?')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# Sanity: the floor counts every record; what the filter keeps.
"$SYNTH" walk "$ENT" >"$TMP/walk"
seen=$(sed -n 's/.*packets=\([0-9]*\).*/\1/p' "$TMP/walk")
[ "$seen" = "$PACKETS" ] || {
    echo "walk counted $seen records in $ENT, expected $PACKETS" >&2
    exit 1
}
"$TCPDUMP" -n -r "$ENT" -w "$TMP/kept.pcap" "$FILTER" 2>/dev/null
kept=$("$SYNTH" walk "$TMP/kept.pcap" | sed -n 's/.*packets=\([0-9]*\).*/\1/p')
rm -f "$TMP/kept.pcap"

echo
echo "enterprise: $ENT, $PACKETS packets, $(($(stat -c %s "$ENT") / 1000000)) MB; $RUNS rounds of every tool, median; the tcpdump filter keeps $kept"
FLOOR_ROW=1 T1_ROW=3

c_floor=("$SYNTH" walk "$ENT")
c_tcpdump=("$TCPDUMP" -n -r "$ENT" -w /dev/null "$FILTER")
c_argus=("$ARGUS" -X -r "$ENT" -w /dev/null)
c_t1=("${replay[@]}" 1 "$ENT")
c_t2=("${replay[@]}" 2 "$ENT")
rounds c_floor c_tcpdump c_argus c_t1 c_t2
result 0
# The floor's own timer, not the process's wall time.
mapfile -t walks < <(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$TMP/outs.0")
record "floor: record-header walk" "$(median "${walks[@]}")" "$RSS_KB"
result 1
record "tcpdump -w /dev/null, BPF filter" "$SECS" "$RSS_KB"
result 2
record "argus -X -w /dev/null" "$SECS" "$RSS_KB"
result 3
record "scanwatch replay --threads 1" "$SECS" "$RSS_KB"
result 4
record "scanwatch replay --threads 2" "$SECS" "$RSS_KB"
echo
table "$PACKETS"

echo
# Warmed again: DAMON on this VM pages out what was not touched for a minute.
cat "$FLOOD" >/dev/null
echo "flood: $FLOOD, $PACKETS packets, $(($(stat -c %s "$FLOOD") / 1000000)) MB; $RUNS rounds, median"
NAMES=() SECONDS_=() RSS=()
FLOOR_ROW=0 T1_ROW=0
f_t1=("${replay[@]}" 1 "$FLOOD")
f_t2=("${replay[@]}" 2 "$FLOOD")
# The flood's spoofed sources are public addresses, outside the default
# home_net, so by default they never reach the analytics; with
# alert_external_sources every one of them does (the worst case: a flood
# spoofing home_net sources costs the same).
EXT=(--set detector.alert_external_sources=true)
f_x1=("${replay[@]}" 1 "${EXT[@]}" "$FLOOD")
f_x2=("${replay[@]}" 2 "${EXT[@]}" "$FLOOD")
f_argus=("$ARGUS" -X -r "$FLOOD" -w /dev/null)
if [ "${COMPARE_FLOOD_ARGUS:-0}" = 1 ]; then
    rounds f_t1 f_t2 f_x1 f_x2 f_argus
else
    rounds f_t1 f_t2 f_x1 f_x2
fi
result 0
record "scanwatch replay --threads 1" "$SECS" "$RSS_KB"
result 1
record "scanwatch replay --threads 2" "$SECS" "$RSS_KB"
result 2
record "every source judged, --threads 1" "$SECS" "$RSS_KB"
result 3
record "every source judged, --threads 2" "$SECS" "$RSS_KB"
if [ "${COMPARE_FLOOD_ARGUS:-0}" = 1 ]; then
    result 4
    record "argus -X -w /dev/null" "$SECS" "$RSS_KB"
fi
echo
table "$PACKETS"

echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "t1 ÷ tool: scanwatch --threads 1's packets/s divided by the tool's (above 1: scanwatch is faster)."
