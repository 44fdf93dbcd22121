/* Commands: freeing, and the binary codec used for Raft log entries.
 *
 * Entry layout (little-endian): u32 magic "BRKC", u8 version, i64
 * timestamp, u32 count, then per command: u8 type, u32 body length, body.
 * Strings are u16 length + bytes; blobs u32 length + bytes (0xFFFFFFFF =
 * absent). Every length is checked against what is left. */
#include "broker/cmd.h"

#include <stdlib.h>
#include <string.h>

#include "broker/buf.h"

#define CMD_MAGIC 0x434B5242u /* "BRKC" */
#define CMD_VERSION 2 /* written; 1 is still read */
#define CMD_ABSENT 0xFFFFFFFFu
/* Smallest encoded command: type, body length, and a body of three empty
 * strings, the fixed numbers and two zero counts. */
#define CMD_MIN_BODY (3 * 2 + 4 + 8 + 4 + 4 + 8 + 8 + 4 + 4)
#define CMD_MIN_SIZE (1 + 4 + CMD_MIN_BODY)

void cmd_clear(struct cmd *c)
{
    size_t i;

    for (i = 0; i < c->n_records; i++) {
        free(c->records[i].key);
        free(c->records[i].value);
        free(c->records[i].headers);
    }
    free(c->records);
    free(c->offsets);
    memset(c, 0, sizeof(*c));
}

void cmd_result_clear(struct cmd_result *r)
{
    free(r->produced);
    free(r->claimed);
    memset(r, 0, sizeof(*r));
}

/* ==== writer ==== */

static void put_u8(struct buf *b, uint8_t v)
{
    buf_append(b, &v, 1);
}

static void put_u16(struct buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_append(b, x, 2);
}

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                    (uint8_t)(v >> 24)};
    buf_append(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

/* @s is one of struct cmd's NUL-terminated fixed fields (< 0xFFFF). */
static void put_str(struct buf *b, const char *s)
{
    size_t len = strlen(s);

    if (len > 0xFFFF)
        len = 0xFFFF;
    put_u16(b, (uint16_t)len);
    buf_append(b, s, len);
}

static void put_blob(struct buf *b, const uint8_t *p, uint32_t len)
{
    if (p == NULL) {
        put_u32(b, CMD_ABSENT);
        return;
    }
    put_u32(b, len);
    buf_append(b, p, len);
}

static void put_body(struct buf *b, const struct cmd *c)
{
    size_t i;

    put_str(b, c->topic);
    put_str(b, c->group);
    put_u32(b, c->partitions);
    put_u64(b, (uint64_t)c->retention_ms);
    put_u32(b, c->limit);
    put_u32(b, c->partition);
    put_u64(b, c->before);
    put_u64(b, c->node_id);
    put_str(b, c->address);
    put_u32(b, (uint32_t)c->n_records);
    for (i = 0; i < c->n_records; i++) {
        const struct cmd_record *r = &c->records[i];
        put_u32(b, r->partition);
        put_u8(b, r->flags);
        put_blob(b, r->key, r->key_len);
        put_blob(b, r->value, r->value_len);
        put_blob(b, r->headers, r->headers_len);
    }
    put_u32(b, (uint32_t)c->n_offsets);
    for (i = 0; i < c->n_offsets; i++) {
        put_str(b, c->offsets[i].topic);
        put_u32(b, c->offsets[i].partition);
        put_u64(b, c->offsets[i].offset);
    }
    put_str(b, c->idem_key); /* version 2 */
    put_u64(b, c->idem_fp);
}

int cmd_encode_entry(int64_t timestamp, struct cmd *const *cmds, size_t n,
                     uint8_t **out, size_t *len)
{
    struct buf b;
    size_t i, at;

    buf_init(&b);
    put_u32(&b, CMD_MAGIC);
    put_u8(&b, CMD_VERSION);
    put_u64(&b, (uint64_t)timestamp);
    put_u32(&b, (uint32_t)n);
    for (i = 0; i < n; i++) {
        put_u8(&b, (uint8_t)cmds[i]->type);
        at = b.len;
        put_u32(&b, 0); /* body length, patched below */
        put_body(&b, cmds[i]);
        if (!b.oom) {
            uint32_t body = (uint32_t)(b.len - at - 4);
            uint8_t *p = (uint8_t *)b.data + at;
            p[0] = (uint8_t)body;
            p[1] = (uint8_t)(body >> 8);
            p[2] = (uint8_t)(body >> 16);
            p[3] = (uint8_t)(body >> 24);
        }
    }
    /* c-raft requires entry lengths in multiples of 8 (an assert that
     * release builds compile out, corrupting its log otherwise). */
    while (b.len % 8 != 0 && !b.oom)
        put_u8(&b, 0);
    if (b.oom) {
        buf_free(&b);
        return BRK_ENOMEM;
    }
    *out = (uint8_t *)buf_steal(&b, len);
    return 0;
}

/* ==== reader ==== */

struct reader {
    const uint8_t *p;
    size_t left;
    bool bad;
};

static const uint8_t *take(struct reader *r, size_t n)
{
    const uint8_t *p = r->p;

    if (r->bad || n > r->left) {
        r->bad = true;
        return NULL;
    }
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t get_le(struct reader *r, size_t n)
{
    const uint8_t *p = take(r, n);
    uint64_t v = 0;
    size_t i;

    if (p == NULL)
        return 0;
    for (i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void get_str(struct reader *r, char *dst, size_t cap)
{
    size_t len = (size_t)get_le(r, 2);
    const uint8_t *p = take(r, len);

    if (p == NULL || len >= cap) {
        r->bad = true;
        dst[0] = '\0';
        return;
    }
    memcpy(dst, p, len);
    dst[len] = '\0';
}

static uint8_t *get_blob(struct reader *r, uint32_t *len)
{
    uint32_t n = (uint32_t)get_le(r, 4);
    const uint8_t *p;
    uint8_t *copy;

    *len = 0;
    if (r->bad || n == CMD_ABSENT)
        return NULL;
    p = take(r, n);
    copy = p ? malloc(n ? n : 1) : NULL;
    if (copy == NULL) {
        r->bad = true;
        return NULL;
    }
    memcpy(copy, p, n);
    *len = n;
    return copy;
}

static void get_records(struct reader *r, struct cmd *c)
{
    size_t n = (size_t)get_le(r, 4), i;

    /* Each record takes at least 17 bytes: a count that cannot fit in
     * what is left is corrupt, not an allocation to attempt. */
    if (r->bad || n > r->left / 17) {
        r->bad = true;
        return;
    }
    c->records = calloc(n ? n : 1, sizeof(*c->records));
    if (c->records == NULL) {
        r->bad = true;
        return;
    }
    c->n_records = n;
    for (i = 0; i < n && !r->bad; i++) {
        struct cmd_record *rec = &c->records[i];
        rec->partition = (uint32_t)get_le(r, 4);
        rec->flags = (uint8_t)get_le(r, 1);
        rec->key = get_blob(r, &rec->key_len);
        rec->value = get_blob(r, &rec->value_len);
        rec->headers = get_blob(r, &rec->headers_len);
        if (rec->value == NULL)
            r->bad = true;
    }
}

static void get_offsets(struct reader *r, struct cmd *c)
{
    size_t n = (size_t)get_le(r, 4), i;

    if (r->bad || n > r->left / 14) {
        r->bad = true;
        return;
    }
    c->offsets = calloc(n ? n : 1, sizeof(*c->offsets));
    if (c->offsets == NULL) {
        r->bad = true;
        return;
    }
    c->n_offsets = n;
    for (i = 0; i < n && !r->bad; i++) {
        get_str(r, c->offsets[i].topic, sizeof(c->offsets[i].topic));
        c->offsets[i].partition = (uint32_t)get_le(r, 4);
        c->offsets[i].offset = get_le(r, 8);
    }
}

static int get_cmd(struct reader *r, struct cmd *c, unsigned version)
{
    uint8_t type = (uint8_t)get_le(r, 1);
    size_t body = (size_t)get_le(r, 4);
    struct reader sub;

    sub.p = take(r, body);
    sub.left = body;
    sub.bad = sub.p == NULL;
    if (type < CMD_CREATE_TOPIC || type > CMD_SET_MEMBER)
        sub.bad = true;
    c->type = (enum cmd_type)type;
    get_str(&sub, c->topic, sizeof(c->topic));
    get_str(&sub, c->group, sizeof(c->group));
    c->partitions = (uint32_t)get_le(&sub, 4);
    c->retention_ms = (int64_t)get_le(&sub, 8);
    c->limit = (uint32_t)get_le(&sub, 4);
    c->partition = (uint32_t)get_le(&sub, 4);
    c->before = get_le(&sub, 8);
    c->node_id = get_le(&sub, 8);
    get_str(&sub, c->address, sizeof(c->address));
    get_records(&sub, c);
    get_offsets(&sub, c);
    if (version >= 2) {
        get_str(&sub, c->idem_key, sizeof(c->idem_key));
        c->idem_fp = get_le(&sub, 8);
    }
    /* Bytes left over in the body mean the length or a count is wrong:
     * refuse them rather than decode a different command. */
    return sub.bad || r->bad || sub.left != 0 ? BRK_ECORRUPT : 0;
}

/* Entries are padded to 8 bytes with zeros (see cmd_encode_entry). */
static bool only_padding(const uint8_t *p, size_t left)
{
    size_t i;

    if (left >= 8)
        return false;
    for (i = 0; i < left; i++)
        if (p[i] != 0)
            return false;
    return true;
}

int cmd_decode_entry(const uint8_t *buf, size_t len, int64_t *timestamp,
                     struct cmd **cmds, size_t *n)
{
    struct reader r = {buf, len, false};
    size_t count, i;
    struct cmd *a;
    int64_t ts;
    unsigned version;

    if (get_le(&r, 4) != CMD_MAGIC)
        return BRK_ECORRUPT;
    version = (unsigned)get_le(&r, 1);
    if (version < 1 || version > CMD_VERSION)
        return BRK_ECORRUPT;
    ts = (int64_t)get_le(&r, 8);
    count = (size_t)get_le(&r, 4);
    /* Bound the count by what the bytes can hold before allocating
     * count * sizeof(struct cmd), which is far larger than CMD_MIN_SIZE. */
    if (r.bad || count > r.left / CMD_MIN_SIZE)
        return BRK_ECORRUPT;
    a = calloc(count ? count : 1, sizeof(*a));
    if (a == NULL)
        return BRK_ENOMEM;
    for (i = 0; i < count; i++)
        if (get_cmd(&r, &a[i], version) != 0)
            break;
    if (i < count || !only_padding(r.p, r.left)) {
        for (size_t j = 0; j <= i && j < count; j++)
            cmd_clear(&a[j]);
        free(a);
        return BRK_ECORRUPT;
    }
    *timestamp = ts; /* out-parameters are written on success only */
    *cmds = a;
    *n = count;
    return 0;
}
