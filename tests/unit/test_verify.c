/* Unit tests for segment_verify (src/storage/verify.c): damaged runs,
 * resynchronisation, index checks. */
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

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_verify.XXXXXX");
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

/* A segment of 40 records; positions in @pos. */
static struct segment *make(struct fixture *f, uint64_t *pos)
{
    struct segment *s;

    assert_int_equal(segment_create(f->dirfd, f->dir, 100, INTERVAL, &s, NULL),
                     0);
    append(s, 40, 5);
    assert_int_equal(positions(s, pos, 64), 40);
    return s;
}

static void flip(struct segment *s, uint64_t at, uint8_t mask)
{
    uint8_t c;

    assert_int_equal(pread(s->fd, &c, 1, (off_t)at), 1);
    c ^= mask;
    assert_int_equal(pwrite(s->fd, &c, 1, (off_t)at), 1);
}

static void run(struct segment *s, struct segment_verify *v)
{
    memset(v, 0, sizeof(*v));
    v->end = s->size;
    v->end_offset = s->next_offset;
    v->index = s->index;
    v->index_n = s->index_n;
    assert_int_equal(segment_verify(s, v, NULL), 0);
}

/* A whole segment verifies clean and the index built equals its own. */
static void test_clean(void **state)
{
    struct fixture *f = *state;
    uint64_t pos[64];
    struct segment *s = make(f, pos);
    struct segment_verify v;

    run(s, &v);
    assert_int_equal(v.n_damage, 0);
    assert_null(v.index_why);
    assert_int_equal(v.next_offset, 140);
    assert_int_equal(v.bytes, s->size);
    assert_int_equal(v.rebuilt_n, s->index_n);
    assert_memory_equal(v.rebuilt, s->index, s->index_n * sizeof(*s->index));
    segment_verify_free(&v);
    segment_unref(s);
}

/* A flipped value byte damages exactly its record; the rebuilt index has
 * an entry where good records resume. */
static void test_flipped_value(void **state)
{
    struct fixture *f = *state;
    uint64_t pos[64];
    struct segment *s = make(f, pos);
    struct segment_verify v;
    size_t i;
    bool entry = false;

    flip(s, pos[8] - 3, 0x40);
    run(s, &v);
    assert_int_equal(v.n_damage, 1);
    assert_int_equal(v.damage[0].from, 107);
    assert_int_equal(v.damage[0].to, 108);
    assert_int_equal(v.damage[0].pos_from, pos[7]);
    assert_int_equal(v.damage[0].pos_to, pos[8]);
    assert_int_equal(v.next_offset, 140);
    for (i = 0; i < v.rebuilt_n; i++)
        entry |= v.rebuilt[i].position == pos[8] &&
                 v.rebuilt[i].rel_offset == 8;
    assert_true(entry);
    segment_verify_free(&v);
    segment_unref(s);
}

/* A damaged length field: the run still ends at the next record. */
static void test_bad_length(void **state)
{
    struct fixture *f = *state;
    uint64_t pos[64];
    struct segment *s = make(f, pos);
    struct segment_verify v;

    flip(s, pos[20] + 1, 0x01); /* length + 256 */
    run(s, &v);
    assert_int_equal(v.n_damage, 1);
    assert_int_equal(v.damage[0].from, 120);
    assert_int_equal(v.damage[0].to, 121);
    segment_verify_free(&v);
    flip(s, pos[20] + 3, 0x80); /* a length far out of bounds */
    run(s, &v);
    assert_int_equal(v.n_damage, 1);
    assert_int_equal(v.damage[0].to, 121);
    segment_verify_free(&v);
    segment_unref(s);
}

/* Two damaged records, the first record and the last: separate runs;
 * damage at the very end runs to the segment's end. */
static void test_first_and_last(void **state)
{
    struct fixture *f = *state;
    uint64_t pos[64];
    struct segment *s = make(f, pos);
    struct segment_verify v;

    flip(s, pos[1] - 2, 0x10);
    flip(s, s->size - 2, 0x10);
    run(s, &v);
    assert_int_equal(v.n_damage, 2);
    assert_int_equal(v.damage[0].from, 100);
    assert_int_equal(v.damage[0].to, 101);
    assert_int_equal(v.damage[1].from, 139);
    assert_int_equal(v.damage[1].to, 140);
    assert_int_equal(v.damage[1].pos_to, s->size);
    assert_int_equal(v.rebuilt[0].position, 0); /* always {0, 0} */
    segment_verify_free(&v);
    segment_unref(s);
}

/* A file shorter than the records the segment claims. */
static void test_short_file(void **state)
{
    struct fixture *f = *state;
    uint64_t pos[64];
    struct segment *s = make(f, pos);
    struct segment_verify v;

    run(s, &v);
    segment_verify_free(&v);
    memset(&v, 0, sizeof(v));
    v.end = pos[30];
    v.end_offset = 140;
    assert_int_equal(segment_verify(s, &v, NULL), 0);
    assert_int_equal(v.n_damage, 1);
    assert_int_equal(v.damage[0].from, 130);
    assert_int_equal(v.damage[0].to, 140);
    segment_verify_free(&v);
    segment_unref(s);
}

/* Index entries that point inside a record or name the wrong offset. */
static void test_bad_index(void **state)
{
    struct fixture *f = *state;
    uint64_t pos[64];
    struct segment *s = make(f, pos);
    struct segment_verify v;

    assert_true(s->index_n > 3);
    s->index[2].position += 3;
    run(s, &v);
    assert_non_null(v.index_why);
    assert_int_equal(v.n_damage, 0);
    segment_verify_free(&v);
    s->index[2].position -= 3;
    s->index[2].rel_offset += 1;
    run(s, &v);
    assert_non_null(v.index_why);
    segment_verify_free(&v);
    s->index[2].rel_offset -= 1;
    run(s, &v);
    assert_null(v.index_why);
    segment_verify_free(&v);
    segment_unref(s);
}

/* The throttle sees every byte and can stop the run. */
static bool stop_at_once(void *arg, uint64_t bytes)
{
    *(uint64_t *)arg += bytes;
    return false;
}

static void test_throttle_stops(void **state)
{
    struct fixture *f = *state;
    uint64_t pos[64], seen = 0;
    struct segment *s = make(f, pos);
    struct segment_verify v;

    memset(&v, 0, sizeof(v));
    v.end = s->size;
    v.end_offset = s->next_offset;
    v.throttle = stop_at_once;
    v.arg = &seen;
    assert_int_equal(segment_verify(s, &v, NULL), 0);
    assert_true(v.stopped);
    assert_int_equal(seen, s->size);
    segment_verify_free(&v);
    segment_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_and_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle_stops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
