/* A confidential key-value store with per-key owners.
 *   command "set KEY VALUE"  the first setter of KEY owns it; others are refused
 *   command "del KEY"        the owner only
 *   query   "get KEY"        the owner only: the value
 *   query   "owner KEY"      anyone: whether KEY is taken ("taken"/"free")
 * Keys and values are hidden from everyone else: the state lives only in
 * the executing enclave and in checkpoints sealed under the contract key. */
#include "proctor.h"

#define MAX_MSG 4096

static char msg[MAX_MSG + 1];
static char k[MAX_MSG + 8];

/* "v/KEY" holds the value, "o/KEY" the owner's 20-byte account. */
static int32_t make_key(char tag, const char *key, int32_t n) {
    k[0] = tag; k[1] = '/';
    for (int32_t i = 0; i < n; i++) k[2 + i] = key[i];
    return n + 2;
}

static int owned_by_caller(const char *key, int32_t n, int *exists) {
    unsigned char me[20], owner[20];
    caller(me);
    int32_t kl = make_key('o', key, n);
    *exists = get(k, kl, owner, 20) == 20;
    if (!*exists) return 0;
    for (int i = 0; i < 20; i++) if (me[i] != owner[i]) return 0;
    return 1;
}

/* Splits "VERB ARG [REST]": the argument's start and length, REST's start. */
static int32_t word(const char *s, int32_t from, int32_t len, int32_t *end) {
    int32_t i = from;
    while (i < len && s[i] != ' ') i++;
    *end = i;
    return i - from;
}

PROCTOR_EXPORT(handle) int32_t handle(void) {
    int32_t len = read_msg(msg, sizeof msg);
    if (len < 0) { reply_str("message too long"); return 1; }
    int32_t end, kn;
    if (len > 4 && msg[0] == 's' && msg[1] == 'e' && msg[2] == 't' && msg[3] == ' ') {
        kn = word(msg, 4, len, &end);
        if (kn == 0 || end >= len) { reply_str("usage: set KEY VALUE"); return 2; }
        int exists;
        if (!owned_by_caller(msg + 4, kn, &exists) && exists) { reply_str("not the owner"); return 3; }
        unsigned char me[20];
        caller(me);
        int32_t kl = make_key('o', msg + 4, kn);
        set(k, kl, me, 20);
        kl = make_key('v', msg + 4, kn);
        set(k, kl, msg + end + 1, len - end - 1);
        reply_str("ok");
        return 0;
    }
    if (len > 4 && msg[0] == 'd' && msg[1] == 'e' && msg[2] == 'l' && msg[3] == ' ') {
        kn = word(msg, 4, len, &end);
        int exists;
        if (!owned_by_caller(msg + 4, kn, &exists)) { reply_str(exists ? "not the owner" : "no such key"); return 3; }
        remove_key(k, make_key('o', msg + 4, kn));
        remove_key(k, make_key('v', msg + 4, kn));
        reply_str("deleted");
        return 0;
    }
    reply_str("unknown command (set KEY VALUE | del KEY)");
    return 4;
}

PROCTOR_EXPORT(query) int32_t query(void) {
    int32_t len = read_msg(msg, sizeof msg);
    if (len < 0) { reply_str("message too long"); return 1; }
    int32_t end, kn, exists;
    if (len > 4 && msg[0] == 'g' && msg[1] == 'e' && msg[2] == 't' && msg[3] == ' ') {
        kn = word(msg, 4, len, &end);
        int ex;
        if (!owned_by_caller(msg + 4, kn, &ex)) { reply_str(ex ? "not the owner" : "no such key"); return 3; }
        static char v[MAX_MSG];
        int32_t vl = get(k, make_key('v', msg + 4, kn), v, sizeof v);
        reply(v, vl < (int32_t)sizeof v ? vl : (int32_t)sizeof v);
        return 0;
    }
    if (len > 6 && msg[0] == 'o' && msg[1] == 'w' && msg[2] == 'n' && msg[3] == 'e' && msg[4] == 'r' && msg[5] == ' ') {
        kn = word(msg, 6, len, &end);
        exists = get(k, make_key('o', msg + 6, kn), 0, 0) >= 0;
        reply_str(exists ? "taken" : "free");
        return 0;
    }
    reply_str("unknown query (get KEY | owner KEY)");
    return 4;
}
