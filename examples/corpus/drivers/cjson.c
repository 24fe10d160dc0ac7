/* Driver for cJSON (Debian source package cjson, unmodified): parses the
 * JSON document on stdin ROUNDS times, printing it back formatted and
 * minified, and prints the length of each and a checksum of the last. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cJSON.h"

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    uint32_t sum = 0;
    size_t pretty = 0, small = 0;
    for (int r = 0; r < rounds; r++) {
        cJSON *doc = cJSON_Parse(buf);
        if (!doc) { fprintf(stderr, "parse error near %.20s\n", cJSON_GetErrorPtr()); return 1; }
        char *p = cJSON_Print(doc), *s = cJSON_PrintUnformatted(doc);
        pretty = strlen(p);
        small = strlen(s);
        sum = 0;
        for (char *c = s; *c; c++) sum = sum * 31u + (unsigned char)*c;
        free(p); free(s);
        cJSON_Delete(doc);
    }
    printf("%zu %zu %u\n", pretty, small, (unsigned)sum);
    return 0;
}
