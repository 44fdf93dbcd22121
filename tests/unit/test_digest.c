/* Unit tests for replica digests (src/storage/digest.c) and the tail cut
 * they repair with (partition_cut_tail): digests folded on append equal
 * digests computed from disk, survive a restart (rebuilt by
 * digest_build_step), ignore what retention removed, and follow a cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/digest.h"
#include "broker/err.h"
#include "broker/partition.h"
#include "tmpdir.h"

#define CHUNK 16
#define TS_BASE 1700000000000LL

struct fixture {
    char root[TMPDIR_PATH_MAX];
    char dir[TMPDIR_PATH_MAX + 16];
    struct partition_options opt;
    struct partition *p;
    char errmsg[BRK_ERRMSG_LEN];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || tmpdir_make(f->root, "test_digest") != 0)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/p", f->root);
    f->opt.segment_size = 2048; /* several segments */
    f->opt.index_interval = 128;
    f->opt.digest_chunk = CHUNK;
    if (partition_open(f->dir, &f->opt, &f->p, NULL, f->errmsg) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    partition_close(f->p);
    tmpdir_remove(f->root);
    free(f);
    return 0;
}

/* Append records [next, next + n) whose value is "<tag>-<offset>". */
static void append(struct fixture *f, size_t n, const char *tag)
{
    struct partition_stats st;
    struct record r;
    char val[64];
    uint64_t first;
    size_t i;

    for (i = 0; i < n; i++) {
        partition_stats(f->p, &st);
        snprintf(val, sizeof(val), "%s-%llu", tag,
                 (unsigned long long)st.next_offset);
        memset(&r, 0, sizeof(r));
        r.timestamp = TS_BASE + (int64_t)st.next_offset;
        r.cmd_index = st.next_offset + 1;
        r.value = (const uint8_t *)val;
        r.value_len = (uint32_t)strlen(val);
        assert_int_equal(partition_append(f->p, &r, 1, &first, f->errmsg), 0);
        partition_publish(f->p, first + 1);
    }
}

static void reopen(struct fixture *f)
{
    partition_close(f->p);
    f->p = NULL;
    assert_int_equal(partition_open(f->dir, &f->opt, &f->p, NULL, f->errmsg),
                     0);
}

static void build(struct fixture *f)
{
    int rc, steps = 0;

    do {
        rc = digest_build_step(f->p, 7, f->errmsg);
    } while (rc == 1 && ++steps < 10000);
    assert_int_equal(rc, 0);
}

/* The digest over [from, to) by chunks, and the same computed from disk
 * record by record, must agree. */
static void check_against_disk(struct fixture *f, uint64_t from, uint64_t to)
{
    struct digest_range mem, one;
    uint32_t crc;
    size_t i, j;

    assert_int_equal(digest_range(f->p, from, to, CHUNK, &mem, f->errmsg), 0);
    assert_false(mem.building);
    assert_int_equal(digest_range(f->p, mem.from, mem.to, 1, &one, f->errmsg),
                     0);
    assert_int_equal(one.from, mem.from);
    assert_int_equal(one.to, mem.to);
    assert_int_equal(one.n, mem.to - mem.from);
    /* Chunk checksums are not combinable from record checksums, so check
     * the chunk count and recompute one chunk by hand. */
    assert_int_equal(mem.n, (mem.to - mem.from + CHUNK - 1) / CHUNK);
    if (mem.n > 0) {
        struct partition_read_result res = {0};
        uint64_t end = mem.from + CHUNK < mem.to ? mem.from + CHUNK : mem.to;
        assert_int_equal(partition_read(f->p, mem.from, end - mem.from, 0,
                                        &res, f->errmsg), 0);
        for (i = 0, crc = 0; i < res.n; i++)
            crc = digest_record_crc(crc, &res.recs[i]);
        assert_int_equal(crc, mem.crcs[0]);
        for (i = 0, j = 0; i < res.n; i++, j++)
            assert_int_equal(one.crcs[j], digest_record_crc(0, &res.recs[i]));
        partition_read_result_free(&res);
    }
    digest_range_free(&mem);
    digest_range_free(&one);
}

static struct digest_range range(struct fixture *f)
{
    struct digest_range r;

    assert_int_equal(digest_range(f->p, 0, UINT64_MAX, CHUNK, &r, f->errmsg),
                     0);
    return r;
}

static void test_append_matches_disk(void **state)
{
    struct fixture *f = *state;
    struct digest_range r;

    append(f, 100, "a");
    r = range(f);
    assert_int_equal(r.from, 0);
    assert_int_equal(r.to, 100);
    assert_int_equal(r.n, 7); /* 6 whole chunks and 4 records */
    digest_range_free(&r);
    check_against_disk(f, 0, 100);
    check_against_disk(f, 0, 50);
}

static void test_restart_rebuilds_the_same(void **state)
{
    struct fixture *f = *state;
    struct digest_range a, b;

    append(f, 90, "a");
    a = range(f);
    reopen(f);
    /* Not built yet: whole chunks are not known. */
    b = range(f);
    assert_true(b.building);
    assert_int_equal(b.n, 0);
    digest_range_free(&b);
    /* Appends while not built are picked up by the builder. */
    append(f, 10, "b");
    build(f);
    b = range(f);
    assert_false(b.building);
    assert_int_equal(b.to, 100);
    assert_memory_equal(a.crcs, b.crcs, 5 * sizeof(uint32_t));
    digest_range_free(&a);
    digest_range_free(&b);
    check_against_disk(f, 0, 100);
}

static void test_content_change_shows(void **state)
{
    struct fixture *f = *state;
    struct digest_range a, b;

    append(f, 40, "a");
    a = range(f);
    /* Same offsets, one value differs: only that chunk differs. */
    assert_int_equal(partition_cut_tail(f->p, 20, f->errmsg), 0);
    append(f, 1, "X");
    append(f, 19, "a");
    b = range(f);
    assert_int_equal(a.n, b.n);
    assert_int_equal(a.crcs[0], b.crcs[0]);
    assert_int_not_equal(a.crcs[1], b.crcs[1]);
    assert_int_equal(a.crcs[2], b.crcs[2]);
    digest_range_free(&a);
    digest_range_free(&b);
}

static void test_retention_keeps_common_chunks(void **state)
{
    struct fixture *f = *state;
    struct digest_range a, b;
    struct partition_stats st;

    append(f, 200, "a");
    a = range(f);
    assert_int_equal(partition_truncate_before(f->p, 37, f->errmsg), 0);
    partition_stats(f->p, &st);
    assert_int_equal(st.log_start_offset, 37);
    b = range(f);
    /* The chunk holding the log start is partial: not reported. */
    assert_int_equal(b.from, 48);
    assert_memory_equal(b.crcs, a.crcs + 3, (b.n - 1) * sizeof(uint32_t));
    digest_range_free(&b);
    /* A restart after retention computes the same chunks (the log start
     * is back at its segment's base until the truncation is replayed). */
    reopen(f);
    build(f);
    b = range(f);
    assert_true(b.from <= 48);
    assert_int_equal(b.to, 200);
    assert_memory_equal(b.crcs, a.crcs + b.from / CHUNK,
                        (b.n - 1) * sizeof(uint32_t));
    digest_range_free(&a);
    digest_range_free(&b);
}

static void test_cut_tail_across_segments(void **state)
{
    struct fixture *f = *state;
    struct partition_read_result res = {0};
    struct partition_stats st;
    struct digest_range a, b;

    append(f, 300, "a");
    partition_stats(f->p, &st);
    assert_true(st.segments > 3);
    a = range(f);
    /* Cut inside an old segment: later segments go, the rest re-appended
     * equals what was there. */
    assert_int_equal(partition_cut_tail(f->p, 45, f->errmsg), 0);
    partition_stats(f->p, &st);
    assert_int_equal(st.next_offset, 45);
    assert_int_equal(st.high_watermark, 45);
    assert_int_equal(partition_read(f->p, 44, 10, 0, &res, f->errmsg), 0);
    assert_int_equal(res.n, 1);
    partition_read_result_free(&res);
    append(f, 255, "a");
    b = range(f);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.crcs, b.crcs, a.n * sizeof(uint32_t));
    digest_range_free(&b);
    /* Survives a restart (index rewritten, segments consistent). */
    reopen(f);
    build(f);
    b = range(f);
    assert_memory_equal(a.crcs, b.crcs, a.n * sizeof(uint32_t));
    digest_range_free(&b);
    check_against_disk(f, 0, 300);
    /* Cut at a segment's base offset. */
    assert_int_equal(partition_read(f->p, 200, 1, 0, &res, f->errmsg), 0);
    partition_read_result_free(&res);
    assert_int_equal(partition_cut_tail(f->p, 0, f->errmsg), 0);
    partition_stats(f->p, &st);
    assert_int_equal(st.next_offset, 0);
    assert_int_equal(st.last_cmd_index, 0);
    append(f, 300, "a");
    b = range(f);
    assert_memory_equal(a.crcs, b.crcs, a.n * sizeof(uint32_t));
    digest_range_free(&a);
    digest_range_free(&b);
}

static void test_cut_at_segment_base(void **state)
{
    struct fixture *f = *state;
    struct partition_stats st;
    struct digest_range a, b;
    uint64_t base;
    char name[64];

    append(f, 300, "a");
    a = range(f);
    /* Find a segment boundary: the first offset whose segment file exists. */
    for (base = 1; base < 300; base++) {
        snprintf(name, sizeof(name), "%020llu.log", (unsigned long long)base);
        if (tmpdir_exists(f->dir, name))
            break;
    }
    assert_true(base < 300);
    assert_int_equal(partition_cut_tail(f->p, base, f->errmsg), 0);
    partition_stats(f->p, &st);
    assert_int_equal(st.next_offset, base);
    assert_int_equal(st.last_cmd_index, base); /* record base-1 has base */
    append(f, 300 - base, "a");
    b = range(f);
    assert_memory_equal(a.crcs, b.crcs, a.n * sizeof(uint32_t));
    digest_range_free(&b);
    reopen(f);
    build(f);
    b = range(f);
    assert_memory_equal(a.crcs, b.crcs, a.n * sizeof(uint32_t));
    digest_range_free(&a);
    digest_range_free(&b);
}

static void test_bad_ranges(void **state)
{
    struct fixture *f = *state;
    struct digest_range r;

    append(f, 10, "a");
    assert_int_equal(digest_range(f->p, 0, 10, 0, &r, f->errmsg), BRK_EINVAL);
    assert_int_equal(digest_range(f->p, 50, 60, CHUNK, &r, f->errmsg), 0);
    assert_int_equal(r.n, 0);
    digest_range_free(&r);
    assert_int_equal(partition_cut_tail(f->p, 20, f->errmsg), 0);
    assert_int_equal(partition_truncate_before(f->p, 5, f->errmsg), 0);
    assert_int_equal(partition_cut_tail(f->p, 2, f->errmsg), BRK_EINVAL);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_append_matches_disk),
        TEST(test_restart_rebuilds_the_same),
        TEST(test_content_change_shows),
        TEST(test_retention_keeps_common_chunks),
        TEST(test_cut_tail_across_segments),
        TEST(test_cut_at_segment_base),
        TEST(test_bad_ranges),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
