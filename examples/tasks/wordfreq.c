/*
 * wordfreq: a branchy text workload. Counts the words of stdin (letters and
 * apostrophes, case-folded) in an open-addressing hash table, `passes` times
 * (argv[1], default 1), then prints the number of distinct and total words
 * and the ten most frequent (ties broken alphabetically).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char *word; long count; } entry;

static entry *table;
static size_t cap = 1 << 12, used;

static uint32_t hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static void insert(char *w, size_t n, long add);

static void grow(void) {
    entry *old = table;
    size_t oldcap = cap;
    cap *= 2;
    table = calloc(cap, sizeof *table);
    used = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].word) insert(old[i].word, strlen(old[i].word), old[i].count), free(old[i].word);
    free(old);
}

static void insert(char *w, size_t n, long add) {
    if (2 * (used + 1) > cap) grow();
    size_t i = hash(w, n) & (cap - 1);
    while (table[i].word) {
        if (strlen(table[i].word) == n && memcmp(table[i].word, w, n) == 0) { table[i].count += add; return; }
        i = (i + 1) & (cap - 1);
    }
    table[i].word = malloc(n + 1);
    memcpy(table[i].word, w, n);
    table[i].word[n] = 0;
    table[i].count = add;
    used++;
}

static int by_count(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

int main(int argc, char **argv) {
    long passes = argc > 1 ? atol(argv[1]) : 1;
    size_t len = 0, bufcap = 1 << 16, n;
    char *text = malloc(bufcap);
    while (text && (n = fread(text + len, 1, bufcap - len, stdin)) > 0) {
        len += n;
        if (len == bufcap) text = realloc(text, bufcap *= 2);
    }
    table = calloc(cap, sizeof *table);
    if (!text || !table) { fprintf(stderr, "out of memory\n"); return 1; }
    long total = 0;
    char word[64];
    for (long p = 0; p < passes; p++) {
        size_t wl = 0;
        for (size_t i = 0; i <= len; i++) {
            char c = i < len ? text[i] : ' ';
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            if ((c >= 'a' && c <= 'z') || (c == '\'' && wl > 0)) {
                if (wl < sizeof word) word[wl++] = c;
            } else if (wl > 0) {
                insert(word, wl, 1);
                total++;
                wl = 0;
            }
        }
    }
    entry *all = malloc(used * sizeof *all);
    size_t k = 0;
    for (size_t i = 0; i < cap; i++) if (table[i].word) all[k++] = table[i];
    qsort(all, k, sizeof *all, by_count);
    printf("distinct %zu total %ld\n", k, total);
    for (size_t i = 0; i < k && i < 10; i++) printf("%ld %s\n", all[i].count, all[i].word);
    return 0;
}
