#!/bin/sh
# LibVMI vs Vmi.Core on the same real guest image, one process per engine and test, engine order rotating by round.
#
#   LIBVMI_GIT=<git dir of github:libvmi/libvmi>  GUEST_DIR=<dir with guest.raw + answers.txt>  bench/peer/run.sh
#
# Env: WORK (default /tmp/libvmi-bench: LibVMI builds, inputs, results), ROUNDS (5), START (1), REPS (5),
#      TESTS (default: all), ENGINES (default: libvmi-mmap libvmi-mmap-pc8192 project; add project-base with
#      BASE_CS=<bin/Release/net10.0/Vmi.Benchmarks of another checkout> to compare with an earlier engine).
# Steps: (1) build LibVMI master from LIBVMI_GIT with only the file driver, twice: mmap file driver (USE_MMAP must be
# passed in CFLAGS: the CMake option is dead) and mmap with an 8192-page cache (the engine's default GFN budget;
# MAX_PAGE_CACHE_SIZE is a plain set() in CMakeLists.txt, so a copy is patched); (2) build lvbench.c against each;
# (3) build bench/Vmi.Benchmarks (the C# side: --peer); (4) make the inputs from the guest; (5) run; then aggregate.py.
# Needs: build-essential cmake pkg-config libglib2.0-dev libjson-c-dev flex bison autoconf automake libtool check.
# Nothing is fetched: LibVMI comes from LIBVMI_GIT, the guest from GUEST_DIR.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
W=${WORK:-/tmp/libvmi-bench}
ROUNDS=${ROUNDS:-5}
START=${START:-1}
REPS=${REPS:-5}
GUEST_DIR=${GUEST_DIR:?set GUEST_DIR to a directory holding guest.raw and answers.txt (tests/guest/build-guest.sh)}
ENGINES=${ENGINES:-"libvmi-mmap libvmi-mmap-pc8192 project"}
TESTS=${TESTS:-"warm_read64_same_va warm_read64_cycle_1000va translate_v2p_hit_1000va cold_translate_flushall v2p_flushall_only cold_translate_flushentry walk_only bulk64MiB_4KiB_chunks bulk64MiB_1MiB_chunks phys_read64_random_256MiB phys_read64_cycle_1000pa"}
PROJECT_ONLY=${PROJECT_ONLY:-"search64MiB_literal search64MiB_wildcard"}
mkdir -p "$W"
cd "$W"

# (1) LibVMI
COMMON="-DCMAKE_BUILD_TYPE=Release -DENABLE_XEN=OFF -DENABLE_KVM=OFF -DENABLE_BAREFLANK=OFF -DENABLE_XENSTORE=OFF -DENABLE_VMIFS=OFF -DENABLE_FILE=ON -DBUILD_EXAMPLES=OFF -DENABLE_TESTING=OFF"
if [ ! -d src ]; then git clone -q "${LIBVMI_GIT:?set LIBVMI_GIT to a LibVMI git directory}" src; fi
if [ ! -d src-pc8192 ]; then
    cp -r src src-pc8192
    sed -i 's/set(MAX_PAGE_CACHE_SIZE "512")/set(MAX_PAGE_CACHE_SIZE "8192")/' src-pc8192/CMakeLists.txt
fi
for v in mmap mmap-pc8192; do
    s=src; [ $v = mmap-pc8192 ] && s=src-pc8192
    if [ ! -f install-$v/lib/libvmi.so ]; then
        nice -n 10 cmake -S $s -B build-$v $COMMON -DCMAKE_C_FLAGS=-DUSE_MMAP=1 -DCMAKE_INSTALL_PREFIX="$W/install-$v" >/dev/null
        nice -n 10 cmake --build build-$v -j2 >/dev/null
        cmake --install build-$v >/dev/null
    fi
    # (2) the C harness
    gcc -O2 -Wall -Wextra -o lvbench-$v "$HERE/lvbench.c" -I install-$v/include $(pkg-config --cflags glib-2.0) \
        -L install-$v/lib -Wl,-rpath,"$W/install-$v/lib" -lvmi $(pkg-config --libs glib-2.0)
done

# (3) the C# harness
nice -n 10 dotnet build "$REPO/bench/Vmi.Benchmarks" -c Release -nologo -v q > "$W/build.log" 2>&1 || { cat "$W/build.log"; exit 1; }
CS="$REPO/bench/Vmi.Benchmarks/bin/Release/net10.0/Vmi.Benchmarks"

# (4) inputs
python3 "$HERE/make_inputs.py" "$GUEST_DIR" "$W"
. "$W/params"
ARGS="$GUEST_DIR/guest.raw $W/vas.tsv $W/pas.bin $BULK_VA $CR3"

# (5) rounds
OUT=$W/results
mkdir -p "$OUT"
run() { # engine test round
    case $1 in
    project) timeout 600 nice -n 10 "$CS" --peer $ARGS project $REPS $2 ;;
    project-base) timeout 600 nice -n 10 "${BASE_CS:?set BASE_CS to the Vmi.Benchmarks binary of the commit to compare with}" --peer $ARGS project-base $REPS $2 ;;
    *)       timeout 600 nice -n 10 "$W/lvbench-${1#libvmi-}" $ARGS $1 $REPS $2 ;;
    esac > "$OUT/round-$3/$1-$2.txt" 2>&1
}
rotate() { # n list...: the list rotated left by n
    n=$1; shift
    i=0; while [ $i -lt $n ]; do x=$1; shift; set -- "$@" "$x"; i=$((i+1)); done
    echo "$@"
}
nengines=$(echo $ENGINES | wc -w)
for r in $(seq $START $ROUNDS); do
    mkdir -p "$OUT/round-$r"
    order=$(rotate $(( (r - 1) % nengines )) $ENGINES)
    echo "$(date +%T) round $r order: $order load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
    if [ $r = $START ]; then for e in $order; do run $e check $r; done; fi
    for t in $TESTS; do
        for e in $order; do run $e $t $r; done
    done
    # memcpy baselines: C (anonymous buffer and the mmap'd image) and managed (Span.CopyTo)
    for t in memcpy64MiB_anon_4KiB memcpy64MiB_anon_1MiB memcpy64MiB_mmapfile_4KiB memcpy64MiB_mmapfile_1MiB; do run libvmi-mmap $t $r; done
    for t in memcpy64MiB_anon_4KiB_managed memcpy64MiB_anon_1MiB_managed $PROJECT_ONLY; do run project $t $r; done
done
echo "$(date +%T) done load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
python3 "$HERE/aggregate.py" "$OUT" > "$OUT/summary.md"
echo "summary: $OUT/summary.md"
