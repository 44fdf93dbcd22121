/* Unit tests for the state machine apply (src/broker/state.c) and the
 * key partitioner (src/broker/partitioner.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/config.h"
#include "broker/err.h"
#include "broker/state.h"
#include "tmpdir.h"

#define NOW 1700000000000LL

struct fixture {
    char dir[TMPDIR_PATH_MAX];   /* data_dir */
    struct config cfg;
    struct state st;
    uint64_t index;              /* last command index used */
    struct cmd c;                /* the command being built */
    struct cmd_result res;       /* result of the last apply */
    struct state_effects fx;     /* effects of the last apply */
    char errmsg[BRK_ERRMSG_LEN];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || tmpdir_make(f->dir, "test_state") != 0)
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

static void restart(struct fixture *f)
{
    state_close(&f->st);
    assert_int_equal(state_open(&f->st, &f->cfg, f->errmsg), 0);
}

/* ==== applying ==== */

/* Apply f->c as command @index without publishing. The result and
 * effects of the previous apply are dropped first. */
static int apply_raw(struct fixture *f, uint64_t index)
{
    cmd_result_clear(&f->res);
    state_effects_clear(&f->fx);
    state_apply(&f->st, &f->c, index, NOW, &f->res, &f->fx);
    assert_false(f->fx.failed);
    return f->res.err;
}

/* Publish every touched partition up to what it holds, as the loop does
 * once a batch is durable. */
static void publish(struct fixture *f)
{
    struct partition_stats st;
    size_t i;

    for (i = 0; i < f->fx.n_touched; i++) {
        struct partition *p =
            f->fx.touched[i].topic->partitions[f->fx.touched[i].partition];
        partition_stats(p, &st);
        partition_publish(p, st.next_offset);
    }
}

/* Apply f->c as the next command, publish, and return the error. */
static int apply(struct fixture *f)
{
    int rv = apply_raw(f, ++f->index);

    publish(f);
    return rv;
}

static int claim(struct fixture *f, const char *topic, const char *group,
                 uint32_t limit);

/* ==== building commands ==== */

static void begin(struct fixture *f, enum cmd_type type, const char *topic)
{
    cmd_clear(&f->c);
    f->c.type = type;
    snprintf(f->c.topic, sizeof(f->c.topic), "%s", topic);
    f->c.retention_ms = -1;
}

static uint8_t *dup_str(const char *s)
{
    size_t len = strlen(s);
    uint8_t *d = malloc(len ? len : 1);

    assert_non_null(d);
    memcpy(d, s, len);
    return d;
}

static void add_record(struct fixture *f, uint32_t partition, const char *key,
                       const char *value)
{
    struct cmd *c = &f->c;
    struct cmd_record *r;

    c->records = realloc(c->records, (c->n_records + 1) * sizeof(*r));
    assert_non_null(c->records);
    r = &c->records[c->n_records++];
    memset(r, 0, sizeof(*r));
    r->partition = partition;
    if (key != NULL) {
        r->key = dup_str(key);
        r->key_len = (uint32_t)strlen(key);
    }
    r->value = dup_str(value);
    r->value_len = (uint32_t)strlen(value);
}

static void add_offset(struct fixture *f, const char *topic, uint32_t p,
                       uint64_t offset)
{
    struct cmd *c = &f->c;

    c->offsets = realloc(c->offsets, (c->n_offsets + 1) * sizeof(*c->offsets));
    assert_non_null(c->offsets);
    memset(&c->offsets[c->n_offsets], 0, sizeof(*c->offsets));
    snprintf(c->offsets[c->n_offsets].topic, TOPIC_NAME_MAX + 1, "%s", topic);
    c->offsets[c->n_offsets].partition = p;
    c->offsets[c->n_offsets++].offset = offset;
}

static void create_topic(struct fixture *f, const char *name, uint32_t parts)
{
    begin(f, CMD_CREATE_TOPIC, name);
    f->c.partitions = parts;
    assert_int_equal(apply(f), 0);
}

/* Produce @n records "v<i>" round-robin over @parts partitions. */
static void produce_n(struct fixture *f, const char *topic, uint32_t parts,
                      size_t n)
{
    char v[32];
    size_t i;

    begin(f, CMD_PRODUCE, topic);
    for (i = 0; i < n; i++) {
        snprintf(v, sizeof(v), "v%zu", i);
        add_record(f, (uint32_t)(i % parts), NULL, v);
    }
    assert_int_equal(apply(f), 0);
}

/* ==== inspecting ==== */

static struct partition *part(struct fixture *f, const char *topic,
                              uint32_t p)
{
    struct topic *t = topic_registry_get(f->st.topics, topic);
    struct partition *res;

    assert_non_null(t);
    assert_true(p < t->n_partitions);
    res = t->partitions[p];
    topic_put(t); /* the registry keeps the topic while the test runs */
    return res;
}

static uint64_t next_offset(struct fixture *f, const char *topic, uint32_t p)
{
    struct partition_stats st;

    partition_stats(part(f, topic, p), &st);
    return st.next_offset;
}

/* Assert that partition @p holds exactly the values @want (NULL ended),
 * from its first offset. */
static void assert_values(struct fixture *f, const char *topic, uint32_t p,
                          const char *const *want)
{
    struct partition_read_result r;
    struct partition_stats st;
    size_t i, n = 0;

    while (want[n] != NULL)
        n++;
    partition_stats(part(f, topic, p), &st);
    assert_int_equal(st.next_offset - st.log_start_offset, n);
    memset(&r, 0, sizeof(r));
    assert_int_equal(partition_read(part(f, topic, p), st.log_start_offset,
                                    1000, 0, &r, f->errmsg),
                     0);
    assert_int_equal(r.n, n);
    for (i = 0; i < n; i++) {
        assert_int_equal(r.recs[i].value_len, strlen(want[i]));
        assert_memory_equal(r.recs[i].value, want[i], strlen(want[i]));
        assert_int_equal(r.recs[i].timestamp, NOW);
    }
    partition_read_result_free(&r);
}

static bool topic_exists(struct fixture *f, const char *name)
{
    struct topic *t = topic_registry_get(f->st.topics, name);

    topic_put(t);
    return t != NULL;
}

static bool touched(struct fixture *f, const char *topic, uint32_t p)
{
    size_t i;

    for (i = 0; i < f->fx.n_touched; i++)
        if (strcmp(f->fx.touched[i].topic->name, topic) == 0 &&
            f->fx.touched[i].partition == p)
            return true;
    return false;
}

/* ==== create ==== */

/* CREATE_TOPIC makes a topic with its partitions and command index. */
static void test_create_topic(void **state)
{
    struct fixture *f = *state;
    struct topic *t;

    begin(f, CMD_CREATE_TOPIC, "orders");
    f->c.partitions = 4;
    f->c.retention_ms = 3600000;
    assert_int_equal(apply(f), 0);
    t = topic_registry_get(f->st.topics, "orders");
    assert_non_null(t);
    assert_int_equal(t->n_partitions, 4);
    assert_int_equal(t->retention_ms, 3600000);
    assert_int_equal(t->created_index, f->index);
    topic_put(t);
    assert_int_equal(state_last_index(&f->st), f->index);
}

/* Creating an existing topic is BRK_ETOPIC_EXISTS; partitions outside
 * 1..max_topic_partitions is BRK_EINVAL with nothing created. */
static void test_create_errors(void **state)
{
    struct fixture *f = *state;

    create_topic(f, "t", 1);
    begin(f, CMD_CREATE_TOPIC, "t");
    f->c.partitions = 2;
    assert_int_equal(apply(f), BRK_ETOPIC_EXISTS);
    assert_true(f->res.errmsg[0] != '\0');
    begin(f, CMD_CREATE_TOPIC, "zero");
    f->c.partitions = 0;
    assert_int_equal(apply(f), BRK_EINVAL);
    assert_non_null(strstr(f->res.errmsg, "partitions"));
    begin(f, CMD_CREATE_TOPIC, "many");
    f->c.partitions = (uint32_t)f->cfg.max_topic_partitions + 1;
    assert_int_equal(apply(f), BRK_EINVAL);
    assert_false(topic_exists(f, "zero"));
    assert_false(topic_exists(f, "many"));
}

/* ==== produce ==== */

/* Records get consecutive offsets per partition, reported in request
 * order with the command's timestamp, and are stored in that order. */
static void test_produce_offsets(void **state)
{
    struct fixture *f = *state;
    static const uint32_t parts[] = {0, 1, 0, 2, 1, 0};
    static const uint64_t offs[] = {0, 0, 1, 0, 1, 2};
    const char *p0[] = {"a", "c", "f", NULL}, *p1[] = {"b", "e", NULL},
               *p2[] = {"d", NULL};
    const char *p0b[] = {"a", "c", "f", "g", NULL};
    size_t i;

    create_topic(f, "t", 3);
    begin(f, CMD_PRODUCE, "t");
    for (i = 0; i < 6; i++) {
        char v[2] = {(char)('a' + i), '\0'};
        add_record(f, parts[i], i % 2 ? "key" : NULL, v);
    }
    assert_int_equal(apply(f), 0);
    assert_int_equal(f->res.timestamp, NOW);
    assert_int_equal(f->res.n_produced, 6);
    for (i = 0; i < 6; i++) {
        assert_int_equal(f->res.produced[i].partition, parts[i]);
        assert_int_equal(f->res.produced[i].offset, offs[i]);
    }
    assert_true(touched(f, "t", 0));
    assert_true(touched(f, "t", 1));
    assert_true(touched(f, "t", 2));
    assert_values(f, "t", 0, p0);
    assert_values(f, "t", 1, p1);
    assert_values(f, "t", 2, p2);

    /* A later produce continues where the partition ended. */
    begin(f, CMD_PRODUCE, "t");
    add_record(f, 0, NULL, "g");
    assert_int_equal(apply(f), 0);
    assert_int_equal(f->res.produced[0].offset, 3);
    assert_values(f, "t", 0, p0b);
    assert_int_equal(state_last_index(&f->st), f->index);
}

/* Each record keeps its key and the command index that wrote it. */
static void test_produce_record_fields(void **state)
{
    struct fixture *f = *state;
    struct partition_read_result r;

    create_topic(f, "t", 1);
    begin(f, CMD_PRODUCE, "t");
    add_record(f, 0, "k1", "v1");
    add_record(f, 0, NULL, "");
    f->c.records[0].flags = RECORD_F_JSON;
    assert_int_equal(apply(f), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(partition_read(part(f, "t", 0), 0, 10, 0, &r, f->errmsg),
                     0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.recs[0].key_len, 2);
    assert_memory_equal(r.recs[0].key, "k1", 2);
    assert_int_equal(r.recs[0].flags, RECORD_F_JSON);
    assert_int_equal(r.recs[0].cmd_index, f->index);
    assert_null(r.recs[1].key);
    assert_int_equal(r.recs[1].value_len, 0);
    assert_int_equal(r.recs[1].cmd_index, f->index);
    partition_read_result_free(&r);
}

/* A produce to a missing topic creates it when cmd.partitions > 0. */
static void test_produce_auto_create(void **state)
{
    struct fixture *f = *state;
    struct topic *t;
    const char *want[] = {"x", NULL};

    begin(f, CMD_PRODUCE, "auto");
    f->c.partitions = 3;
    add_record(f, 2, NULL, "x");
    assert_int_equal(apply(f), 0);
    t = topic_registry_get(f->st.topics, "auto");
    assert_non_null(t);
    assert_int_equal(t->n_partitions, 3);
    assert_int_equal(t->created_index, f->index);
    topic_put(t);
    assert_int_equal(f->res.produced[0].partition, 2);
    assert_int_equal(f->res.produced[0].offset, 0);
    assert_values(f, "auto", 2, want);
    /* An existing topic keeps its partition count. */
    begin(f, CMD_PRODUCE, "auto");
    f->c.partitions = 8;
    add_record(f, 0, NULL, "y");
    assert_int_equal(apply(f), 0);
    t = topic_registry_get(f->st.topics, "auto");
    assert_int_equal(t->n_partitions, 3);
    topic_put(t);
}

/* A produce to a missing topic with partitions 0 is BRK_EUNKNOWN_TOPIC
 * and creates nothing. */
static void test_produce_unknown_topic(void **state)
{
    struct fixture *f = *state;

    begin(f, CMD_PRODUCE, "missing");
    add_record(f, 0, NULL, "x");
    assert_int_equal(apply(f), BRK_EUNKNOWN_TOPIC);
    assert_non_null(strstr(f->res.errmsg, "missing"));
    assert_false(topic_exists(f, "missing"));
    assert_int_equal(f->fx.n_touched, 0);
}

/* A record for a partition the topic lacks fails the whole produce with
 * BRK_EUNKNOWN_PARTITION: no record of it is written anywhere. */
static void test_produce_unknown_partition(void **state)
{
    struct fixture *f = *state;
    const char *none[] = {NULL};

    create_topic(f, "t", 2);
    begin(f, CMD_PRODUCE, "t");
    add_record(f, 0, NULL, "ok");
    add_record(f, 1, NULL, "ok");
    add_record(f, 2, NULL, "bad");
    add_record(f, 0, NULL, "ok");
    assert_int_equal(apply(f), BRK_EUNKNOWN_PARTITION);
    assert_non_null(strstr(f->res.errmsg, "2"));
    assert_values(f, "t", 0, none);
    assert_values(f, "t", 1, none);
    begin(f, CMD_PRODUCE, "t");
    add_record(f, UINT32_MAX, NULL, "bad");
    assert_int_equal(apply(f), BRK_EUNKNOWN_PARTITION);
    assert_values(f, "t", 0, none);
}

/* Past max_storage_size a produce is BRK_ESTORAGE_FULL and writes
 * nothing; smaller produces that fit still succeed. */
static void test_produce_storage_full(void **state)
{
    struct fixture *f = *state;
    char big[600];
    const char *one[] = {"small", NULL};

    f->cfg.max_storage_size = 500;
    create_topic(f, "t", 2);
    begin(f, CMD_PRODUCE, "t");
    add_record(f, 0, NULL, "small");
    assert_int_equal(apply(f), 0);
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    begin(f, CMD_PRODUCE, "t");
    add_record(f, 1, NULL, "fits");
    add_record(f, 0, NULL, big);
    assert_int_equal(apply(f), BRK_ESTORAGE_FULL);
    assert_non_null(strstr(f->res.errmsg, "500"));
    assert_values(f, "t", 0, one);
    assert_int_equal(next_offset(f, "t", 1), 0);
    /* Unlimited again: the same produce goes through. */
    f->cfg.max_storage_size = -1;
    assert_int_equal(apply(f), 0);
    assert_int_equal(next_offset(f, "t", 0), 2);
}

/* ==== idempotence ==== */

/* Applying the same PRODUCE with the same index twice writes it once. */
static void test_produce_same_index_twice(void **state)
{
    struct fixture *f = *state;
    const char *want[] = {"a", "b", NULL};

    create_topic(f, "t", 2);
    begin(f, CMD_PRODUCE, "t");
    add_record(f, 0, NULL, "a");
    add_record(f, 1, NULL, "x");
    add_record(f, 0, NULL, "b");
    f->index++;
    assert_int_equal(apply_raw(f, f->index), 0);
    publish(f);
    assert_int_equal(apply_raw(f, f->index), 0);
    publish(f);
    assert_values(f, "t", 0, want);
    assert_int_equal(next_offset(f, "t", 1), 1);
    /* An older index is skipped as well. */
    assert_int_equal(apply_raw(f, f->index - 1), 0);
    assert_values(f, "t", 0, want);
}

/* After a restart the last index is the highest one written, and
 * re-applying commands up to it changes no partition. */
static void test_replay_after_restart(void **state)
{
    struct fixture *f = *state;
    struct cmd saved[3];
    uint64_t idx[3];
    const char *p0[] = {"r0", "r2", NULL}, *p1[] = {"r1", NULL};
    const char *p0b[] = {"r0", "r2", "new", NULL};
    int i;

    create_topic(f, "t", 2);
    for (i = 0; i < 3; i++) {
        char v[8];
        snprintf(v, sizeof(v), "r%d", i);
        begin(f, CMD_PRODUCE, "t");
        add_record(f, (uint32_t)(i % 2), NULL, v);
        assert_int_equal(apply(f), 0);
        saved[i] = f->c; /* keep the command: ownership moves to saved */
        memset(&f->c, 0, sizeof(f->c));
        idx[i] = f->index;
    }
    /* A command that writes nothing (a commit) takes an index too. */
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", 0, 1);
    assert_int_equal(apply(f), 0);
    restart(f);
    assert_int_equal(state_last_index(&f->st), idx[2]);
    for (i = 0; i < 3; i++) {
        cmd_clear(&f->c);
        f->c = saved[i];
        memset(&saved[i], 0, sizeof(saved[i]));
        assert_int_equal(apply_raw(f, idx[i]), 0);
        publish(f);
    }
    assert_values(f, "t", 0, p0);
    assert_values(f, "t", 1, p1);
    /* A new command after the last index is written. */
    begin(f, CMD_PRODUCE, "t");
    add_record(f, 0, NULL, "new");
    f->index = state_last_index(&f->st);
    assert_int_equal(apply(f), 0);
    assert_values(f, "t", 0, p0b);
    assert_int_equal(state_last_index(&f->st), f->index);
}

/* A partially applied produce (one partition written before a crash) is
 * completed by the replay without writing the done part again. */
static void test_replay_partial_produce(void **state)
{
    struct fixture *f = *state;
    const char *p0[] = {"a", NULL}, *p1[] = {"b", NULL};
    uint64_t index;

    create_topic(f, "t", 2);
    /* Write only partition 0's record under the produce's index. */
    begin(f, CMD_PRODUCE, "t");
    add_record(f, 0, NULL, "a");
    index = ++f->index;
    assert_int_equal(apply_raw(f, index), 0);
    restart(f);
    begin(f, CMD_PRODUCE, "t");
    add_record(f, 0, NULL, "a");
    add_record(f, 1, NULL, "b");
    assert_int_equal(apply_raw(f, index), 0);
    publish(f);
    assert_values(f, "t", 0, p0);
    assert_values(f, "t", 1, p1);
}

/* Persist the groups as the loop does after a batch. */
static void persist_groups(struct fixture *f)
{
    bool err = true;
    char *text = group_store_take_dirty(f->st.groups, &err);

    assert_false(err);
    assert_non_null(text);
    assert_int_equal(group_store_write(f->st.groups, text, f->errmsg), 0);
    free(text);
}

/* Replaying create, delete and re-create of a topic after a restart
 * leaves the re-created topic and its records alone. */
static void test_replay_create_delete(void **state)
{
    struct fixture *f = *state;
    struct cmd log[5];
    const char *want[] = {"second", NULL};
    struct topic *t;
    int i;

    memset(log, 0, sizeof(log));
    create_topic(f, "t", 1);                    /* 1 */
    log[0] = f->c;
    memset(&f->c, 0, sizeof(f->c));
    produce_n(f, "t", 1, 1);                    /* 2 */
    log[1] = f->c;
    memset(&f->c, 0, sizeof(f->c));
    begin(f, CMD_DELETE_TOPIC, "t");            /* 3 */
    assert_int_equal(apply(f), 0);
    log[2] = f->c;
    memset(&f->c, 0, sizeof(f->c));
    create_topic(f, "t", 2);                    /* 4 */
    log[3] = f->c;
    memset(&f->c, 0, sizeof(f->c));
    begin(f, CMD_PRODUCE, "t");                 /* 5 */
    add_record(f, 1, NULL, "second");
    assert_int_equal(apply(f), 0);
    log[4] = f->c;
    memset(&f->c, 0, sizeof(f->c));
    restart(f);
    assert_int_equal(state_last_index(&f->st), 5);
    for (i = 0; i < 5; i++) {
        cmd_clear(&f->c);
        f->c = log[i];
        memset(&log[i], 0, sizeof(log[i]));
        assert_int_equal(apply_raw(f, (uint64_t)i + 1), 0);
        assert_int_equal(f->fx.n_deleted, 0);
        publish(f);
    }
    t = topic_registry_get(f->st.topics, "t");
    assert_non_null(t);
    assert_int_equal(t->n_partitions, 2);
    assert_int_equal(t->created_index, 4);
    topic_put(t);
    assert_values(f, "t", 1, want);
    assert_int_equal(next_offset(f, "t", 0), 0);
}

/* A replayed truncate of an older topic of the same name leaves the
 * re-created topic's segments alone. */
static void test_replay_truncate_recreated(void **state)
{
    struct fixture *f = *state;
    struct cmd truncate;
    struct partition_stats st;
    uint64_t truncate_index;
    char v[200];
    int i;

    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    create_topic(f, "t", 1);
    for (i = 0; i < 12; i++) {
        begin(f, CMD_PRODUCE, "t");
        add_record(f, 0, NULL, v);
        assert_int_equal(apply(f), 0);
    }
    begin(f, CMD_TRUNCATE, "t");
    f->c.before = 8;
    assert_int_equal(apply(f), 0);
    truncate_index = f->index;
    truncate = f->c;
    memset(&f->c, 0, sizeof(f->c));
    begin(f, CMD_DELETE_TOPIC, "t");
    assert_int_equal(apply(f), 0);
    create_topic(f, "t", 1);
    for (i = 0; i < 12; i++) {
        begin(f, CMD_PRODUCE, "t");
        add_record(f, 0, NULL, v);
        assert_int_equal(apply(f), 0);
    }
    restart(f);
    cmd_clear(&f->c);
    f->c = truncate;
    assert_int_equal(apply_raw(f, truncate_index), 0);
    partition_stats(part(f, "t", 0), &st);
    assert_int_equal(st.log_start_offset, 0);
    assert_int_equal(st.next_offset, 12);
}

/* Commit @off for partition 0 of @topic in group "g" as the next command. */
static void commit_one(struct fixture *f, const char *topic, uint64_t off)
{
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, topic, 0, off);
    assert_int_equal(apply(f), 0);
}

/* A topic delete replayed after a restart forgets the group offsets the
 * saved groups still hold for the old topic, whether the name was
 * created again since or not. */
static void test_replay_delete_forgets_offsets(void **state)
{
    struct fixture *f = *state;
    uint64_t off, delete_index;
    int recreate;

    for (recreate = 0; recreate < 2; recreate++) {
        create_topic(f, "t", 1);
        produce_n(f, "t", 1, 6);
        commit_one(f, "t", 5);
        commit_one(f, "t", 6);
        persist_groups(f);
        /* Crash after the delete (and maybe a re-create) without saving
         * the groups that forgot the offsets. */
        begin(f, CMD_DELETE_TOPIC, "t");
        assert_int_equal(apply(f), 0);
        delete_index = f->index;
        if (recreate)
            create_topic(f, "t", 1);
        restart(f);
        assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off), 0);
        begin(f, CMD_DELETE_TOPIC, "t");
        apply_raw(f, delete_index);
        assert_int_equal(f->fx.n_deleted, 0);
        assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off),
                         BRK_ENOT_FOUND);
        assert_true(f->fx.groups_changed);
        assert_int_equal(topic_exists(f, "t"), recreate);
    }
}

/* Group commands at or below the applied index saved with the groups are
 * skipped after a restart, so a replayed claim does not move offsets
 * twice; the next command proceeds. */
static void test_replay_groups(void **state)
{
    struct fixture *f = *state;
    struct cmd saved;
    uint64_t off, claim_index;

    create_topic(f, "t", 1);
    produce_n(f, "t", 1, 10);
    assert_int_equal(claim(f, "t", "g", 4), 0);
    claim_index = f->index;
    assert_int_equal(f->res.claimed[0].to, 4);
    saved = f->c;
    memset(&f->c, 0, sizeof(f->c));
    persist_groups(f);
    restart(f);
    assert_int_equal(state_last_index(&f->st), claim_index);
    cmd_clear(&f->c);
    f->c = saved;
    assert_int_equal(apply_raw(f, claim_index), 0);
    assert_int_equal(f->res.n_claimed, 0);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off), 0);
    assert_int_equal(off, 4);
    /* A commit replayed at an old index is skipped as well. */
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", 0, 0);
    assert_int_equal(apply_raw(f, claim_index - 1), 0);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off), 0);
    assert_int_equal(off, 4);
    /* The next claim continues. */
    f->index = state_last_index(&f->st);
    assert_int_equal(claim(f, "t", "g", 4), 0);
    assert_int_equal(f->res.n_claimed, 1);
    assert_int_equal(f->res.claimed[0].from, 4);
    assert_int_equal(f->res.claimed[0].to, 8);
}

/* A claim replayed after a restart, whose group offsets were never saved,
 * hands out only what existed when it first ran: records of later
 * commands that are already on disk are not claimed by the replay. */
static void test_replay_claim_bounded(void **state)
{
    struct fixture *f = *state;
    uint64_t claim_index;

    create_topic(f, "t", 1);
    produce_n(f, "t", 1, 4);
    assert_int_equal(claim(f, "t", "g", 100), 0);
    claim_index = f->index;
    assert_int_equal(f->res.claimed[0].to, 4);
    produce_n(f, "t", 1, 4); /* a later command: offsets 4..7 */
    restart(f);              /* groups.json was never written */
    begin(f, CMD_CLAIM, "t");
    snprintf(f->c.group, sizeof(f->c.group), "%s", "g");
    f->c.limit = 100;
    assert_int_equal(apply_raw(f, claim_index), 0);
    assert_int_equal(f->res.n_claimed, 1);
    assert_int_equal(f->res.claimed[0].from, 0);
    assert_int_equal(f->res.claimed[0].to, 4);
}

/* The last index also counts topics that hold no record yet. */
static void test_last_index_counts_creates(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(state_last_index(&f->st), 0);
    f->index = 41;
    create_topic(f, "a", 1);
    restart(f);
    assert_int_equal(state_last_index(&f->st), 42);
}

/* ==== groups ==== */

/* COMMIT_OFFSETS stores every offset and marks groups changed. */
static void test_commit_offsets(void **state)
{
    struct fixture *f = *state;
    uint64_t off;

    create_topic(f, "t", 2);
    create_topic(f, "u", 1);
    produce_n(f, "t", 2, 12);
    produce_n(f, "u", 1, 7);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", 0, 5);
    add_offset(f, "t", 1, 6);
    add_offset(f, "u", 0, 7);
    assert_int_equal(apply(f), 0);
    assert_true(f->fx.groups_changed);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off), 0);
    assert_int_equal(off, 5);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 1, &off), 0);
    assert_int_equal(off, 6);
    assert_int_equal(group_offset(f->st.groups, "g", "u", 0, &off), 0);
    assert_int_equal(off, 7);
}

/* A commit naming an unknown topic or partition fails whole: none of its
 * offsets is stored. */
static void test_commit_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    uint64_t off;

    create_topic(f, "t", 2);
    produce_n(f, "t", 2, 10);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", 0, 5);
    add_offset(f, "nope", 0, 1);
    assert_int_equal(apply(f), BRK_EUNKNOWN_TOPIC);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off),
                     BRK_ENOT_FOUND);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", 0, 5);
    add_offset(f, "t", 2, 1);
    assert_int_equal(apply(f), BRK_EUNKNOWN_PARTITION);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off),
                     BRK_ENOT_FOUND);
}

/* An offset above the partition's end is BRK_EOFFSET_RANGE with the
 * bounds, and nothing of the commit is stored; the end itself is fine. */
static void test_commit_past_end(void **state)
{
    struct fixture *f = *state;
    uint64_t off;

    create_topic(f, "t", 2);
    produce_n(f, "t", 2, 6); /* 3 records in each partition */
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", 0, 3);
    add_offset(f, "t", 1, 4);
    assert_int_equal(apply(f), BRK_EOFFSET_RANGE);
    assert_int_equal(f->res.range_start, 0);
    assert_int_equal(f->res.range_end, 3);
    assert_non_null(strstr(f->res.errmsg, "t/1"));
    assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off),
                     BRK_ENOT_FOUND);
    commit_one(f, "t", 3);
}

/* Replayed after a restart, with records of later commands on disk, a
 * commit is judged against the end it saw first: the refusal and the
 * reset to latest come out the same. */
static void test_commit_replay_sees_old_end(void **state)
{
    struct fixture *f = *state;
    struct cmd past, reset;
    uint64_t past_index, reset_index, off;

    create_topic(f, "t", 1);
    produce_n(f, "t", 1, 2);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", 0, 4);
    assert_int_equal(apply(f), BRK_EOFFSET_RANGE);
    past = f->c;
    past_index = f->index;
    memset(&f->c, 0, sizeof(f->c));
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "h");
    add_offset(f, "t", CMD_PARTITION_ALL, CMD_RESET_LATEST);
    assert_int_equal(apply(f), 0);
    reset = f->c;
    reset_index = f->index;
    memset(&f->c, 0, sizeof(f->c));
    produce_n(f, "t", 1, 5); /* the partition now ends at 7 */
    restart(f);
    cmd_clear(&f->c);
    f->c = past;
    assert_int_equal(apply_raw(f, past_index), BRK_EOFFSET_RANGE);
    assert_int_equal(f->res.range_end, 2);
    cmd_clear(&f->c);
    f->c = reset;
    assert_int_equal(apply_raw(f, reset_index), 0);
    assert_int_equal(group_offset(f->st.groups, "h", "t", 0, &off), 0);
    assert_int_equal(off, 2);
}

/* A reset sets every partition: earliest, latest, or the first record at
 * or after a time; an unknown topic fails. */
static void test_commit_reset(void **state)
{
    struct fixture *f = *state;
    uint64_t off;

    create_topic(f, "t", 2);
    produce_n(f, "t", 2, 4);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", CMD_PARTITION_ALL, CMD_RESET_LATEST);
    assert_int_equal(apply(f), 0);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 1, &off), 0);
    assert_int_equal(off, 2);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", CMD_PARTITION_ALL, CMD_RESET_EARLIEST);
    assert_int_equal(apply(f), 0);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off), 0);
    assert_int_equal(off, 0);
    /* Every record has the timestamp NOW. */
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", CMD_PARTITION_ALL, (uint64_t)NOW + 1);
    assert_int_equal(apply(f), 0);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off), 0);
    assert_int_equal(off, 2);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", CMD_PARTITION_ALL, (uint64_t)NOW);
    assert_int_equal(apply(f), 0);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 1, &off), 0);
    assert_int_equal(off, 0);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "nope", CMD_PARTITION_ALL, CMD_RESET_LATEST);
    assert_int_equal(apply(f), BRK_EUNKNOWN_TOPIC);
}

/* DELETE_GROUP removes a group; an unknown group is BRK_EUNKNOWN_GROUP. */
static void test_delete_group(void **state)
{
    struct fixture *f = *state;
    uint64_t off;

    create_topic(f, "t", 1);
    produce_n(f, "t", 1, 3);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", 0, 3);
    assert_int_equal(apply(f), 0);
    begin(f, CMD_DELETE_GROUP, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    assert_int_equal(apply(f), 0);
    assert_true(f->fx.groups_changed);
    assert_int_equal(group_offset(f->st.groups, "g", "t", 0, &off),
                     BRK_ENOT_FOUND);
    assert_int_equal(apply(f), BRK_EUNKNOWN_GROUP);
    assert_non_null(strstr(f->res.errmsg, "g"));
}

/* ==== claim ==== */

static int claim(struct fixture *f, const char *topic, const char *group,
                 uint32_t limit)
{
    begin(f, CMD_CLAIM, topic);
    snprintf(f->c.group, sizeof(f->c.group), "%s", group);
    f->c.limit = limit;
    return apply(f);
}

/* Mark the claimed ranges of the last claim in @seen[partition][offset],
 * failing on any offset handed out twice; returns the count. */
static size_t mark_claimed(struct fixture *f, bool seen[][64])
{
    size_t i, n = 0;
    uint64_t o;

    for (i = 0; i < f->res.n_claimed; i++) {
        struct cmd_claimed *c = &f->res.claimed[i];
        assert_true(c->from < c->to);
        assert_true(c->to <= 64);
        for (o = c->from; o < c->to; o++) {
            assert_false(seen[c->partition][o]);
            seen[c->partition][o] = true;
            n++;
        }
    }
    return n;
}

/* Claims hand out disjoint ranges within the limit, advance the group's
 * offsets, and stop when everything visible is claimed. */
static void test_claim_disjoint(void **state)
{
    struct fixture *f = *state;
    bool seen[3][64];
    size_t total = 0, got;
    uint32_t p;
    uint64_t off;

    memset(seen, 0, sizeof(seen));
    create_topic(f, "t", 3);
    produce_n(f, "t", 3, 30);
    while (total < 30) {
        assert_int_equal(claim(f, "t", "g", 4), 0);
        got = mark_claimed(f, seen);
        assert_true(got > 0 && got <= 4);
        assert_true(f->fx.groups_changed);
        total += got;
    }
    for (p = 0; p < 3; p++) {
        assert_int_equal(group_offset(f->st.groups, "g", "t", p, &off), 0);
        assert_int_equal(off, 10);
    }
    assert_int_equal(claim(f, "t", "g", 4), 0);
    assert_int_equal(f->res.n_claimed, 0);
    /* Another group starts from the beginning on its own. */
    assert_int_equal(claim(f, "t", "other", 100), 0);
    memset(seen, 0, sizeof(seen));
    assert_int_equal(mark_claimed(f, seen), 30);
}

/* A claim sees only published records; after publishing it gets them. */
static void test_claim_only_published(void **state)
{
    struct fixture *f = *state;

    create_topic(f, "t", 1);
    begin(f, CMD_PRODUCE, "t");
    add_record(f, 0, NULL, "a");
    add_record(f, 0, NULL, "b");
    assert_int_equal(apply_raw(f, ++f->index), 0);
    /* Not published: the claim in the same batch sees nothing. */
    begin(f, CMD_CLAIM, "t");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    f->c.limit = 10;
    assert_int_equal(apply_raw(f, ++f->index), 0);
    assert_int_equal(f->res.n_claimed, 0);
    partition_publish(part(f, "t", 0), 2);
    assert_int_equal(apply(f), 0);
    assert_int_equal(f->res.n_claimed, 1);
    assert_int_equal(f->res.claimed[0].from, 0);
    assert_int_equal(f->res.claimed[0].to, 2);
}

/* A claim continues from a committed offset; an unknown topic is
 * BRK_EUNKNOWN_TOPIC. */
static void test_claim_from_commit(void **state)
{
    struct fixture *f = *state;

    create_topic(f, "t", 1);
    produce_n(f, "t", 1, 10);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", 0, 7);
    assert_int_equal(apply(f), 0);
    assert_int_equal(claim(f, "t", "g", 100), 0);
    assert_int_equal(f->res.n_claimed, 1);
    assert_int_equal(f->res.claimed[0].from, 7);
    assert_int_equal(f->res.claimed[0].to, 10);
    assert_int_equal(claim(f, "nope", "g", 1), BRK_EUNKNOWN_TOPIC);
}

/* ==== truncate / delete topic ==== */

/* TRUNCATE drops whole segments below the offset; claims then start at
 * the new log start. */
static void test_truncate(void **state)
{
    struct fixture *f = *state;
    struct partition_stats before, after;
    struct partition_read_result r;
    char v[200];
    int i;

    create_topic(f, "t", 1);
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    for (i = 0; i < 20; i++) {
        begin(f, CMD_PRODUCE, "t");
        add_record(f, 0, NULL, v);
        assert_int_equal(apply(f), 0);
    }
    partition_stats(part(f, "t", 0), &before);
    assert_true(before.segments > 2);
    begin(f, CMD_TRUNCATE, "t");
    f->c.partition = 0;
    f->c.before = 12;
    assert_int_equal(apply(f), 0);
    partition_stats(part(f, "t", 0), &after);
    assert_true(after.log_start_offset > 0);
    assert_true(after.log_start_offset <= 12);
    assert_true(after.segments < before.segments);
    assert_true(after.size_bytes < before.size_bytes);
    assert_int_equal(after.next_offset, 20);
    memset(&r, 0, sizeof(r));
    assert_int_equal(partition_read(part(f, "t", 0), 0, 10, 0, &r, f->errmsg),
                     BRK_EOFFSET_RANGE);
    partition_read_result_free(&r);
    assert_int_equal(claim(f, "t", "g", 100), 0);
    assert_int_equal(f->res.n_claimed, 1);
    assert_int_equal(f->res.claimed[0].from, after.log_start_offset);
    assert_int_equal(f->res.claimed[0].to, 20);
    /* Unknown topic or partition. */
    begin(f, CMD_TRUNCATE, "t");
    f->c.partition = 1;
    assert_int_not_equal(apply(f), 0);
    begin(f, CMD_TRUNCATE, "nope");
    assert_int_equal(apply(f), BRK_EUNKNOWN_TOPIC);
    assert_true(f->res.errmsg[0] != '\0');
}

/* DELETE_TOPIC removes the topic and its files, reports it in
 * fx->deleted and forgets group offsets for it. */
static void test_delete_topic(void **state)
{
    struct fixture *f = *state;
    uint64_t off;

    create_topic(f, "t", 2);
    create_topic(f, "keep", 1);
    produce_n(f, "t", 2, 4);
    begin(f, CMD_COMMIT_OFFSETS, "");
    snprintf(f->c.group, sizeof(f->c.group), "g");
    add_offset(f, "t", 1, 2);
    add_offset(f, "keep", 0, 0);
    assert_int_equal(apply(f), 0);
    assert_true(tmpdir_exists(f->dir, "topics/t/1"));
    begin(f, CMD_DELETE_TOPIC, "t");
    assert_int_equal(apply(f), 0);
    assert_int_equal(f->fx.n_deleted, 1);
    assert_string_equal(f->fx.deleted[0]->name, "t");
    assert_true(atomic_load(&f->fx.deleted[0]->deleted));
    assert_true(f->fx.groups_changed);
    assert_false(topic_exists(f, "t"));
    assert_false(tmpdir_exists(f->dir, "topics/t"));
    assert_true(topic_exists(f, "keep"));
    assert_int_equal(group_offset(f->st.groups, "g", "t", 1, &off),
                     BRK_ENOT_FOUND);
    assert_int_equal(group_offset(f->st.groups, "g", "keep", 0, &off), 0);
    /* Deleting again is BRK_EUNKNOWN_TOPIC and reports nothing. */
    assert_int_equal(apply(f), BRK_EUNKNOWN_TOPIC);
    assert_int_equal(f->fx.n_deleted, 0);
    /* The deletion survives a restart. */
    state_effects_clear(&f->fx);
    restart(f);
    assert_false(topic_exists(f, "t"));
}

/* SET_MEMBER changes nothing here; an unknown type is BRK_EINTERNAL. */
static void test_other_types(void **state)
{
    struct fixture *f = *state;

    begin(f, CMD_SET_MEMBER, "");
    f->c.node_id = 2;
    assert_int_equal(apply(f), 0);
    begin(f, (enum cmd_type)99, "");
    assert_int_equal(apply(f), BRK_EINTERNAL);
    assert_true(f->res.errmsg[0] != '\0');
}

/* ==== partitioner ==== */

static int32_t murmur2_str(const char *s)
{
    return (int32_t)murmur2((const uint8_t *)s, strlen(s));
}

/* murmur2 matches Kafka's Utils.murmur2 test vectors. */
static void test_murmur2_kafka_vectors(void **state)
{
    (void)state;
    assert_int_equal(murmur2_str("21"), -973932308);
    assert_int_equal(murmur2_str("foobar"), -790332482);
    assert_int_equal(murmur2_str("a-little-bit-long-string"), -985981536);
    assert_int_equal(murmur2_str("a-little-bit-longer-string"), -1486304829);
    assert_int_equal(
        murmur2_str("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
        -58897971);
    assert_int_equal(murmur2_str("abc"), 479470107);
}

/* The partition for a key is (murmur2 & 0x7fffffff) % n, stable and in
 * range for every n. */
static void test_partition_for_key(void **state)
{
    static const char *keys[] = {"21", "foobar", "abc", "a", "",
                                 "a-little-bit-long-string"};
    size_t i;
    uint32_t n, h;

    (void)state;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const uint8_t *k = (const uint8_t *)keys[i];
        size_t len = strlen(keys[i]);
        h = murmur2(k, len);
        for (n = 1; n <= 64; n++) {
            uint32_t p = state_partition_for_key(k, len, n);
            assert_int_equal(p, (h & 0x7fffffffu) % n);
            assert_true(p < n);
            assert_int_equal(p, state_partition_for_key(k, len, n));
        }
    }
    /* Worked example: murmur2("foobar") = -790332482, so with 10
     * partitions: (-790332482 & 0x7fffffff) % 10 = 1357151166 % 10 = 6,
     * the sign bit being dropped, not the value negated. */
    assert_int_equal(
        state_partition_for_key((const uint8_t *)"foobar", 6, 10), 6);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_create_topic),
        T(test_create_errors),
        T(test_produce_offsets),
        T(test_produce_record_fields),
        T(test_produce_auto_create),
        T(test_produce_unknown_topic),
        T(test_produce_unknown_partition),
        T(test_produce_storage_full),
        T(test_produce_same_index_twice),
        T(test_replay_after_restart),
        T(test_replay_partial_produce),
        T(test_last_index_counts_creates),
        T(test_replay_create_delete),
        T(test_replay_truncate_recreated),
        T(test_replay_groups),
        T(test_replay_claim_bounded),
        T(test_replay_delete_forgets_offsets),
        T(test_commit_offsets),
        T(test_commit_all_or_nothing),
        T(test_commit_past_end),
        T(test_commit_replay_sees_old_end),
        T(test_commit_reset),
        T(test_delete_group),
        T(test_claim_disjoint),
        T(test_claim_only_published),
        T(test_claim_from_commit),
        T(test_truncate),
        T(test_delete_topic),
        T(test_other_types),
        cmocka_unit_test(test_murmur2_kafka_vectors),
        cmocka_unit_test(test_partition_for_key),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
