#!/usr/bin/env python3
"""Inputs of the LibVMI vs Vmi.Core comparison, from the tests' real QEMU guest (tests/guest/build-guest.sh):
guest.raw (file offset = PA) and answers.txt (QEMU's own gva2gpa and "x /4gx" for hundreds of VAs, and CR3).

Writes OUT/vas.tsv (up to 1000 mapped kernel VAs, half on 4 KiB pages and half on 2 MiB pages where the guest has
that many; page size from a small IA-32e walk of the image written here, cross-checked against QEMU's PA),
OUT/pas.bin (1,000,000 random 8-byte-aligned PAs inside the image) and OUT/params (CR3, bulk VA).
Deterministic (seed 1). Usage: make_inputs.py GUEST_DIR OUT_DIR
"""
import os, random, struct, sys

guest, out = sys.argv[1], sys.argv[2]
img = open(os.path.join(guest, 'guest.raw'), 'rb')
size = os.fstat(img.fileno()).st_size

def q(pa):
    img.seek(pa)
    return struct.unpack('<Q', img.read(8))[0]

def walk(cr3, va):
    """(pa, size) by a 4-level walk, or None."""
    table = cr3 & 0x000FFFFFFFFFF000
    for level, shift in ((4, 39), (3, 30), (2, 21), (1, 12)):
        ea = table + ((va >> shift) & 0x1FF) * 8
        if ea + 8 > size:
            return None
        e = q(ea)
        if not e & 1:
            return None
        if level in (3, 2) and e & 0x80:
            base = e & 0x000FFFFFFFFFF000 & ~((1 << shift) - 1)
            return base | (va & ((1 << shift) - 1)), {3: '1G', 2: '2M'}[level]
        table = e & 0x000FFFFFFFFFF000
    return table | (va & 0xFFF), '4K'

cr3 = None
kv = {}
rows = []
for line in open(os.path.join(guest, 'answers.txt')):
    f = line.split()
    if not f or f[0].startswith('#'):
        continue
    if f[0] == 'cr3':
        cr3 = int(f[1], 16)
    elif f[0] == 'kvar':
        kv[f[1]] = int(f[2], 16)
    elif f[0] == 'va' and len(f) >= 6 and f[2] == 'gpa':
        va, pa, first = int(f[1], 16), int(f[3], 16), int(f[5], 16)
        rows.append((va, pa, first))
assert cr3 is not None, 'answers.txt has no cr3 line'
seen, k4, m2, bad = set(), [], [], 0
for va, pa, first in rows:
    if va < 0xffff800000000000 or pa + 8 > size or (va & 0xfff) > 0xff8 or va in seen:
        continue
    seen.add(va)
    w = walk(cr3, va)
    if w is None or w[0] != pa:
        bad += 1  # QEMU and this walk disagree: leave the address out (and say so)
        continue
    r = (cr3, va, pa, w[1], struct.pack('<Q', first).hex(), 'kernel')
    (k4 if w[1] == '4K' else m2).append(r)
rng = random.Random(1)
n2 = min(500, len(m2))
n4 = min(1000 - n2, len(k4))
pick = rng.sample(k4, n4) + rng.sample(m2, n2)
rng.shuffle(pick)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, 'vas.tsv'), 'w') as f:
    f.write('# cr3\tva\tpa\tpage_size\tbytes8(hex, memory order)\tcategory\n')
    for r in pick:
        f.write('%x\t%x\t%x\t%s\t%s\t%s\n' % r)
with open(os.path.join(out, 'pas.bin'), 'wb') as f:
    for _ in range(1_000_000):
        f.write(struct.pack('<Q', rng.randrange(0, size - 8) & ~7))
# The bulk range: 64 MiB of the direct map, every page mapped (the direct map has holes where the firmware reserved
# memory), the highest such window below the image's end, in steps of 2 MiB.
base = kv.get('page_offset_base', 0xffff888000000000)
bulk = None
for start in range(size - (64 << 20), -1, -(2 << 20)):
    if all((w := walk(cr3, base + start + off)) is not None and w[0] == start + off for off in range(0, 64 << 20, 4096)):
        bulk = base + start
        break
assert bulk is not None, 'no fully mapped 64 MiB window of the direct map inside the image'
with open(os.path.join(out, 'params'), 'w') as f:
    f.write('CR3=%x\nBULK_VA=%x\n' % (cr3, bulk))
print('%d kernel VAs answered; %d on 4K, %d on 2M/1G pages; %d disagreed; picked %d (%d 4K + %d large); '
      '%d distinct pages; cr3 %x; bulk va %x (pa %x)' % (len(rows), len(k4), len(m2), bad, len(pick), n4, n2,
      len(set((r[0], r[1] >> 12) for r in pick)), cr3, bulk, bulk - base))
