/* Unit tests for configuration loading (src/core/config.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker/config.h"
#include "broker/err.h"

/* ==== Fixture and helpers ============================================== */

struct fixture {
    char dir[64]; /* mkdtemp directory, removed in teardown */
    struct config c;
    char errmsg[BRK_ERRMSG_LEN];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_config_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Write @text to @dir/@name; the path goes into @path. */
static void write_file(const struct fixture *f, const char *name,
                       const char *text, char *path, size_t size)
{
    FILE *fp;

    snprintf(path, size, "%s/%s", f->dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static void parse_ok(struct fixture *f, const char *text)
{
    int rv = config_parse(&f->c, text, "t.json", f->errmsg);

    if (rv != 0) {
        fail_msg("config_parse(%s) failed: %s", text, f->errmsg);
    }
}

/* Parsing must fail with BRK_EINVAL and a message naming @field. */
static void parse_bad(struct fixture *f, const char *text, const char *field)
{
    char want[200];
    int rv;

    snprintf(want, sizeof want, "t.json: field '%s': ", field);
    rv = config_parse(&f->c, text, "t.json", f->errmsg);
    if (rv != BRK_EINVAL) {
        fail_msg("config_parse(%s) returned %d, want BRK_EINVAL", text, rv);
    }
    if (strstr(f->errmsg, want) == NULL) {
        fail_msg("errmsg \"%s\" does not contain \"%s\"", f->errmsg, want);
    }
}

/* Shorthand: one field set to @json_value inside @section (or top level). */
static void field_json(char *buf, size_t size, const char *path,
                       const char *json_value)
{
    const char *dot = strchr(path, '.');

    if (dot == NULL) {
        snprintf(buf, size, "{\"%s\": %s}", path, json_value);
    } else {
        snprintf(buf, size, "{\"%.*s\": {\"%s\": %s}}", (int)(dot - path),
                 path, dot + 1, json_value);
    }
}

static void field_bad(struct fixture *f, const char *path,
                      const char *json_value)
{
    char text[4096];

    field_json(text, sizeof text, path, json_value);
    parse_bad(f, text, path);
}

static void field_ok(struct fixture *f, const char *path,
                     const char *json_value)
{
    char text[4096];

    field_json(text, sizeof text, path, json_value);
    parse_ok(f, text);
}

static void assert_defaults(const struct config *c)
{
    assert_string_equal(c->data_dir, "./data");
    assert_int_equal(c->max_topic_partitions, 16);
    assert_int_equal(c->default_partitions, 1);
    assert_true(c->auto_create_topics);
    assert_int_equal(c->segment_size, 1073741824);
    assert_int_equal(c->retention_ms, 168LL * 3600 * 1000);
    assert_int_equal(c->cleanup_interval_ms, 60000);
    assert_int_equal(c->retention_bytes, -1);
    assert_int_equal(c->max_message_size, 1048576);
    assert_int_equal(c->max_request_bytes, 16777216);
    assert_int_equal(c->max_storage_size, -1);
    assert_int_equal(c->flush_interval_ms, 0);
    assert_string_equal(c->server.host, "0.0.0.0");
    assert_int_equal(c->server.port, 9092);
    assert_string_equal(c->server.advertise, "127.0.0.1:9092");
    assert_string_equal(c->server.log_file, "");
    assert_string_equal(c->server.log_level, "info");
    assert_false(c->cluster.enabled);
    assert_int_equal(c->cluster.node_id, 0);
    assert_string_equal(c->cluster.raft_address, "");
    assert_int_equal(c->cluster.n_initial_members, 0);
    assert_string_equal(c->cluster.data_dir, "");
    assert_int_equal(c->cluster.rtt_ms, 100);
    assert_int_equal(c->cluster.election_rtt, 10);
    assert_int_equal(c->cluster.heartbeat_rtt, 1);
    assert_true(c->cluster.check_quorum);
    assert_int_equal(c->cluster.snapshot_entries, 10000);
    assert_int_equal(c->cluster.compaction_overhead, 5000);
    assert_int_equal(c->n_unknown, 0);
}

/* ==== Defaults and full files ========================================== */

/* config_defaults gives every default of CONFIG.md. */
static void test_defaults(void **state)
{
    struct fixture *f = *state;

    memset(&f->c, 0x5a, sizeof f->c);
    config_defaults(&f->c);
    assert_defaults(&f->c);
}

/* An empty object means all defaults. */
static void test_empty_object(void **state)
{
    struct fixture *f = *state;

    parse_ok(f, "{}");
    assert_defaults(&f->c);
}

/* JSON null keeps a field's default. */
static void test_null_keeps_default(void **state)
{
    struct fixture *f = *state;

    parse_ok(f, "{\"data_dir\": null, \"server\": {\"port\": null}, "
                "\"cluster\": null}");
    assert_defaults(&f->c);
}

static const char full_file[] =
    "{\n"
    "  \"data_dir\": \"/var/lib/broker\",\n"
    "  \"max_topic_partitions\": 64,\n"
    "  \"default_partitions\": 4,\n"
    "  \"auto_create_topics\": false,\n"
    "  \"segment_size\": 2048,\n"
    "  \"retention_time\": \"1h30m\",\n"
    "  \"cleanup_interval\": \"90s\",\n"
    "  \"retention_bytes\": 1000000,\n"
    "  \"max_message_size\": 4096,\n"
    "  \"max_request_bytes\": 8192,\n"
    "  \"max_storage_size\": 123456789,\n"
    "  \"flush_interval\": \"500ms\",\n"
    "  \"server\": {\n"
    "    \"host\": \"127.0.0.1\",\n"
    "    \"port\": \"9093\",\n"
    "    \"advertise\": \"broker1.example:9093\",\n"
    "    \"log_file\": \"/var/log/broker/broker.log\",\n"
    "    \"log_level\": \"debug\"\n"
    "  },\n"
    "  \"cluster\": {\n"
    "    \"enabled\": true,\n"
    "    \"node_id\": 2,\n"
    "    \"raft_address\": \"10.0.0.2:7002\",\n"
    "    \"initial_members\": [\"10.0.0.1:7001\", \"10.0.0.2:7002\",\n"
    "                        \"10.0.0.3:7003\"],\n"
    "    \"data_dir\": \"/var/lib/broker-raft\",\n"
    "    \"rtt_ms\": 50,\n"
    "    \"election_rtt\": 20,\n"
    "    \"heartbeat_rtt\": 2,\n"
    "    \"check_quorum\": false,\n"
    "    \"snapshot_entries\": 500,\n"
    "    \"compaction_overhead\": 0\n"
    "  }\n"
    "}\n";

/* Every field is read from a file with config_load. */
static void test_load_every_field(void **state)
{
    struct fixture *f = *state;
    struct config *c = &f->c;
    char path[256];

    write_file(f, "full.json", full_file, path, sizeof path);
    assert_int_equal(config_load(c, path, f->errmsg), 0);
    assert_string_equal(c->data_dir, "/var/lib/broker");
    assert_int_equal(c->max_topic_partitions, 64);
    assert_int_equal(c->default_partitions, 4);
    assert_false(c->auto_create_topics);
    assert_int_equal(c->segment_size, 2048);
    assert_int_equal(c->retention_ms, 5400000);
    assert_int_equal(c->cleanup_interval_ms, 90000);
    assert_int_equal(c->retention_bytes, 1000000);
    assert_int_equal(c->max_message_size, 4096);
    assert_int_equal(c->max_request_bytes, 8192);
    assert_int_equal(c->max_storage_size, 123456789);
    assert_int_equal(c->flush_interval_ms, 500);
    assert_string_equal(c->server.host, "127.0.0.1");
    assert_int_equal(c->server.port, 9093);
    assert_string_equal(c->server.advertise, "broker1.example:9093");
    assert_string_equal(c->server.log_file, "/var/log/broker/broker.log");
    assert_string_equal(c->server.log_level, "debug");
    assert_true(c->cluster.enabled);
    assert_int_equal(c->cluster.node_id, 2);
    assert_string_equal(c->cluster.raft_address, "10.0.0.2:7002");
    assert_int_equal(c->cluster.n_initial_members, 3);
    assert_string_equal(c->cluster.initial_members[0], "10.0.0.1:7001");
    assert_string_equal(c->cluster.initial_members[2], "10.0.0.3:7003");
    assert_string_equal(c->cluster.data_dir, "/var/lib/broker-raft");
    assert_int_equal(c->cluster.rtt_ms, 50);
    assert_int_equal(c->cluster.election_rtt, 20);
    assert_int_equal(c->cluster.heartbeat_rtt, 2);
    assert_false(c->cluster.check_quorum);
    assert_int_equal(c->cluster.snapshot_entries, 500);
    assert_int_equal(c->cluster.compaction_overhead, 0);
    assert_int_equal(c->n_unknown, 0);
}

/* config_load on a missing file is BRK_EINVAL naming the path and cause. */
static void test_load_missing_file(void **state)
{
    struct fixture *f = *state;
    char path[256];

    snprintf(path, sizeof path, "%s/nope.json", f->dir);
    assert_int_equal(config_load(&f->c, path, f->errmsg), BRK_EINVAL);
    assert_non_null(strstr(f->errmsg, path));
    assert_non_null(strstr(f->errmsg, "No such file"));
}

/* Errors from config_load name the file path, not a placeholder. */
static void test_load_error_names_file(void **state)
{
    struct fixture *f = *state;
    char path[256];
    char want[400];

    write_file(f, "bad.json", "{\"server\": {\"port\": \"http\"}}", path,
               sizeof path);
    assert_int_equal(config_load(&f->c, path, f->errmsg), BRK_EINVAL);
    snprintf(want, sizeof want,
             "%s: field 'server.port': must be a number or numeric string "
             "1..65535",
             path);
    assert_string_equal(f->errmsg, want);
}

/* cluster.secret_file is read into cluster.secret; a missing or empty
 * file is an error naming the field, without the secret. */
static void test_secret_file(void **state)
{
    struct fixture *f = *state;
    char path[256], text[512];

    write_file(f, "secret", "0123456789abcdef-secret\n", path, sizeof path);
    snprintf(text, sizeof text, "{\"cluster\": {\"secret_file\": \"%s\"}}",
             path);
    assert_int_equal(config_parse(&f->c, text, "t.json", f->errmsg), 0);
    assert_string_equal(f->c.cluster.secret, "0123456789abcdef-secret");
    write_file(f, "secret", "", path, sizeof path);
    assert_int_equal(config_parse(&f->c, text, "t.json", f->errmsg),
                     BRK_EINVAL);
    assert_non_null(strstr(f->errmsg, "'cluster.secret_file'"));
    assert_non_null(strstr(f->errmsg, "empty"));
    snprintf(text, sizeof text,
             "{\"cluster\": {\"secret_file\": \"%s/none\"}}", f->dir);
    assert_int_equal(config_parse(&f->c, text, "t.json", f->errmsg),
                     BRK_EINVAL);
    assert_non_null(strstr(f->errmsg, "'cluster.secret_file'"));
    parse_ok(f, "{}");
    assert_string_equal(f->c.cluster.secret, "");
}

/* ==== Durations ======================================================== */

static int64_t dur(const char *s)
{
    int64_t ms = -42;

    if (config_parse_duration(s, &ms) != 0) {
        fail_msg("duration \"%s\" refused", s);
    }
    return ms;
}

/* Go-style durations, fractions and compound forms parse to milliseconds. */
static void test_duration_valid(void **state)
{
    (void)state;
    assert_int_equal(dur("168h"), 604800000);
    assert_int_equal(dur("1h30m"), 5400000);
    assert_int_equal(dur("90s"), 90000);
    assert_int_equal(dur("1.5h"), 5400000);
    assert_int_equal(dur("500ms"), 500);
    assert_int_equal(dur("30m"), 1800000);
    assert_int_equal(dur("0s"), 0);
    assert_int_equal(dur("0"), 0);
    assert_int_equal(dur("2h45m30.5s"), 9930500);
    assert_int_equal(dur(".5s"), 500);
    assert_int_equal(dur("1.s"), 1000);
    assert_int_equal(dur("1500us"), 1);
    assert_int_equal(dur("1500\xC2\xB5s"), 1);
    assert_int_equal(dur("1500\xCE\xBCs"), 1);
    assert_int_equal(dur("999999ns"), 0);
    assert_int_equal(dur("1m1s1ms"), 61001);
    /* Fraction digits beyond uint64 precision are dropped, as in Go. */
    assert_int_equal(dur("1.000000000000000000000000001s"), 1000);
    assert_int_equal(dur("0.9999s"), 999);
    /* The largest duration Go accepts, 2^63-1 ns. */
    assert_int_equal(dur("9223372036854775807ns"), 9223372036854LL);
}

/* Days are 24 hours (v2): "7d", "1d12h", "1.5d"; Go's bound still holds. */
static void test_duration_days(void **state)
{
    int64_t ms;

    (void)state;
    assert_int_equal(dur("7d"), 604800000);
    assert_int_equal(dur("1d12h"), 129600000);
    assert_int_equal(dur("1.5d"), 129600000);
    assert_int_equal(dur("2d30m"), 174600000);
    assert_int_equal(dur("106751d"), 106751LL * 86400000);
    assert_int_equal(config_parse_duration("106752d", &ms), -1);
    assert_int_equal(config_parse_duration("1D", &ms), -1);
    assert_int_equal(config_parse_duration("d", &ms), -1);
    assert_int_equal(config_parse_duration("1dd", &ms), -1);
}

/* Malformed, unitless, negative and overflowing durations are refused. */
static void test_duration_invalid(void **state)
{
    static const char *const bad[] = {
        "",      "10",   "1x",     "-5s",   "+5s",    "h",
        "1h-",   " 1s",  "1s ",    "1..5s", ".s",     "00",
        "1hm",   "5S",   "1e3s",   "s1",    "1h30",   "-0",
        "9223372036854775808ns",   "2562048h",
        "99999999999999999999999h",
    };
    size_t i;
    int64_t ms;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (config_parse_duration(bad[i], &ms) != -1) {
            fail_msg("duration \"%s\" accepted", bad[i]);
        }
    }
    assert_int_equal(config_parse_duration(NULL, &ms), -1);
}

/* Duration fields accept durations and name the field when they are bad. */
static void test_duration_fields(void **state)
{
    struct fixture *f = *state;

    field_ok(f, "retention_time", "\"1.5h\"");
    assert_int_equal(f->c.retention_ms, 5400000);
    field_ok(f, "retention_time", "\"7d\"");
    assert_int_equal(f->c.retention_ms, 604800000);
    field_ok(f, "flush_interval", "\"0\"");
    assert_int_equal(f->c.flush_interval_ms, 0);
    field_bad(f, "retention_time", "\"10\"");
    assert_non_null(strstr(f->errmsg, "bad duration \"10\""));
    field_bad(f, "cleanup_interval", "\"-5s\"");
    field_bad(f, "flush_interval", "60");
    /* A zero cleanup interval would spin the retention timer. */
    field_bad(f, "cleanup_interval", "\"0s\"");
    field_bad(f, "cleanup_interval", "\"500us\"");
}

/* Replica comparison fields: defaults, "0s" turns the check off, the
 * chunk size is bounded. */
static void test_digest_fields(void **state)
{
    struct fixture *f = *state;

    config_defaults(&f->c);
    assert_int_equal(f->c.digest_interval_ms, 60000);
    assert_int_equal(f->c.digest_chunk, 1024);
    field_ok(f, "digest_interval", "\"0s\"");
    assert_int_equal(f->c.digest_interval_ms, 0);
    field_ok(f, "digest_interval", "\"250ms\"");
    assert_int_equal(f->c.digest_interval_ms, 250);
    field_ok(f, "digest_chunk", "16");
    assert_int_equal(f->c.digest_chunk, 16);
    field_bad(f, "digest_interval", "60");
    field_bad(f, "digest_chunk", "15");
    field_bad(f, "digest_chunk", "2097152");
    assert_non_null(strstr(f->errmsg, "digest_chunk"));
}

/* ==== Ports ============================================================ */

/* server.port takes a JSON number or a numeric string. */
static void test_port_forms(void **state)
{
    struct fixture *f = *state;

    field_ok(f, "server.port", "\"9093\"");
    assert_int_equal(f->c.server.port, 9093);
    assert_string_equal(f->c.server.advertise, "127.0.0.1:9093");
    field_ok(f, "server.port", "8080");
    assert_int_equal(f->c.server.port, 8080);
    field_ok(f, "server.port", "1");
    field_ok(f, "server.port", "\"65535\"");
    assert_int_equal(f->c.server.port, 65535);
}

/* Ports outside 1..65535 or not numeric are refused. */
static void test_port_invalid(void **state)
{
    static const char *const bad[] = {
        "0",      "65536",   "-1",     "\"0\"", "\"65536\"", "\"abc\"",
        "\"90a\"", "\"\"",   "\" 9092\"", "\"+9092\"", "9092.0", "true",
        "[9092]", "\"99999999999999999999\"",
    };
    struct fixture *f = *state;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        field_bad(f, "server.port", bad[i]);
        assert_non_null(
            strstr(f->errmsg, "must be a number or numeric string 1..65535"));
    }
}

/* ==== Types ============================================================ */

/* Each kind of field refuses a JSON value of the wrong type. */
static void test_wrong_types(void **state)
{
    struct fixture *f = *state;

    field_bad(f, "data_dir", "5");
    assert_non_null(strstr(f->errmsg, "must be a string"));
    field_bad(f, "server.log_file", "false");
    field_bad(f, "auto_create_topics", "\"true\"");
    assert_non_null(strstr(f->errmsg, "must be true or false"));
    field_bad(f, "cluster.check_quorum", "1");
    field_bad(f, "max_topic_partitions", "\"16\"");
    assert_non_null(strstr(f->errmsg, "must be an integer"));
    field_bad(f, "segment_size", "1.5");
    field_bad(f, "cluster.node_id", "\"1\"");
    field_bad(f, "retention_time", "true");
    field_bad(f, "cluster.initial_members", "\"127.0.0.1:8001\"");
    assert_non_null(strstr(f->errmsg, "must be an array"));
    parse_bad(f, "{\"cluster\": {\"initial_members\": [\"a:1\", 5]}}",
              "cluster.initial_members[1]");
    parse_bad(f, "{\"server\": 5}", "server");
    parse_bad(f, "{\"cluster\": [1]}", "cluster");
}

/* ==== Ranges =========================================================== */

/* Values outside each field's bounds are refused with the field named. */
static void test_out_of_range(void **state)
{
    struct fixture *f = *state;

    field_bad(f, "max_topic_partitions", "0");
    field_bad(f, "max_topic_partitions", "10001");
    field_bad(f, "default_partitions", "0");
    parse_bad(f, "{\"max_topic_partitions\": 4, \"default_partitions\": 5}",
              "default_partitions");
    field_bad(f, "segment_size", "1023");
    field_bad(f, "segment_size", "1099511627777");
    field_bad(f, "retention_bytes", "-2");
    field_bad(f, "max_message_size", "0");
    parse_bad(f, "{\"max_request_bytes\": 2048, \"max_message_size\": 4096}",
              "max_message_size");
    field_bad(f, "max_request_bytes", "1023");
    field_bad(f, "max_request_bytes", "2147483649");
    field_bad(f, "max_storage_size", "0");
    field_bad(f, "max_storage_size", "-2");
    field_bad(f, "cluster.rtt_ms", "0");
    field_bad(f, "cluster.rtt_ms", "60001");
    field_bad(f, "cluster.election_rtt", "1");
    field_bad(f, "cluster.heartbeat_rtt", "0");
    parse_bad(f, "{\"cluster\": {\"election_rtt\": 3, \"heartbeat_rtt\": 3}}",
              "cluster.heartbeat_rtt");
    field_bad(f, "cluster.snapshot_entries", "0");
    field_bad(f, "cluster.compaction_overhead", "-1");
    field_bad(f, "cluster.node_id", "0");
    field_bad(f, "cluster.node_id", "-3");
    field_bad(f, "server.log_level", "\"verbose\"");
    field_bad(f, "server.log_level", "\"INFO\"");
    field_bad(f, "data_dir", "\"\"");
    field_bad(f, "server.host", "\"\"");
    field_bad(f, "server.advertise", "\"nohost\"");
    field_bad(f, "cluster.raft_address", "\"127.0.0.1:0\"");
}

/* Boundary values and the -1 "none" markers are accepted. */
static void test_in_range_edges(void **state)
{
    struct fixture *f = *state;

    field_ok(f, "retention_bytes", "-1");
    field_ok(f, "retention_bytes", "0");
    assert_int_equal(f->c.retention_bytes, 0);
    field_ok(f, "max_storage_size", "-1");
    field_ok(f, "max_topic_partitions", "10000");
    field_ok(f, "segment_size", "1024");
    field_ok(f, "segment_size", "1099511627776");
    field_ok(f, "cluster.rtt_ms", "60000");
    field_ok(f, "cluster.compaction_overhead", "0");
    parse_ok(f, "{\"max_topic_partitions\": 5, \"default_partitions\": 5}");
    parse_ok(f, "{\"max_request_bytes\": 2048, \"max_message_size\": 2048}");
    parse_ok(f, "{\"cluster\": {\"election_rtt\": 2, \"heartbeat_rtt\": 1}}");
    field_ok(f, "server.log_level", "\"error\"");
    assert_string_equal(f->c.server.log_level, "error");
}

/* ==== Strings ========================================================== */

static char *json_string_of(char ch, size_t len)
{
    char *s = malloc(len + 3);

    assert_non_null(s);
    s[0] = '"';
    memset(s + 1, ch, len);
    s[len + 1] = '"';
    s[len + 2] = '\0';
    return s;
}

/* Strings longer than their buffers are refused, never truncated. */
static void test_strings_too_long(void **state)
{
    struct fixture *f = *state;
    char *s;
    char text[2 * CONFIG_PATH_MAX];

    s = json_string_of('d', CONFIG_PATH_MAX);
    field_bad(f, "data_dir", s);
    assert_non_null(strstr(f->errmsg, "too long"));
    field_bad(f, "server.log_file", s);
    field_bad(f, "cluster.data_dir", s);
    free(s);

    s = json_string_of('d', CONFIG_PATH_MAX - 1);
    field_ok(f, "data_dir", s);
    assert_int_equal(strlen(f->c.data_dir), CONFIG_PATH_MAX - 1);
    free(s);

    s = json_string_of('h', CONFIG_ADDR_MAX);
    field_bad(f, "server.host", s);
    snprintf(text, sizeof text,
             "{\"cluster\": {\"initial_members\": [\"a:1\", %s]}}", s);
    parse_bad(f, text, "cluster.initial_members[1]");
    free(s);

    field_bad(f, "server.log_level", "\"debugdebugdebugdebug\"");
}

/* ==== Cluster ========================================================== */

/* An enabled cluster needs node_id, initial_members and data_dir. */
static void test_cluster_required(void **state)
{
    struct fixture *f = *state;

    parse_bad(f, "{\"cluster\": {\"enabled\": true}}", "cluster.node_id");
    assert_non_null(strstr(f->errmsg, "required"));
    parse_bad(f, "{\"cluster\": {\"enabled\": true, \"node_id\": 1}}",
              "cluster.initial_members");
    parse_bad(f,
              "{\"cluster\": {\"enabled\": true, \"node_id\": 1, "
              "\"initial_members\": []}}",
              "cluster.initial_members");
    parse_bad(f,
              "{\"cluster\": {\"enabled\": true, \"node_id\": 1, "
              "\"initial_members\": [\"127.0.0.1:8001\"]}}",
              "cluster.data_dir");
    /* The same fields may stay empty while the cluster is off. */
    parse_ok(f, "{\"cluster\": {\"enabled\": false}}");
}

/* raft_address defaults to initial_members[node_id-1]; advertise follows. */
static void test_cluster_raft_address_default(void **state)
{
    struct fixture *f = *state;

    parse_ok(f,
             "{\"server\": {\"port\": 9002}, \"cluster\": {\"enabled\": true, "
             "\"node_id\": 2, \"data_dir\": \"r\", \"initial_members\": "
             "[\"127.0.0.1:8001\", \"10.1.2.3:8002\", \"127.0.0.1:8003\"]}}");
    assert_string_equal(f->c.cluster.raft_address, "10.1.2.3:8002");
    assert_string_equal(f->c.server.advertise, "10.1.2.3:9002");
}

/* An explicit raft_address that differs from the member entry is refused. */
static void test_cluster_raft_address_mismatch(void **state)
{
    struct fixture *f = *state;

    parse_bad(f,
              "{\"cluster\": {\"enabled\": true, \"node_id\": 1, "
              "\"data_dir\": \"r\", \"raft_address\": \"127.0.0.1:9999\", "
              "\"initial_members\": [\"127.0.0.1:8001\"]}}",
              "cluster.raft_address");
    parse_ok(f,
             "{\"cluster\": {\"enabled\": true, \"node_id\": 1, "
             "\"data_dir\": \"r\", \"raft_address\": \"127.0.0.1:8001\", "
             "\"initial_members\": [\"127.0.0.1:8001\"]}}");
}

/* A node outside initial_members must give its own raft_address. */
static void test_cluster_joining_node(void **state)
{
    struct fixture *f = *state;

    parse_bad(f,
              "{\"cluster\": {\"enabled\": true, \"node_id\": 4, "
              "\"data_dir\": \"r\", \"initial_members\": [\"10.0.0.1:1\", \"10.0.0.2:2\", "
              "\"10.0.0.3:3\"]}}",
              "cluster.raft_address");
    parse_ok(f,
             "{\"cluster\": {\"enabled\": true, \"node_id\": 4, "
             "\"data_dir\": \"r\", \"raft_address\": \"10.0.0.4:4\", "
             "\"initial_members\": [\"10.0.0.1:1\", \"10.0.0.2:2\", \"10.0.0.3:3\"]}}");
    assert_string_equal(f->c.server.advertise, "10.0.0.4:9092");
}

/* Host names in Raft addresses are resolved at load (IPv4: c-raft 0.15
 * takes numeric IPv4 only); a name that does not resolve names the field. */
static void test_cluster_raft_address_names(void **state)
{
    struct fixture *f = *state;

    parse_ok(f,
             "{\"cluster\": {\"enabled\": true, \"node_id\": 1, "
             "\"data_dir\": \"r\", \"raft_address\": \"localhost:8001\", "
             "\"initial_members\": [\"localhost:8001\", \"127.0.0.1:8002\"]}}");
    assert_string_equal(f->c.cluster.initial_members[0], "127.0.0.1:8001");
    assert_string_equal(f->c.cluster.raft_address, "127.0.0.1:8001");
    assert_string_equal(f->c.server.advertise, "127.0.0.1:9092");
    /* Compared once resolved: the same node either way. */
    parse_ok(f,
             "{\"cluster\": {\"enabled\": true, \"node_id\": 1, "
             "\"data_dir\": \"r\", \"raft_address\": \"localhost:8001\", "
             "\"initial_members\": [\"127.0.0.1:8001\"]}}");
    parse_bad(f,
              "{\"cluster\": {\"enabled\": true, \"node_id\": 1, "
              "\"data_dir\": \"r\", \"initial_members\": "
              "[\"no-such-host.invalid:8001\"]}}",
              "cluster.initial_members[0]");
    assert_non_null(strstr(f->errmsg, "cannot resolve"));
    parse_bad(f,
              "{\"cluster\": {\"enabled\": true, \"node_id\": 2, "
              "\"data_dir\": \"r\", \"raft_address\": \"node2.invalid:8002\", "
              "\"initial_members\": [\"127.0.0.1:8001\"]}}",
              "cluster.raft_address");
    /* IPv6 cannot be carried by the transport. */
    parse_bad(f,
              "{\"cluster\": {\"enabled\": true, \"node_id\": 1, "
              "\"data_dir\": \"r\", \"initial_members\": [\"[::1]:8001\"]}}",
              "cluster.initial_members[0]");
    assert_non_null(strstr(f->errmsg, "IPv4 only"));
    /* Two spellings of one address are one member listed twice. */
    parse_bad(f,
              "{\"cluster\": {\"enabled\": true, \"node_id\": 1, "
              "\"data_dir\": \"r\", \"initial_members\": "
              "[\"localhost:8001\", \"127.0.0.1:8001\"]}}",
              "cluster.initial_members[1]");
}

/* initial_members: at most CONFIG_MAX_MEMBERS, host:port, no duplicates. */
static void test_cluster_members_checked(void **state)
{
    struct fixture *f = *state;
    char text[2048];
    size_t off;
    int i;

    off = (size_t)snprintf(text, sizeof text,
                           "{\"cluster\": {\"initial_members\": [");
    for (i = 0; i <= CONFIG_MAX_MEMBERS; i++) {
        off += (size_t)snprintf(text + off, sizeof text - off, "%s\"h:%d\"",
                                i == 0 ? "" : ", ", 8000 + i);
    }
    snprintf(text + off, sizeof text - off, "]}}");
    parse_bad(f, text, "cluster.initial_members");
    assert_non_null(strstr(f->errmsg, "at most"));
    parse_bad(f, "{\"cluster\": {\"initial_members\": [\"10.0.0.1:1\", \"10.0.0.1:1\"]}}",
              "cluster.initial_members[1]");
    parse_bad(f, "{\"cluster\": {\"initial_members\": [\"h\"]}}",
              "cluster.initial_members[0]");
    parse_bad(f, "{\"cluster\": {\"initial_members\": [\"\"]}}",
              "cluster.initial_members[0]");
    parse_ok(f, "{\"cluster\": {\"initial_members\": [\"[::1]:8001\"]}}");
}

/* ==== Unknown keys and bad documents =================================== */

/* Unknown keys, top-level or nested, are recorded as dotted names. */
static void test_unknown_recorded(void **state)
{
    struct fixture *f = *state;

    parse_ok(f,
             "{\"compression_type\": \"gzip\", \"deduplication\": {\"x\": 1}, "
             "\"server\": {\"port\": 9092, \"prot\": 1}, "
             "\"cluster\": {\"bogus\": true}}");
    assert_int_equal(f->c.n_unknown, 4);
    assert_string_equal(f->c.unknown[0], "compression_type");
    assert_string_equal(f->c.unknown[1], "deduplication");
    assert_string_equal(f->c.unknown[2], "server.prot");
    assert_string_equal(f->c.unknown[3], "cluster.bogus");
}

/* Past CONFIG_MAX_UNKNOWN the extra names are dropped, not overflowed. */
static void test_unknown_capped(void **state)
{
    struct fixture *f = *state;
    char text[4096];
    size_t off;
    int i;

    off = (size_t)snprintf(text, sizeof text, "{");
    for (i = 0; i < CONFIG_MAX_UNKNOWN + 10; i++) {
        off += (size_t)snprintf(text + off, sizeof text - off,
                                "%s\"k%d\": 1", i == 0 ? "" : ", ", i);
    }
    snprintf(text + off, sizeof text - off, "}");
    parse_ok(f, text);
    assert_int_equal(f->c.n_unknown, CONFIG_MAX_UNKNOWN);
}

/* Invalid JSON is refused with the file name, line and column. */
static void test_invalid_json(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        config_parse(&f->c, "{\n  \"data_dir\": \"x\",\n}", "t.json",
                     f->errmsg),
        BRK_EINVAL);
    assert_non_null(strstr(f->errmsg, "t.json: invalid JSON at line 3"));
    assert_non_null(strstr(f->errmsg, "column"));
    assert_int_equal(config_parse(&f->c, "", "t.json", f->errmsg),
                     BRK_EINVAL);
    assert_int_equal(config_parse(&f->c, "{} {}", "t.json", f->errmsg),
                     BRK_EINVAL);
    assert_int_equal(
        config_parse(&f->c, "{\"a\": \"\\u0000\"}", "t.json", f->errmsg),
        BRK_EINVAL);
}

/* A top-level value that is not an object is refused. */
static void test_top_level_not_object(void **state)
{
    static const char *const docs[] = {"[]", "5", "\"x\"", "null", "true"};
    struct fixture *f = *state;
    size_t i;

    for (i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        assert_int_equal(config_parse(&f->c, docs[i], "t.json", f->errmsg),
                         BRK_EINVAL);
        assert_string_equal(f->errmsg,
                            "t.json: the top-level value must be a JSON "
                            "object");
    }
}

/* ==== Shipped files ==================================================== */

/* The repository root, from this file's path (absolute under CMake). */
static void source_path(char *buf, size_t size, const char *rel)
{
    const char *me = __FILE__;
    const char *tail = strstr(me, "tests/unit/test_config.c");
    int root_len = tail != NULL ? (int)(tail - me) : 0;

    snprintf(buf, size, "%.*s%s", root_len, me, rel);
}

/* configs/broker.json loads and holds exactly the defaults. */
static void test_example_config_loads(void **state)
{
    struct fixture *f = *state;
    char path[1024];
    struct config *c = &f->c;

    source_path(path, sizeof path, "configs/broker.json");
    if (config_load(c, path, f->errmsg) != 0) {
        fail_msg("%s", f->errmsg);
    }
    assert_int_equal(c->n_unknown, 0);
    /* Same defaults, apart from the cluster example values. */
    assert_string_equal(c->cluster.raft_address, "127.0.0.1:8001");
    assert_int_equal(c->cluster.n_initial_members, 3);
    assert_int_equal(c->cluster.node_id, 1);
    c->cluster.node_id = 0;
    c->cluster.raft_address[0] = '\0';
    c->cluster.n_initial_members = 0;
    c->cluster.data_dir[0] = '\0';
    assert_defaults(c);
}

/* Every ```json block of docs/configuration.md is a valid config. */
static void test_doc_examples_load(void **state)
{
    struct fixture *f = *state;
    char path[1024];
    char *doc;
    char *p;
    char *end;
    long n;
    int blocks = 0;
    FILE *fp;

    source_path(path, sizeof path, "docs/configuration.md");
    fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    doc = malloc((size_t)n + 1);
    assert_non_null(doc);
    assert_int_equal(fread(doc, 1, (size_t)n, fp), (size_t)n);
    doc[n] = '\0';
    fclose(fp);
    for (p = doc; (p = strstr(p, "```json\n")) != NULL; p = end + 3) {
        p += strlen("```json\n");
        end = strstr(p, "```");
        assert_non_null(end);
        *end = '\0';
        if (config_parse(&f->c, p, "doc", f->errmsg) != 0) {
            fail_msg("example %d: %s", blocks + 1, f->errmsg);
        }
        blocks++;
    }
    assert_true(blocks >= 2);
    free(doc);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_empty_object),
        T(test_null_keeps_default),
        T(test_load_every_field),
        T(test_load_missing_file),
        T(test_load_error_names_file),
        T(test_secret_file),
        T(test_duration_valid),
        T(test_duration_invalid),
        T(test_duration_days),
        T(test_duration_fields),
        T(test_digest_fields),
        T(test_port_forms),
        T(test_port_invalid),
        T(test_wrong_types),
        T(test_out_of_range),
        T(test_in_range_edges),
        T(test_strings_too_long),
        T(test_cluster_required),
        T(test_cluster_raft_address_default),
        T(test_cluster_raft_address_mismatch),
        T(test_cluster_joining_node),
        T(test_cluster_raft_address_names),
        T(test_cluster_members_checked),
        T(test_unknown_recorded),
        T(test_unknown_capped),
        T(test_invalid_json),
        T(test_top_level_not_object),
        T(test_example_config_loads),
        T(test_doc_examples_load),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
