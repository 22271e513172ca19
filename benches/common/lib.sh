# Shell helpers shared by benches/compare.sh and benches/scaling.sh
# (sourced; they set `-euo pipefail` and cd to the repository root first).

# args SCRIPT [PACKETS] [RUNS]: sets PACKETS (default 5,000,000) and RUNS
# (default 5), or prints the usage and exits 2.
args() {
    PACKETS=${2:-5000000}
    RUNS=${3:-5}
    [[ $PACKETS =~ ^[0-9]+$ && $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || {
        echo "usage: bash benches/$1 [PACKETS] [RUNS]" >&2
        exit 2
    }
}

# median VALUE...: the middle value (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# machine: one line on the CPUs, their model and the memory.
machine() {
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/^MemTotal/ { printf "%.1f GB RAM", $2 / 1048576 }' /proc/meminfo)"
}

# generate PROFILE PATH: the PACKETS-packet capture of scanwatch-synth's
# PROFILE (seed 1, snaplen 256, classic pcap) at PATH, unless it is there.
generate() {
    if [ ! -f "$2" ]; then
        "$SYNTH" "$1" --out "$2.tmp" -n "$PACKETS" -s 256
        mv "$2.tmp" "$2"
    fi
}
