/* Adversarial probe for the lottery: random bytes from the host
 * (getentropy, WASI's random_get), 256 at a time. Usage: entropy ROUNDS */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 1000;
    unsigned char buf[256];
    unsigned sum = 0;
    for (long r = 0; r < rounds; r++) {
        if (getentropy(buf, sizeof buf) != 0) return 1;
        sum += buf[r & 255];
    }
    printf("%u\n", sum);
    return 0;
}
