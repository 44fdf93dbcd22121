/* Unit tests for host:port validation (src/core/addr.c) and the cluster
 * secret (src/core/secret.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker/addr.h"
#include "broker/err.h"
#include "broker/secret.h"
#include "tmpdir.h"

/* Names, IPv4 and bracketed IPv6 literals with a port 1..65535 pass. */
static void test_valid_addresses(void **state)
{
    const char *ok[] = {"127.0.0.1:9092", "localhost:1", "broker-1:65535",
                        "a.b.example.com:80", "[::1]:9092",
                        "[2001:db8::2]:443", "node_2.local:9000"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(addr_http_valid(ok[i]));
}

/* What the probe sent, and every other shape that is not host:port. */
static void test_invalid_addresses(void **state)
{
    const char *bad[] = {"x y\r\nZ", "x y:80", "host", "host:", ":80",
                         "host:0", "host:65536", "host:80x", "host:-1",
                         "a\tb:80", "::1:80", "[::1:80", "[::1]80",
                         "[]:80", "[nothost]:80", "a/b:80", "a@b:80",
                         "user@host:80", "a..b:80", ".a:80", "a.:80",
                         "999.1.1.1:80", "1.2.3:80", "host:+80", "",
                         "h\x01:80", "h\x7f:80"};
    char longname[400];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("%zu\n", i);
        assert_false(addr_http_valid(bad[i]));
    }
    assert_false(addr_http_valid(NULL));
    memset(longname, 'a', sizeof(longname));
    snprintf(longname + 300, 10, ":80");
    assert_false(addr_http_valid(longname));
    /* A label of 64 bytes is too long, 63 is fine. */
    memset(longname, 'a', 64);
    snprintf(longname + 64, 10, ":80");
    assert_false(addr_http_valid(longname));
    snprintf(longname + 63, 10, ":80");
    assert_true(addr_http_valid(longname));
}

/* addr_host strips the brackets of IPv6 and refuses a short buffer. */
static void test_addr_host(void **state)
{
    char h[64];

    (void)state;
    assert_true(addr_host("10.0.0.1:8001", h, sizeof(h)));
    assert_string_equal(h, "10.0.0.1");
    assert_true(addr_host("[::1]:80", h, sizeof(h)));
    assert_string_equal(h, "::1");
    assert_false(addr_host("10.0.0.1:8001", h, 4));
    assert_false(addr_host("x y:80", h, sizeof(h)));
}

/* Equal only when the whole value matches: no prefix, no extension. */
static void test_secret_equal(void **state)
{
    const char *s = "0123456789abcdefXYZ";

    (void)state;
    assert_true(secret_equal(s, "0123456789abcdefXYZ"));
    assert_false(secret_equal(s, "0123456789abcdefXY"));
    assert_false(secret_equal(s, "0123456789abcdefXYZ!"));
    assert_false(secret_equal(s, "1123456789abcdefXYZ"));
    assert_false(secret_equal(s, ""));
    assert_false(secret_equal(s, NULL));
    assert_false(secret_equal("", ""));
}

/* A secret file: trailing newline dropped; empty, short, with spaces or
 * control characters, or missing: refused, without the secret in the
 * message. */
static void test_secret_load(void **state)
{
    char dir[256], path[512], out[256], errmsg[BRK_ERRMSG_LEN];

    (void)state;
    assert_int_equal(tmpdir_make(dir, "secret"), 0);
    snprintf(path, sizeof(path), "%s/s", dir);
    assert_int_equal(tmpdir_write(dir, "s", "abcdefghijklmnop-1\n"), 0);
    assert_int_equal(secret_load(path, out, sizeof(out), errmsg), 0);
    assert_string_equal(out, "abcdefghijklmnop-1");
    assert_int_equal(tmpdir_write(dir, "s", "\n"), 0);
    assert_int_equal(secret_load(path, out, sizeof(out), errmsg), BRK_EINVAL);
    assert_non_null(strstr(errmsg, "empty"));
    assert_int_equal(tmpdir_write(dir, "s", "short-one"), 0);
    assert_int_equal(secret_load(path, out, sizeof(out), errmsg), BRK_EINVAL);
    assert_null(strstr(errmsg, "short-one"));
    assert_int_equal(tmpdir_write(dir, "s", "abcdefgh ijklmnopq"), 0);
    assert_int_equal(secret_load(path, out, sizeof(out), errmsg), BRK_EINVAL);
    assert_null(strstr(errmsg, "ijklmnopq"));
    assert_int_equal(tmpdir_write(dir, "s", "abcdefghijklm\r\nnopq"), 0);
    assert_int_equal(secret_load(path, out, sizeof(out), errmsg), BRK_EINVAL);
    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(secret_load(path, out, sizeof(out), errmsg), BRK_EINVAL);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_addresses),
        cmocka_unit_test(test_invalid_addresses),
        cmocka_unit_test(test_addr_host),
        cmocka_unit_test(test_secret_equal),
        cmocka_unit_test(test_secret_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
