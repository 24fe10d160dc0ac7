#!/usr/bin/env python3
"""Writes inputs/text.txt: 64 KiB of deterministic pseudo-English (an LCG over a word list)."""
import pathlib

WORDS = """the of and to in a is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no will more
proctor enclave worker chain block proof useful work instruction metered lottery quote attestation
trusted hardware compute market scheduler requester provider payment escrow replica verify result
data input output key seal random slice fuel module checker wasm deterministic node network""".split()

state = 12345
out = []
size = 0
line = []
while size < 65536:
    state = (state * 1103515245 + 12345) % 2**31
    w = WORDS[(state >> 8) % len(WORDS)]
    if (state >> 4) % 17 == 0:
        w = w.capitalize()
    line.append(w)
    if len(line) >= 12:
        s = " ".join(line) + (".\n" if (state >> 3) % 3 == 0 else ",\n")
        out.append(s)
        size += len(s)
        line = []
pathlib.Path(__file__).with_name("text.txt").write_text("".join(out)[:65536])
