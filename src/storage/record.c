/* Record encoding and bounds-checked decoding (layout in record.h). */
#include "broker/record.h"

#include <string.h>

#include "broker/crc32c.h"
#include "broker/err.h"
#include "segment.h"

/* Offsets of the header fields, see the layout in record.h. */
#define REC_OFF_LENGTH 0
#define REC_OFF_CRC 4
#define REC_OFF_MAGIC 8
#define REC_OFF_FLAGS 9
#define REC_OFF_OFFSET 10
#define REC_OFF_TIMESTAMP 18
#define REC_OFF_CMD_INDEX 26
#define REC_OFF_KEY_LEN 34

/* The CRC covers everything after the crc field. */
#define REC_CRC_START 8

/* Smallest record: the header plus the value and headers length fields. */
#define REC_MIN_SIZE (RECORD_HEADER_SIZE + 4 + 4)

static uint32_t key_field(const struct record *r)
{
    return r->key == NULL ? RECORD_NO_KEY : r->key_len;
}

size_t record_encoded_size(const struct record *r)
{
    uint64_t n = REC_MIN_SIZE;

    /* Three u32 lengths cannot overflow a u64 sum; a size_t narrower than
     * 64 bits could, so the result saturates instead of wrapping. */
    if (r->key != NULL) {
        n += r->key_len;
    }
    n += r->value_len;
    n += r->headers_len;
    return n > SIZE_MAX ? SIZE_MAX : (size_t)n;
}

static uint8_t *put_bytes(uint8_t *p, const uint8_t *src, uint32_t len)
{
    le32_put(p, len);
    if (len > 0) {
        memcpy(p + 4, src, len);
    }
    return p + 4 + len;
}

size_t record_encode(const struct record *r, uint8_t *buf, size_t cap)
{
    size_t size = record_encoded_size(r);
    uint8_t *p;

    /* Refuse what record_decode would refuse; this also keeps the u32
     * length field (bytes after itself) from overflowing. */
    if (size > cap || size > RECORD_MAX_SIZE) {
        return 0;
    }
    le32_put(buf + REC_OFF_LENGTH, (uint32_t)(size - 4));
    buf[REC_OFF_MAGIC] = RECORD_MAGIC;
    buf[REC_OFF_FLAGS] = r->flags;
    le64_put(buf + REC_OFF_OFFSET, r->offset);
    le64_put(buf + REC_OFF_TIMESTAMP, (uint64_t)r->timestamp);
    le64_put(buf + REC_OFF_CMD_INDEX, r->cmd_index);
    le32_put(buf + REC_OFF_KEY_LEN, key_field(r));
    p = buf + RECORD_HEADER_SIZE;
    if (r->key != NULL && r->key_len > 0) {
        memcpy(p, r->key, r->key_len);
        p += r->key_len;
    }
    p = put_bytes(p, r->value, r->value_len);
    put_bytes(p, r->headers, r->headers_len);
    le32_put(buf + REC_OFF_CRC,
             crc32c(0, buf + REC_CRC_START, size - REC_CRC_START));
    return size;
}

/* Take a u32-prefixed field at *@pos of @body (@end bytes long). Returns
 * false when the field does not fit. */
static bool take_field(const uint8_t *body, size_t end, size_t *pos,
                       const uint8_t **out, uint32_t *len)
{
    uint32_t n;

    if (end - *pos < 4) {
        return false;
    }
    n = le32_get(body + *pos);
    *pos += 4;
    if (end - *pos < n) {
        return false;
    }
    *out = body + *pos;
    *len = n;
    *pos += n;
    return true;
}

/* Decode the fields of a record whose length and CRC were already checked
 * and that is @size bytes long. */
static int decode_fields(const uint8_t *buf, size_t size, struct record *out)
{
    size_t pos = RECORD_HEADER_SIZE;
    uint32_t key_len = le32_get(buf + REC_OFF_KEY_LEN);

    if (buf[REC_OFF_MAGIC] != RECORD_MAGIC) {
        return BRK_ECORRUPT;
    }
    out->offset = le64_get(buf + REC_OFF_OFFSET);
    out->timestamp = (int64_t)le64_get(buf + REC_OFF_TIMESTAMP);
    out->cmd_index = le64_get(buf + REC_OFF_CMD_INDEX);
    out->flags = buf[REC_OFF_FLAGS];
    out->key = NULL;
    out->key_len = 0;
    if (key_len != RECORD_NO_KEY) {
        if (size - pos < key_len) {
            return BRK_ECORRUPT;
        }
        out->key = buf + pos;
        out->key_len = key_len;
        pos += key_len;
    }
    if (!take_field(buf, size, &pos, &out->value, &out->value_len) ||
        !take_field(buf, size, &pos, &out->headers, &out->headers_len)) {
        return BRK_ECORRUPT;
    }
    if (out->headers_len == 0) {
        out->headers = NULL;
    }
    /* Trailing bytes mean the lengths disagree with each other. */
    return pos == size ? 0 : BRK_ECORRUPT;
}

int record_decode(const uint8_t *buf, size_t len, struct record *out,
                  size_t *consumed)
{
    uint64_t size;
    struct record r;
    int rc;

    *consumed = 0;
    if (len < 4) {
        return BRK_ESHORT;
    }
    /* Check the claimed length before anyone trusts it: a garbage length
     * must never make the caller read or allocate megabytes. */
    size = (uint64_t)le32_get(buf + REC_OFF_LENGTH) + 4;
    if (size < REC_MIN_SIZE || size > RECORD_MAX_SIZE) {
        return BRK_ECORRUPT;
    }
    if (len < size) {
        *consumed = (size_t)size;
        return BRK_ESHORT;
    }
    if (le32_get(buf + REC_OFF_CRC) !=
        crc32c(0, buf + REC_CRC_START, (size_t)size - REC_CRC_START)) {
        return BRK_ECORRUPT;
    }
    rc = decode_fields(buf, (size_t)size, &r);
    if (rc != 0) {
        return rc;
    }
    *out = r;
    *consumed = (size_t)size;
    return 0;
}
