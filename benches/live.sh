#!/usr/bin/env bash
# Live capture on a veth: how many packets/s can a sender in another network
# namespace push past `scanwatch live` before the kernel drops any? With the
# default BPF filter and without it (--bpf "").
#
#   sudo bash benches/live.sh [PACKETS] [RATES...]
#   sudo SENDERS=2 bash benches/live.sh [PACKETS] [RATES...]
#
# SENDERS (default 1) tcpreplay processes send at once, each at RATE: one
# tcpreplay tops out near 0.5 M packets/s here, and the veth's receive path
# (the BPF filter, the copy into the capture ring) runs on the sender's CPU.
#
# Needs root, tcpreplay (apt-get install tcpreplay) and a release build. The
# traffic is the generated "enterprise" mix (snaplen 256), sent with tcpreplay
# at each rate (packets/s; "max" = --topspeed) from namespace swbench-tx to
# swbench-rx, where scanwatch captures on the veth. Everything is created here
# and deleted on exit. Reports, per rate: what tcpreplay achieved, what
# scanwatch received, and kernel drops.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKETS=${1:-1000000}
shift || true
RATES=${*:-"100000 200000 400000 800000 max"}
SENDERS=${SENDERS:-1}
BIN=$PWD/target/release/scanwatch
SYNTH=$PWD/target/release/scanwatch-synth
command -v tcpreplay >/dev/null || { echo "tcpreplay is needed: apt-get install tcpreplay" >&2; exit 1; }
[ -x "$BIN" ] && [ -x "$SYNTH" ] || cargo build --release
CAP=target/bench/live-enterprise-$PACKETS.pcap
mkdir -p target/bench
[ -f "$CAP" ] || "$SYNTH" enterprise --out "$CAP" -n "$PACKETS" -s 256 >/dev/null
TMP=$(mktemp -d)
cleanup() {
    pkill -f "scanwatch live --interface swb0" 2>/dev/null || true
    ip netns del swbench-tx 2>/dev/null || true
    ip netns del swbench-rx 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add swbench-tx
ip netns add swbench-rx
ip link add swb1 netns swbench-tx type veth peer name swb0 netns swbench-rx
ip -n swbench-tx link set swb1 up
ip -n swbench-rx link set swb0 up

stat() { grep -o "$1=[0-9]*" "$TMP/log" | tail -1 | cut -d= -f2; }

printf "%-10s %-8s %14s %14s %14s %10s\n" filter rate "sent pkt/s" received "kernel drops" "drop %"
for filter in default none; do
    for rate in $RATES; do
        args=(live --interface swb0 --threads 2 --alerts "" --events "" --set capture.stats_interval=1s)
        [ "$filter" = none ] && args+=(--bpf "")
        ip netns exec swbench-rx "$BIN" "${args[@]}" 2>"$TMP/log" &
        pid=$!
        for _ in $(seq 50); do grep -q "stats:" "$TMP/log" 2>/dev/null && break; sleep 0.1; done
        if [ "$rate" = max ]; then speed=(--topspeed); else speed=(--pps="$rate"); fi
        senders=()
        for n in $(seq "$SENDERS"); do
            ip netns exec swbench-tx tcpreplay -q -i swb1 "${speed[@]}" "$CAP" >"$TMP/tx$n" 2>&1 &
            senders+=($!)
        done
        wait "${senders[@]}" || true
        sleep 2
        kill -TERM $pid; wait $pid || true
        # Packets/s of all senders together.
        sent=$(cat "$TMP"/tx* | grep -o 'Rated: [0-9.]* Bps, [0-9.]* Mbps, [0-9.]* pps' |
            awk '{ s += $6 } END { if (NR) printf "%.0f", s }')
        rm -f "$TMP"/tx*
        recv=$(stat scanwatch_packets_received_total)
        drop=$(stat scanwatch_kernel_dropped_total)
        pct=$(awk -v d="$drop" -v r="$recv" 'BEGIN { printf "%.2f", (r > 0 ? 100 * d / r : 0) }')
        printf "%-10s %-8s %14s %14s %14s %10s\n" "$filter" "$rate" "${sent:-?}" "$recv" "$drop" "$pct"
    done
done
