/* Unit tests for one segment on disk (src/storage/segment.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/err.h"
#include "broker/fsutil.h"
#include "storage/segment.h"

#define INTERVAL 256

struct fixture {
    char dir[64];
    int dirfd;
    char errmsg[BRK_ERRMSG_LEN];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_segment.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY);
    *state = f;
    return f->dirfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    close(f->dirfd);
    fsutil_remove_tree(f->dir, NULL);
    free(f);
    return 0;
}

/* Value of record @offset: its size varies so index entries fall at
 * irregular places. */
static size_t value_of(uint64_t offset, char *buf, size_t cap)
{
    size_t len = 10 + (size_t)(offset * 37 % 90);

    assert_true(len < cap);
    memset(buf, 'a' + (int)(offset % 26), len);
    return len;
}

/* Append @n records to @s as partition_append would, one batch of @per. */
static void append(struct segment *s, size_t n, size_t per)
{
    char vals[16][128];
    struct record recs[16];
    struct segment_batch b;
    size_t done, i, k;

    assert_true(per <= 16);
    for (done = 0; done < n; done += k) {
        k = n - done < per ? n - done : per;
        for (i = 0; i < k; i++) {
            memset(&recs[i], 0, sizeof(recs[i]));
            recs[i].timestamp = 1000 + (int64_t)(s->next_offset + i);
            recs[i].cmd_index = s->next_offset + i + 1;
            recs[i].value = (const uint8_t *)vals[i];
            recs[i].value_len = (uint32_t)value_of(s->next_offset + i, vals[i],
                                                   sizeof(vals[i]));
        }
        assert_int_equal(
            segment_batch_encode(s, recs, k, s->next_offset, &b, NULL), 0);
        assert_int_equal(segment_index_reserve(s, b.n_entries), 0);
        assert_int_equal(segment_write(s, &b, NULL), 0);
        segment_commit(s, &b);
        segment_batch_free(&b);
    }
}

/* Read the whole .log and record each record's file position. */
static size_t positions(struct segment *s, uint64_t *pos, size_t cap)
{
    uint8_t *buf = malloc(s->size);
    struct record r;
    size_t at = 0, n = 0, used;

    assert_int_equal(segment_pread(s, buf, s->size, 0, NULL), 0);
    while (at < s->size) {
        assert_int_equal(record_decode(buf + at, s->size - at, &r, &used), 0);
        assert_int_equal(r.offset, s->base_offset + n);
        assert_true(n < cap);
        pos[n++] = at;
        at += used;
    }
    free(buf);
    return n;
}

/* Names are 20-digit zero-padded base offsets and parse back. */
static void test_names(void **state)
{
    char name[SEGMENT_NAME_MAX];
    uint64_t base;

    (void)state;
    segment_log_name(42, name);
    assert_string_equal(name, "00000000000000000042.log");
    segment_index_name(UINT64_MAX, name);
    assert_string_equal(name, "18446744073709551615.index");
    assert_true(segment_parse_name("00000000000000000042.log", &base));
    assert_int_equal(base, 42);
    assert_false(segment_parse_name("0000000000000000042.log", &base));
    assert_false(segment_parse_name("00000000000000000042.index", &base));
    assert_false(segment_parse_name("0000000000000000004x.log", &base));
    assert_false(segment_parse_name("99999999999999999999.log", &base));
}

/* Records appended in batches read back in order with their fields, and
 * the segment's counters follow. */
static void test_append_read(void **state)
{
    struct fixture *f = *state;
    struct segment *s;
    uint64_t pos[64];
    uint8_t buf[256];
    char scratch[128];
    struct record r;
    size_t used;

    assert_int_equal(segment_create(f->dirfd, f->dir, 100, INTERVAL, &s, NULL),
                     0);
    append(s, 30, 7);
    assert_int_equal(s->next_offset, 130);
    assert_int_equal(s->max_timestamp, 1000 + 129);
    assert_int_equal(s->last_cmd_index, 130);
    assert_int_equal(positions(s, pos, 64), 30);
    assert_int_equal(
        segment_pread(
            s, buf,
            sizeof(buf) < s->size - pos[5] ? sizeof(buf) : s->size - pos[5],
            pos[5], NULL),
        0);
    assert_int_equal(record_decode(buf, sizeof(buf), &r, &used), 0);
    assert_int_equal(r.offset, 105);
    assert_int_equal(r.value_len, value_of(105, scratch, sizeof(scratch)));
    segment_unref(s);
}

/* A lookup at every offset of a multi-interval segment lands on a record
 * at or before it, less than one index interval away. */
static void test_index_every_offset(void **state)
{
    struct fixture *f = *state;
    struct segment *s;
    uint64_t pos[256], p;
    size_t n, i, j;

    assert_int_equal(segment_create(f->dirfd, f->dir, 0, INTERVAL, &s, NULL),
                     0);
    append(s, 200, 5);
    assert_true(s->size > 10 * INTERVAL);
    assert_true(s->index_n > 10);
    n = positions(s, pos, 256);
    for (i = 0; i < n; i++) {
        p = segment_lookup(s, i);
        assert_true(p <= pos[i]);
        assert_true(pos[i] - p < INTERVAL);
        for (j = 0; j <= i && pos[j] != p; j++) {
        }
        assert_true(j <= i); /* a record boundary */
    }
    segment_unref(s);
}

/* segment_fits refuses a batch that would pass the limit; sealing stops
 * index appends and a next segment starts where this one ends. */
static void test_roll(void **state)
{
    struct fixture *f = *state;
    struct segment *s, *t;

    assert_int_equal(segment_create(f->dirfd, f->dir, 0, INTERVAL, &s, NULL),
                     0);
    append(s, 10, 10);
    assert_true(segment_fits(s, 10, 1, s->size + 10));
    assert_false(segment_fits(s, 11, 1, s->size + 10));
    assert_false(segment_fits(s, 1, 1, 0));
    segment_seal(s);
    assert_int_equal(s->index_fd, -1);
    assert_int_equal(
        segment_create(f->dirfd, f->dir, s->next_offset, INTERVAL, &t, NULL),
        0);
    append(t, 5, 5);
    assert_int_equal(t->base_offset, 10);
    assert_int_equal(t->next_offset, 15);
    /* A second segment at the same base would clobber records. */
    assert_int_equal(
        segment_create(f->dirfd, f->dir, 10, INTERVAL, &t, f->errmsg), BRK_EIO);
    assert_non_null(strstr(f->errmsg, "00000000000000000010.log"));
    segment_unref(s);
    segment_unref(t);
}

/* Reloading as an older segment uses the .index file as written; as the
 * newest it rescans and gets the same state. */
static void test_reload(void **state)
{
    struct fixture *f = *state;
    struct segment *s, *old, *newest;
    struct segment_load_info info;

    assert_int_equal(segment_create(f->dirfd, f->dir, 7, INTERVAL, &s, NULL),
                     0);
    append(s, 50, 3);
    segment_seal(s);
    assert_int_equal(
        segment_load(f->dirfd, f->dir, 7, false, INTERVAL, &old, &info, NULL),
        0);
    assert_false(info.index_rebuilt);
    assert_int_equal(
        segment_load(f->dirfd, f->dir, 7, true, INTERVAL, &newest, &info, NULL),
        0);
    assert_int_equal(info.truncated_bytes, 0);
    assert_int_equal(old->next_offset, s->next_offset);
    assert_int_equal(old->size, s->size);
    assert_int_equal(old->last_cmd_index, s->last_cmd_index);
    assert_int_equal(old->max_timestamp, s->max_timestamp);
    assert_int_equal(old->index_n, s->index_n);
    assert_memory_equal(old->index, s->index, s->index_n * sizeof(*s->index));
    assert_int_equal(newest->index_n, s->index_n);
    assert_int_equal(newest->next_offset, s->next_offset);
    segment_unref(s);
    segment_unref(old);
    segment_unref(newest);
}

/* A cut in the middle of the last record is removed from the newest
 * segment; an older segment with the same damage is loaded whole and
 * flagged damaged (the background verification finds the range). */
static void test_torn_tail(void **state)
{
    struct fixture *f = *state;
    struct segment *s, *t;
    struct segment_load_info info;
    uint64_t pos[32], size;

    assert_int_equal(segment_create(f->dirfd, f->dir, 0, INTERVAL, &s, NULL),
                     0);
    append(s, 20, 4);
    positions(s, pos, 32);
    size = s->size;
    assert_int_equal(ftruncate(s->fd, (off_t)(pos[19] + 10)), 0);
    segment_unref(s);
    assert_int_equal(segment_load(f->dirfd, f->dir, 0, false, INTERVAL, &t,
                                  &info, f->errmsg),
                     0);
    assert_true(info.damaged);
    assert_int_equal(t->size, pos[19] + 10);
    assert_int_equal(t->next_offset, 19);
    segment_unref(t);
    assert_int_equal(
        segment_load(f->dirfd, f->dir, 0, true, INTERVAL, &t, &info, NULL), 0);
    assert_int_equal(info.truncated_bytes, 10);
    assert_int_equal(t->size, pos[19]);
    assert_int_equal(t->next_offset, 19);
    assert_true(t->size < size);
    segment_unref(t);
}

static void write_file(struct fixture *f, const char *name, const void *data,
                       size_t len)
{
    int fd = openat(f->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* A missing, odd-sized, non-ascending or out-of-file .index of an older
 * segment is rebuilt to the same entries. */
static void test_bad_index_rebuilt(void **state)
{
    struct fixture *f = *state;
    char iname[SEGMENT_NAME_MAX];
    uint8_t garbage[24] = {0, 0, 0, 0, 0, 0, 0, 0, 5,   0, 0, 0,
                           9, 0, 0, 0, 3, 0, 0, 0, 200, 0, 0, 0};
    uint8_t past[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1};
    struct segment *s, *t;
    struct segment_load_info info;
    int round;

    assert_int_equal(segment_create(f->dirfd, f->dir, 0, INTERVAL, &s, NULL),
                     0);
    append(s, 40, 8);
    segment_seal(s);
    segment_index_name(0, iname);
    for (round = 0; round < 4; round++) {
        if (round == 0) {
            assert_int_equal(unlinkat(f->dirfd, iname, 0), 0);
        } else if (round == 1) {
            write_file(f, iname, garbage, 13);
        } else if (round == 2) {
            write_file(f, iname, garbage, sizeof(garbage));
        } else {
            write_file(f, iname, past, sizeof(past));
        }
        assert_int_equal(
            segment_load(f->dirfd, f->dir, 0, false, INTERVAL, &t, &info, NULL),
            0);
        assert_true(info.index_rebuilt);
        assert_int_equal(t->index_n, s->index_n);
        assert_memory_equal(t->index, s->index, s->index_n * sizeof(*s->index));
        assert_int_equal(t->next_offset, 40);
        segment_unref(t);
        /* The rebuilt file is good again. */
        assert_int_equal(
            segment_load(f->dirfd, f->dir, 0, false, INTERVAL, &t, &info, NULL),
            0);
        assert_false(info.index_rebuilt);
        segment_unref(t);
    }
    segment_unref(s);
}

/* A reference keeps the descriptor readable after the files are
 * unlinked. */
static void test_unlink_while_referenced(void **state)
{
    struct fixture *f = *state;
    struct segment *s;
    uint64_t pos[16];
    struct stat st;

    assert_int_equal(segment_create(f->dirfd, f->dir, 0, INTERVAL, &s, NULL),
                     0);
    append(s, 10, 10);
    segment_ref(s);
    assert_int_equal(segment_unlink(s, f->dirfd, NULL), 0);
    assert_int_equal(fstatat(f->dirfd, s->name, &st, 0), -1);
    segment_unref(s);
    assert_int_equal(positions(s, pos, 16), 10);
    segment_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_append_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_every_offset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_index_rebuilt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unlink_while_referenced, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
