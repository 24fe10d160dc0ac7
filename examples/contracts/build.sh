#!/usr/bin/env bash
# Rebuilds the committed contract fixtures from their C sources (docs/contracts.md).
# Needs Debian's clang, lld and wasi-libc:
#   apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
set -euo pipefail
cd "$(dirname "$0")"
for src in *.c; do
    name="${src%.c}"
    clang --target=wasm32-wasi -O2 -Wall -Wextra -Werror -nostartfiles -Wl,--no-entry \
        -Wl,--strip-all -o "$name.wasm" "$src"
    echo "built $name.wasm ($(stat -c %s "$name.wasm") bytes)"
done
