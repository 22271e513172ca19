#!/usr/bin/env bash
# Seed the fuzz corpora (fuzz/corpus/TARGET, not committed) from the real
# captures beside the repo and the project's own: whole files for the reader,
# single frames (with a link-type selector byte) for the decoder, the sample
# config for the config parser.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/reader corpus/decode corpus/config corpus/track
for f in ../../shared/pcaps/real/*.pcap* ../pcaps/*.pcap; do
    [ "$(stat -c %s "$f")" -le 300000 ] && cp "$f" corpus/reader/
done
cp ../systemd/scanwatch.toml corpus/config/
python3 - <<'PY'
import struct, glob, os
# Frames of the small classic-pcap captures, prefixed with the decode target's
# link selector (index of the link type in its LINKS table).
links = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999]
n = 0
for f in glob.glob('../../shared/pcaps/real/*.pcap') + ['../pcaps/golden.pcap']:
    b = open(f, 'rb').read()
    if len(b) < 24 or b[:4] not in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        continue
    lt = struct.unpack('<I', b[20:24])[0] & 0xffff
    if lt not in links:
        continue
    off, k = 24, 0
    while off + 16 <= len(b) and k < 40:
        incl = struct.unpack('<I', b[off + 8:off + 12])[0]
        frame = b[off + 16:off + 16 + incl]
        open(f'corpus/decode/{os.path.basename(f)}-{k}', 'wb').write(bytes([links.index(lt)]) + frame)
        off += 16 + incl
        k += 1
        n += 1
print(f'{n} decode seeds')
PY
