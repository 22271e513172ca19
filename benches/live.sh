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
#   sudo CPU_QUOTA=10 bash benches/live.sh [PACKETS] [RATES...]
#
# CPU_QUOTA=P (percent of one CPU) runs scanwatch in a cgroup with that CPU
# quota (cgroup v2 cpu.max, else v1 cpu.cfs_quota_us; 10 ms periods): on a
# machine whose senders cannot outrun scanwatch, this shows where drops
# begin for a given CPU budget. Each row also gives the CPU time scanwatch
# used (user + system, all threads), its CPU per packet received, and the
# packets received but neither dropped nor read (left in the ring when it
# stopped). STOP_AFTER (seconds, default 2) is the wait between the last
# sender's end and SIGTERM: 0 stops a throttled sensor with a backlog.
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
CPU_QUOTA=${CPU_QUOTA:-}
STOP_AFTER=${STOP_AFTER:-2}
[[ -z $CPU_QUOTA || $CPU_QUOTA =~ ^[1-9][0-9]*$ ]] || { echo "CPU_QUOTA: a percentage of one CPU, e.g. 10" >&2; exit 2; }
BIN=$PWD/target/release/scanwatch
SYNTH=$PWD/target/release/scanwatch-synth
command -v tcpreplay >/dev/null || { echo "tcpreplay is needed: apt-get install tcpreplay" >&2; exit 1; }
[ -x "$BIN" ] && [ -x "$SYNTH" ] || cargo build --release
CAP=target/bench/live-enterprise-$PACKETS.pcap
mkdir -p target/bench
[ -f "$CAP" ] || "$SYNTH" enterprise --out "$CAP" -n "$PACKETS" -s 256 >/dev/null
TMP=$(mktemp -d)
CG=
cleanup() {
    pkill -f "scanwatch live --interface swb0" 2>/dev/null || true
    ip netns del swbench-tx 2>/dev/null || true
    ip netns del swbench-rx 2>/dev/null || true
    if [ -n "$CG" ]; then
        for _ in $(seq 50); do rmdir "$CG" 2>/dev/null && break; sleep 0.1; done
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
if [ -n "$CPU_QUOTA" ]; then
    # 10 ms periods rather than the default 100 ms: a throttled scanwatch
    # then stops for short spells that the capture ring can absorb, so the
    # drops measure the sustained rate, not the throttle's rhythm.
    if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        CG=/sys/fs/cgroup/swbench-$$
        mkdir "$CG"
        echo "$((CPU_QUOTA * 100)) 10000" >"$CG/cpu.max"
    elif [ -d /sys/fs/cgroup/cpu ]; then
        CG=/sys/fs/cgroup/cpu/swbench-$$
        mkdir "$CG"
        echo 10000 >"$CG/cpu.cfs_period_us"
        echo "$((CPU_QUOTA * 100))" >"$CG/cpu.cfs_quota_us"
    else
        echo "CPU_QUOTA needs the cgroup cpu controller (v2 cpu.max or v1 cpu)" >&2
        exit 1
    fi
fi
# run CMD... &: CMD, in the cgroup when there is one; exec, so that $! is
# CMD's pid (`ip netns exec` execs scanwatch in turn).
run() {
    if [ -n "$CG" ]; then
        exec sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG" "$@"
    else
        exec "$@"
    fi
}
TICK=$(getconf CLK_TCK)
ip netns add swbench-tx
ip netns add swbench-rx
ip link add swb1 netns swbench-tx type veth peer name swb0 netns swbench-rx
ip -n swbench-tx link set swb1 up
ip -n swbench-rx link set swb0 up

stat() { grep -o "$1=[0-9]*" "$TMP/log" | tail -1 | cut -d= -f2; }

[ -n "$CPU_QUOTA" ] && echo "scanwatch limited to $CPU_QUOTA% of one CPU"
printf "%-10s %-8s %14s %14s %14s %10s %10s %12s %10s\n" filter rate "sent pkt/s" received "kernel drops" "drop %" "CPU s" "µs CPU/pkt" "not read"
for filter in default none; do
    for rate in $RATES; do
        args=(live --interface swb0 --threads 2 --alerts "" --events "" --set capture.stats_interval=1s)
        [ "$filter" = none ] && args+=(--bpf "")
        run ip netns exec swbench-rx "$BIN" "${args[@]}" 2>"$TMP/log" &
        pid=$!
        for _ in $(seq 50); do grep -q "stats:" "$TMP/log" 2>/dev/null && break; sleep 0.1; done
        if [ "$rate" = max ]; then speed=(--topspeed); else speed=(--pps="$rate"); fi
        senders=()
        for n in $(seq "$SENDERS"); do
            ip netns exec swbench-tx tcpreplay -q -i swb1 "${speed[@]}" "$CAP" >"$TMP/tx$n" 2>&1 &
            senders+=($!)
        done
        wait "${senders[@]}" || true
        sleep "$STOP_AFTER"
        # utime + stime of all its threads, in clock ticks (fields 14, 15;
        # the command name, field 2, has no spaces here).
        ticks=$(awk '{ print $14 + $15 }' /proc/$pid/stat)
        kill -TERM $pid; wait $pid || true
        # Packets/s of all senders together.
        sent=$(cat "$TMP"/tx* | grep -o 'Rated: [0-9.]* Bps, [0-9.]* Mbps, [0-9.]* pps' |
            awk '{ s += $6 } END { if (NR) printf "%.0f", s }')
        rm -f "$TMP"/tx*
        recv=$(stat scanwatch_packets_received_total)
        drop=$(stat scanwatch_kernel_dropped_total)
        # Received by the kernel, neither dropped nor read: left in the ring
        # at the stop.
        left=$((recv - drop - $(stat scanwatch_packets_captured_total)))
        pct=$(awk -v d="$drop" -v r="$recv" 'BEGIN { printf "%.2f", (r > 0 ? 100 * d / r : 0) }')
        cpu=$(awk -v t="$ticks" -v hz="$TICK" 'BEGIN { printf "%.2f", t / hz }')
        per=$(awk -v c="$cpu" -v r="$recv" 'BEGIN { printf "%.2f", (r > 0 ? 1e6 * c / r : 0) }')
        printf "%-10s %-8s %14s %14s %14s %10s %10s %12s %10s\n" "$filter" "$rate" "${sent:-?}" "$recv" "$drop" "$pct" "$cpu" "$per" "$left"
    done
done
