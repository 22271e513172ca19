#!/usr/bin/env bash
# Multi-core scaling: the same replay on 1, 2, 4, ... CPUs (up to this
# machine's), in one run, with the alerts checked to be the same everywhere.
#
#   bash benches/scaling.sh [PACKETS] [RUNS]     # defaults: 5000000 5
#
# `--threads` is not the knob that adds cores: `scanwatch replay --threads 1`
# already runs six threads (reader, decode worker, tracker shard, reorder,
# analytics, output) that spread over every CPU it may use. So each
# configuration restricts the process to C CPUs with taskset (CPUs 0..C-1)
# and runs it with `--threads 1` and with `--threads C`: the first shows what
# the pipeline's own threads gain from more cores, the second what more
# decode workers and tracker shards add on top.
#
# Captures: the "enterprise" and "flood" profiles of scanwatch-synth (seed 1,
# snaplen 256, classic pcap), cached in target/bench/ under the names
# benches/compare.sh uses. Each run: `scanwatch replay --events /dev/null
# --alerts FILE --set detector.activation_period=0s` (activation off, so that
# the analytics raise alerts on a capture minutes long and their equality
# across configurations means something). Runs are interleaved (round r runs
# every configuration once) so that the VM's drift hits them alike; reported
# per configuration: the median wall time, packets/s, the median CPU time
# (user + system), the median peak RSS, the speed-up over one CPU with
# `--threads 1`, and from the run's summary its busiest thread with that
# thread's pace (packets per CPU second, median): where the configuration
# stops gaining from more cores.
#
# Exits 1 when a configuration's alerts differ from the first one's.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

source benches/common/lib.sh
args scaling.sh "$@"
RUNS=${2:-5}
[[ $PACKETS =~ ^[0-9]+$ && $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || {
    echo "usage: bash benches/scaling.sh [PACKETS] [RUNS]" >&2
    exit 2
}
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
if [ ! -x /usr/bin/time ]; then
    SUDO=()
    [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/scanwatch
SYNTH=$TARGET/release/scanwatch-synth
CACHE=target/bench
cargo build --release --quiet

mkdir -p "$CACHE"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

CPUS=$(nproc)
# 1, 2, 4, ... below the CPU count, then the CPU count itself.
COUNTS=()
for ((c = 1; c < CPUS; c *= 2)); do COUNTS+=("$c"); done
COUNTS+=("$CPUS")

machine
echo "scanwatch $(git describe --always --dirty 2>/dev/null || echo '?'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

status=0
for profile in enterprise flood; do
    cap=$CACHE/$profile-$PACKETS.pcap
    generate "$profile" "$cap"
    cat "$cap" >/dev/null # warm the page cache

    # Configurations: "CPUS THREADS".
    configs=()
    for c in "${COUNTS[@]}"; do
        configs+=("$c 1")
        [ "$c" -gt 1 ] && configs+=("$c $c")
    done
    declare -A wall=() cpu=() rss=() busy=() pace=()
    for ((r = 0; r < RUNS; r++)); do
        for cfg in "${configs[@]}"; do
            read -r c t <<<"$cfg"
            t0=$EPOCHREALTIME
            if ! taskset -c "0-$((c - 1))" /usr/bin/time -f '%U %S %M' -o "$TMP/time" \
                "$BIN" replay --threads "$t" --events /dev/null --alerts "$TMP/alerts-$c-$t" \
                --set detector.activation_period=0s "$cap" 2>"$TMP/err"; then
                echo "failed: $profile on $c CPUs, --threads $t" >&2
                cat "$TMP/err" >&2
                exit 1
            fi
            t1=$EPOCHREALTIME
            wall[$cfg]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }') "
            cpu[$cfg]+="$(awk '{ printf "%.2f", $1 + $2 }' "$TMP/time") "
            rss[$cfg]+="$(awk '{ print $3 }' "$TMP/time") "
            # The summary's busiest thread and its pace (packets per CPU
            # second): where this configuration would stop gaining from
            # more cores.
            b=$(sed -n 's/.*busiest: \([^ ]*\) .* \([0-9]*\) packets\/s)$/\1 \2/p' "$TMP/err")
            busy[$cfg]=${b% *}
            pace[$cfg]+="${b#* } "
        done
    done

    echo
    echo "$profile: $cap, $PACKETS packets, $(($(stat -c %s "$cap") / 1000000)) MB; $RUNS runs each, interleaved, median"
    printf '%-6s %-9s %9s %12s %10s %12s %10s %-24s %s\n' CPUs --threads seconds packets/s "CPU s" "peak RSS MB" speed-up "busiest thread's pace" alerts
    first=${configs[0]}
    read -r fc ft <<<"$first"
    # shellcheck disable=SC2086 # word splitting of the per-run lists is meant
    base=$(median ${wall[$first]})
    for cfg in "${configs[@]}"; do
        read -r c t <<<"$cfg"
        # shellcheck disable=SC2086
        secs=$(median ${wall[$cfg]})
        # shellcheck disable=SC2086
        cpus=$(median ${cpu[$cfg]})
        # shellcheck disable=SC2086
        kb=$(median ${rss[$cfg]})
        if cmp -s "$TMP/alerts-$fc-$ft" "$TMP/alerts-$c-$t"; then
            same="$(wc -l <"$TMP/alerts-$c-$t") (same)"
        else
            same="$(wc -l <"$TMP/alerts-$c-$t") (DIFFER from 1 CPU)"
            status=1
        fi
        # shellcheck disable=SC2086
        busiest="${busy[$cfg]} $(awk -v p="$(median ${pace[$cfg]})" 'BEGIN { printf "%.2f M", p / 1e6 }')"
        printf '%-6s %-9s %9.3f %10.2f M %10.2f %12.1f %9.2fx %-24s %s\n' "$c" "$t" "$secs" \
            "$(awk -v n="$PACKETS" -v s="$secs" 'BEGIN { print n / s / 1e6 }')" "$cpus" \
            "$(awk -v k="$kb" 'BEGIN { print k / 1024 }')" \
            "$(awk -v a="$base" -v b="$secs" 'BEGIN { print a / b }')" "$busiest" "$same"
    done
    unset wall cpu rss busy pace
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "speed-up: the wall time on 1 CPU with --threads 1 divided by this configuration's."
echo "busiest thread's pace: the packets per CPU second of the thread with the most CPU time (the last run's), median over runs: no core count lifts this configuration past it."
exit "$status"
