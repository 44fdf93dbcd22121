/* Unit tests for idempotency keys: the key table (src/broker/idem.c), its
 * use by state_apply, its JSON form for snapshots, the standalone journal,
 * and the key in the entry codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/cmd.h"
#include "broker/config.h"
#include "broker/err.h"
#include "broker/idem.h"
#include "broker/state.h"
#include "tmpdir.h"

#define NOW 1700000000000LL

struct fixture {
    char dir[TMPDIR_PATH_MAX];
    struct config cfg;
    struct state st;
    uint64_t index;
    struct cmd c;
    struct cmd_result res;
    struct state_effects fx;
    char errmsg[BRK_ERRMSG_LEN];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || tmpdir_make(f->dir, "test_idem") != 0)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->cfg.data_dir, sizeof(f->cfg.data_dir), "%s", f->dir);
    f->cfg.segment_size = 1024;
    if (state_open(&f->st, &f->cfg, f->errmsg) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    cmd_clear(&f->c);
    cmd_result_clear(&f->res);
    state_effects_clear(&f->fx);
    if (f->st.topics != NULL)
        state_close(&f->st);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* Apply f->c as command @index at @now, then publish what it wrote. */
static int apply_at(struct fixture *f, uint64_t index, int64_t now)
{
    struct partition_stats st;
    size_t i;

    cmd_result_clear(&f->res);
    state_effects_clear(&f->fx);
    state_apply(&f->st, &f->c, index, now, &f->res, &f->fx);
    for (i = 0; i < f->fx.n_touched; i++) {
        struct partition *p =
            f->fx.touched[i].topic->partitions[f->fx.touched[i].partition];
        partition_stats(p, &st);
        partition_publish(p, st.next_offset);
    }
    return f->res.err;
}

static int apply(struct fixture *f)
{
    return apply_at(f, ++f->index, NOW);
}

static void begin(struct fixture *f, enum cmd_type type, const char *topic,
                  const char *key, uint64_t fp)
{
    cmd_clear(&f->c);
    f->c.type = type;
    snprintf(f->c.topic, sizeof(f->c.topic), "%s", topic);
    f->c.retention_ms = -1;
    if (key != NULL)
        snprintf(f->c.idem_key, sizeof(f->c.idem_key), "%s", key);
    f->c.idem_fp = fp;
}

static void add_record(struct fixture *f, uint32_t partition, const char *v)
{
    struct cmd *c = &f->c;
    struct cmd_record *r;

    c->records = realloc(c->records, (c->n_records + 1) * sizeof(*r));
    assert_non_null(c->records);
    r = &c->records[c->n_records++];
    memset(r, 0, sizeof(*r));
    r->partition = partition;
    r->value = (uint8_t *)strdup(v);
    r->value_len = (uint32_t)strlen(v);
}

static void create_topic(struct fixture *f, const char *name, uint32_t parts)
{
    begin(f, CMD_CREATE_TOPIC, name, NULL, 0);
    f->c.partitions = parts;
    assert_int_equal(apply(f), 0);
}

static uint64_t next_offset(struct fixture *f, const char *topic, uint32_t p)
{
    struct topic *t = topic_registry_get(f->st.topics, topic);
    struct partition_stats st;

    assert_non_null(t);
    partition_stats(t->partitions[p], &st);
    topic_put(t);
    return st.next_offset;
}

/* A keyed produce of two records to partitions 0 and 1. */
static void keyed_produce(struct fixture *f, const char *key, uint64_t fp)
{
    begin(f, CMD_PRODUCE, "t", key, fp);
    add_record(f, 0, "a");
    add_record(f, 1, "b");
}

static void restart(struct fixture *f)
{
    state_close(&f->st);
    assert_int_equal(state_open(&f->st, &f->cfg, f->errmsg), 0);
}

/* ==== state_apply ==== */

/* A second command with the key is answered, not applied: same offsets,
 * nothing written, replayed set; even under another command index (the
 * repeat came through another node). */
static void test_apply_twice_is_once(void **state)
{
    struct fixture *f = *state;

    create_topic(f, "t", 2);
    keyed_produce(f, "k1", 42);
    assert_int_equal(apply(f), 0);
    assert_false(f->res.replayed);
    assert_int_equal(f->res.n_produced, 2);
    keyed_produce(f, "k1", 42);
    assert_int_equal(apply(f), 0);
    assert_true(f->res.replayed);
    assert_int_equal(f->res.n_produced, 2);
    assert_int_equal(f->res.produced[0].partition, 0);
    assert_int_equal(f->res.produced[0].offset, 0);
    assert_int_equal(f->res.produced[1].partition, 1);
    assert_int_equal(f->res.produced[1].offset, 0);
    assert_int_equal(f->res.timestamp, NOW);
    assert_int_equal(f->fx.n_touched, 0);
    assert_int_equal(next_offset(f, "t", 0), 1);
    assert_int_equal(next_offset(f, "t", 1), 1);
    assert_int_equal(idem_count(f->st.idem), 1);
    /* Another key is another write. */
    keyed_produce(f, "k2", 42);
    assert_int_equal(apply(f), 0);
    assert_false(f->res.replayed);
    assert_int_equal(next_offset(f, "t", 0), 2);
}

/* Errors are answers too: a keyed produce to a missing topic replays its
 * 404 even after the topic exists. */
static void test_error_replayed(void **state)
{
    struct fixture *f = *state;

    begin(f, CMD_PRODUCE, "t", "e1", 7);
    add_record(f, 0, "a");
    assert_int_equal(apply(f), BRK_EUNKNOWN_TOPIC);
    create_topic(f, "t", 1);
    begin(f, CMD_PRODUCE, "t", "e1", 7);
    add_record(f, 0, "a");
    assert_int_equal(apply(f), BRK_EUNKNOWN_TOPIC);
    assert_true(f->res.replayed);
    assert_non_null(strstr(f->res.errmsg, "unknown topic"));
    assert_int_equal(next_offset(f, "t", 0), 0);
}

static void test_reused_key(void **state)
{
    struct fixture *f = *state;

    create_topic(f, "t", 2);
    keyed_produce(f, "k", 1);
    assert_int_equal(apply(f), 0);
    keyed_produce(f, "k", 2);
    assert_int_equal(apply(f), BRK_EIDEM_REUSED);
    assert_false(f->res.replayed);
    assert_int_equal(next_offset(f, "t", 0), 1);
    /* The original is still answered. */
    keyed_produce(f, "k", 1);
    assert_int_equal(apply(f), 0);
    assert_true(f->res.replayed);
}

/* Expiry follows the commands' (leader's) time, not a local clock. */
static void test_expiry_by_command_time(void **state)
{
    struct fixture *f = *state;
    int64_t w = f->cfg.idempotency_window_ms;

    create_topic(f, "t", 2);
    keyed_produce(f, "k", 1);
    assert_int_equal(apply_at(f, ++f->index, NOW), 0);
    /* An unkeyed command just before the window ends keeps the key. */
    begin(f, CMD_PRODUCE, "t", NULL, 0);
    add_record(f, 0, "x");
    assert_int_equal(apply_at(f, ++f->index, NOW + w - 1), 0);
    assert_int_equal(idem_count(f->st.idem), 1);
    keyed_produce(f, "k", 1);
    assert_int_equal(apply_at(f, ++f->index, NOW + w - 1), 0);
    assert_true(f->res.replayed);
    /* At the window's end it is gone: the same key applies anew. */
    keyed_produce(f, "k", 1);
    assert_int_equal(apply_at(f, ++f->index, NOW + w), 0);
    assert_false(f->res.replayed);
    assert_int_equal(next_offset(f, "t", 0), 3);
    assert_int_equal(idem_count(f->st.idem), 1);
}

static void test_cap(void **state)
{
    struct fixture *f = *state;
    char key[16];
    int i;

    f->cfg.idempotency_max_keys = 3;
    restart(f);
    f->index = state_last_index(&f->st);
    create_topic(f, "t", 2);
    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        keyed_produce(f, key, 1);
        assert_int_equal(apply(f), 0);
    }
    keyed_produce(f, "k3", 1);
    assert_int_equal(apply(f), BRK_EIDEM_FULL);
    assert_non_null(strstr(f->res.errmsg, "idempotency_max_keys"));
    assert_int_equal(next_offset(f, "t", 0), 3);
    /* Held keys are still answered at the cap. */
    keyed_produce(f, "k0", 1);
    assert_int_equal(apply(f), 0);
    assert_true(f->res.replayed);
    /* Once they expire there is room again. */
    keyed_produce(f, "k3", 1);
    assert_int_equal(apply_at(f, ++f->index,
                              NOW + f->cfg.idempotency_window_ms), 0);
    assert_false(f->res.replayed);
    assert_int_equal(idem_count(f->st.idem), 1);
}

/* A claim that found nothing is not remembered (it waits and is applied
 * again); one that handed out messages replays the same ranges. */
static void test_claim(void **state)
{
    struct fixture *f = *state;

    create_topic(f, "t", 1);
    begin(f, CMD_CLAIM, "t", "c", 5);
    snprintf(f->c.group, sizeof(f->c.group), "g");
    f->c.limit = 10;
    assert_int_equal(apply(f), 0);
    assert_int_equal(f->res.n_claimed, 0);
    assert_int_equal(idem_count(f->st.idem), 0);
    begin(f, CMD_PRODUCE, "t", NULL, 0);
    add_record(f, 0, "x");
    add_record(f, 0, "y");
    assert_int_equal(apply(f), 0);
    begin(f, CMD_CLAIM, "t", "c", 5);
    snprintf(f->c.group, sizeof(f->c.group), "g");
    f->c.limit = 10;
    assert_int_equal(apply(f), 0);
    assert_int_equal(f->res.n_claimed, 1);
    begin(f, CMD_CLAIM, "t", "c", 5);
    snprintf(f->c.group, sizeof(f->c.group), "g");
    f->c.limit = 10;
    assert_int_equal(apply(f), 0);
    assert_true(f->res.replayed);
    assert_int_equal(f->res.n_claimed, 1);
    assert_int_equal(f->res.claimed[0].from, 0);
    assert_int_equal(f->res.claimed[0].to, 2);
}

/* A keyed produce replayed after a restart (cluster: the Raft log is
 * applied again over data already on disk) remembers the offsets it
 * really got, found on disk. */
static void test_replay_finds_offsets(void **state)
{
    struct fixture *f = *state;
    uint64_t idx;

    create_topic(f, "t", 2);
    begin(f, CMD_PRODUCE, "t", NULL, 0);
    add_record(f, 0, "pre");
    assert_int_equal(apply(f), 0);
    keyed_produce(f, "k", 9);
    assert_int_equal(apply(f), 0);
    idx = f->index;
    begin(f, CMD_PRODUCE, "t", NULL, 0);
    add_record(f, 0, "post");
    assert_int_equal(apply(f), 0);
    /* Forget the keys (as a node restarting from an older snapshot). */
    assert_int_equal(idem_load(f->st.idem, NULL, f->errmsg), 0);
    keyed_produce(f, "k", 9);
    assert_int_equal(apply_at(f, idx, NOW), 0);
    assert_int_equal(next_offset(f, "t", 0), 3);
    assert_int_equal(f->res.produced[0].offset, 1);
    assert_int_equal(f->res.produced[1].offset, 0);
    keyed_produce(f, "k", 9);
    assert_int_equal(apply(f), 0);
    assert_true(f->res.replayed);
    assert_int_equal(f->res.produced[0].offset, 1);
    assert_int_equal(f->res.produced[1].partition, 1);
}

/* ==== snapshot form ==== */

static void test_dump_load(void **state)
{
    struct fixture *f = *state;
    struct idem_table *t2;
    struct cmd_result r = {0};
    json_t *arr;
    char *text;

    create_topic(f, "t", 2);
    keyed_produce(f, "k1", 11);
    assert_int_equal(apply(f), 0);
    begin(f, CMD_PRODUCE, "nope", "k2", 12);
    add_record(f, 0, "a");
    assert_int_equal(apply(f), BRK_EUNKNOWN_TOPIC);
    arr = idem_dump(f->st.idem);
    text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    arr = json_loads(text, 0, NULL);
    free(text);
    assert_int_equal(idem_table_create(60000, 10, &t2), 0);
    assert_int_equal(idem_load(t2, arr, f->errmsg), 0);
    assert_int_equal(idem_count(t2), 2);
    assert_int_equal(idem_check(t2, "k1", 11, &r), IDEM_REPLAY);
    assert_int_equal(r.n_produced, 2);
    assert_int_equal(r.produced[1].partition, 1);
    assert_int_equal(r.timestamp, NOW);
    assert_int_equal(idem_check(t2, "k1", 12, &r), IDEM_REUSED);
    assert_int_equal(idem_check(t2, "k2", 12, &r), IDEM_REPLAY);
    assert_int_equal(r.err, BRK_EUNKNOWN_TOPIC);
    assert_non_null(strstr(r.errmsg, "nope"));
    assert_int_equal(idem_check(t2, "k3", 12, &r), IDEM_NEW);
    /* The expiry clock came along: the window ends at the same time. */
    idem_expire(t2, NOW + 60000);
    assert_int_equal(idem_count(t2), 0);
    /* Malformed entries are refused, leaving an empty table. */
    json_array_append_new(arr, json_pack("{s:s}", "k", "x"));
    assert_int_equal(idem_load(t2, arr, f->errmsg), BRK_ECORRUPT);
    assert_int_equal(idem_count(t2), 0);
    json_decref(arr);
    cmd_result_clear(&r);
    idem_table_destroy(t2);
}

/* ==== standalone journal ==== */

static void test_journal_survives_restart(void **state)
{
    struct fixture *f = *state;

    create_topic(f, "t", 2);
    keyed_produce(f, "k1", 1);
    assert_int_equal(apply(f), 0);
    assert_true(idem_journal_pending(f->st.idem));
    assert_int_equal(idem_journal_append(f->st.idem, f->errmsg), 0);
    assert_int_equal(idem_journal_sync(f->st.idem, f->errmsg), 0);
    assert_false(idem_journal_pending(f->st.idem));
    restart(f);
    assert_int_equal(idem_count(f->st.idem), 1);
    keyed_produce(f, "k1", 1);
    assert_int_equal(apply(f), 0);
    assert_true(f->res.replayed);
    assert_int_equal(f->res.produced[0].offset, 0);
    assert_int_equal(next_offset(f, "t", 0), 1);
}

/* A key whose command is not in storage (the journal is written before
 * the data's fsync) is dropped at start-up; a torn last line is skipped. */
static void test_journal_drops_undurable(void **state)
{
    struct fixture *f = *state;
    char path[TMPDIR_PATH_MAX + 32];
    struct cmd_result r = {0};
    FILE *fp;

    create_topic(f, "t", 2);
    keyed_produce(f, "k1", 1);
    assert_int_equal(apply(f), 0);
    /* A key recorded for a later command index that wrote nothing. */
    r.n_produced = 0;
    assert_int_equal(idem_record(f->st.idem, "ghost", 1, f->index + 5, NOW,
                                 &r), 0);
    assert_int_equal(idem_journal_append(f->st.idem, f->errmsg), 0);
    snprintf(path, sizeof(path), "%s/idempotency.jsonl", f->dir);
    fp = fopen(path, "a");
    assert_non_null(fp);
    fputs("{\"k\":\"torn\",\"f\":\"01", fp);
    fclose(fp);
    restart(f);
    assert_int_equal(idem_count(f->st.idem), 1);
    assert_int_equal(idem_check(f->st.idem, "k1", 1, &r), IDEM_REPLAY);
    assert_int_equal(idem_check(f->st.idem, "ghost", 1, &r), IDEM_NEW);
    assert_int_equal(idem_check(f->st.idem, "torn", 1, &r), IDEM_NEW);
    cmd_result_clear(&r);
}

/* A crash after a keyed produce's records and before its key's line: the
 * intent written before the records lets start-up rebuild the answer from
 * them. An intent whose records never came is forgotten. */
static void test_journal_intent_resolved(void **state)
{
    struct fixture *f = *state;
    char path[TMPDIR_PATH_MAX + 32];
    struct cmd_result r = {0};
    FILE *fp;

    create_topic(f, "t", 2);
    begin(f, CMD_PRODUCE, "t", "pre", 3);
    add_record(f, 0, "x");
    assert_int_equal(apply(f), 0);
    assert_int_equal(idem_journal_append(f->st.idem, f->errmsg), 0);
    begin(f, CMD_PRODUCE, "t", "k", 5);
    add_record(f, 0, "a");
    add_record(f, 1, "b");
    add_record(f, 0, "c");
    assert_int_equal(apply_at(f, ++f->index, NOW + 7), 0);
    /* No idem_journal_append: the process died here. */
    snprintf(path, sizeof(path), "%s/idempotency.jsonl", f->dir);
    fp = fopen(path, "a");
    assert_non_null(fp);
    fprintf(fp, "{\"k\":\"never\",\"f\":\"01\",\"i\":%llu,\"a\":%lld,"
            "\"topic\":\"t\",\"rp\":[0]}\n",
            (unsigned long long)f->index + 10, (long long)NOW);
    fclose(fp);
    restart(f);
    assert_int_equal(idem_count(f->st.idem), 2);
    assert_int_equal(idem_check(f->st.idem, "k", 5, &r), IDEM_REPLAY);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n_produced, 3);
    assert_int_equal(r.produced[0].partition, 0);
    assert_int_equal(r.produced[0].offset, 1);
    assert_int_equal(r.produced[1].partition, 1);
    assert_int_equal(r.produced[1].offset, 0);
    assert_int_equal(r.produced[2].partition, 0);
    assert_int_equal(r.produced[2].offset, 2);
    assert_int_equal(r.timestamp, NOW + 7);
    assert_int_equal(idem_check(f->st.idem, "never", 1, &r), IDEM_NEW);
    /* Still there after another restart (rewritten as a full line). */
    restart(f);
    assert_int_equal(idem_check(f->st.idem, "k", 5, &r), IDEM_REPLAY);
    assert_int_equal(r.produced[2].offset, 2);
    cmd_result_clear(&r);
}

/* Expired keys are not loaded again. */
static void test_journal_expired(void **state)
{
    struct fixture *f = *state;

    create_topic(f, "t", 2);
    keyed_produce(f, "old", 1);
    assert_int_equal(apply_at(f, ++f->index, NOW), 0);
    assert_int_equal(idem_journal_append(f->st.idem, f->errmsg), 0);
    keyed_produce(f, "new", 1);
    assert_int_equal(apply_at(f, ++f->index,
                              NOW + f->cfg.idempotency_window_ms), 0);
    assert_int_equal(idem_journal_append(f->st.idem, f->errmsg), 0);
    restart(f);
    assert_int_equal(idem_count(f->st.idem), 1);
}

static bool accept_all(void *ctx, uint64_t index)
{
    (void)ctx;
    (void)index;
    return true;
}

static bool resolve_none(void *ctx, const struct idem_intent *in,
                         struct cmd_result *res)
{
    (void)ctx;
    (void)in;
    (void)res;
    return false;
}

static size_t file_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    size_t n = 0;
    int ch;

    assert_non_null(fp);
    while ((ch = fgetc(fp)) != EOF)
        n += ch == '\n';
    fclose(fp);
    return n;
}

/* A long run of keys that expire keeps the journal bounded: it is
 * rewritten with the live keys once it holds far more lines. */
static void test_journal_bounded(void **state)
{
    struct fixture *f = *state;
    struct idem_journal_hooks hooks = {accept_all, resolve_none, NULL};
    struct cmd_result r = {0};
    struct idem_table *t;
    char path[TMPDIR_PATH_MAX + 32], key[32];
    size_t i, max_lines = 0;

    snprintf(path, sizeof(path), "%s/bounded.jsonl", f->dir);
    assert_int_equal(idem_table_create(100, 1000000, &t), 0);
    assert_int_equal(idem_journal_open(t, path, &hooks, f->errmsg), 0);
    for (i = 0; i < 300000; i++) {
        int64_t at = NOW + (int64_t)i / 100; /* 100 keys per ms */
        snprintf(key, sizeof(key), "k%zu", i);
        idem_expire(t, at);
        assert_int_equal(idem_record(t, key, i, i + 1, at, &r), 0);
        if (i % 1000 == 999) {
            size_t n;
            assert_int_equal(idem_journal_append(t, f->errmsg), 0);
            if (i % 10000 != 9999)
                continue;
            n = file_lines(path);
            if (n > max_lines)
                max_lines = n;
        }
    }
    /* A 100 ms window at 100 keys per ms holds 10,000 keys; without the
     * rewrite the journal would have 300,000 lines. */
    assert_int_equal(idem_count(t), 10000);
    assert_true(max_lines <= 2 * 10000 + 100000 + 1000);
    idem_table_destroy(t);
    assert_int_equal(idem_table_create(100, 1000000, &t), 0);
    assert_int_equal(idem_journal_open(t, path, &hooks, f->errmsg), 0);
    assert_int_equal(idem_count(t), 10000);
    assert_int_equal(idem_check(t, "k299999", 299999, &r), IDEM_REPLAY);
    assert_int_equal(idem_check(t, "k289999", 289999, &r), IDEM_NEW);
    assert_int_equal(file_lines(path), 10000);
    cmd_result_clear(&r);
    idem_table_destroy(t);
}

/* ==== keys and the codec ==== */

static void test_key_valid(void **state)
{
    char k[CMD_IDEM_KEY_MAX + 2];

    (void)state;
    assert_true(idem_key_valid("a"));
    assert_true(idem_key_valid("order 42/attempt-1"));
    assert_false(idem_key_valid(""));
    assert_false(idem_key_valid("tab\there"));
    assert_false(idem_key_valid("caf\xc3\xa9"));
    memset(k, 'x', CMD_IDEM_KEY_MAX);
    k[CMD_IDEM_KEY_MAX] = '\0';
    assert_true(idem_key_valid(k));
    k[CMD_IDEM_KEY_MAX] = 'x';
    k[CMD_IDEM_KEY_MAX + 1] = '\0';
    assert_false(idem_key_valid(k));
}

static void test_codec_carries_key(void **state)
{
    struct cmd c = {0}, *pc = &c, *out;
    uint8_t *buf;
    size_t len, n;
    int64_t ts;

    (void)state;
    c.type = CMD_DELETE_TOPIC;
    snprintf(c.topic, sizeof(c.topic), "t");
    snprintf(c.idem_key, sizeof(c.idem_key), "key-1");
    c.idem_fp = 0x0123456789abcdefull;
    assert_int_equal(cmd_encode_entry(NOW, &pc, 1, &buf, &len), 0);
    assert_int_equal(buf[4], 2); /* entry format version */
    assert_int_equal(cmd_decode_entry(buf, len, &ts, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].idem_key, "key-1");
    assert_true(out[0].idem_fp == 0x0123456789abcdefull);
    cmd_clear(&out[0]);
    free(out);
    free(buf);
}

/* A version 1 entry (before keys) still decodes, without a key. */
static void test_codec_reads_v1(void **state)
{
    struct cmd c = {0}, *pc = &c, *out;
    uint8_t *buf;
    size_t len, n, body_at = 4 + 1 + 8 + 4 + 1, body;
    int64_t ts;

    (void)state;
    c.type = CMD_DELETE_TOPIC;
    snprintf(c.topic, sizeof(c.topic), "t");
    assert_int_equal(cmd_encode_entry(NOW, &pc, 1, &buf, &len), 0);
    /* Turn it into version 1: drop the empty key (2) and fingerprint (8). */
    body = buf[body_at] | (size_t)buf[body_at + 1] << 8;
    buf[4] = 1;
    body -= 10;
    buf[body_at] = (uint8_t)body;
    buf[body_at + 1] = (uint8_t)(body >> 8);
    len = body_at + 4 + body;
    while (len % 8 != 0)
        buf[len++] = 0;
    assert_int_equal(cmd_decode_entry(buf, len, &ts, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].topic, "t");
    assert_string_equal(out[0].idem_key, "");
    cmd_clear(&out[0]);
    free(out);
    free(buf);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_apply_twice_is_once),
        T(test_error_replayed),
        T(test_reused_key),
        T(test_expiry_by_command_time),
        T(test_cap),
        T(test_claim),
        T(test_replay_finds_offsets),
        T(test_dump_load),
        T(test_journal_survives_restart),
        T(test_journal_drops_undurable),
        T(test_journal_intent_resolved),
        T(test_journal_expired),
        T(test_journal_bounded),
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_codec_carries_key),
        cmocka_unit_test(test_codec_reads_v1),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
