#!/usr/bin/env bash
# Counts the machine instructions the corpus's compiled WebAssembly executes
# metered (the PoUW engine) and unmetered (plain wasmtime), under callgrind,
# and prints their ratio per program and in geometric mean: the meter's
# overhead in instructions, a figure that does not move with the machine's
# load (timings on a shared VM move ±10-30% from run to run), so a change to
# the meter can be measured by a percent in one run. Instructions are not
# time: a taken branch costs more than an addition, a reload from the stack
# more than either. Confirm a change's effect on time with `proctor bench
# corpus`; use this to see what it changed.
#
#   examples/corpus/instructions.sh [PROGRAM...]     (default: every case)
#
# Needs valgrind (Debian package `valgrind`). Runs two programs at a time.
# The compiled code is what callgrind cannot name (`???`: code the JIT wrote
# at run time); compiling, the checker and the host calls are named Rust
# functions and are left out.
set -euo pipefail
cd "$(dirname "$0")"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-../../target}
cargo build -q --release -p proctor-vm --example run_once
run_once=$target/release/examples/run_once
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

jit_instructions() { # NAME MODE
    local line input args
    line=$(awk -F'\t' -v n="$1" '$1 == n' cases.tsv)
    input=$(cut -f2 <<<"$line")
    args=$(cut -f3 <<<"$line")
    [ "$args" = "-" ] && args=
    # shellcheck disable=SC2086 # the case's arguments are split on spaces
    valgrind --tool=callgrind --callgrind-out-file="$out/$1.$2" \
        "$run_once" "$2" "$1.wasm" "$input" $args 2>"$out/$1.$2.log" >/dev/null ||
        { cat "$out/$1.$2.log" >&2; return 1; }
    callgrind_annotate --threshold=100 "$out/$1.$2" 2>/dev/null |
        awk '/\?\?\?:0x[0-9a-f]+ \[\?\?\?\]/ { gsub(",", "", $1); s += $1 } END { print s + 0 }' \
            >"$out/$1.$2.n"
}

if [ $# -gt 0 ]; then names=("$@"); else
    mapfile -t names < <(awk -F'\t' '!/^#/ && NF >= 3 { print $1 }' cases.tsv)
fi
for n in "${names[@]}"; do
    [ -f "$n.wasm" ] || { echo "no program $n in $(pwd)" >&2; exit 1; }
    for mode in unmetered metered; do
        jit_instructions "$n" "$mode" &
        while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
    done
done
wait

echo "| program | unmetered | metered | metered/unmetered |"
echo "|---|---:|---:|---:|"
for n in "${names[@]}"; do
    echo "$n $(cat "$out/$n.unmetered.n") $(cat "$out/$n.metered.n")"
done | awk '{ r = $3 / $2; s += log(r); k++; printf "| %s | %d | %d | %.3fx |\n", $1, $2, $3, r }
    END { if (k) printf "| **geometric mean** | | | **%.3fx** |\n", exp(s / k) }'
