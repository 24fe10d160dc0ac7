#!/usr/bin/env bash
# Where a corpus program's metering overhead goes, function by function: the
# machine instructions each compiled WebAssembly function executes metered
# (the PoUW engine) and unmetered (plain wasmtime), under callgrind, with
# the metered module's functions mapped back to the originals they came
# from. `instructions.sh` gives the totals; this tells which functions the
# difference is in, and `--hot` then lists one function's hottest
# instructions each way (offsets into the function's machine code, as
# `objdump -d` of `Engine::precompile_module`'s output shows it), the places
# to read.
#
#   examples/corpus/functions.sh PROGRAM [TOP]           top functions by extra instructions (default 15)
#   examples/corpus/functions.sh PROGRAM --hot FUNCTION  one function's hottest instructions (unmetered index)
#   examples/corpus/functions.sh PROGRAM --classes FUNCTION  its instructions by kind, each way
#
# `--classes` sorts every instruction the function executed (with the
# callees inlined into it) by what it does, read from `objdump -d` of the
# machine code (the `machine_code` example): stores to and loads from the
# stack frame (spills and reloads), other operations on the frame,
# register-to-register moves, `lea`, and so on by mnemonic, and prints the
# executed count of each kind unmetered and metered, largest difference
# first: where a function's extra instructions are spills, reloads and
# moves, the meter cost registers rather than counting code. Also needs
# `objdump` (Debian package `binutils`).
#
# Needs valgrind (Debian package `valgrind`) and builds `run_once` with
# `--features proctor-vm/profiling`, which names the compiled functions in a
# perf map (`PROCTOR_PROFILE=perfmap`, /tmp/perf-PID.map) that callgrind's
# addresses are looked up in. Like `instructions.sh`, the counts are the
# same on every run of the same build.
#
# The metered module keeps the original function indices shifted by one
# (the check import comes first) for the wrappers, and puts the internal
# version of defined function i (what metered code calls) at i + n + 2, for
# n defined functions; inlined callees are counted in their callers.
set -euo pipefail
cd "$(dirname "$0")"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
usage="usage: functions.sh PROGRAM [TOP] | functions.sh PROGRAM --hot|--classes FUNCTION"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
case "${2:-}" in
"" | --hot | --classes) ;;
*[!0-9]*) echo "$usage" >&2; exit 2 ;;
esac
case "${2:-}" in --hot | --classes) [[ "${3:-}" =~ ^[0-9]+$ ]] || { echo "$usage" >&2; exit 2; } ;; esac
program=$1
shift
line=$(awk -F'\t' -v n="$program" '$1 == n' cases.tsv)
[ -n "$line" ] || { echo "no case named $program in cases.tsv" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-../../target}
cargo build -q --release -p proctor-vm --features proctor-vm/profiling --example run_once --example machine_code
run_once=$target/release/examples/run_once
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

input=$(cut -f2 <<<"$line")
args=$(cut -f3 <<<"$line")
[ "$args" = "-" ] && args=
for mode in metered unmetered; do
    # shellcheck disable=SC2086 # the case's arguments are split on spaces
    PROCTOR_PROFILE=perfmap valgrind --tool=callgrind --dump-instr=yes \
        --callgrind-out-file="$out/$mode.cg" \
        "$run_once" "$mode" "$program.wasm" "$input" $args >/dev/null 2>"$out/$mode.log" &
done
wait
for mode in metered unmetered; do
    pid=$(sed -n 's/^pid: //p' "$out/$mode.cg")
    [ -f "/tmp/perf-$pid.map" ] || { cat "$out/$mode.log" >&2; echo "no perf map for $mode" >&2; exit 1; }
    mv "/tmp/perf-$pid.map" "$out/$mode.map"
done
if [ "${1:-}" = --classes ]; then
    command -v objdump >/dev/null || { echo "needs objdump (apt-get install binutils)" >&2; exit 1; }
    for mode in metered unmetered; do
        "$target/release/examples/machine_code" "$mode" "$program.wasm" "$out/$mode.elf"
        objdump -d --no-show-raw-insn "$out/$mode.elf" >"$out/$mode.s"
    done
fi
python3 - "$out" "$@" <<'EOF'
import bisect, re, sys
out, rest = sys.argv[1], sys.argv[2:]

def functions(mode):
    """(start, size, index) of the compiled wasm functions, by start."""
    fs = []
    for line in open(f"{out}/{mode}.map"):
        addr, size, name = line.rstrip("\n").split(" ", 2)
        m = re.fullmatch(r"wasm\[0\]::function\[(\d+)\]", name)
        if m:
            fs.append((int(addr, 16), int(size, 16), int(m.group(1))))
    return sorted(fs)

def counts(mode, fs):
    """Instructions executed per (function index, offset in it)."""
    starts = [f[0] for f in fs]
    per = {}
    pos, skip = 0, False
    for line in open(f"{out}/{mode}.cg"):
        c = line[0]
        if c.isdigit() or c in "+-*":
            # `instr line` positions (absolute, or relative to the last),
            # then the Ir count; the line after `calls=` is inclusive.
            p = line.split()
            if p[0][0] in "+-":
                pos += int(p[0], 0)
            elif p[0] != "*":
                pos = int(p[0], 0)
            if skip:
                skip = False
                continue
            if len(p) < 3:
                continue
            k = bisect.bisect_right(starts, pos) - 1
            if k >= 0 and pos < fs[k][0] + fs[k][1]:
                key = (fs[k][2], pos - fs[k][0])
                per[key] = per.get(key, 0) + int(p[2])
        elif line.startswith("calls="):
            skip = True
    return per

fu, fm = functions("unmetered"), functions("metered")
first = min(f[2] for f in fu)
n = len(fu)
def original(i):
    """The unmetered index a metered function comes from (None: the check)."""
    if i >= first + n + 2:
        return i - n - 2
    if first < i <= first + n:
        return i - 1
    return None

cu, cm = counts("unmetered", fu), counts("metered", fm)
def code(mode):
    """Instruction text per (function index, offset), from objdump."""
    text, index, start = {}, None, 0
    for line in open(f"{out}/{mode}.s"):
        m = re.match(r"([0-9a-f]+) <wasm\[0\]::function\[(\d+)\]>:", line)
        if m:
            start, index = int(m.group(1), 16), int(m.group(2))
            continue
        m = re.match(r"\s+([0-9a-f]+):\s+(\S.*)", line)
        if m and index is not None:
            text[(index, int(m.group(1), 16) - start)] = m.group(2).strip()
    return text

def kind(ins):
    """What an instruction does, for `--classes`."""
    op, _, args = ins.partition(" ")
    args = args.strip()
    if "(%rsp)" in args:
        if op.startswith("mov") and args.endswith("(%rsp)"):
            return "store to the frame"
        if op.startswith("mov"):
            return "load from the frame"
        return "other op on the frame"
    if op == "mov" and re.fullmatch(r"%\w+,%\w+", args):
        return "move between registers"
    if op.startswith("j") and op != "jmp":
        return "conditional branch"
    return op

if rest[:1] == ["--classes"]:
    want = int(rest[1])
    per_kind = {}
    for col, (mode, per, f) in enumerate((("unmetered", cu, lambda i: i), ("metered", cm, original))):
        text = code(mode)
        for (i, off), c in per.items():
            if f(i) == want:
                ins = text.get((i, off))
                k = kind(ins) if ins else "not an instruction start (objdump disagrees)"
                per_kind.setdefault(k, [0, 0])[col] += c
    u, m = (sum(v[col] for v in per_kind.values()) for col in (0, 1))
    if not u:
        sys.exit(f"function {want} executed no instructions unmetered")
    print(f"function {want}: unmetered {u}, metered {m} ({m / u:.3f}x), extra {m - u}")
    print("| kind | unmetered | metered | extra |")
    print("|---|---:|---:|---:|")
    for k, (a, b) in sorted(per_kind.items(), key=lambda kv: (-abs(kv[1][1] - kv[1][0]), kv[0])):
        print(f"| {k} | {a} | {b} | {b - a:+d} |")
    sys.exit(0)
if rest[:1] == ["--hot"]:
    want = int(rest[1])
    for mode, per, f in (("unmetered", cu, lambda i: i), ("metered", cm, original)):
        rows = sorted(((c, off, i) for (i, off), c in per.items() if f(i) == want), reverse=True)
        total = sum(r[0] for r in rows)
        print(f"{mode}: function {want}: {total} instructions; hottest offsets (function index, offset, count):")
        for c, off, i in rows[:25]:
            print(f"  [{i}] +0x{off:x} {c}")
    sys.exit(0)
top = int(rest[0]) if rest else 15
tu, tm = {}, {}
for (i, _), c in cu.items():
    tu[i] = tu.get(i, 0) + c
for (i, _), c in cm.items():
    o = original(i)
    tm[o] = tm.get(o, 0) + c
su, sm = sum(tu.values()), sum(tm.values())
print(f"total: unmetered {su}, metered {sm} ({sm / su:.3f}x), extra {sm - su}")
print("| function | unmetered | metered | ratio | share of the extra |")
print("|---:|---:|---:|---:|---:|")
for i in sorted(set(tu) | set(tm), key=lambda i: -(tm.get(i, 0) - tu.get(i, 0)))[:top]:
    u, m = tu.get(i, 0), tm.get(i, 0)
    name = "check" if i is None else str(i)
    ratio = f"{m / u:.3f}x" if u else "-"
    print(f"| {name} | {u} | {m} | {ratio} | {(m - u) / (sm - su):.1%} |")
EOF
