#!/usr/bin/env bash
# Builds the meter's benchmark corpus: real C programs from Debian source
# packages, none written for proctor, compiled unmodified (upstream's
# .orig tarball, no Debian patches) for wasm32-wasi and natively, plus the
# expected output of each case in cases.tsv (from the native build).
#
#   program    package   what it is
#   minigzip   zlib      zlib's own gzip tool (test/minigzip.c)
#   bzip2      bzip2     the bzip2 command
#   brotli     brotli    the brotli command (c/tools/brotli.c)
#   zstd       libzstd   the zstd command (programs/, no threads/bench/dict)
#   pcre2grep  pcre2     PCRE2's grep (the interpreter, no JIT)
#   cjson      cjson     cJSON, driven by drivers/cjson.c (parse and print)
#   lua        lua5.4    the Lua interpreter (lua.c), running inputs/bench.lua
#   sqlite     sqlite3   SQLite (the amalgamation, built by its own make),
#                        driven by drivers/sqlite.c: a SQL script on stdin
#                        against an in-memory database
#
# WASI lacks setjmp (include/setjmp.h: longjmp ends the program; Lua raises
# no error on the bench's script) and a few POSIX calls (wasi_shim.c).
# Only the .wasm files, drivers/, include/, wasi_shim.c, inputs/ and
# expected/ are committed; sources and native builds go to $CORPUS_SRC and $NATIVE_DIR.
# Needs: clang lld wasi-libc libclang-rt-14-dev-wasm32 dpkg-dev gcc make tcl
# (SQLite's amalgamation is generated with tclsh), and a
# deb-src entry (added for bookworm if `apt-get source` finds none).
# Licenses: zlib (zlib), bzip2 (BSD-like), brotli (MIT), zstd (BSD), PCRE2
# (BSD), cJSON (MIT), Lua (MIT), SQLite (public domain); inputs/bench.lua
# and inputs/workload.sql were written for this bench; inputs/sqlite-src.txt is SQLite source (public domain),
# inputs/packages.json is Debian package metadata (dpkg status as JSON).
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
src=${CORPUS_SRC:-/tmp/proctor-corpus-src}
native=${NATIVE_DIR:-/tmp/proctor-corpus-native}
mkdir -p "$src" "$native" expected
packages="zlib bzip2 brotli libzstd pcre2 cjson lua5.4 sqlite3"

cd "$src"
if ! apt-get source --download-only zlib >/dev/null 2>&1; then
    cat > /etc/apt/sources.list.d/proctor-deb-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -q
fi
for p in $packages; do
    apt-get source --download-only "$p" >/dev/null
done
for t in *.orig.tar.* ; do
    case "$t" in *.asc) ;; *) tar xf "$t" ;; esac
done

shim="$here/wasi_shim.c"
wasm() { clang --target=wasm32-wasi -O2 -w -Wl,--strip-all "$@"; }
host() { gcc -O2 -w "$@"; }
# Builds NAME from the sources after it, for wasm (with the WASI shims) and natively.
build() {
    local name=$1 wflags=$2 wlibs=$3
    shift 3
    wasm $wflags -o "$here/$name.wasm" "$@" "$shim" $wlibs
    host -o "$native/$name" "$@" -lm
    echo "built $name.wasm ($(stat -c %s "$here/$name.wasm") bytes) and $native/$name"
}
emulated="-D_WASI_EMULATED_SIGNAL -D_WASI_EMULATED_PROCESS_CLOCKS"
emulated_libs="-lwasi-emulated-signal -lwasi-emulated-process-clocks"

(cd zlib-*/ && build minigzip "-DZ_HAVE_UNISTD_H -I." "" -DZ_HAVE_UNISTD_H -I. test/minigzip.c \
    adler32.c crc32.c deflate.c infback.c inffast.c inflate.c inftrees.c trees.c zutil.c \
    compress.c uncompr.c gzclose.c gzlib.c gzread.c gzwrite.c)
(cd bzip2-*/ && build bzip2 "$emulated" "$emulated_libs" bzip2.c blocksort.c huffman.c \
    crctable.c randtable.c compress.c decompress.c bzlib.c)
(cd brotli-*/c && build brotli "-Iinclude" "-lm" -Iinclude tools/brotli.c common/*.c dec/*.c enc/*.c)
(cd zstd-*/ && build zstd "-include stdio.h $emulated" "$emulated_libs" \
    -DZSTD_NOBENCH -DZSTD_NODICT -DZSTD_NOTRACE -DBACKTRACE_ENABLE=0 -DZSTD_DISABLE_ASM \
    -DZSTD_LEGACY_SUPPORT=0 -DZSTD_MULTITHREAD_SUPPORT_DEFAULT=0 -Ilib -Ilib/common \
    programs/zstdcli.c programs/util.c programs/timefn.c programs/fileio.c \
    programs/fileio_asyncio.c lib/common/*.c lib/compress/*.c lib/decompress/*.c)
(cd pcre2-*/src && cp config.h.generic config.h && cp pcre2.h.generic pcre2.h \
    && cp pcre2_chartables.c.dist pcre2_chartables.c \
    && build pcre2grep "" "" -DHAVE_CONFIG_H -DHAVE_STRERROR -DHAVE_UNISTD_H \
    -DPCRE2_CODE_UNIT_WIDTH=8 -DPCRE2_STATIC -I. pcre2grep.c pcre2_auto_possess.c \
    pcre2_chartables.c pcre2_compile.c pcre2_config.c pcre2_context.c pcre2_convert.c \
    pcre2_dfa_match.c pcre2_error.c pcre2_extuni.c pcre2_find_bracket.c pcre2_maketables.c \
    pcre2_match.c pcre2_match_data.c pcre2_newline.c pcre2_ord2utf.c pcre2_pattern_info.c \
    pcre2_script_run.c pcre2_serialize.c pcre2_string_utils.c pcre2_study.c \
    pcre2_substitute.c pcre2_substring.c pcre2_tables.c pcre2_ucd.c pcre2_valid_utf.c \
    pcre2_xclass.c)
(cd cJSON-*/ && build cjson "" "" -I. "$here/drivers/cjson.c" cJSON.c)
(cd lua-*/src && build lua "-I$here/include -DL_tmpnam=32 -DPROCTOR_SHIM_PATHS \
    -Dremove=proctor_remove -Drename=proctor_rename $emulated" "$emulated_libs" \
    $(ls ./*.c | grep -v luac.c))
(cd sqlite3-*/ && mkdir -p bld && cd bld && { [ -f sqlite3.c ] || { ../configure --disable-tcl \
    >/dev/null && make sqlite3.c >/dev/null; }; } && build sqlite "" "" -I. \
    -DSQLITE_OS_OTHER=1 -DSQLITE_THREADSAFE=0 -DSQLITE_TEMP_STORE=3 -DSQLITE_OMIT_LOAD_EXTENSION \
    "$here/drivers/sqlite.c" sqlite3.c)

cd "$here"
grep -v '^#' cases.tsv | while IFS=$'\t' read -r name input args; do
    [ "$args" = "-" ] && args=""
    out="expected/$name.out"
    # shellcheck disable=SC2086
    "$native/$name" $args < "$input" > "$out"
    echo "expected $out ($(stat -c %s "$out") bytes)"
done
