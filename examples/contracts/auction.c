/* A sealed-bid, second-price (Vickrey) auction. Bids stay hidden until the
 * close height; then only the winner and the price are published.
 *   init    "close HEIGHT"  bidding is open below HEIGHT
 *   command "bid AMOUNT"    before the close; a later bid replaces yours
 *   command "close"         at or after the close: picks the highest bid
 *                           (ties: the earlier bidder); the winner pays the
 *                           second-highest bid (its own if alone); emits
 *                           "winner HEX price N" to the chain
 *   query   "mybid"         your own bid
 *   query   "result"        after the close: "winner HEX price N"; before,
 *                           refused */
#include "proctor.h"

static char msg[256];

static int64_t get_u64(const char *key, int64_t dflt) {
    uint64_t v;
    return get(key, str_len(key), &v, 8) == 8 ? (int64_t)v : dflt;
}
static void set_u64(const char *key, uint64_t v) { set(key, str_len(key), &v, 8); }

static int parse_u64(const char *s, uint64_t *out) {
    uint64_t v = 0;
    if (!*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        if (v > (UINT64_MAX - 9) / 10) return 0;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 1;
}

static int32_t fmt_u64(char *out, uint64_t v) {
    char tmp[24]; int32_t n = 0, i = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) out[i++] = tmp[--n];
    return i;
}

static int starts(const char *s, const char *p) {
    while (*p) if (*s++ != *p++) return 0;
    return 1;
}

/* "b/" + account: that bidder's bid; "i/" + index: the index-th bidder. */
static char key[24];
static int32_t bid_key(const unsigned char *who) {
    key[0] = 'b'; key[1] = '/';
    for (int i = 0; i < 20; i++) key[2 + i] = (char)who[i];
    return 22;
}
static int32_t index_key(uint64_t i) {
    key[0] = 'i'; key[1] = '/';
    for (int j = 0; j < 8; j++) key[2 + j] = (char)(i >> (8 * j));
    return 10;
}

/* "winner HEX price N" into out; its length. */
static int32_t result(char *out) {
    unsigned char w[20];
    if (get("winner", 6, w, 20) != 20) return 0;
    const char *hex = "0123456789abcdef";
    int32_t n = 0;
    const char *p = "winner ";
    while (*p) out[n++] = *p++;
    for (int i = 0; i < 20; i++) { out[n++] = hex[w[i] >> 4]; out[n++] = hex[w[i] & 15]; }
    p = " price ";
    while (*p) out[n++] = *p++;
    n += fmt_u64(out + n, (uint64_t)get_u64("price", 0));
    return n;
}

PROCTOR_EXPORT(init) int32_t init(void) {
    uint64_t close;
    if (read_msg(msg, sizeof msg) < 0 || !starts(msg, "close ") || !parse_u64(msg + 6, &close)) {
        reply_str("init: close HEIGHT");
        return 1;
    }
    set_u64("close", close);
    set_u64("bidders", 0);
    return 0;
}

PROCTOR_EXPORT(handle) int32_t handle(void) {
    if (read_msg(msg, sizeof msg) < 0) { reply_str("message too long"); return 1; }
    int64_t close = get_u64("close", 0);
    unsigned char me[20];
    caller(me);
    if (starts(msg, "bid ")) {
        uint64_t amount;
        if (!parse_u64(msg + 4, &amount)) { reply_str("usage: bid AMOUNT"); return 2; }
        if (height() >= close) { reply_str("bidding is closed"); return 3; }
        int32_t kl = bid_key(me);
        uint64_t old;
        if (get(key, kl, &old, 8) != 8) {
            uint64_t n = (uint64_t)get_u64("bidders", 0);
            int32_t il = index_key(n);
            set(key, il, me, 20);
            set_u64("bidders", n + 1);
            kl = bid_key(me);
        }
        set(key, kl, &amount, 8);
        reply_str("bid recorded");
        return 0;
    }
    if (starts(msg, "close") && msg[5] == 0) {
        if (height() < close) { reply_str("bidding is still open"); return 3; }
        if (get("winner", 6, 0, 0) >= 0) { reply_str("already closed"); return 4; }
        uint64_t n = (uint64_t)get_u64("bidders", 0);
        if (n == 0) { reply_str("no bids"); return 5; }
        unsigned char best[20], who[20];
        uint64_t top = 0, second = 0;
        int have = 0;
        for (uint64_t i = 0; i < n; i++) {
            get(key, index_key(i), who, 20);
            uint64_t b = 0;
            get(key, bid_key(who), &b, 8);
            if (!have || b > top) {
                if (have) second = top;
                top = b;
                for (int j = 0; j < 20; j++) best[j] = who[j];
                have = 1;
            } else if (b > second) {
                second = b;
            }
        }
        set("winner", 6, best, 20);
        set_u64("price", n == 1 ? top : second);
        static char out[8 + 128];
        for (int j = 0; j < 8; j++) out[j] = 0; /* target 0: the chain */
        int32_t len = result(out + 8);
        emit(out, 8 + len);
        reply(out + 8, len);
        return 0;
    }
    reply_str("unknown command (bid AMOUNT | close)");
    return 6;
}

PROCTOR_EXPORT(query) int32_t query(void) {
    if (read_msg(msg, sizeof msg) < 0) { reply_str("message too long"); return 1; }
    if (starts(msg, "mybid") && msg[5] == 0) {
        unsigned char me[20];
        caller(me);
        uint64_t b;
        if (get(key, bid_key(me), &b, 8) != 8) { reply_str("no bid"); return 2; }
        char out[24];
        reply(out, fmt_u64(out, b));
        return 0;
    }
    if (starts(msg, "result") && msg[6] == 0) {
        static char out[128];
        int32_t n = result(out);
        if (n == 0) { reply_str("the auction has not closed"); return 3; }
        reply(out, n);
        return 0;
    }
    reply_str("unknown query (mybid | result)");
    return 4;
}
