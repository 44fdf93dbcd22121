/* Unit tests for consumer group offsets (src/broker/group.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/err.h"
#include "broker/group.h"
#include "tmpdir.h"

struct fixture {
    char dir[TMPDIR_PATH_MAX];   /* data_dir */
    struct group_store *gs;
    char errmsg[BRK_ERRMSG_LEN];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || tmpdir_make(f->dir, "test_group") != 0)
        return -1;
    if (group_store_open(f->dir, &f->gs, f->errmsg) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    group_store_close(f->gs);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* Persist what changed, as the loop and its sync step do. */
static void persist(struct fixture *f)
{
    bool err = true;
    char *text = group_store_take_dirty(f->gs, &err);

    assert_false(err);
    assert_non_null(text);
    assert_int_equal(group_store_write(f->gs, text, f->errmsg), 0);
    free(text);
}

static void reopen(struct fixture *f)
{
    group_store_close(f->gs);
    f->gs = NULL;
    assert_int_equal(group_store_open(f->dir, &f->gs, f->errmsg), 0);
}

static void commit(struct fixture *f, const char *g, const char *t,
                   uint32_t p, uint64_t off)
{
    assert_int_equal(group_commit(f->gs, g, t, p, off), 0);
}

static void assert_offset(struct fixture *f, const char *g, const char *t,
                          uint32_t p, uint64_t want)
{
    uint64_t got = ~want;

    assert_int_equal(group_offset(f->gs, g, t, p, &got), 0);
    assert_int_equal(got, want);
}

static void assert_no_offset(struct fixture *f, const char *g, const char *t,
                             uint32_t p)
{
    uint64_t got = 12345;

    assert_int_equal(group_offset(f->gs, g, t, p, &got), BRK_ENOT_FOUND);
    assert_int_equal(got, 12345);
}

/* True when @arr holds {"topic": @t, "partition": @p, "offset": @off}. */
static bool has_entry(json_t *arr, const char *t, int p, json_int_t off)
{
    size_t i;
    json_t *e;

    json_array_foreach(arr, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "topic")), t) == 0 &&
            json_integer_value(json_object_get(e, "partition")) == p &&
            json_integer_value(json_object_get(e, "offset")) == off &&
            json_object_size(e) == 3)
            return true;
    }
    return false;
}

/* ==== commit / get / delete ==== */

/* An offset never committed is BRK_ENOT_FOUND (out value untouched). */
static void test_offset_missing(void **state)
{
    struct fixture *f = *state;

    assert_no_offset(f, "g", "t", 0);
    commit(f, "g", "t", 1, 5);
    assert_no_offset(f, "g", "t", 0);
    assert_no_offset(f, "g", "other", 1);
    assert_no_offset(f, "other", "t", 1);
}

/* A commit sets the offset; a later commit replaces it, also backwards. */
static void test_commit_get(void **state)
{
    struct fixture *f = *state;

    commit(f, "g", "t", 0, 10);
    assert_offset(f, "g", "t", 0, 10);
    commit(f, "g", "t", 0, 20);
    assert_offset(f, "g", "t", 0, 20);
    commit(f, "g", "t", 0, 3);
    assert_offset(f, "g", "t", 0, 3);
    commit(f, "g", "t", 0, 0);
    assert_offset(f, "g", "t", 0, 0);
}

/* Offsets are independent per group, topic and partition. */
static void test_commit_independent(void **state)
{
    struct fixture *f = *state;

    commit(f, "g1", "t1", 0, 1);
    commit(f, "g1", "t1", 1, 2);
    commit(f, "g1", "t2", 0, 3);
    commit(f, "g2", "t1", 0, 4);
    commit(f, "g1", "t1", UINT32_MAX, (uint64_t)INT64_MAX);
    assert_offset(f, "g1", "t1", 0, 1);
    assert_offset(f, "g1", "t1", 1, 2);
    assert_offset(f, "g1", "t2", 0, 3);
    assert_offset(f, "g2", "t1", 0, 4);
    assert_offset(f, "g1", "t1", UINT32_MAX, (uint64_t)INT64_MAX);
}

/* delete removes the group and all its offsets; a missing group is
 * BRK_EUNKNOWN_GROUP. */
static void test_delete(void **state)
{
    struct fixture *f = *state;

    commit(f, "g", "t", 0, 1);
    commit(f, "g", "u", 2, 3);
    commit(f, "keep", "t", 0, 9);
    assert_int_equal(group_delete(f->gs, "g"), 0);
    assert_no_offset(f, "g", "t", 0);
    assert_no_offset(f, "g", "u", 2);
    assert_null(group_offsets_json(f->gs, "g", NULL));
    assert_offset(f, "keep", "t", 0, 9);
    assert_int_equal(group_delete(f->gs, "g"), BRK_EUNKNOWN_GROUP);
    assert_int_equal(group_delete(f->gs, "never"), BRK_EUNKNOWN_GROUP);
    /* The group can come back. */
    commit(f, "g", "t", 0, 7);
    assert_offset(f, "g", "t", 0, 7);
}

/* forget_topic drops one topic's offsets in every group and nothing else. */
static void test_forget_topic(void **state)
{
    struct fixture *f = *state;
    json_t *list;

    commit(f, "a", "dead", 0, 1);
    commit(f, "a", "dead", 1, 2);
    commit(f, "a", "live", 0, 3);
    commit(f, "b", "dead", 0, 4);
    commit(f, "c", "live", 0, 5);
    group_forget_topic(f->gs, "dead");
    assert_no_offset(f, "a", "dead", 0);
    assert_no_offset(f, "a", "dead", 1);
    assert_no_offset(f, "b", "dead", 0);
    assert_offset(f, "a", "live", 0, 3);
    assert_offset(f, "c", "live", 0, 5);
    /* Groups themselves stay, even when left without offsets. */
    list = group_list_json(f->gs);
    assert_int_equal(json_array_size(list), 3);
    json_decref(list);
    group_forget_topic(f->gs, "no-such-topic");
    assert_offset(f, "a", "live", 0, 3);
}

/* ==== JSON views ==== */

/* list gives the group names sorted, and [] when there are none. */
static void test_list_sorted(void **state)
{
    struct fixture *f = *state;
    static const char *in[] = {"zeta", "alpha", "Mid", "beta", "alpha2"};
    static const char *want[] = {"Mid", "alpha", "alpha2", "beta", "zeta"};
    json_t *list = group_list_json(f->gs);
    size_t i;

    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    for (i = 0; i < 5; i++)
        commit(f, in[i], "t", 0, i);
    list = group_list_json(f->gs);
    assert_int_equal(json_array_size(list), 5);
    for (i = 0; i < 5; i++)
        assert_string_equal(json_string_value(json_array_get(list, i)),
                            want[i]);
    json_decref(list);
}

/* The offsets view lists every (topic, partition, offset) of a group, or
 * only one topic's with a filter; NULL for an unknown group. */
static void test_offsets_json(void **state)
{
    struct fixture *f = *state;
    json_t *arr;

    assert_null(group_offsets_json(f->gs, "g", NULL));
    commit(f, "g", "orders", 0, 10);
    commit(f, "g", "orders", 3, 30);
    commit(f, "g", "logs", 1, 7);
    commit(f, "other", "orders", 0, 99);

    arr = group_offsets_json(f->gs, "g", NULL);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 3);
    assert_true(has_entry(arr, "orders", 0, 10));
    assert_true(has_entry(arr, "orders", 3, 30));
    assert_true(has_entry(arr, "logs", 1, 7));
    json_decref(arr);

    arr = group_offsets_json(f->gs, "g", "orders");
    assert_int_equal(json_array_size(arr), 2);
    assert_true(has_entry(arr, "orders", 0, 10));
    assert_true(has_entry(arr, "orders", 3, 30));
    json_decref(arr);

    arr = group_offsets_json(f->gs, "g", "missing");
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);

    assert_null(group_offsets_json(f->gs, "nope", "orders"));
}

/* ==== persistence ==== */

/* take_dirty gives text only after a change, once per change. */
static void test_take_dirty(void **state)
{
    struct fixture *f = *state;
    bool err = true;
    char *text;

    assert_null(group_store_take_dirty(f->gs, &err));
    assert_false(err);
    commit(f, "g", "t", 0, 1);
    text = group_store_take_dirty(f->gs, &err);
    assert_non_null(text);
    assert_false(err);
    assert_non_null(strstr(text, "\"groups\""));
    free(text);
    assert_null(group_store_take_dirty(f->gs, &err));
    /* A failed delete changes nothing. */
    assert_int_equal(group_delete(f->gs, "none"), BRK_EUNKNOWN_GROUP);
    assert_null(group_store_take_dirty(f->gs, &err));
    assert_int_equal(group_delete(f->gs, "g"), 0);
    text = group_store_take_dirty(f->gs, &err);
    assert_non_null(text);
    free(text);
}

/* Offsets written through take_dirty + write survive close and open. */
static void test_persist_reopen(void **state)
{
    struct fixture *f = *state;
    bool err;
    json_t *list;

    commit(f, "g1", "orders", 0, 10);
    commit(f, "g1", "orders", 5, 50);
    commit(f, "g2", "logs", 0, (uint64_t)1 << 40);
    persist(f);
    assert_true(tmpdir_exists(f->dir, "groups.json"));
    reopen(f);
    assert_offset(f, "g1", "orders", 0, 10);
    assert_offset(f, "g1", "orders", 5, 50);
    assert_offset(f, "g2", "logs", 0, (uint64_t)1 << 40);
    /* Loading is not a change. */
    assert_null(group_store_take_dirty(f->gs, &err));
    /* A delete and a forget are persisted too. */
    assert_int_equal(group_delete(f->gs, "g2"), 0);
    group_forget_topic(f->gs, "orders");
    commit(f, "g3", "x", 1, 1);
    persist(f);
    reopen(f);
    assert_no_offset(f, "g2", "logs", 0);
    assert_no_offset(f, "g1", "orders", 0);
    assert_offset(f, "g3", "x", 1, 1);
    list = group_list_json(f->gs);
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
}

/* Changes that were not written are lost on reopen (nothing is written
 * behind the caller's back). */
static void test_unwritten_lost(void **state)
{
    struct fixture *f = *state;

    commit(f, "g", "t", 0, 1);
    persist(f);
    commit(f, "g", "t", 0, 2);
    reopen(f);
    assert_offset(f, "g", "t", 0, 1);
}

/* A write that failed (disk full) is undone by revert: memory holds the
 * file's state again, with its applied index, and nothing is dirty. */
static void test_revert(void **state)
{
    struct fixture *f = *state;
    uint64_t off = 0;
    bool err = true;

    assert_int_equal(group_commit(f->gs, "g", "t", 0, 5), 0);
    group_store_set_applied_index(f->gs, 7);
    persist(f);
    assert_int_equal(group_commit(f->gs, "g", "t", 0, 9), 0);
    assert_int_equal(group_commit(f->gs, "h", "t", 1, 1), 0);
    group_store_set_applied_index(f->gs, 8);
    assert_int_equal(group_store_revert(f->gs, f->errmsg), 0);
    assert_int_equal(group_offset(f->gs, "g", "t", 0, &off), 0);
    assert_int_equal(off, 5);
    assert_int_equal(group_offset(f->gs, "h", "t", 1, &off), BRK_ENOT_FOUND);
    assert_int_equal(group_store_applied_index(f->gs), 7);
    assert_null(group_store_take_dirty(f->gs, &err));
    assert_false(err);
}

/* Without a file, revert empties the store. */
static void test_revert_no_file(void **state)
{
    struct fixture *f = *state;
    uint64_t off;

    assert_int_equal(group_commit(f->gs, "g", "t", 0, 5), 0);
    assert_int_equal(group_store_revert(f->gs, f->errmsg), 0);
    assert_int_equal(group_offset(f->gs, "g", "t", 0, &off), BRK_ENOT_FOUND);
}

/* A dump loaded into another store gives the same offsets. */
static void test_dump_load(void **state)
{
    struct fixture *f = *state;
    struct group_store *other;
    char dir2[TMPDIR_PATH_MAX], *text;
    uint64_t off;

    commit(f, "g", "t", 2, 22);
    commit(f, "h", "u", 0, 5);
    text = group_store_dump(f->gs);
    assert_non_null(text);
    assert_int_equal(tmpdir_make(dir2, "test_group2"), 0);
    assert_int_equal(group_store_open(dir2, &other, f->errmsg), 0);
    group_commit(other, "stale", "t", 0, 1);
    assert_int_equal(group_store_load_text(other, text, f->errmsg), 0);
    assert_int_equal(group_offset(other, "g", "t", 2, &off), 0);
    assert_int_equal(off, 22);
    assert_int_equal(group_offset(other, "h", "u", 0, &off), 0);
    assert_int_equal(off, 5);
    assert_int_equal(group_offset(other, "stale", "t", 0, &off),
                     BRK_ENOT_FOUND);
    /* Bad text leaves the loaded state alone. */
    assert_int_equal(group_store_load_text(other, "[1,", f->errmsg),
                     BRK_ECORRUPT);
    assert_int_equal(group_offset(other, "g", "t", 2, &off), 0);
    free(text);
    group_store_close(other);
    tmpdir_remove(dir2);
}

/* A groups.json that is not JSON, or has no "groups" object, fails the
 * open with BRK_ECORRUPT and a message naming the file. */
static void test_corrupt_file(void **state)
{
    struct fixture *f = *state;
    static const char *bad[] = {"{not json", "", "[]", "{\"groups\":[]}",
                                "{\"other\":{}}", "{\"groups\":{}} x"};
    struct group_store *gs;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tmpdir_write(f->dir, "groups.json", bad[i]), 0);
        f->errmsg[0] = '\0';
        gs = NULL;
        assert_int_equal(group_store_open(f->dir, &gs, f->errmsg),
                         BRK_ECORRUPT);
        assert_null(gs);
        assert_non_null(strstr(f->errmsg, "groups.json"));
    }
    assert_int_equal(tmpdir_write(f->dir, "groups.json", "{\"groups\":{}}"),
                     0);
    assert_int_equal(group_store_open(f->dir, &gs, f->errmsg), 0);
    group_store_close(gs);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_offset_missing),
        T(test_commit_get),
        T(test_commit_independent),
        T(test_delete),
        T(test_forget_topic),
        T(test_list_sorted),
        T(test_offsets_json),
        T(test_take_dirty),
        T(test_persist_reopen),
        T(test_unwritten_lost),
        T(test_revert),
        T(test_revert_no_file),
        T(test_dump_load),
        T(test_corrupt_file),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
