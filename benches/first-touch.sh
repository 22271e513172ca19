#!/usr/bin/env bash
# What a first touch of fresh anonymous memory costs on this machine, in
# 2 MiB pages (MADV_HUGEPAGE, as scanwatch's sketch, liveness cache and
# full attempt tables are) and in 4 KiB pages, right after the same amount
# was freed and after a pause. On a VM with free page reporting
# (virtio-balloon) memory freed ~2 s earlier has gone back to the host, and
# touching it again is several times slower: part of the spread between
# short benchmark runs (see README, Performance, "Measuring on these VMs").
#
#   bash benches/first-touch.sh [MIB] [PAUSES...]     # defaults: 64  0 1 2 3 5
#
# Needs a C compiler (cc); builds target/bench/first-touch once.
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-64}
shift || true
PAUSES=("${@:-0 1 2 3 5}")
[[ $MIB =~ ^[0-9]+$ && $MIB -ge 1 ]] || { echo "usage: bash benches/first-touch.sh [MIB] [PAUSES...]" >&2; exit 2; }
mkdir -p target/bench
BIN=target/bench/first-touch
if [ ! -x "$BIN" ]; then
    cat > target/bench/first-touch.c <<'C'
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

/* Map MIB MiB aligned to 2 MiB, advise it (huge: MADV_HUGEPAGE, else
   MADV_NOHUGEPAGE), write one byte a 4 KiB page, print GB/s. */
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    size_t n = (size_t)atol(argv[1]) << 20, huge = 2u << 20;
    int advise = atoi(argv[2]) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE;
    char *m = mmap(0, n + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) { perror("mmap"); return 1; }
    char *p = (char *)(((unsigned long)m + huge - 1) & ~(huge - 1));
    madvise(p, n, advise);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%.1f ms, %.2f GB/s\n", s * 1e3, n / s / 1e9);
    return 0;
}
C
    cc -O2 -o "$BIN" target/bench/first-touch.c
fi
echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown); $MIB MiB a touch"
for pages in 1 0; do
    kind=$([ $pages = 1 ] && echo "2 MiB pages" || echo "4 KiB pages")
    for p in ${PAUSES[*]}; do
        "$BIN" "$MIB" "$pages" >/dev/null # free MIB MiB right before the pause
        sleep "$p"
        printf '%-12s after %ss: %s\n' "$kind" "$p" "$("$BIN" "$MIB" "$pages")"
    done
done
