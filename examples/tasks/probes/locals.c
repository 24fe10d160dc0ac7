/* Adversarial probe for the lottery: a loop over many live local variables
 * (more than registers), so operators are cheap moves and spills.
 * Usage: locals ITERATIONS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    uint32_t a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8;
    uint32_t i2 = 9, j = 10, k = 11, l = 12, m = 13, o = 14, p = 15, q = 16;
    for (long t = 0; t < n; t++) {
        a += b ^ q; b += c ^ a; c += d ^ b; d += e ^ c; e += f ^ d; f += g ^ e;
        g += h ^ f; h += i2 ^ g; i2 += j ^ h; j += k ^ i2; k += l ^ j; l += m ^ k;
        m += o ^ l; o += p ^ m; p += q ^ o; q += a ^ p;
    }
    printf("%u\n", a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i2 ^ j ^ k ^ l ^ m ^ o ^ p ^ q);
    return 0;
}
