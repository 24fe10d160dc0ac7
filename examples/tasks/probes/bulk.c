/* Adversarial probe for the lottery: large memset and memmove, built with
 * -mbulk-memory so they are single memory.fill / memory.copy operators.
 * Usage: bulk ROUNDS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 100;
    size_t n = 1 << 20;
    unsigned char *a = malloc(n), *b = malloc(n);
    unsigned sum = 0;
    for (int r = 0; r < rounds; r++) {
        memset(a, r, n);
        a[(r * 131) % n] = (unsigned char)(r * 7);
        memmove(b, a + 1, n - 1);
        sum += a[(r * 4099) % n] + b[(r * 8191) % n];
    }
    printf("%u\n", sum);
    return 0;
}
