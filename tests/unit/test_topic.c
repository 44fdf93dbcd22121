/* Unit tests for the topic registry (src/broker/topic.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/stat.h>

#include "broker/err.h"
#include "broker/fsutil.h"
#include "broker/topic.h"
#include "tmpdir.h"

struct fixture {
    char dir[TMPDIR_PATH_MAX];          /* data_dir */
    struct partition_options popt;
    struct topic_registry *reg;
    char errmsg[BRK_ERRMSG_LEN];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || tmpdir_make(f->dir, "test_topic") != 0)
        return -1;
    f->popt.segment_size = 4096;
    f->popt.index_interval = 256;
    if (topic_registry_open(f->dir, &f->popt, &f->reg, f->errmsg) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    topic_registry_close(f->reg);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* Close and open the registry again on the same data_dir. */
static void reopen(struct fixture *f)
{
    topic_registry_close(f->reg);
    f->reg = NULL;
    assert_int_equal(
        topic_registry_open(f->dir, &f->popt, &f->reg, f->errmsg), 0);
}

static void create(struct fixture *f, const char *name, uint32_t parts)
{
    assert_int_equal(topic_registry_create(f->reg, name, parts, -1, 1, NULL,
                                           f->errmsg),
                     0);
}

/* Append one record with @value to partition @p of @t. */
static uint64_t append(struct topic *t, uint32_t p, const char *value)
{
    struct record r;
    uint64_t first;
    char errmsg[BRK_ERRMSG_LEN];

    memset(&r, 0, sizeof(r));
    r.timestamp = 1000;
    r.cmd_index = 1;
    r.value = (const uint8_t *)value;
    r.value_len = (uint32_t)strlen(value);
    assert_int_equal(partition_append(t->partitions[p], &r, 1, &first,
                                      errmsg),
                     0);
    partition_publish(t->partitions[p], first + 1);
    return first;
}

static bool path_exists(const char *dir, const char *rel)
{
    return tmpdir_exists(dir, rel);
}

/* ==== names ==== */

/* Names of 1..249 characters from [A-Za-z0-9._-] are valid, except "."
 * and ".."; everything else is refused. */
static void test_name_validation(void **state)
{
    static const struct {
        const char *name;
        bool valid;
    } cases[] = {
        {"a", true},        {"A-b_c.1", true},   {"...", true},
        {"-", true},        {"0", true},         {"a..b", true},
        {"", false},        {".", false},        {"..", false},
        {"a/b", false},     {"a b", false},      {"\xc3\xa9", false},
        {"a\\b", false},    {"a:b", false},      {"tab\t", false},
        {"a\nb", false},    {"../x", false},     {"/", false},
    };
    char name[300];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(topic_name_valid(cases[i].name), cases[i].valid);
    memset(name, 'x', sizeof(name));
    name[249] = '\0';
    assert_true(topic_name_valid(name));
    name[249] = 'x';
    name[250] = '\0';
    assert_false(topic_name_valid(name));
    name[299] = '\0';
    assert_false(topic_name_valid(name));
}

/* ==== create / get / list / delete ==== */

/* A created topic can be got with its partitions, retention and index,
 * and its files exist. */
static void test_create_get(void **state)
{
    struct fixture *f = *state;
    struct topic *t, *out = NULL;

    assert_int_equal(topic_registry_create(f->reg, "orders", 3, 5000, 17,
                                           &out, f->errmsg),
                     0);
    assert_non_null(out);
    t = topic_registry_get(f->reg, "orders");
    assert_ptr_equal(t, out);
    assert_string_equal(t->name, "orders");
    assert_int_equal(t->n_partitions, 3);
    assert_int_equal(t->retention_ms, 5000);
    assert_int_equal(t->created_index, 17);
    assert_false(atomic_load(&t->deleted));
    assert_non_null(t->partitions[0]);
    assert_non_null(t->partitions[2]);
    topic_put(t);
    assert_true(path_exists(f->dir, "topics/orders/topic.json"));
    assert_true(path_exists(f->dir, "topics/orders/0"));
    assert_true(path_exists(f->dir, "topics/orders/2"));
    assert_false(path_exists(f->dir, "topics/orders/3"));
}

/* Getting a topic that does not exist gives NULL. */
static void test_get_missing(void **state)
{
    struct fixture *f = *state;

    assert_null(topic_registry_get(f->reg, "nope"));
    create(f, "b", 1);
    assert_null(topic_registry_get(f->reg, "a"));
    assert_null(topic_registry_get(f->reg, "c"));
}

/* Creating a topic twice is BRK_ETOPIC_EXISTS and keeps the first. */
static void test_create_exists(void **state)
{
    struct fixture *f = *state;
    struct topic *t;

    create(f, "dup", 2);
    assert_int_equal(topic_registry_create(f->reg, "dup", 5, -1, 2, NULL,
                                           f->errmsg),
                     BRK_ETOPIC_EXISTS);
    assert_non_null(strstr(f->errmsg, "dup"));
    t = topic_registry_get(f->reg, "dup");
    assert_int_equal(t->n_partitions, 2);
    topic_put(t);
}

/* list returns every topic sorted by name, each referenced. */
static void test_list_sorted(void **state)
{
    struct fixture *f = *state;
    static const char *names[] = {"m", "b", "z", "a", "B", "a.b", "a-b"};
    static const char *sorted[] = {"B", "a", "a-b", "a.b", "b", "m", "z"};
    struct topic **list;
    size_t n, i;

    assert_int_equal(topic_registry_list(f->reg, &list, &n), 0);
    assert_int_equal(n, 0);
    topic_list_free(list, n);
    for (i = 0; i < 7; i++)
        create(f, names[i], 1);
    assert_int_equal(topic_registry_list(f->reg, &list, &n), 0);
    assert_int_equal(n, 7);
    for (i = 0; i < n; i++)
        assert_string_equal(list[i]->name, sorted[i]);
    topic_list_free(list, n);
}

/* Many creates (the array grows several times) keep lookups working. */
static void test_many_topics(void **state)
{
    struct fixture *f = *state;
    char name[32];
    struct topic *t;
    int i;

    for (i = 99; i >= 0; i--) {
        snprintf(name, sizeof(name), "t%03d", i);
        create(f, name, 1);
    }
    for (i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "t%03d", i);
        t = topic_registry_get(f->reg, name);
        assert_non_null(t);
        assert_string_equal(t->name, name);
        topic_put(t);
    }
}

/* delete removes the topic from the registry and its files from disk. */
static void test_delete(void **state)
{
    struct fixture *f = *state;

    create(f, "a", 1);
    create(f, "gone", 2);
    create(f, "z", 1);
    assert_int_equal(topic_registry_delete(f->reg, "gone", f->errmsg), 0);
    assert_null(topic_registry_get(f->reg, "gone"));
    assert_false(path_exists(f->dir, "topics/gone"));
    assert_true(path_exists(f->dir, "topics/a"));
    assert_true(path_exists(f->dir, "topics/z"));
    /* Nothing is left in the trash either. */
    assert_false(path_exists(f->dir, "trash/gone.1"));
    assert_int_equal(topic_registry_delete(f->reg, "gone", f->errmsg),
                     BRK_EUNKNOWN_TOPIC);
    /* The name can be used again. */
    create(f, "gone", 3);
    assert_true(path_exists(f->dir, "topics/gone/2"));
}

/* A reference taken before a delete keeps the topic and its partitions
 * readable until it is put. */
static void test_reference_outlives_delete(void **state)
{
    struct fixture *f = *state;
    struct topic *t;
    struct partition_read_result res;

    create(f, "busy", 1);
    t = topic_registry_get(f->reg, "busy");
    assert_int_equal(append(t, 0, "still here"), 0);
    assert_int_equal(topic_registry_delete(f->reg, "busy", f->errmsg), 0);
    assert_true(atomic_load(&t->deleted));
    assert_null(topic_registry_get(f->reg, "busy"));
    assert_string_equal(t->name, "busy");
    memset(&res, 0, sizeof(res));
    assert_int_equal(partition_read(t->partitions[0], 0, 10, 0, &res,
                                     f->errmsg),
                     0);
    assert_int_equal(res.n, 1);
    assert_memory_equal(res.recs[0].value, "still here", 10);
    partition_read_result_free(&res);
    topic_put(t);
}

/* The size in bytes sums the partitions of every topic. */
static void test_size_bytes(void **state)
{
    struct fixture *f = *state;
    struct topic *a, *b;
    uint64_t empty = topic_registry_size_bytes(f->reg), one;

    assert_int_equal(empty, 0);
    create(f, "a", 2);
    create(f, "b", 1);
    a = topic_registry_get(f->reg, "a");
    b = topic_registry_get(f->reg, "b");
    append(a, 1, "x");
    one = topic_registry_size_bytes(f->reg);
    assert_true(one > 0);
    append(a, 0, "x");
    append(b, 0, "x");
    assert_int_equal(topic_registry_size_bytes(f->reg), 3 * one);
    topic_put(a);
    topic_put(b);
}

/* ==== persistence and recovery ==== */

/* Reopening keeps every topic with its partitions, settings and records. */
static void test_reopen_keeps_topics(void **state)
{
    struct fixture *f = *state;
    struct topic *t;
    struct partition_stats st;

    assert_int_equal(topic_registry_create(f->reg, "orders", 4, 60000, 9,
                                           NULL, f->errmsg),
                     0);
    create(f, "logs", 1);
    t = topic_registry_get(f->reg, "orders");
    append(t, 3, "a");
    append(t, 3, "b");
    topic_put(t);
    reopen(f);
    t = topic_registry_get(f->reg, "orders");
    assert_non_null(t);
    assert_int_equal(t->n_partitions, 4);
    assert_int_equal(t->retention_ms, 60000);
    assert_int_equal(t->created_index, 9);
    partition_stats(t->partitions[3], &st);
    assert_int_equal(st.next_offset, 2);
    assert_int_equal(st.high_watermark, 2);
    partition_stats(t->partitions[0], &st);
    assert_int_equal(st.next_offset, 0);
    topic_put(t);
    t = topic_registry_get(f->reg, "logs");
    assert_non_null(t);
    assert_int_equal(t->n_partitions, 1);
    assert_int_equal(t->retention_ms, -1);
    topic_put(t);
}

/* A deleted topic stays deleted after a reopen. */
static void test_reopen_after_delete(void **state)
{
    struct fixture *f = *state;
    struct topic **list;
    size_t n;

    create(f, "keep", 1);
    create(f, "drop", 1);
    assert_int_equal(topic_registry_delete(f->reg, "drop", f->errmsg), 0);
    reopen(f);
    assert_int_equal(topic_registry_list(f->reg, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0]->name, "keep");
    topic_list_free(list, n);
}

/* A topic directory without topic.json (a create that crashed) is removed
 * at open; a directory whose name is not a topic name is left alone. */
static void test_incomplete_create_removed(void **state)
{
    struct fixture *f = *state;
    char path[1024];
    struct topic *t;

    create(f, "whole", 1);
    snprintf(path, sizeof(path), "%s/topics/half/0", f->dir);
    assert_int_equal(fsutil_mkdirs(path, f->errmsg), 0);
    assert_int_equal(tmpdir_write(f->dir, "topics/half/0/junk", "x"), 0);
    snprintf(path, sizeof(path), "%s/topics/not a topic", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    reopen(f);
    assert_false(path_exists(f->dir, "topics/half"));
    assert_null(topic_registry_get(f->reg, "half"));
    assert_true(path_exists(f->dir, "topics/not a topic"));
    t = topic_registry_get(f->reg, "whole");
    assert_non_null(t);
    topic_put(t);
}

/* Leftovers of an interrupted delete in trash/ are removed at open. */
static void test_trash_emptied(void **state)
{
    struct fixture *f = *state;
    char path[1024];

    topic_registry_close(f->reg);
    f->reg = NULL;
    snprintf(path, sizeof(path), "%s/trash/old.7/0", f->dir);
    assert_int_equal(fsutil_mkdirs(path, f->errmsg), 0);
    assert_int_equal(tmpdir_write(f->dir, "trash/old.7/topic.json", "{}"), 0);
    assert_int_equal(
        tmpdir_write(f->dir, "trash/old.7/0/00000000000000000000.log", "x"),
        0);
    assert_int_equal(
        topic_registry_open(f->dir, &f->popt, &f->reg, f->errmsg), 0);
    assert_false(path_exists(f->dir, "trash/old.7"));
    assert_true(path_exists(f->dir, "trash"));
    assert_null(topic_registry_get(f->reg, "old"));
}

/* A topic.json that is not valid JSON, or lacks partitions, fails the
 * open with BRK_ECORRUPT and names the file. */
static void test_corrupt_meta(void **state)
{
    struct fixture *f = *state;

    create(f, "bad", 1);
    topic_registry_close(f->reg);
    f->reg = NULL;
    assert_int_equal(tmpdir_write(f->dir, "topics/bad/topic.json", "{nope"),
                     0);
    assert_int_equal(
        topic_registry_open(f->dir, &f->popt, &f->reg, f->errmsg),
        BRK_ECORRUPT);
    assert_null(f->reg);
    assert_non_null(strstr(f->errmsg, "bad/topic.json"));
    assert_int_equal(
        tmpdir_write(f->dir, "topics/bad/topic.json", "{\"partitions\":0}"),
        0);
    assert_int_equal(
        topic_registry_open(f->dir, &f->popt, &f->reg, f->errmsg),
        BRK_ECORRUPT);
    assert_null(f->reg);
    assert_int_equal(tmpdir_write(f->dir, "topics/bad/topic.json",
                                  "{\"partitions\":2}"),
                     0);
    assert_int_equal(
        topic_registry_open(f->dir, &f->popt, &f->reg, f->errmsg), 0);
}

/* ==== threads ==== */

struct reader {
    struct topic_registry *reg;
    atomic_bool *stop;
    size_t found;
};

static void *read_loop(void *arg)
{
    struct reader *r = arg;
    struct topic **list;
    struct topic *t;
    size_t n;

    while (!atomic_load(r->stop)) {
        t = topic_registry_get(r->reg, "t050");
        if (t != NULL) {
            r->found++;
            topic_put(t);
        }
        if (topic_registry_list(r->reg, &list, &n) == 0)
            topic_list_free(list, n);
    }
    return NULL;
}

/* Lookups and lists from other threads stay safe while the loop thread
 * creates topics and the registry's array grows, and do not starve it
 * (with a reader-preferring lock this case took ~10 s under ASan). */
static void test_get_while_creating(void **state)
{
    struct fixture *f = *state;
    pthread_t th[3];
    struct reader r[3];
    atomic_bool stop;
    char name[32];
    int i;

    atomic_init(&stop, false);
    for (i = 0; i < 3; i++) {
        r[i] = (struct reader){.reg = f->reg, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, read_loop, &r[i]), 0);
    }
    for (i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "t%03d", i);
        create(f, name, 1);
    }
    atomic_store(&stop, true);
    for (i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_validation),
        T(test_create_get),
        T(test_get_missing),
        T(test_create_exists),
        T(test_list_sorted),
        T(test_many_topics),
        T(test_delete),
        T(test_reference_outlives_delete),
        T(test_size_bytes),
        T(test_reopen_keeps_topics),
        T(test_reopen_after_delete),
        T(test_incomplete_create_removed),
        T(test_trash_emptied),
        T(test_corrupt_meta),
        T(test_get_while_creating),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
