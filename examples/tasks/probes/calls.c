/* Adversarial probe for the lottery: calls through a function table, too
 * many and too varied to inline. Usage: calls N */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
typedef uint32_t (*op)(uint32_t, uint32_t);
static uint32_t f0(uint32_t a, uint32_t b) { return a + b; }
static uint32_t f1(uint32_t a, uint32_t b) { return a ^ (b << 1); }
static uint32_t f2(uint32_t a, uint32_t b) { return a * 33 + b; }
static uint32_t f3(uint32_t a, uint32_t b) { return (a >> 3) | b; }
static uint32_t fib(uint32_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    volatile op table[4] = {f0, f1, f2, f3};
    uint32_t x = 1;
    for (long i = 0; i < n; i++) x = table[(x >> 7) & 3](x, (uint32_t)i);
    printf("%u %u\n", x, fib(24));
    return 0;
}
