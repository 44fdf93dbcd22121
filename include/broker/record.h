/* One message as stored in a segment file: encoding, decoding, CRC check.
 *
 * On-disk layout, little-endian, RECORD_HEADER_SIZE bytes of header:
 *   0  u32 length      bytes that follow this field (record = 4 + length)
 *   4  u32 crc         CRC32C of bytes [8, 4 + length)
 *   8  u8  magic       RECORD_MAGIC
 *   9  u8  flags       RECORD_F_*
 *  10  u64 offset
 *  18  i64 timestamp   milliseconds since the epoch
 *  26  u64 cmd_index   the command that wrote it (idempotent replay)
 *  34  u32 key_len     RECORD_NO_KEY when there is no key
 *      key bytes
 *      u32 value_len, value bytes
 *      u32 headers_len, headers bytes (a JSON object's text, or empty)
 */
#ifndef BROKER_RECORD_H
#define BROKER_RECORD_H
#include <stddef.h>
#include <stdint.h>

#define RECORD_MAGIC 1
#define RECORD_HEADER_SIZE 38       /* up to and including key_len */
#define RECORD_NO_KEY 0xFFFFFFFFu
#define RECORD_MAX_SIZE (64u << 20) /* sanity bound when decoding */

#define RECORD_F_JSON 0x01 /* value is JSON text, returned as JSON */
/* else the value is raw bytes: returned as a string or base64 */

struct record {
    uint64_t offset;
    int64_t timestamp;
    uint64_t cmd_index;
    uint8_t flags;
    const uint8_t *key;     /* borrowed; NULL when there is no key */
    uint32_t key_len;
    const uint8_t *value;   /* borrowed */
    uint32_t value_len;
    const uint8_t *headers; /* borrowed JSON object text; may be NULL */
    uint32_t headers_len;
};

/* Bytes record_encode will write for @r. */
size_t record_encoded_size(const struct record *r);

/* Write @r into @buf. Returns the bytes written, or 0 when @cap is too
 * small (nothing meaningful written). */
size_t record_encode(const struct record *r, uint8_t *buf, size_t cap);

/* Decode the record at the start of @buf (@len bytes available).
 * Returns 0 with @out pointing into @buf and @consumed set; BRK_ESHORT when
 * @len holds only part of the record (@consumed then set to the full size
 * needed if the length field was readable, else 0); BRK_ECORRUPT when the
 * length is out of bounds, the magic, CRC or inner lengths are wrong. */
int record_decode(const uint8_t *buf, size_t len, struct record *out,
                  size_t *consumed);

#endif
