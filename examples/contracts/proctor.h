/* The proctor contract ABI (docs/contracts.md): imports from module "proctor". */
#ifndef PROCTOR_H
#define PROCTOR_H
#include <stdint.h>

#define PROCTOR_IMPORT(n) __attribute__((import_module("proctor"), import_name(#n)))
#define PROCTOR_EXPORT(n) __attribute__((export_name(#n)))

/* The command's or query's bytes. */
PROCTOR_IMPORT(msg_len) int32_t msg_len(void);
PROCTOR_IMPORT(msg_read) void msg_read(void *ptr);
/* The 20-byte account of the sender. */
PROCTOR_IMPORT(caller) void caller(void *ptr);
/* The value's length (at most cap bytes copied), or -1 when absent. */
PROCTOR_IMPORT(get) int32_t get(const void *key, int32_t key_len, void *val, int32_t cap);
PROCTOR_IMPORT(set) void set(const void *key, int32_t key_len, const void *val, int32_t val_len);
PROCTOR_IMPORT(remove) void remove_key(const void *key, int32_t key_len);
/* Appends to the reply sealed to the sender. */
PROCTOR_IMPORT(reply) void reply(const void *ptr, int32_t len);
/* The block height of the command, or of the state a query reads. */
PROCTOR_IMPORT(height) int64_t height(void);
/* An egress message: the first 8 bytes (little-endian) name the target
 * contract; 0 means the chain (a public event). */
PROCTOR_IMPORT(emit) void emit(const void *ptr, int32_t len);

static inline int32_t str_len(const char *s) { int32_t n = 0; while (s[n]) n++; return n; }
static inline void reply_str(const char *s) { reply(s, str_len(s)); }

/* Reads the message into buf (at most cap bytes, NUL-terminated); its
 * length, or -1 if it does not fit. */
static inline int32_t read_msg(char *buf, int32_t cap) {
    int32_t n = msg_len();
    if (n >= cap) return -1;
    msg_read(buf);
    buf[n] = 0;
    return n;
}
#endif
