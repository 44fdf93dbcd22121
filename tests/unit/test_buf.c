/* Unit tests for the growable buffer, JSON escaping, base64 and UTF-8
 * validation (src/core/buf.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/buf.h"

static int setup(void **state)
{
    struct buf *b = malloc(sizeof(*b));

    if (b == NULL)
        return -1;
    buf_init(b);
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    struct buf *b = *state;

    buf_free(b);
    free(b);
    return 0;
}

/* Escape @len bytes of @s into a fresh buffer and compare with @want. */
static void check_json(const char *s, size_t len, const char *want)
{
    struct buf b;

    buf_init(&b);
    buf_append_json_string(&b, (const uint8_t *)s, len);
    assert_false(b.oom);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    assert_int_equal(b.data[b.len], '\0');
    buf_free(&b);
}

static void check_base64(const char *s, const char *want)
{
    struct buf b;

    buf_init(&b);
    buf_append_base64(&b, (const uint8_t *)s, strlen(s));
    assert_false(b.oom);
    if (want[0] == '\0') {
        assert_int_equal(b.len, 0);
    } else {
        assert_int_equal(b.len, strlen(want));
        assert_string_equal(b.data, want);
    }
    buf_free(&b);
}

#define UTF8(lit) ((const uint8_t *)(lit)), (sizeof(lit) - 1)

/* ==== buffer ==== */

/* A fresh buffer is empty, owns nothing and is not out of memory. */
static void test_init_empty(void **state)
{
    struct buf *b = *state;

    assert_null(b->data);
    assert_int_equal(b->len, 0);
    assert_int_equal(b->cap, 0);
    assert_false(b->oom);
}

/* append, puts and printf concatenate and keep the data NUL-terminated. */
static void test_append_puts_printf(void **state)
{
    struct buf *b = *state;

    buf_append(b, "ab", 2);
    buf_puts(b, "cd");
    buf_printf(b, "-%d-%s", 42, "x");
    assert_false(b->oom);
    assert_int_equal(b->len, 9);
    assert_string_equal(b->data, "abcd-42-x");
    assert_true(b->cap > b->len);
}

/* Appending zero bytes keeps the contents and the length unchanged. */
static void test_append_nothing(void **state)
{
    struct buf *b = *state;

    buf_puts(b, "x");
    buf_append(b, "y", 0);
    buf_puts(b, "");
    assert_int_equal(b->len, 1);
    assert_string_equal(b->data, "x");
}

/* Many small appends grow the buffer and keep every byte in order. */
static void test_growth_many_appends(void **state)
{
    struct buf *b = *state;
    size_t i, n = 100000;

    for (i = 0; i < n; i++) {
        char c = (char)('a' + i % 26);
        buf_append(b, &c, 1);
    }
    assert_false(b->oom);
    assert_int_equal(b->len, n);
    assert_true(b->cap > n);
    for (i = 0; i < n; i++)
        assert_int_equal(b->data[i], 'a' + i % 26);
    assert_int_equal(b->data[n], '\0');
}

/* A printf longer than the initial capacity is written whole. */
static void test_printf_large(void **state)
{
    struct buf *b = *state;
    char big[5000];

    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_puts(b, "<");
    buf_printf(b, "%s>%u", big, 7u);
    assert_int_equal(b->len, 1 + 4999 + 2);
    assert_int_equal(b->data[0], '<');
    assert_int_equal(b->data[5000], '>');
    assert_string_equal(b->data + 5001, "7");
}

/* Large appends (bigger than a doubling step) are copied whole. */
static void test_growth_large_chunks(void **state)
{
    struct buf *b = *state;
    size_t chunk = 70000, i;
    uint8_t *data = malloc(chunk);

    assert_non_null(data);
    for (i = 0; i < chunk; i++)
        data[i] = (uint8_t)(i * 7);
    for (i = 0; i < 5; i++)
        buf_append(b, data, chunk);
    assert_int_equal(b->len, 5 * chunk);
    for (i = 0; i < 5; i++)
        assert_memory_equal(b->data + i * chunk, data, chunk);
    free(data);
}

/* steal hands the bytes over and leaves an empty, reusable buffer. */
static void test_steal(void **state)
{
    struct buf *b = *state;
    size_t len = 0;
    char *d;

    buf_puts(b, "hello");
    d = buf_steal(b, &len);
    assert_int_equal(len, 5);
    assert_string_equal(d, "hello");
    assert_null(b->data);
    assert_int_equal(b->len, 0);
    free(d);
    buf_puts(b, "again");
    assert_string_equal(b->data, "again");
}

/* ==== JSON strings ==== */

/* Plain ASCII and UTF-8 text is quoted as is. */
static void test_json_plain(void **state)
{
    (void)state;
    check_json("", 0, "\"\"");
    check_json("hello", 5, "\"hello\"");
    check_json("caf\xc3\xa9 \xe2\x82\xac", 9, "\"caf\xc3\xa9 \xe2\x82\xac\"");
    check_json("del\x7f", 4, "\"del\x7f\"");
}

/* Quotes and backslashes are escaped with a backslash. */
static void test_json_quotes_backslash(void **state)
{
    (void)state;
    check_json("a\"b", 3, "\"a\\\"b\"");
    check_json("\\", 1, "\"\\\\\"");
    check_json("\"\\\"", 3, "\"\\\"\\\\\\\"\"");
    check_json("C:\\dir\\", 7, "\"C:\\\\dir\\\\\"");
}

/* Newline, return and tab get short escapes; other control characters
 * (NUL included) become \u00XX. */
static void test_json_control_chars(void **state)
{
    (void)state;
    check_json("a\nb\rc\td", 7, "\"a\\nb\\rc\\td\"");
    check_json("\x00", 1, "\"\\u0000\"");
    check_json("\x01x\x1f", 3, "\"\\u0001x\\u001f\"");
    check_json("\b\f", 2, "\"\\u0008\\u000c\"");
    check_json("x\x10", 2, "\"x\\u0010\"");
}

/* Every byte below 0x20 is escaped and nothing at or above it except '"'
 * and '\'. */
static void test_json_every_byte(void **state)
{
    struct buf b;
    uint8_t c;
    char want[16];

    (void)state;
    for (c = 0; c < 0x80; c++) {
        buf_init(&b);
        buf_append_json_string(&b, &c, 1);
        if (c == '"')
            snprintf(want, sizeof(want), "\"\\\"\"");
        else if (c == '\\')
            snprintf(want, sizeof(want), "\"\\\\\"");
        else if (c == '\n')
            snprintf(want, sizeof(want), "\"\\n\"");
        else if (c == '\r')
            snprintf(want, sizeof(want), "\"\\r\"");
        else if (c == '\t')
            snprintf(want, sizeof(want), "\"\\t\"");
        else if (c < 0x20)
            snprintf(want, sizeof(want), "\"\\u%04x\"", c);
        else
            snprintf(want, sizeof(want), "\"%c\"", c);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(b.data, want, b.len);
        buf_free(&b);
    }
}

/* ==== base64 ==== */

/* The test vectors of RFC 4648 section 10. */
static void test_base64_rfc4648(void **state)
{
    (void)state;
    check_base64("", "");
    check_base64("f", "Zg==");
    check_base64("fo", "Zm8=");
    check_base64("foo", "Zm9v");
    check_base64("foob", "Zm9vYg==");
    check_base64("fooba", "Zm9vYmE=");
    check_base64("foobar", "Zm9vYmFy");
}

/* Binary bytes use the standard alphabet with '+' and '/'. */
static void test_base64_binary(void **state)
{
    static const uint8_t bin[] = {0x00, 0xff, 0xfe, 0xfb, 0xef, 0xbe};
    struct buf b;

    (void)state;
    buf_init(&b);
    buf_append_base64(&b, bin, sizeof(bin));
    assert_string_equal(b.data, "AP/+++++");
    buf_free(&b);
}

/* ==== UTF-8 ==== */

/* ASCII, 2-, 3- and 4-byte sequences up to U+10FFFF are valid. */
static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(utf8_valid(UTF8("")));
    assert_true(utf8_valid(UTF8("plain ascii")));
    assert_true(utf8_valid(UTF8("\xc2\x80")));         /* U+0080 */
    assert_true(utf8_valid(UTF8("\xc3\xa9")));         /* é */
    assert_true(utf8_valid(UTF8("\xdf\xbf")));         /* U+07FF */
    assert_true(utf8_valid(UTF8("\xe0\xa0\x80")));     /* U+0800 */
    assert_true(utf8_valid(UTF8("\xe2\x82\xac")));     /* € */
    assert_true(utf8_valid(UTF8("\xed\x9f\xbf")));     /* U+D7FF */
    assert_true(utf8_valid(UTF8("\xee\x80\x80")));     /* U+E000 */
    assert_true(utf8_valid(UTF8("\xef\xbf\xbf")));     /* U+FFFF */
    assert_true(utf8_valid(UTF8("\xf0\x90\x80\x80"))); /* U+10000 */
    assert_true(utf8_valid(UTF8("\xf0\x9f\x98\x80"))); /* 😀 */
    assert_true(utf8_valid(UTF8("\xf4\x8f\xbf\xbf"))); /* U+10FFFF */
    assert_true(utf8_valid(UTF8("a\xc3\xa9z\xe2\x82\xac\xf0\x9f\x98\x80")));
    assert_true(utf8_valid((const uint8_t *)"\0", 1)); /* NUL is valid */
}

/* Overlong encodings are refused. */
static void test_utf8_overlong(void **state)
{
    (void)state;
    assert_false(utf8_valid(UTF8("\xc0\x80")));         /* NUL */
    assert_false(utf8_valid(UTF8("\xc1\xbf")));         /* U+007F */
    assert_false(utf8_valid(UTF8("\xe0\x80\x80")));
    assert_false(utf8_valid(UTF8("\xe0\x9f\xbf")));     /* U+07FF */
    assert_false(utf8_valid(UTF8("\xf0\x80\x80\x80")));
    assert_false(utf8_valid(UTF8("\xf0\x8f\xbf\xbf"))); /* U+FFFF */
}

/* UTF-16 surrogates U+D800..U+DFFF are refused. */
static void test_utf8_surrogates(void **state)
{
    (void)state;
    assert_false(utf8_valid(UTF8("\xed\xa0\x80"))); /* U+D800 */
    assert_false(utf8_valid(UTF8("\xed\xaf\xbf"))); /* U+DBFF */
    assert_false(utf8_valid(UTF8("\xed\xb0\x80"))); /* U+DC00 */
    assert_false(utf8_valid(UTF8("\xed\xbf\xbf"))); /* U+DFFF */
    assert_false(utf8_valid(UTF8("\xed\xa0\xbd\xed\xb8\x80"))); /* CESU-8 */
}

/* A sequence cut short (at the end or by another lead byte) is refused. */
static void test_utf8_truncated(void **state)
{
    (void)state;
    assert_false(utf8_valid(UTF8("\xc3")));
    assert_false(utf8_valid(UTF8("\xe2\x82")));
    assert_false(utf8_valid(UTF8("\xf0\x9f\x98")));
    assert_false(utf8_valid(UTF8("abc\xe2")));
    assert_false(utf8_valid(UTF8("\xc3x")));
    assert_false(utf8_valid(UTF8("\xe2\x82x")));
    assert_false(utf8_valid(UTF8("\xe2\xc3\xa9")));
    /* The NUL after a lead byte is data, not a terminator. */
    assert_false(utf8_valid((const uint8_t *)"\xc3\0", 2));
    /* A valid sequence whose length is cut by @len. */
    assert_false(utf8_valid((const uint8_t *)"\xe2\x82\xac", 2));
}

/* Code points above U+10FFFF and bytes that never occur are refused. */
static void test_utf8_out_of_range(void **state)
{
    (void)state;
    assert_false(utf8_valid(UTF8("\xf4\x90\x80\x80"))); /* U+110000 */
    assert_false(utf8_valid(UTF8("\xf7\xbf\xbf\xbf"))); /* U+1FFFFF */
    assert_false(utf8_valid(UTF8("\xf8\x88\x80\x80\x80")));
    assert_false(utf8_valid(UTF8("\xfc\x84\x80\x80\x80\x80")));
    assert_false(utf8_valid(UTF8("\xfe")));
    assert_false(utf8_valid(UTF8("\xff")));
    assert_false(utf8_valid(UTF8("\x80")));        /* lone continuation */
    assert_false(utf8_valid(UTF8("a\xbf")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_puts_printf, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_append_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_growth_many_appends, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_printf_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_growth_large_chunks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_steal, setup, teardown),
        cmocka_unit_test(test_json_plain),
        cmocka_unit_test(test_json_quotes_backslash),
        cmocka_unit_test(test_json_control_chars),
        cmocka_unit_test(test_json_every_byte),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_binary),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_overlong),
        cmocka_unit_test(test_utf8_surrogates),
        cmocka_unit_test(test_utf8_truncated),
        cmocka_unit_test(test_utf8_out_of_range),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
