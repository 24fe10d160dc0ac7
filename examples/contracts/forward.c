/* Forwards messages to other contracts (egress, docs/contracts.md).
 *   command "to ID MSG"   sends MSG to contract ID as a command from this
 *                         contract's address; replies "forwarded"
 *   query   "sent"        how many messages it forwarded */
#include "proctor.h"

static char msg[4096 + 16];
static char out[8 + 4096];

PROCTOR_EXPORT(handle) int32_t handle(void) {
    int32_t len = read_msg(msg, sizeof msg);
    if (len < 4 || msg[0] != 't' || msg[1] != 'o' || msg[2] != ' ') {
        reply_str("usage: to ID MSG");
        return 1;
    }
    uint64_t id = 0;
    int32_t i = 3;
    for (; i < len && msg[i] >= '0' && msg[i] <= '9'; i++) id = id * 10 + (uint64_t)(msg[i] - '0');
    if (id == 0 || i >= len || msg[i] != ' ') {
        reply_str("usage: to ID MSG");
        return 1;
    }
    i++;
    for (int j = 0; j < 8; j++) out[j] = (char)(id >> (8 * j));
    int32_t n = len - i;
    for (int32_t j = 0; j < n; j++) out[8 + j] = msg[i + j];
    emit(out, 8 + n);
    uint64_t sent = 0;
    get("sent", 4, &sent, 8);
    sent++;
    set("sent", 4, &sent, 8);
    reply_str("forwarded");
    return 0;
}

PROCTOR_EXPORT(query) int32_t query(void) {
    uint64_t sent = 0;
    get("sent", 4, &sent, 8);
    char buf[24];
    int32_t n = 0;
    char tmp[24];
    do { tmp[n++] = (char)('0' + sent % 10); sent /= 10; } while (sent);
    for (int32_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    reply(buf, n);
    return 0;
}
