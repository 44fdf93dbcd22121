/* Unit tests for CRC32C (src/core/crc32c.c), both implementations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/crc32c.h"

typedef uint32_t (*crc_fn)(uint32_t crc, const void *buf, size_t len);

static const struct {
    const char *name;
    crc_fn fn;
} impls[] = {
    {"dispatch", crc32c},
    {"sw", crc32c_sw},
    {"hw", crc32c_hw},
};
#define N_IMPLS (sizeof impls / sizeof impls[0])

/* The standard check value: crc32c("123456789") == 0xE3069283. */
static void test_check_value(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_IMPLS; i++) {
        assert_int_equal(impls[i].fn(0, "123456789", 9), 0xE3069283u);
    }
}

/* The iSCSI vectors of RFC 3720 B.4 (32 bytes each) match. */
static void test_rfc3720_vectors(void **state)
{
    unsigned char buf[32];
    size_t i;
    int b;

    (void)state;
    for (i = 0; i < N_IMPLS; i++) {
        memset(buf, 0, sizeof buf);
        assert_int_equal(impls[i].fn(0, buf, 32), 0x8A9136AAu);
        memset(buf, 0xff, sizeof buf);
        assert_int_equal(impls[i].fn(0, buf, 32), 0x62A8AB43u);
        for (b = 0; b < 32; b++) {
            buf[b] = (unsigned char)b;
        }
        assert_int_equal(impls[i].fn(0, buf, 32), 0x46DD794Eu);
        for (b = 0; b < 32; b++) {
            buf[b] = (unsigned char)(31 - b);
        }
        assert_int_equal(impls[i].fn(0, buf, 32), 0x113FDB5Cu);
    }
}

/* An empty buffer leaves the running value unchanged. */
static void test_empty(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_IMPLS; i++) {
        assert_int_equal(impls[i].fn(0, "", 0), 0u);
        assert_int_equal(impls[i].fn(0x12345678u, "", 0), 0x12345678u);
    }
}

static void fill_random(unsigned char *buf, size_t len, uint32_t seed)
{
    size_t i;

    for (i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 16);
    }
}

/* Hardware and table paths agree for every length and alignment. */
static void test_hw_matches_sw(void **state)
{
    enum { MAX = 1100 };
    unsigned char *buf = malloc(MAX + 8);
    size_t off;
    size_t len;

    (void)state;
    assert_non_null(buf);
    fill_random(buf, MAX + 8, 7);
    for (off = 0; off < 8; off++) {
        for (len = 0; len <= MAX; len += (len < 80 ? 1 : 37)) {
            uint32_t sw = crc32c_sw(0, buf + off, len);
            assert_int_equal(crc32c_hw(0, buf + off, len), sw);
            assert_int_equal(crc32c(0, buf + off, len), sw);
            assert_int_equal(crc32c_hw(0xdeadbeefu, buf + off, len),
                             crc32c_sw(0xdeadbeefu, buf + off, len));
        }
    }
    free(buf);
}

/* Extending over pieces equals one pass over the whole buffer. */
static void test_incremental(void **state)
{
    unsigned char buf[777];
    size_t split;
    size_t i;
    uint32_t whole;
    uint32_t crc;

    (void)state;
    fill_random(buf, sizeof buf, 42);
    for (i = 0; i < N_IMPLS; i++) {
        whole = impls[i].fn(0, buf, sizeof buf);
        for (split = 0; split <= sizeof buf; split += 13) {
            crc = impls[i].fn(0, buf, split);
            crc = impls[i].fn(crc, buf + split, sizeof buf - split);
            assert_int_equal(crc, whole);
        }
    }
}

/* The SSE4.2 path is really exercised on CPUs that have it. */
static void test_hw_available(void **state)
{
    (void)state;
#if defined(__x86_64__)
    if (!__builtin_cpu_supports("sse4.2")) {
        skip();
    }
    assert_int_equal(crc32c_hw_available(), 1);
#else
    assert_int_equal(crc32c_hw_available(), 0);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_rfc3720_vectors),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_hw_matches_sw),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_hw_available),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
