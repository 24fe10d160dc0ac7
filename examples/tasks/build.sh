#!/usr/bin/env bash
# Rebuilds the committed .wasm fixtures from their C sources.
# Needs Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32:
#   apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
set -euo pipefail
cd "$(dirname "$0")"
for src in *.c; do
    name="${src%.c}"
    clang --target=wasm32-wasi -O2 -Wall -Wextra -Wl,--strip-all -o "$name.wasm" "$src"
    # Native build, to compare outputs and speed.
    gcc -O2 -Wall -o "/tmp/proctor-native-$name" "$src"
    echo "built $name.wasm ($(stat -c %s "$name.wasm") bytes)"
done
