/*
 * lz: a compression-like workload. LZ77 with a hash chain over a 64 KiB
 * window: compresses stdin `rounds` times (argv[1], default 1), decompresses
 * and checks the round trip, and prints the sizes and an Adler-32 of the
 * compressed stream.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 65536
#define HBITS 15
#define MINMATCH 4
#define MAXMATCH 258
#define MAXCHAIN 32

static uint32_t h4(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (v * 2654435761u) >> (32 - HBITS);
}

/* Tokens: 0x00 len8 literals... | 0x01 len16 dist16 */
static size_t compress(const uint8_t *in, size_t n, uint8_t *out) {
    static int32_t head[1 << HBITS];
    int32_t *prev = malloc(n * sizeof *prev);
    for (size_t i = 0; i < (1u << HBITS); i++) head[i] = -1;
    size_t o = 0, lit_start = 0, i = 0;
    while (i < n) {
        size_t best = 0, dist = 0;
        if (i + MINMATCH <= n) {
            uint32_t h = h4(in + i);
            int32_t cand = head[h];
            prev[i] = cand;
            head[h] = (int32_t)i;
            for (int chain = 0; cand >= 0 && chain < MAXCHAIN && i - (size_t)cand <= WINDOW - 1; chain++) {
                size_t l = 0, lim = n - i < MAXMATCH ? n - i : MAXMATCH;
                while (l < lim && in[cand + l] == in[i + l]) l++;
                if (l > best) { best = l; dist = i - (size_t)cand; if (l == lim) break; }
                cand = prev[cand];
            }
        }
        if (best >= MINMATCH) {
            while (lit_start < i) {
                size_t run = i - lit_start > 255 ? 255 : i - lit_start;
                out[o++] = 0; out[o++] = (uint8_t)run;
                memcpy(out + o, in + lit_start, run); o += run; lit_start += run;
            }
            out[o++] = 1; out[o++] = (uint8_t)best; out[o++] = (uint8_t)(best >> 8);
            out[o++] = (uint8_t)dist; out[o++] = (uint8_t)(dist >> 8);
            for (size_t k = 1; k < best && i + k + MINMATCH <= n; k++) {
                uint32_t h = h4(in + i + k);
                prev[i + k] = head[h];
                head[h] = (int32_t)(i + k);
            }
            i += best;
            lit_start = i;
        } else {
            i++;
        }
    }
    while (lit_start < n) {
        size_t run = n - lit_start > 255 ? 255 : n - lit_start;
        out[o++] = 0; out[o++] = (uint8_t)run;
        memcpy(out + o, in + lit_start, run); o += run; lit_start += run;
    }
    free(prev);
    return o;
}

static size_t decompress(const uint8_t *in, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        if (in[i] == 0) {
            size_t run = in[i + 1];
            memcpy(out + o, in + i + 2, run); o += run; i += 2 + run;
        } else {
            size_t len = in[i + 1] | (size_t)in[i + 2] << 8, dist = in[i + 3] | (size_t)in[i + 4] << 8;
            if (dist == 0) dist = 65536;
            for (size_t k = 0; k < len; k++, o++) out[o] = out[o - dist];
            i += 5;
        }
    }
    return o;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 1;
    size_t len = 0, cap = 1 << 16, n;
    uint8_t *data = malloc(cap);
    while (data && (n = fread(data + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap) data = realloc(data, cap *= 2);
    }
    uint8_t *packed = malloc(len + len / 128 * 2 + 16), *back = malloc(len + 1);
    if (!data || !packed || !back) { fprintf(stderr, "out of memory\n"); return 1; }
    size_t clen = 0;
    for (long r = 0; r < rounds; r++) {
        clen = compress(data, len, packed);
        if (decompress(packed, clen, back) != len || memcmp(back, data, len) != 0) {
            fprintf(stderr, "round trip failed\n");
            return 2;
        }
    }
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < clen; i++) { a = (a + packed[i]) % 65521; b = (b + a) % 65521; }
    printf("in %zu out %zu adler32 %08x\n", len, clen, (b << 16) | a);
    return 0;
}
