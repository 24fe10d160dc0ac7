#!/usr/bin/env bash
# Rebuilds the committed .wasm fixtures from their C sources, and the expected
# outputs of cases.tsv from native (gcc -O2) builds of the same sources.
# Needs Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32:
#   apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
set -euo pipefail
cd "$(dirname "$0")"
native=${NATIVE_DIR:-/tmp/proctor-native}
mkdir -p "$native" expected
for src in *.c; do
    name="${src%.c}"
    clang --target=wasm32-wasi -O2 -Wall -Wextra -Wl,--strip-all -o "$name.wasm" "$src" -lm
    gcc -O2 -Wall -o "$native/$name" "$src" -lm
    echo "built $name.wasm ($(stat -c %s "$name.wasm") bytes) and $native/$name"
done
# Probes: small programs that test one property of the engine.
# bulk.c is built with bulk memory, so its memset and memmove are single
# memory.fill and memory.copy operators.
for src in probes/*.c; do
    extra=""
    [ "$src" = probes/bulk.c ] && extra="-mbulk-memory"
    clang --target=wasm32-wasi -O2 $extra -Wall -Wextra -Wl,--strip-all -o "${src%.c}.wasm" "$src" -lm
    echo "built ${src%.c}.wasm"
done
grep -v '^#' cases.tsv | while IFS=$'\t' read -r name input args; do
    out="expected/$name.${args// /_}.out"
    if [ "$input" = "-" ]; then
        "$native/$name" $args < /dev/null > "$out"
    else
        "$native/$name" $args < "$input" > "$out"
    fi
    echo "expected $out"
done
