/* A float-heavy probe for deterministic code generation: runs every kind
 * of WebAssembly float operation, including the ones whose NaN results
 * differ between instruction sets, and prints the raw bits of a digest of
 * the results. The same module must print the same bits on every engine
 * configuration proctor accepts (see crates/vm/tests/targets.rs).
 * Usage: floats ROUNDS */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t h = 1469598103934665603ull; /* FNV-1a over result bits */
static void mix64(double d) {
    uint64_t b;
    memcpy(&b, &d, 8);
    for (int i = 0; i < 8; i++) { h ^= (b >> (8 * i)) & 0xff; h *= 1099511628211ull; }
}
static void mix32(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    for (int i = 0; i < 4; i++) { h ^= (b >> (8 * i)) & 0xff; h *= 1099511628211ull; }
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1000;
    volatile double zero = 0.0, inf = INFINITY, neg = -1.0;
    double x = 0.5;
    float y = 0.25f;
    for (int i = 0; i < rounds; i++) {
        double nan1 = zero / zero, nan2 = inf - inf, nan3 = sqrt(neg * (i + 1));
        float fnan = (float)zero / (float)zero;
        mix64(nan1); mix64(nan2); mix64(nan3); mix32(fnan);
        mix64(nan1 * x); mix64(nan2 + nan3); mix64(-nan1); mix64(fabs(nan3));
        mix64(fmin(nan1, x)); mix64(fmax(x, nan2)); mix64(fmin(-0.0, 0.0)); mix64(fmax(-0.0, 0.0));
        mix32(fminf(fnan, y)); mix32(fmaxf(y, fnan)); mix32((float)nan1); mix64((double)fnan);
        mix64(floor(x * 7.3)); mix64(ceil(-x * 3.1)); mix64(trunc(x * 1e3)); mix64(nearbyint(x * 2.5 + i));
        mix32(floorf(y * 9.1f)); mix32(ceilf(y)); mix32(truncf(-y * 77.f)); mix32(nearbyintf(y * 3.5f));
        mix64(copysign(x, -nan1)); mix32(copysignf(y, fnan));
        mix64(sqrt(x * 11.0 + i)); mix32(sqrtf(y * 5.0f + i));
        mix64((double)(int64_t)(x * 1e6)); mix64((double)(uint32_t)(i * 2654435761u));
        mix32((float)(int32_t)(i * 40503)); mix32((float)(uint64_t)(i * 0x9e3779b97f4a7c15ull));
        x = fmod(x * 3.7 + 0.1, 10.0) + 1e-9;
        y = fmodf(y * 1.3f + 0.01f, 5.0f);
    }
    printf("%016llx\n", (unsigned long long)h);
    return 0;
}
