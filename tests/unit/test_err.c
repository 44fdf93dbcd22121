/* Unit tests for the error table and errmsg helpers (src/core/err.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/err.h"

/* Each code maps to the word, status and sentence of its table row. */
static void test_table_lookup(void **state)
{
    (void)state;
    assert_string_equal(brk_err_word(BRK_OK), "ok");
    assert_int_equal(brk_err_http_status(BRK_OK), 200);
    assert_string_equal(brk_err_word(BRK_EUNKNOWN_TOPIC), "unknown_topic");
    assert_int_equal(brk_err_http_status(BRK_EUNKNOWN_TOPIC), 404);
    assert_string_equal(brk_err_str(BRK_EUNKNOWN_TOPIC), "unknown topic");
    assert_string_equal(brk_err_word(BRK_ESTORAGE_FULL), "storage_full");
    assert_int_equal(brk_err_http_status(BRK_ESTORAGE_FULL), 507);
    assert_string_equal(brk_err_word(BRK_EINVAL), "bad_request");
    assert_int_equal(brk_err_http_status(BRK_EINVAL), 400);
    assert_int_equal(brk_err_http_status(BRK_ENO_LEADER), 503);
}

/* Every code in the table has a word, a sentence and a 2xx..5xx status. */
static void test_table_complete(void **state)
{
    int code;

    (void)state;
    for (code = 0; code < BRK_ERR_COUNT; code++) {
        assert_non_null(brk_err_word(code));
        assert_true(strlen(brk_err_word(code)) > 0);
        assert_true(strlen(brk_err_str(code)) > 0);
        assert_in_range(brk_err_http_status(code), 200, 599);
    }
}

/* Codes outside the table read as internal/500 instead of crashing. */
static void test_unknown_code(void **state)
{
    (void)state;
    assert_string_equal(brk_err_word(-1), "internal");
    assert_string_equal(brk_err_word(BRK_ERR_COUNT), "internal");
    assert_int_equal(brk_err_http_status(9999), 500);
    assert_non_null(brk_err_str(9999));
}

/* brk_errf formats into the buffer and returns the code it was given. */
static void test_errf_formats(void **state)
{
    char msg[BRK_ERRMSG_LEN];

    (void)state;
    assert_int_equal(brk_errf(msg, BRK_EIO, "open %s: %d", "seg", 5),
                     BRK_EIO);
    assert_string_equal(msg, "open seg: 5");
}

/* A NULL errmsg is allowed: nothing is written, the code comes back. */
static void test_null_errmsg(void **state)
{
    (void)state;
    assert_int_equal(brk_errf(NULL, BRK_ECORRUPT, "x %d", 1), BRK_ECORRUPT);
    assert_int_equal(brk_errwrap(NULL, BRK_EIO, "y"), BRK_EIO);
}

/* brk_errf truncates a too-long message at the buffer size. */
static void test_errf_truncates(void **state)
{
    char big[2 * BRK_ERRMSG_LEN];
    char msg[BRK_ERRMSG_LEN + 16];

    (void)state;
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memset(msg, 'Z', sizeof msg);
    brk_errf(msg, BRK_EIO, "%s", big);
    assert_int_equal(strlen(msg), BRK_ERRMSG_LEN - 1);
    /* Bytes past the contract size are untouched. */
    assert_int_equal(msg[BRK_ERRMSG_LEN], 'Z');
}

/* brk_errwrap puts the new context in front: "prefix: old". */
static void test_wrap_prefixes(void **state)
{
    char msg[BRK_ERRMSG_LEN];

    (void)state;
    brk_errf(msg, BRK_ESHORT, "short read");
    assert_int_equal(brk_errwrap(msg, BRK_ECORRUPT, "open segment %d", 41),
                     BRK_ECORRUPT);
    brk_errwrap(msg, BRK_ECORRUPT, "load partition %s/%d", "orders", 0);
    assert_string_equal(msg,
                        "load partition orders/0: open segment 41: short read");
}

/* Wrapping an empty message leaves just the prefix, without ": ". */
static void test_wrap_empty(void **state)
{
    char msg[BRK_ERRMSG_LEN] = "";

    (void)state;
    brk_errwrap(msg, BRK_EIO, "context");
    assert_string_equal(msg, "context");
}

/* A wrap whose result exceeds the buffer is truncated, never overflowed. */
static void test_wrap_truncates(void **state)
{
    char msg[BRK_ERRMSG_LEN + 16];
    char prefix[BRK_ERRMSG_LEN];

    (void)state;
    memset(msg, 'Z', sizeof msg);
    memset(msg, 'o', BRK_ERRMSG_LEN - 1);
    msg[BRK_ERRMSG_LEN - 1] = '\0';
    brk_errwrap(msg, BRK_EIO, "prefix");
    assert_int_equal(strlen(msg), BRK_ERRMSG_LEN - 1);
    assert_memory_equal(msg, "prefix: ooo", 11);
    assert_int_equal(msg[BRK_ERRMSG_LEN], 'Z');

    /* A prefix longer than the whole buffer. */
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    brk_errwrap(msg, BRK_EIO, "%s%s", prefix, prefix);
    assert_int_equal(strlen(msg), BRK_ERRMSG_LEN - 1);
    assert_int_equal(msg[0], 'p');
    assert_int_equal(msg[BRK_ERRMSG_LEN], 'Z');
}

/* An unterminated old buffer is read only up to the contract size. */
static void test_wrap_unterminated(void **state)
{
    char msg[BRK_ERRMSG_LEN];

    (void)state;
    memset(msg, 'x', sizeof msg);
    brk_errwrap(msg, BRK_EIO, "p");
    assert_int_equal(strlen(msg), BRK_ERRMSG_LEN - 1);
    assert_memory_equal(msg, "p: xx", 5);
}

/* Arguments may point into the errmsg buffer itself. */
static void test_self_reference(void **state)
{
    char msg[BRK_ERRMSG_LEN];

    (void)state;
    brk_errf(msg, BRK_EIO, "disk");
    brk_errf(msg, BRK_EIO, "again: %s", msg);
    assert_string_equal(msg, "again: disk");
    brk_errwrap(msg, BRK_EIO, "[%s]", msg);
    assert_string_equal(msg, "[again: disk]: again: disk");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_lookup),
        cmocka_unit_test(test_table_complete),
        cmocka_unit_test(test_unknown_code),
        cmocka_unit_test(test_errf_formats),
        cmocka_unit_test(test_null_errmsg),
        cmocka_unit_test(test_errf_truncates),
        cmocka_unit_test(test_wrap_prefixes),
        cmocka_unit_test(test_wrap_empty),
        cmocka_unit_test(test_wrap_truncates),
        cmocka_unit_test(test_wrap_unterminated),
        cmocka_unit_test(test_self_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
