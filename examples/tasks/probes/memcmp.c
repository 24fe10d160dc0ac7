/* Adversarial probe for the lottery: memcmp of long equal buffers, a byte
 * loop of 21 operators per byte that compiles to a few machine
 * instructions (the meter once ran it 8 bytes at a time; see docs/pouw.md).
 * Usage: memcmp ROUNDS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 100;
    size_t n = 1 << 16;
    unsigned char *a = malloc(n), *b = malloc(n);
    for (size_t i = 0; i < n; i++) a[i] = b[i] = (unsigned char)(i * 7);
    long equal = 0;
    for (int r = 0; r < rounds; r++) {
        b[n - 1 - (r % 64)] ^= (unsigned char)(r & 1);
        equal += memcmp(a, b, n) == 0;
    }
    printf("%ld\n", equal);
    return 0;
}
