/* Unit tests for the Raft log entry codec of commands (src/broker/cmd.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/cmd.h"
#include "broker/err.h"

/* Entry header: magic, version, timestamp, count. */
#define HDR_SIZE (4 + 1 + 8 + 4)
/* Offset of the command count in the header. */
#define HDR_COUNT_AT (4 + 1 + 8)
/* Body of a command with empty strings, no records and no offsets. */
#define EMPTY_BODY 50

#ifdef __SANITIZE_ADDRESS__
/* Make ASan return NULL for allocations above 256 MiB instead of serving
 * them lazily, so that a decoder trusting a count fails the test. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=256";
}
#endif

struct fixture {
    struct cmd cmds[12];    /* built by the test, cleared at teardown */
    size_t n;
    uint8_t *entry;         /* encoded entry */
    size_t len;
    size_t content;         /* bytes before the zero padding */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    *state = f;
    return f == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    size_t i;

    for (i = 0; i < sizeof(f->cmds) / sizeof(f->cmds[0]); i++)
        cmd_clear(&f->cmds[i]);
    free(f->entry);
    free(f);
    return 0;
}

/* ==== building commands ==== */

static uint8_t *dup_mem(const void *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);

    assert_non_null(d);
    memcpy(d, p, len);
    return d;
}

/* Room for item @n of an array that doubles whenever @n reaches a power
 * of two (appending one at a time stays linear). */
static void *grow(void *a, size_t n, size_t size)
{
    if (n != 0 && (n & (n - 1)) != 0)
        return a;
    a = realloc(a, (n ? 2 * n : 1) * size);
    assert_non_null(a);
    return a;
}

/* Add a record to @c; NULL @key or @headers mean absent. */
static void add_record(struct cmd *c, uint32_t partition, uint8_t flags,
                       const char *key, const char *value,
                       const char *headers)
{
    struct cmd_record *r;

    c->records = grow(c->records, c->n_records, sizeof(*r));
    r = &c->records[c->n_records++];
    memset(r, 0, sizeof(*r));
    r->partition = partition;
    r->flags = flags;
    if (key != NULL) {
        r->key_len = (uint32_t)strlen(key);
        r->key = dup_mem(key, r->key_len);
    }
    r->value_len = (uint32_t)strlen(value);
    r->value = dup_mem(value, r->value_len);
    if (headers != NULL) {
        r->headers_len = (uint32_t)strlen(headers);
        r->headers = dup_mem(headers, r->headers_len);
    }
}

static void add_offset(struct cmd *c, const char *topic, uint32_t partition,
                       uint64_t offset)
{
    struct cmd_offset *o;

    c->offsets = grow(c->offsets, c->n_offsets, sizeof(*o));
    o = &c->offsets[c->n_offsets++];
    memset(o, 0, sizeof(*o));
    snprintf(o->topic, sizeof(o->topic), "%s", topic);
    o->partition = partition;
    o->offset = offset;
}

/* Fill every scalar field with a distinct value, so that a field decoded
 * into the wrong place shows up. */
static void fill_all(struct cmd *c, enum cmd_type type)
{
    c->type = type;
    snprintf(c->topic, sizeof(c->topic), "topic-%d", (int)type);
    snprintf(c->group, sizeof(c->group), "group.%d", (int)type);
    c->partitions = 0x01020304u + (uint32_t)type;
    c->retention_ms = -1 - (int64_t)type;
    c->limit = 0xA0B0C0D0u;
    c->partition = 0x11223344u;
    c->before = 0x8877665544332211ull;
    c->node_id = 0xFEDCBA9876543210ull;
    snprintf(c->address, sizeof(c->address), "10.0.0.%d:9092", (int)type);
}

/* One command of each type with the fields it uses, plus records and
 * offsets on the types that carry them. */
static void build_every_type(struct fixture *f)
{
    enum cmd_type t;

    for (t = CMD_CREATE_TOPIC; t <= CMD_SET_MEMBER; t++) {
        struct cmd *c = &f->cmds[f->n++];
        fill_all(c, t);
        if (t == CMD_PRODUCE) {
            add_record(c, 0, 0, "k", "v", "{\"h\":\"1\"}");
            add_record(c, 2, RECORD_F_JSON, NULL, "{\"a\":1}", NULL);
        }
        if (t == CMD_COMMIT_OFFSETS) {
            add_offset(c, "orders", 0, 42);
            add_offset(c, "payments", 7, UINT64_MAX);
        }
    }
}

/* ==== comparing ==== */

static void assert_blob_equal(const uint8_t *a, uint32_t alen,
                              const uint8_t *b, uint32_t blen)
{
    assert_int_equal(a == NULL, b == NULL);
    assert_int_equal(alen, blen);
    if (a != NULL && alen > 0)
        assert_memory_equal(a, b, alen);
}

static void assert_cmd_equal(const struct cmd *a, const struct cmd *b)
{
    size_t i;

    assert_int_equal(a->type, b->type);
    assert_string_equal(a->topic, b->topic);
    assert_string_equal(a->group, b->group);
    assert_int_equal(a->partitions, b->partitions);
    assert_int_equal(a->retention_ms, b->retention_ms);
    assert_int_equal(a->limit, b->limit);
    assert_int_equal(a->partition, b->partition);
    assert_int_equal(a->before, b->before);
    assert_int_equal(a->node_id, b->node_id);
    assert_string_equal(a->address, b->address);
    assert_int_equal(a->n_records, b->n_records);
    for (i = 0; i < a->n_records; i++) {
        const struct cmd_record *x = &a->records[i], *y = &b->records[i];
        assert_int_equal(x->partition, y->partition);
        assert_int_equal(x->flags, y->flags);
        assert_blob_equal(x->key, x->key_len, y->key, y->key_len);
        assert_non_null(y->value);
        assert_blob_equal(x->value, x->value_len, y->value, y->value_len);
        assert_blob_equal(x->headers, x->headers_len, y->headers,
                          y->headers_len);
    }
    assert_int_equal(a->n_offsets, b->n_offsets);
    for (i = 0; i < a->n_offsets; i++) {
        assert_string_equal(a->offsets[i].topic, b->offsets[i].topic);
        assert_int_equal(a->offsets[i].partition, b->offsets[i].partition);
        assert_int_equal(a->offsets[i].offset, b->offsets[i].offset);
    }
}

static void free_decoded(struct cmd *cmds, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        cmd_clear(&cmds[i]);
    free(cmds);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* Length of the header and commands of an encoded entry, without the
 * padding: walk the commands by their body lengths. */
static size_t content_len(const uint8_t *e, size_t len)
{
    size_t at = HDR_SIZE, i, n = get_le32(e + HDR_COUNT_AT);

    for (i = 0; i < n; i++) {
        assert_true(at + 5 <= len);
        at += 5 + get_le32(e + at + 1);
    }
    assert_true(at <= len);
    return at;
}

/* Encode f->cmds[0..n) into f->entry. */
static void encode(struct fixture *f, int64_t ts)
{
    struct cmd *ptrs[12];
    size_t i;

    for (i = 0; i < f->n; i++)
        ptrs[i] = &f->cmds[i];
    free(f->entry);
    f->entry = NULL;
    assert_int_equal(cmd_encode_entry(ts, ptrs, f->n, &f->entry, &f->len), 0);
    assert_non_null(f->entry);
    f->content = content_len(f->entry, f->len);
}

/* Encode, decode and compare every command and the timestamp. */
static void roundtrip(struct fixture *f, int64_t ts)
{
    struct cmd *out = NULL;
    size_t n = 0, i;
    int64_t got_ts = 0;

    encode(f, ts);
    assert_int_equal(cmd_decode_entry(f->entry, f->len, &got_ts, &out, &n), 0);
    assert_int_equal(got_ts, ts);
    assert_int_equal(n, f->n);
    for (i = 0; i < n; i++)
        assert_cmd_equal(&f->cmds[i], &out[i]);
    free_decoded(out, n);
}

/* Decode @len bytes of @p from an exact-size copy (so that ASan sees any
 * read past the end). Frees what a successful decode returns. */
static int decode_copy(const uint8_t *p, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    struct cmd *out = NULL;
    size_t n = 0;
    int64_t ts;
    int rv;

    assert_non_null(copy);
    memcpy(copy, p, len);
    rv = cmd_decode_entry(copy, len, &ts, &out, &n);
    if (rv == 0)
        free_decoded(out, n);
    free(copy);
    return rv;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* ==== round trips ==== */

/* Each command type alone in an entry round-trips with all its fields. */
static void test_roundtrip_each_type(void **state)
{
    struct fixture *f = *state;
    struct cmd *first = &f->cmds[0];
    enum cmd_type t;

    for (t = CMD_CREATE_TOPIC; t <= CMD_SET_MEMBER; t++) {
        cmd_clear(first);
        fill_all(first, t);
        if (t == CMD_PRODUCE)
            add_record(first, 3, RECORD_F_JSON, "key", "[1,2]", "{}");
        if (t == CMD_COMMIT_OFFSETS)
            add_offset(first, "t", 1, 99);
        f->n = 1;
        roundtrip(f, 1700000000123);
    }
}

/* Every command type together in one entry round-trips in order. */
static void test_roundtrip_all_types_one_entry(void **state)
{
    struct fixture *f = *state;

    build_every_type(f);
    assert_int_equal(f->n, CMD_SET_MEMBER);
    roundtrip(f, 42);
}

/* Records with and without key and headers, with empty values and an
 * empty (present) key keep absent and empty apart. */
static void test_roundtrip_record_variants(void **state)
{
    struct fixture *f = *state;
    struct cmd *c = &f->cmds[0];

    c->type = CMD_PRODUCE;
    snprintf(c->topic, sizeof(c->topic), "orders");
    c->partitions = 3;
    add_record(c, 0, 0, NULL, "no key, no headers", NULL);
    add_record(c, 1, 0, "key", "key only", NULL);
    add_record(c, 2, 0, NULL, "headers only", "{\"a\":\"b\"}");
    add_record(c, 0, RECORD_F_JSON, "k", "{\"both\":true}", "{\"x\":\"y\"}");
    add_record(c, 1, 0, NULL, "", NULL);
    add_record(c, 2, 0, "", "", "");
    add_record(c, 0, 0xFF, "\xff\x00 binary", "\x01\x02", NULL);
    f->n = 1;
    roundtrip(f, 0);
}

/* Binary values with NUL bytes round-trip byte for byte. */
static void test_roundtrip_binary_value(void **state)
{
    struct fixture *f = *state;
    struct cmd *c = &f->cmds[0];
    uint8_t bin[256];
    size_t i;

    for (i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)i;
    c->type = CMD_PRODUCE;
    add_record(c, 0, 0, NULL, "", NULL);
    free(c->records[0].value);
    c->records[0].value = dup_mem(bin, sizeof(bin));
    c->records[0].value_len = sizeof(bin);
    f->n = 1;
    roundtrip(f, -1);
}

/* Many records and many offsets round-trip in order. */
static void test_roundtrip_many(void **state)
{
    struct fixture *f = *state;
    struct cmd *p = &f->cmds[0], *o = &f->cmds[1];
    char key[32], val[64];
    size_t i;

    p->type = CMD_PRODUCE;
    snprintf(p->topic, sizeof(p->topic), "bulk");
    for (i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "k%zu", i);
        snprintf(val, sizeof(val), "value number %zu", i);
        add_record(p, (uint32_t)(i % 16), (uint8_t)(i & 1),
                   i % 3 == 0 ? NULL : key, i % 5 == 0 ? "" : val,
                   i % 7 == 0 ? "{\"n\":\"1\"}" : NULL);
    }
    o->type = CMD_COMMIT_OFFSETS;
    snprintf(o->group, sizeof(o->group), "g");
    for (i = 0; i < 5000; i++)
        add_offset(o, i % 2 ? "a" : "b", (uint32_t)i, (uint64_t)i * 1000);
    f->n = 2;
    roundtrip(f, 5);
}

/* An entry with no commands round-trips. */
static void test_roundtrip_empty_entry(void **state)
{
    struct fixture *f = *state;
    struct cmd *out = NULL;
    size_t n = 99;
    int64_t ts = 0;

    encode(f, INT64_MIN);
    assert_int_equal(f->content, HDR_SIZE);
    assert_int_equal(f->len, (HDR_SIZE + 7) / 8 * 8);
    assert_int_equal(cmd_decode_entry(f->entry, f->len, &ts, &out, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ts, INT64_MIN);
    free(out);
}

/* Names of the maximum length and extreme numbers round-trip. */
static void test_roundtrip_limits(void **state)
{
    struct fixture *f = *state;
    struct cmd *c = &f->cmds[0];

    c->type = CMD_COMMIT_OFFSETS;
    memset(c->topic, 'T', TOPIC_NAME_MAX);
    memset(c->group, 'G', TOPIC_NAME_MAX);
    memset(c->address, 'A', sizeof(c->address) - 1);
    c->partitions = UINT32_MAX;
    c->retention_ms = INT64_MIN;
    c->before = UINT64_MAX;
    c->node_id = UINT64_MAX;
    add_offset(c, "x", UINT32_MAX, UINT64_MAX);
    memset(c->offsets[0].topic, 'o', TOPIC_NAME_MAX);
    f->n = 1;
    roundtrip(f, INT64_MAX);
}

/* ==== damaged input ==== */

/* Every prefix of a valid entry that cuts into its commands is
 * BRK_ECORRUPT, without reading past the given length; cutting only
 * padding still decodes. */
static void test_truncated_every_length(void **state)
{
    struct fixture *f = *state;
    size_t len;

    build_every_type(f);
    encode(f, 7);
    for (len = 0; len < f->content; len++)
        assert_int_equal(decode_copy(f->entry, len), BRK_ECORRUPT);
    for (; len <= f->len; len++)
        assert_int_equal(decode_copy(f->entry, len), 0);
}

/* Encoded entries are zero-padded to a multiple of 8 bytes (c-raft),
 * with less than 8 bytes of padding. */
static void test_padding(void **state)
{
    struct fixture *f = *state;
    size_t n, i;

    for (n = 0; n < 9; n++) {
        f->n = n;
        if (n > 0) {
            f->cmds[n - 1].type = CMD_DELETE_GROUP;
            /* Group names of varied length move the end around. */
            memset(f->cmds[n - 1].group, 'g', n);
        }
        encode(f, 7);
        assert_int_equal(f->len % 8, 0);
        assert_true(f->len - f->content < 8);
        for (i = f->content; i < f->len; i++)
            assert_int_equal(f->entry[i], 0);
        assert_int_equal(decode_copy(f->entry, f->len), 0);
    }
}

/* A wrong magic or version is refused. */
static void test_wrong_magic_version(void **state)
{
    struct fixture *f = *state;

    build_every_type(f);
    encode(f, 7);
    f->entry[0] ^= 0x20;
    assert_int_equal(decode_copy(f->entry, f->len), BRK_ECORRUPT);
    f->entry[0] ^= 0x20;
    f->entry[3] = 0;
    assert_int_equal(decode_copy(f->entry, f->len), BRK_ECORRUPT);
    encode(f, 7);
    f->entry[4] = 0;
    assert_int_equal(decode_copy(f->entry, f->len), BRK_ECORRUPT);
    f->entry[4] = 3;
    assert_int_equal(decode_copy(f->entry, f->len), BRK_ECORRUPT);
    /* Version 2 bytes read as version 1 leave the key fields over. */
    f->entry[4] = 1;
    assert_int_equal(decode_copy(f->entry, f->len), BRK_ECORRUPT);
    f->entry[4] = 2;
    assert_int_equal(decode_copy(f->entry, f->len), 0);
}

/* Bytes after the last command other than under 8 zero bytes of padding
 * are refused. */
static void test_trailing_garbage(void **state)
{
    struct fixture *f = *state;
    uint8_t *longer;
    size_t i;

    build_every_type(f);
    encode(f, 7);
    longer = calloc(1, f->content + 16);
    assert_non_null(longer);
    memcpy(longer, f->entry, f->content);
    /* Eight or more zero bytes are not padding. */
    assert_int_equal(decode_copy(longer, f->content + 8), BRK_ECORRUPT);
    assert_int_equal(decode_copy(longer, f->content + 16), BRK_ECORRUPT);
    /* A non-zero byte anywhere after the commands. */
    for (i = 0; i < 8; i++) {
        longer[f->content + i] = 'x';
        assert_int_equal(decode_copy(longer, f->content + 8), BRK_ECORRUPT);
        assert_int_equal(decode_copy(longer, f->content + i + 1),
                         BRK_ECORRUPT);
        longer[f->content + i] = 0;
    }
    free(longer);
}

/* A command body longer than its fields (garbage inside the body) is
 * refused rather than silently skipped. */
static void test_garbage_inside_body(void **state)
{
    struct fixture *f = *state;
    uint8_t *longer;

    f->cmds[0].type = CMD_DELETE_GROUP;
    snprintf(f->cmds[0].group, sizeof(f->cmds[0].group), "g");
    f->n = 1;
    encode(f, 7);
    longer = calloc(1, f->content + 8);
    assert_non_null(longer);
    memcpy(longer, f->entry, f->content);
    /* Body length (after the type byte) grows by one to take the byte. */
    put_le32(longer + HDR_SIZE + 1,
             (uint32_t)(f->content - HDR_SIZE - 5 + 1));
    assert_int_equal(decode_copy(longer, f->content + 1), BRK_ECORRUPT);
    assert_int_equal(decode_copy(longer, f->content + 8), BRK_ECORRUPT);
    free(longer);
}

/* Command types outside 1..8 are refused. */
static void test_unknown_type(void **state)
{
    struct fixture *f = *state;
    static const uint8_t bad[] = {0, CMD_SET_MEMBER + 1, 0x7F, 0xFF};
    size_t i;

    f->cmds[0].type = CMD_CREATE_TOPIC;
    f->n = 1;
    encode(f, 7);
    for (i = 0; i < sizeof(bad); i++) {
        f->entry[HDR_SIZE] = bad[i];
        assert_int_equal(decode_copy(f->entry, f->len), BRK_ECORRUPT);
    }
}

/* A record without a value (the absent marker) is refused. */
static void test_record_without_value(void **state)
{
    struct fixture *f = *state;
    struct cmd *c = &f->cmds[0];
    size_t at;

    c->type = CMD_PRODUCE;
    add_record(c, 0, 0, NULL, "v", NULL);
    f->n = 1;
    encode(f, 7);
    /* Record layout: partition u32, flags u8, key blob, value blob, ... */
    at = HDR_SIZE + 5 + (EMPTY_BODY - 4) + 4 + 1 + 4;
    assert_int_equal(f->entry[at], 1); /* value_len of "v" */
    put_le32(f->entry + at, 0xFFFFFFFFu);
    assert_int_equal(decode_copy(f->entry, f->len), BRK_ECORRUPT);
}

/* Counts and lengths of 0xFFFFFFFF (and other impossible sizes) are
 * refused without allocating for them. */
static void test_absurd_counts(void **state)
{
    struct fixture *f = *state;
    struct cmd *c = &f->cmds[0];
    size_t rec_count_at, body_at = HDR_SIZE + 5;
    uint8_t *copy;

    c->type = CMD_PRODUCE;
    add_record(c, 0, 0, "k", "v", NULL);
    f->n = 1;
    encode(f, 7);
    copy = dup_mem(f->entry, f->len);
    /* Command count. */
    put_le32(copy + HDR_COUNT_AT, 0xFFFFFFFFu);
    assert_int_equal(decode_copy(copy, f->len), BRK_ECORRUPT);
    put_le32(copy + HDR_COUNT_AT, 2);
    assert_int_equal(decode_copy(copy, f->len), BRK_ECORRUPT);
    /* Body length. */
    memcpy(copy, f->entry, f->len);
    put_le32(copy + HDR_SIZE + 1, 0xFFFFFFFFu);
    assert_int_equal(decode_copy(copy, f->len), BRK_ECORRUPT);
    /* Record count: after the fixed part of the body (empty strings). */
    rec_count_at = body_at + EMPTY_BODY - 8;
    memcpy(copy, f->entry, f->len);
    assert_int_equal(copy[rec_count_at], 1);
    put_le32(copy + rec_count_at, 0xFFFFFFFFu);
    assert_int_equal(decode_copy(copy, f->len), BRK_ECORRUPT);
    /* Key length. */
    memcpy(copy, f->entry, f->len);
    put_le32(copy + rec_count_at + 4 + 5, 0xFFFFFFFEu);
    assert_int_equal(decode_copy(copy, f->len), BRK_ECORRUPT);
    /* Offset count: the last field of the body before the idempotency
     * key (an empty string and a fingerprint, 10 bytes). */
    memcpy(copy, f->entry, f->len);
    assert_int_equal(get_le32(copy + f->content - 14), 0);
    put_le32(copy + f->content - 14, 0xFFFFFFFFu);
    assert_int_equal(decode_copy(copy, f->len), BRK_ECORRUPT);
    /* A topic string longer than a topic name can be. */
    memcpy(copy, f->entry, f->len);
    copy[body_at] = 0xFF;
    copy[body_at + 1] = 0xFF;
    assert_int_equal(decode_copy(copy, f->len), BRK_ECORRUPT);
    free(copy);
}

/* A command count that fits the bytes at 5 bytes per command but not at
 * the real minimum size is refused (BRK_ECORRUPT, not an allocation of
 * count * sizeof(struct cmd)). */
static int decode_big_count(void)
{
    size_t len = 4u << 20, count = (len - HDR_SIZE) / 5;
    uint8_t *buf = calloc(1, len);
    int rv;

    assert_non_null(buf);
    put_le32(buf, 0x434B5242u); /* "BRKC" */
    buf[4] = 1;
    put_le32(buf + HDR_COUNT_AT, (uint32_t)count);
    rv = decode_copy(buf, len);
    free(buf);
    return rv;
}

#ifndef __SANITIZE_ADDRESS__
/* Bytes of address space this process uses now (VmSize). */
static rlim_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
            break;
    fclose(f);
    assert_true(kb > 0);
    return (rlim_t)kb << 10;
}
#endif

static void test_big_count_small_allocation(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    /* ASan refuses allocations above 256 MiB (see the options above). */
    assert_int_equal(decode_big_count(), BRK_ECORRUPT);
#else
    /* Run in a child whose address space can grow by 256 MiB at most, so
     * that a lazily served huge calloc fails there. */
    struct rlimit lim;
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        getrlimit(RLIMIT_AS, &lim);
        lim.rlim_cur = vm_size() + (256ull << 20);
        if (lim.rlim_max != RLIM_INFINITY && lim.rlim_cur > lim.rlim_max)
            lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_AS, &lim) != 0)
            _exit(2);
        _exit(decode_big_count() == BRK_ECORRUPT ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
}

/* Flipping any bit pattern at any position never crashes: the result is
 * either a decoded entry (freed) or BRK_ECORRUPT. */
static void test_flipped_bytes(void **state)
{
    struct fixture *f = *state;
    static const uint8_t masks[] = {0x01, 0x02, 0x10, 0x80, 0xFF};
    size_t pos, m;
    uint8_t saved;
    int rv;

    build_every_type(f);
    encode(f, 7);
    for (pos = 0; pos < f->len; pos++) {
        saved = f->entry[pos];
        for (m = 0; m < sizeof(masks); m++) {
            f->entry[pos] = saved ^ masks[m];
            rv = decode_copy(f->entry, f->len);
            assert_true(rv == 0 || rv == BRK_ECORRUPT);
        }
        f->entry[pos] = 0xFF;
        rv = decode_copy(f->entry, f->len);
        assert_true(rv == 0 || rv == BRK_ECORRUPT);
        f->entry[pos] = saved;
    }
    /* Damage to the header fields that carry lengths is always caught. */
    for (pos = 0; pos < f->len; pos++) {
        if (pos == 0 || pos == 4 || pos == HDR_COUNT_AT) {
            f->entry[pos] ^= 0x01;
            assert_int_equal(decode_copy(f->entry, f->len), BRK_ECORRUPT);
            f->entry[pos] ^= 0x01;
        }
    }
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_roundtrip_each_type),
        T(test_roundtrip_all_types_one_entry),
        T(test_roundtrip_record_variants),
        T(test_roundtrip_binary_value),
        T(test_roundtrip_many),
        T(test_roundtrip_empty_entry),
        T(test_roundtrip_limits),
        T(test_truncated_every_length),
        T(test_padding),
        T(test_wrong_magic_version),
        T(test_trailing_garbage),
        T(test_garbage_inside_body),
        T(test_unknown_type),
        T(test_record_without_value),
        T(test_absurd_counts),
        T(test_big_count_small_allocation),
        T(test_flipped_bytes),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
