/* Unit tests for record encoding and decoding (src/storage/record.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/crc32c.h"
#include "broker/err.h"
#include "broker/record.h"

static struct record make_record(const char *key, const char *value,
                                 const char *headers)
{
    struct record r;

    memset(&r, 0, sizeof(r));
    r.offset = 42;
    r.timestamp = 1700000000123;
    r.cmd_index = 7;
    r.flags = RECORD_F_JSON;
    r.key = (const uint8_t *)key;
    r.key_len = key != NULL ? (uint32_t)strlen(key) : 0;
    r.value = (const uint8_t *)value;
    r.value_len = (uint32_t)strlen(value);
    r.headers = (const uint8_t *)headers;
    r.headers_len = headers != NULL ? (uint32_t)strlen(headers) : 0;
    return r;
}

/* Encode @in, decode it back and check every field. */
static void round_trip(const struct record *in)
{
    uint8_t buf[256];
    struct record out;
    size_t size = record_encoded_size(in), used;

    assert_true(size <= sizeof(buf));
    assert_int_equal(record_encode(in, buf, sizeof(buf)), size);
    assert_int_equal(record_decode(buf, size, &out, &used), 0);
    assert_int_equal(used, size);
    assert_int_equal(out.offset, in->offset);
    assert_int_equal(out.timestamp, in->timestamp);
    assert_int_equal(out.cmd_index, in->cmd_index);
    assert_int_equal(out.flags, in->flags);
    assert_int_equal(out.key == NULL, in->key == NULL);
    assert_int_equal(out.key_len, in->key_len);
    assert_memory_equal(out.key, in->key, in->key_len);
    assert_int_equal(out.value_len, in->value_len);
    assert_memory_equal(out.value, in->value, in->value_len);
    assert_int_equal(out.headers_len, in->headers_len);
    assert_memory_equal(out.headers, in->headers, in->headers_len);
}

/* A record with key, value and headers survives encode + decode. */
static void test_round_trip_full(void **state)
{
    struct record r = make_record("user-1", "{\"a\":1}", "{\"h\":\"v\"}");

    (void)state;
    round_trip(&r);
}

/* Without a key the key stays NULL (not an empty key). */
static void test_round_trip_no_key(void **state)
{
    struct record r = make_record(NULL, "hello", NULL);

    (void)state;
    round_trip(&r);
}

/* An empty key is kept distinct from no key. */
static void test_round_trip_empty_key(void **state)
{
    struct record r = make_record("", "v", NULL);
    uint8_t buf[128];
    struct record out;
    size_t used;

    (void)state;
    record_encode(&r, buf, sizeof(buf));
    assert_int_equal(record_decode(buf, sizeof(buf), &out, &used), 0);
    assert_non_null(out.key);
    assert_int_equal(out.key_len, 0);
}

/* An empty value and no headers encode to the minimum size. */
static void test_round_trip_empty_value(void **state)
{
    struct record r = make_record(NULL, "", NULL);

    (void)state;
    assert_int_equal(record_encoded_size(&r), RECORD_HEADER_SIZE + 8);
    round_trip(&r);
}

/* The header fields sit at the byte positions documented in record.h. */
static void test_layout(void **state)
{
    struct record r = make_record("k", "v", NULL);
    uint8_t buf[64];
    size_t size;

    (void)state;
    r.offset = 0x0102030405060708ull;
    size = record_encode(&r, buf, sizeof(buf));
    assert_int_equal(size, RECORD_HEADER_SIZE + 1 + 4 + 1 + 4);
    assert_int_equal(buf[0], size - 4); /* length, little-endian */
    assert_int_equal(buf[1], 0);
    assert_int_equal(buf[8], RECORD_MAGIC);
    assert_int_equal(buf[9], RECORD_F_JSON);
    assert_int_equal(buf[10], 0x08); /* offset, little-endian */
    assert_int_equal(buf[17], 0x01);
    assert_int_equal(buf[34], 1); /* key_len */
    assert_int_equal(buf[38], 'k');
}

/* A buffer too small for the record makes encode write nothing. */
static void test_encode_short_buffer(void **state)
{
    struct record r = make_record("key", "value", NULL);
    uint8_t buf[64];

    (void)state;
    assert_int_equal(record_encode(&r, buf, record_encoded_size(&r) - 1), 0);
}

/* Any flipped byte after the length field is caught (CRC or magic). */
static void test_crc_mismatch(void **state)
{
    struct record r = make_record("key", "value", "{}");
    uint8_t buf[128];
    struct record out;
    size_t size = record_encode(&r, buf, sizeof(buf)), used, i;

    (void)state;
    for (i = 4; i < size; i++) {
        buf[i] ^= 0x40;
        assert_int_equal(record_decode(buf, size, &out, &used), BRK_ECORRUPT);
        buf[i] ^= 0x40;
    }
    assert_int_equal(record_decode(buf, size, &out, &used), 0);
}

/* Every proper prefix decodes as BRK_ESHORT; past the length field the
 * full size is reported. */
static void test_truncated(void **state)
{
    struct record r = make_record("key", "value", NULL);
    uint8_t buf[128];
    struct record out;
    size_t size = record_encode(&r, buf, sizeof(buf)), used, len;

    (void)state;
    for (len = 0; len < size; len++) {
        assert_int_equal(record_decode(buf, len, &out, &used), BRK_ESHORT);
        assert_int_equal(used, len < 4 ? 0 : size);
    }
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* A length field beyond RECORD_MAX_SIZE or below the minimum is corrupt,
 * even with only a few bytes at hand. */
static void test_absurd_length(void **state)
{
    uint8_t buf[64] = {0};
    struct record out;
    size_t used = 99;

    (void)state;
    put32(buf, 0xFFFFFFF0u);
    assert_int_equal(record_decode(buf, 8, &out, &used), BRK_ECORRUPT);
    assert_int_equal(used, 0);
    put32(buf, RECORD_MAX_SIZE);
    assert_int_equal(record_decode(buf, 8, &out, &used), BRK_ECORRUPT);
    put32(buf, 3);
    assert_int_equal(record_decode(buf, sizeof(buf), &out, &used),
                     BRK_ECORRUPT);
}

/* Re-seal @buf (@size bytes) with a correct CRC after editing it. */
static void reseal(uint8_t *buf, size_t size)
{
    put32(buf + 4, crc32c(0, buf + 8, size - 8));
}

/* Inner lengths that disagree with the record length, or a wrong magic,
 * are corrupt even under a matching CRC. */
static void test_inner_fields_checked(void **state)
{
    struct record r = make_record("key", "value", NULL);
    uint8_t buf[128];
    struct record out;
    size_t size = record_encode(&r, buf, sizeof(buf)), used;
    size_t value_len_at = RECORD_HEADER_SIZE + 3;

    (void)state;
    put32(buf + value_len_at, 6); /* value runs into the headers length */
    reseal(buf, size);
    assert_int_equal(record_decode(buf, size, &out, &used), BRK_ECORRUPT);
    put32(buf + value_len_at, 4); /* one byte left over at the end */
    reseal(buf, size);
    assert_int_equal(record_decode(buf, size, &out, &used), BRK_ECORRUPT);
    put32(buf + value_len_at, 5);
    put32(buf + 34, 1000); /* key longer than the record */
    reseal(buf, size);
    assert_int_equal(record_decode(buf, size, &out, &used), BRK_ECORRUPT);
    put32(buf + 34, 3);
    buf[8] = RECORD_MAGIC + 1;
    reseal(buf, size);
    assert_int_equal(record_decode(buf, size, &out, &used), BRK_ECORRUPT);
    buf[8] = RECORD_MAGIC;
    reseal(buf, size);
    assert_int_equal(record_decode(buf, size, &out, &used), 0);
}

/* Two records back to back decode one after the other. */
static void test_consecutive(void **state)
{
    struct record a = make_record("a", "1", NULL);
    struct record b = make_record(NULL, "22", "{}");
    uint8_t buf[256];
    struct record out;
    size_t n = record_encode(&a, buf, sizeof(buf)), used;

    (void)state;
    b.offset = 43;
    n += record_encode(&b, buf + n, sizeof(buf) - n);
    assert_int_equal(record_decode(buf, n, &out, &used), 0);
    assert_int_equal(out.offset, 42);
    assert_int_equal(record_decode(buf + used, n - used, &out, &used), 0);
    assert_int_equal(out.offset, 43);
    assert_int_equal(out.value_len, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_full),
        cmocka_unit_test(test_round_trip_no_key),
        cmocka_unit_test(test_round_trip_empty_key),
        cmocka_unit_test(test_round_trip_empty_value),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_encode_short_buffer),
        cmocka_unit_test(test_crc_mismatch),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_absurd_length),
        cmocka_unit_test(test_inner_fields_checked),
        cmocka_unit_test(test_consecutive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
