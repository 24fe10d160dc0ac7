/*
 * filler: the genesis filler task, run by workers when there are no jobs.
 *
 * It folds a seed (stdin, up to 64 bytes) through `rounds` rounds (argv[1],
 * default 1,000,000) and prints the final 32-byte digest in hex; anyone can
 * check the result by rerunning it. Each round generates 16 KiB of
 * text-like data from the digest (words from a vocabulary drawn from the
 * seed, and repeats of earlier spans), compresses it with LZ77 over a hash
 * chain, and hashes the digest with the compressed stream's checksum and
 * size (SHA-256). So the filler does what real programs do (hash-table
 * lookups, byte compares of unpredictable lengths, branches on the data):
 * mining with it earns lottery tickets (metered instructions) per second at
 * about the rate real programs do (`proctor bench lottery`), and a worker
 * gains nothing by running it instead of a job. A SHA-256 chain alone, the
 * filler before this one, earned 2-2.4x the corpus programs' rate.
 * Plain C, no dependencies, built for wasm32-wasi.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 16384
#define HBITS 13
#define MINMATCH 4
#define MAXMATCH 255
#define MAXCHAIN 16
#define WORDS 512

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/* SHA-256 of a message of at most 55 bytes (one block). */
static void sha256_short(const uint8_t *msg, size_t len, uint8_t out[32]) {
    uint8_t block[64] = {0};
    memcpy(block, msg, len);
    block[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) block[63 - i] = (uint8_t)(bits >> (8 * i));
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 | (uint32_t)block[4 * i + 2] << 8 |
               block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

static uint64_t rng;

static uint32_t next(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 32);
}

static char vocab[WORDS][12];

/* Words of 2-10 letters, fixed by the seed. */
static void make_vocabulary(void) {
    for (int w = 0; w < WORDS; w++) {
        int len = 2 + next() % 9;
        for (int i = 0; i < len; i++) vocab[w][i] = (char)('a' + next() % 26);
        vocab[w][len] = 0;
    }
}

/* Text-like data: words with a skewed choice (common ones often), and now
 * and then a repeat of an earlier span. */
static void generate(uint8_t *out) {
    size_t n = 0;
    while (n < BLOCK) {
        uint32_t r = next();
        if (r % 8 == 0 && n > 64) {
            size_t dist = 1 + (r >> 3) % (n < 4096 ? n : 4096);
            size_t len = 4 + (r >> 16) % 60;
            for (size_t i = 0; i < len && n < BLOCK; i++, n++) out[n] = out[n - dist];
        } else {
            const char *w = vocab[(r >> 3) % WORDS & (r >> 12) % WORDS];
            for (size_t i = 0; w[i] && n < BLOCK; i++) out[n++] = (uint8_t)w[i];
            if (n < BLOCK) out[n++] = (r >> 24) % 16 ? ' ' : '\n';
        }
    }
}

static uint32_t hash4(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (v * 2654435761u) >> (32 - HBITS);
}

/* Literal runs of in[from..to) at out + o, 255 bytes at most each; the new
 * output length. */
static size_t literals(const uint8_t *in, size_t from, size_t to, uint8_t *out, size_t o) {
    while (from < to) {
        size_t k = to - from < 255 ? to - from : 255;
        out[o++] = 0;
        out[o++] = (uint8_t)k;
        memcpy(out + o, in + from, k);
        o += k;
        from += k;
    }
    return o;
}

/* LZ77 over the block: tokens 0x00 LEN literals... | 0x01 LEN DIST16. */
static size_t compress(const uint8_t *in, uint8_t *out) {
    static int32_t head[1 << HBITS], prev[BLOCK];
    for (size_t i = 0; i < (1u << HBITS); i++) head[i] = -1;
    size_t o = 0, lit = 0, i = 0;
    while (i < BLOCK) {
        size_t best = 0, dist = 0;
        if (i + MINMATCH <= BLOCK) {
            uint32_t h = hash4(in + i);
            int32_t c = head[h];
            for (int chain = 0; c >= 0 && chain < MAXCHAIN; chain++, c = prev[c]) {
                size_t max = BLOCK - i < MAXMATCH ? BLOCK - i : MAXMATCH, l = 0;
                while (l < max && in[c + l] == in[i + l]) l++;
                if (l > best) {
                    best = l;
                    dist = i - (size_t)c;
                    if (l == max) break;
                }
            }
            prev[i] = head[h];
            head[h] = (int32_t)i;
        }
        if (best >= MINMATCH) {
            o = literals(in, lit, i, out, o);
            out[o++] = 1;
            out[o++] = (uint8_t)best;
            out[o++] = (uint8_t)dist;
            out[o++] = (uint8_t)(dist >> 8);
            for (size_t j = i + 1; j < i + best && j + MINMATCH <= BLOCK; j++) {
                uint32_t h = hash4(in + j);
                prev[j] = head[h];
                head[h] = (int32_t)j;
            }
            i += best;
            lit = i;
        } else {
            i++;
        }
    }
    return literals(in, lit, BLOCK, out, o);
}

static uint32_t adler32(const uint8_t *p, size_t n) {
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521;
        b = (b + a) % 65521;
    }
    return b << 16 | a;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 1000000;
    uint8_t seed[64];
    size_t n = fread(seed, 1, sizeof seed, stdin);
    uint8_t digest[32];
    sha256_short(seed, n > 55 ? 55 : n, digest);
    rng = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 8; i++) rng = rng << 8 ^ digest[i];
    if (rng == 0) rng = 1;
    make_vocabulary();
    static uint8_t block[BLOCK], packed[BLOCK + BLOCK / 255 * 2 + 8];
    for (long r = 0; r < rounds; r++) {
        rng ^= (uint64_t)digest[8] << 56 | (uint64_t)digest[9] << 48 | (uint64_t)digest[10] << 40 | digest[11];
        if (rng == 0) rng = 1;
        generate(block);
        size_t size = compress(block, packed);
        uint32_t sum = adler32(packed, size);
        uint8_t msg[40];
        memcpy(msg, digest, 32);
        for (int i = 0; i < 4; i++) {
            msg[32 + i] = (uint8_t)(sum >> (8 * i));
            msg[36 + i] = (uint8_t)(size >> (8 * i));
        }
        sha256_short(msg, sizeof msg, digest);
    }
    for (int i = 0; i < 32; i++) printf("%02x", digest[i]);
    printf("\n");
    return 0;
}
