/* Drives SQLite (the amalgamation built from Debian's sqlite3 source
 * package) for proctor's meter corpus: runs the SQL script on stdin against
 * an in-memory database and prints every result row, columns separated by
 * '|', as the sqlite3 shell does in its default list mode.
 *
 * Built with SQLITE_OS_OTHER: WASI has no file locking, so instead of the
 * unix VFS this file registers the smallest VFS an in-memory database needs
 * (no files: temporary storage stays in memory, SQLITE_TEMP_STORE=3). Its
 * randomness is a fixed sequence and its clock a fixed date, so runs are
 * reproducible (the script avoids random() and the current time anyway). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqlite3.h"

#ifdef SQLITE_OS_OTHER
static int no_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out) {
    (void)v; (void)name; (void)f; (void)flags; (void)out;
    return SQLITE_CANTOPEN;
}
static int no_delete(sqlite3_vfs *v, const char *name, int sync) {
    (void)v; (void)name; (void)sync;
    return SQLITE_IOERR_DELETE;
}
static int no_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
    (void)v; (void)name; (void)flags;
    *out = 0;
    return SQLITE_OK;
}
static int full_pathname(sqlite3_vfs *v, const char *name, int n, char *out) {
    (void)v;
    sqlite3_snprintf(n, out, "%s", name);
    return SQLITE_OK;
}
static int randomness(sqlite3_vfs *v, int n, char *out) {
    static unsigned x = 2463534242u;
    (void)v;
    for (int i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        out[i] = (char)x;
    }
    return n;
}
static int sleep_us(sqlite3_vfs *v, int us) {
    (void)v;
    return us;
}
/* 2026-01-01, as a Julian day. */
static int current_time(sqlite3_vfs *v, double *days) {
    (void)v;
    *days = 2461041.5;
    return SQLITE_OK;
}
static int last_error(sqlite3_vfs *v, int n, char *out) {
    (void)v; (void)n; (void)out;
    return 0;
}
static sqlite3_vfs memory_only = {
    1, 0, 512, 0, "memory-only", 0,
    no_open, no_delete, no_access, full_pathname,
    0, 0, 0, 0,
    randomness, sleep_us, current_time, last_error,
};
int sqlite3_os_init(void) {
    return sqlite3_vfs_register(&memory_only, 1);
}
int sqlite3_os_end(void) {
    return SQLITE_OK;
}
#endif

static int print_row(void *unused, int n, char **values, char **names) {
    (void)unused; (void)names;
    for (int i = 0; i < n; i++) {
        fputs(values[i] ? values[i] : "", stdout);
        putchar(i + 1 < n ? '|' : '\n');
    }
    return 0;
}

int main(void) {
    size_t len = 0, cap = 1 << 16;
    char *sql = malloc(cap);
    size_t got;
    while (sql && (got = fread(sql + len, 1, cap - len - 1, stdin)) > 0) {
        len += got;
        if (cap - len < 2) sql = realloc(sql, cap *= 2);
    }
    if (!sql) return 2;
    sql[len] = 0;
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
        fprintf(stderr, "open: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    char *err = 0;
    if (sqlite3_exec(db, sql, print_row, 0, &err) != SQLITE_OK) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    sqlite3_close(db);
    return 0;
}
