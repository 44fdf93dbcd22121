/* Unit tests for partitions: append, publish, read, roll, recovery,
 * retention and concurrency (src/storage/partition.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/err.h"
#include "broker/fsutil.h"
#include "broker/partition.h"
#include "storage/segment.h"

#define TS_BASE 1700000000000LL

struct fixture {
    char root[64]; /* mkdtemp directory */
    char dir[128]; /* the partition directory inside it */
    struct partition_options opt;
    struct partition *p;
    char errmsg[BRK_ERRMSG_LEN];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    snprintf(f->root, sizeof(f->root), "/tmp/test_partition.XXXXXX");
    if (f == NULL || mkdtemp(f->root) == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/topics/t/0", f->root);
    f->opt.segment_size = 1 << 20;
    f->opt.index_interval = 128;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    partition_read_hook = NULL;
    partition_close(f->p);
    fsutil_remove_tree(f->root, NULL);
    free(f);
    return 0;
}

static void open_p(struct fixture *f, struct partition_recovery *rec)
{
    int rc = partition_open(f->dir, &f->opt, &f->p, rec, f->errmsg);

    if (rc != 0) {
        fail_msg("partition_open: %s", f->errmsg);
    }
}

static void reopen(struct fixture *f, struct partition_recovery *rec)
{
    partition_close(f->p);
    f->p = NULL;
    open_p(f, rec);
}

/* The value of the record at @offset: its length varies with the offset
 * and every byte depends on it, so a torn or misplaced record shows. */
static size_t value_of(uint64_t offset, char *buf, size_t cap)
{
    size_t len = 20 + (size_t)(offset * 7919 % 61), i;

    assert_true(len <= cap);
    for (i = 0; i < len; i++) {
        buf[i] = (char)('a' + (offset + i) % 26);
    }
    return len;
}

static void check_record(const struct record *r)
{
    char want[128];
    size_t len = value_of(r->offset, want, sizeof(want));

    assert_int_equal(r->value_len, len);
    assert_memory_equal(r->value, want, len);
    assert_int_equal(r->cmd_index, r->offset + 1);
}

/* Append @n records in batches of @per with timestamps @ts. Returns the
 * first offset. */
static uint64_t append_ts(struct partition *p, size_t n, size_t per, int64_t ts)
{
    char vals[32][128];
    struct record recs[32];
    struct partition_stats st;
    uint64_t first = 0, got, next;
    size_t done, i, k;
    char errmsg[BRK_ERRMSG_LEN];

    assert_true(per <= 32);
    for (done = 0; done < n; done += k) {
        k = n - done < per ? n - done : per;
        partition_stats(p, &st);
        next = st.next_offset;
        for (i = 0; i < k; i++) {
            memset(&recs[i], 0, sizeof(recs[i]));
            recs[i].timestamp = ts;
            recs[i].cmd_index = next + i + 1;
            recs[i].key = i % 2 ? (const uint8_t *)"key" : NULL;
            recs[i].key_len = i % 2 ? 3 : 0;
            recs[i].value = (const uint8_t *)vals[i];
            recs[i].value_len =
                (uint32_t)value_of(next + i, vals[i], sizeof(vals[i]));
        }
        if (partition_append(p, recs, k, &got, errmsg) != 0) {
            fail_msg("partition_append: %s", errmsg);
        }
        assert_int_equal(got, next);
        assert_int_equal(recs[k - 1].offset, next + k - 1);
        first = done == 0 ? got : first;
    }
    return first;
}

static uint64_t append(struct partition *p, size_t n, size_t per)
{
    return append_ts(p, n, per, TS_BASE);
}

static void publish_all(struct partition *p)
{
    struct partition_stats st;

    partition_stats(p, &st);
    partition_publish(p, st.next_offset);
}

/* Read everything from @from up to the high watermark and check it. */
static uint64_t read_all(struct partition *p, uint64_t from)
{
    struct partition_read_result r;
    char errmsg[BRK_ERRMSG_LEN];
    uint64_t next = from;
    size_t i, n;

    do {
        if (partition_read(p, next, 1000, 0, &r, errmsg) != 0) {
            fail_msg("partition_read at %llu: %s", (unsigned long long)next,
                     errmsg);
        }
        for (i = 0; i < r.n; i++) {
            assert_int_equal(r.recs[i].offset, next + i);
            check_record(&r.recs[i]);
        }
        next = r.next_offset;
        n = r.n;
        partition_read_result_free(&r);
    } while (n > 0);
    return next;
}

static size_t count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0, len;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        len = strlen(de->d_name);
        if (len > strlen(suffix) &&
            strcmp(de->d_name + len - strlen(suffix), suffix) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void seg_path(struct fixture *f, uint64_t base, const char *suffix,
                     char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%020llu%s", f->dir, (unsigned long long)base,
             suffix);
}

static off_t file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* ==== Basics ==== */

/* An empty directory is created with segment 0 and an empty range. */
static void test_open_empty(void **state)
{
    struct fixture *f = *state;
    struct partition_recovery rec;
    struct partition_stats st;
    char path[256];

    open_p(f, &rec);
    assert_int_equal(rec.segments, 1);
    seg_path(f, 0, ".log", path, sizeof(path));
    assert_int_equal(file_size(path), 0);
    partition_stats(f->p, &st);
    assert_int_equal(st.log_start_offset, 0);
    assert_int_equal(st.high_watermark, 0);
    assert_int_equal(st.next_offset, 0);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.last_cmd_index, 0);
    assert_int_equal(partition_sync(f->p, NULL), 0);
}

/* Appended records stay invisible until published, then read back. */
static void test_publish_visibility(void **state)
{
    struct fixture *f = *state;
    struct partition_read_result r;
    struct partition_stats st;

    open_p(f, NULL);
    assert_int_equal(append(f->p, 10, 4), 0);
    assert_int_equal(partition_read(f->p, 0, 100, 0, &r, NULL), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.next_offset, 0);
    partition_read_result_free(&r);
    partition_publish(f->p, 5);
    assert_int_equal(partition_read(f->p, 0, 100, 0, &r, NULL), 0);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.next_offset, 5);
    assert_null(r.recs[0].key);
    assert_memory_equal(r.recs[1].key, "key", 3);
    assert_int_equal(r.recs[4].timestamp, TS_BASE);
    partition_read_result_free(&r);
    /* Publishing never lowers the mark and is clamped to what exists. */
    partition_publish(f->p, 3);
    partition_publish(f->p, 1000);
    partition_stats(f->p, &st);
    assert_int_equal(st.high_watermark, 10);
    assert_int_equal(st.last_cmd_index, 10);
    assert_int_equal(read_all(f->p, 0), 10);
    assert_int_equal(partition_sync(f->p, NULL), 0);
}

/* A read at the high watermark gives nothing; past it or below the start
 * is out of range. */
static void test_read_range(void **state)
{
    struct fixture *f = *state;
    struct partition_read_result r;

    open_p(f, NULL);
    append(f->p, 5, 5);
    partition_publish(f->p, 3);
    assert_int_equal(partition_read(f->p, 3, 10, 0, &r, NULL), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.next_offset, 3);
    partition_read_result_free(&r);
    assert_int_equal(partition_read(f->p, 4, 10, 0, &r, f->errmsg),
                     BRK_EOFFSET_RANGE);
    assert_non_null(strstr(f->errmsg, "offset 4"));
    assert_null(r.recs);
    partition_read_result_free(&r);
    assert_int_equal(partition_read(f->p, UINT64_MAX, 10, 0, &r, NULL),
                     BRK_EOFFSET_RANGE);
}

/* limit caps the record count; max_bytes caps bytes but always lets the
 * first record through. */
static void test_limit_max_bytes(void **state)
{
    struct fixture *f = *state;
    struct partition_read_result r;
    size_t one, two;

    open_p(f, NULL);
    append(f->p, 40, 7);
    publish_all(f->p);
    assert_int_equal(partition_read(f->p, 2, 3, 0, &r, NULL), 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.recs[0].offset, 2);
    assert_int_equal(r.next_offset, 5);
    partition_read_result_free(&r);
    assert_int_equal(partition_read(f->p, 7, 100, 1, &r, NULL), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.recs[0].offset, 7);
    assert_int_equal(r.next_offset, 8);
    one = record_encoded_size(&r.recs[0]);
    partition_read_result_free(&r);
    assert_int_equal(partition_read(f->p, 8, 100, 1, &r, NULL), 0);
    two = one + record_encoded_size(&r.recs[0]);
    partition_read_result_free(&r);
    /* Exactly two records' bytes, then one byte short of them. */
    assert_int_equal(partition_read(f->p, 7, 100, two, &r, NULL), 0);
    assert_int_equal(r.n, 2);
    partition_read_result_free(&r);
    assert_int_equal(partition_read(f->p, 7, 100, two - 1, &r, NULL), 0);
    assert_int_equal(r.n, 1);
    partition_read_result_free(&r);
    assert_int_equal(partition_read(f->p, 7, 0, 0, &r, NULL), 0);
    assert_int_equal(r.n, 0);
    partition_read_result_free(&r);
}

/* A record over RECORD_MAX_SIZE is refused before anything is written. */
static void test_record_too_large(void **state)
{
    struct fixture *f = *state;
    static const uint8_t byte = 'x';
    struct record recs[2] = {
        {.value = &byte, .value_len = 1},
        {.value = &byte, .value_len = RECORD_MAX_SIZE}, /* never read */
    };
    struct partition_stats st;
    uint64_t first;

    open_p(f, NULL);
    assert_int_equal(partition_append(f->p, recs, 2, &first, f->errmsg),
                     BRK_EMSG_TOO_LARGE);
    assert_non_null(strstr(f->errmsg, "record 1"));
    partition_stats(f->p, &st);
    assert_int_equal(st.next_offset, 0);
    assert_int_equal(st.size_bytes, 0);
}

/* ==== Rolling and reopening ==== */

/* Segments roll at segment_size into files named by base offset, and a
 * read crosses segment boundaries. */
static void test_roll(void **state)
{
    struct fixture *f = *state;
    struct partition_read_result r;
    struct partition_stats st;
    char path[256];
    uint64_t base = 0;
    off_t total = 0, sz;
    uint32_t i;

    f->opt.segment_size = 1000;
    open_p(f, NULL);
    append(f->p, 100, 3);
    publish_all(f->p);
    partition_stats(f->p, &st);
    assert_true(st.segments >= 8);
    assert_int_equal(count_files(f->dir, ".log"), st.segments);
    assert_int_equal(count_files(f->dir, ".index"), st.segments);
    /* Walk the files by name: each starts where the previous ended. */
    for (i = 0; i < st.segments; i++) {
        seg_path(f, base, ".log", path, sizeof(path));
        sz = file_size(path);
        assert_true(sz > 0 && sz <= 1000);
        total += sz;
        assert_int_equal(partition_read(f->p, base, 1, 0, &r, NULL), 0);
        assert_int_equal(r.recs[0].offset, base);
        partition_read_result_free(&r);
        /* The next segment's base is one past this file's last record. */
        if (i + 1 < st.segments) {
            assert_int_equal(partition_read(f->p, base, 1000, sz, &r, NULL), 0);
            base = r.next_offset;
            partition_read_result_free(&r);
        }
    }
    assert_int_equal(total, st.size_bytes);
    assert_int_equal(partition_read(f->p, 0, 1000, 0, &r, NULL), 0);
    assert_int_equal(r.n, 100);
    partition_read_result_free(&r);
    assert_int_equal(partition_sync(f->p, NULL), 0);
}

/* A batch larger than segment_size goes whole into a fresh segment. */
static void test_big_batch(void **state)
{
    struct fixture *f = *state;
    struct partition_stats st;
    char path[256];

    f->opt.segment_size = 200;
    open_p(f, NULL);
    append(f->p, 1, 1);
    append(f->p, 10, 10);
    partition_stats(f->p, &st);
    assert_int_equal(st.segments, 2);
    seg_path(f, 1, ".log", path, sizeof(path));
    assert_true(file_size(path) > 200);
    publish_all(f->p);
    assert_int_equal(read_all(f->p, 0), 11);
}

/* Close and reopen keeps records, offsets, sizes and last_cmd_index. */
static void test_reopen(void **state)
{
    struct fixture *f = *state;
    struct partition_recovery rec;
    struct partition_stats a, b;

    f->opt.segment_size = 2000;
    open_p(f, NULL);
    append(f->p, 150, 9);
    partition_sync(f->p, NULL);
    partition_stats(f->p, &a);
    reopen(f, &rec);
    partition_stats(f->p, &b);
    assert_int_equal(rec.segments, a.segments);
    assert_int_equal(rec.truncated_bytes, 0);
    assert_int_equal(rec.indexes_rebuilt, 0);
    assert_int_equal(b.next_offset, 150);
    assert_int_equal(b.high_watermark, 150);
    assert_int_equal(b.size_bytes, a.size_bytes);
    assert_int_equal(b.segments, a.segments);
    assert_int_equal(b.last_cmd_index, 150);
    assert_int_equal(read_all(f->p, 0), 150);
    assert_int_equal(append(f->p, 5, 5), 150);
}

/* An empty newest segment (a roll cut short by a crash) is accepted and
 * appended to; last_cmd_index comes from the segment before it. */
static void test_empty_newest_segment(void **state)
{
    struct fixture *f = *state;
    struct partition_stats st;
    char path[256];
    int fd;

    open_p(f, NULL);
    append(f->p, 12, 4);
    partition_close(f->p);
    f->p = NULL;
    seg_path(f, 12, ".log", path, sizeof(path));
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    open_p(f, NULL);
    partition_stats(f->p, &st);
    assert_int_equal(st.segments, 2);
    assert_int_equal(st.next_offset, 12);
    assert_int_equal(st.last_cmd_index, 12);
    append(f->p, 3, 3);
    publish_all(f->p);
    assert_int_equal(read_all(f->p, 0), 15);
    assert_true(file_size(path) > 0);
}

/* ==== Recovery ==== */

/* Position of record @offset in the newest segment based at @base. */
static uint64_t record_pos(struct fixture *f, uint64_t base, uint64_t offset)
{
    char path[256];
    uint8_t *buf;
    struct record r;
    size_t len, at = 0, used;
    FILE *fp;

    seg_path(f, base, ".log", path, sizeof(path));
    len = (size_t)file_size(path);
    buf = malloc(len);
    fp = fopen(path, "rb");
    assert_int_equal(fread(buf, 1, len, fp), len);
    fclose(fp);
    for (;;) {
        assert_int_equal(record_decode(buf + at, len - at, &r, &used), 0);
        if (r.offset == offset) {
            break;
        }
        at += used;
    }
    free(buf);
    return at;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Sorted base offsets of the .log files in the partition directory. */
static size_t list_bases(struct fixture *f, uint64_t *v, size_t cap)
{
    DIR *d = opendir(f->dir);
    struct dirent *de;
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (segment_parse_name(de->d_name, &v[n])) {
            n++;
            assert_true(n < cap);
        }
    }
    closedir(d);
    qsort(v, n, sizeof(*v), cmp_u64);
    return n;
}

static uint64_t newest_base(struct fixture *f)
{
    uint64_t v[64];
    size_t n = list_bases(f, v, 64);

    return v[n - 1];
}

/* A .log cut mid-record loses only that record: earlier ones stay and
 * appends continue at its offset. */
static void test_recover_truncated_tail(void **state)
{
    struct fixture *f = *state;
    struct partition_recovery rec;
    struct partition_stats st;
    char path[256];
    uint64_t pos, base;

    f->opt.segment_size = 1500;
    open_p(f, NULL);
    append(f->p, 60, 5);
    partition_stats(f->p, &st);
    assert_true(st.segments > 2);
    partition_close(f->p);
    f->p = NULL;
    base = newest_base(f);
    assert_true(base > 0);
    pos = record_pos(f, base, 59);
    seg_path(f, base, ".log", path, sizeof(path));
    assert_true(file_size(path) > (off_t)pos + 7);
    assert_int_equal(truncate(path, (off_t)pos + 7), 0);
    open_p(f, &rec);
    assert_int_equal(rec.truncated_bytes, 7);
    partition_stats(f->p, &st);
    assert_int_equal(st.next_offset, 59);
    assert_int_equal(st.high_watermark, 59);
    assert_int_equal(st.last_cmd_index, 59);
    assert_int_equal(file_size(path), (off_t)pos);
    assert_int_equal(read_all(f->p, 0), 59);
    assert_int_equal(append(f->p, 4, 2), 59);
    publish_all(f->p);
    assert_int_equal(read_all(f->p, 0), 63);
    reopen(f, &rec);
    assert_int_equal(rec.truncated_bytes, 0);
    assert_int_equal(read_all(f->p, 0), 63);
}

/* A flipped byte in a record of the newest segment drops that record and
 * every later one, keeping those before it. */
static void test_recover_flipped_byte(void **state)
{
    struct fixture *f = *state;
    struct partition_recovery rec;
    struct partition_stats st;
    char path[256];
    uint64_t pos;
    uint8_t byte;
    int fd;

    open_p(f, NULL);
    append(f->p, 30, 4);
    partition_close(f->p);
    f->p = NULL;
    pos = record_pos(f, 0, 29);
    seg_path(f, 0, ".log", path, sizeof(path));
    fd = open(path, O_RDWR);
    assert_int_equal(pread(fd, &byte, 1, (off_t)pos + 30), 1);
    byte ^= 0x10;
    assert_int_equal(pwrite(fd, &byte, 1, (off_t)pos + 30), 1);
    /* And one in the middle: records 20.. go too. */
    pos = record_pos(f, 0, 20);
    assert_int_equal(pread(fd, &byte, 1, (off_t)pos + 12), 1);
    byte ^= 0x01;
    assert_int_equal(pwrite(fd, &byte, 1, (off_t)pos + 12), 1);
    close(fd);
    open_p(f, &rec);
    assert_true(rec.truncated_bytes > 0);
    partition_stats(f->p, &st);
    assert_int_equal(st.next_offset, 20);
    assert_int_equal(read_all(f->p, 0), 20);
    assert_int_equal(file_size(path), (off_t)pos);
}

/* Missing and garbage .index files of older segments are rebuilt, and
 * every offset reads correctly afterwards. */
static void test_index_rebuilt(void **state)
{
    struct fixture *f = *state;
    struct partition_recovery rec;
    struct partition_read_result r;
    struct partition_stats st;
    char path[256];
    uint64_t o;
    FILE *fp;

    f->opt.segment_size = 3000;
    open_p(f, NULL);
    append(f->p, 120, 6);
    partition_stats(f->p, &st);
    assert_true(st.segments >= 3);
    partition_close(f->p);
    f->p = NULL;
    seg_path(f, 0, ".index", path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    open_p(f, &rec);
    assert_int_equal(rec.indexes_rebuilt, 1);
    assert_int_equal(partition_read(f->p, 0, 1000, 3000, &r, NULL), 0);
    o = r.next_offset; /* base of the second segment */
    partition_read_result_free(&r);
    partition_close(f->p);
    f->p = NULL;
    seg_path(f, o, ".index", path, sizeof(path));
    fp = fopen(path, "wb");
    fputs("this is not an index", fp);
    fclose(fp);
    seg_path(f, 0, ".index", path, sizeof(path));
    fp = fopen(path, "r+b");
    fputc(1, fp); /* the first entry is no longer {0, 0} */
    fclose(fp);
    open_p(f, &rec);
    assert_int_equal(rec.indexes_rebuilt, 2);
    for (o = 0; o < 120; o++) {
        assert_int_equal(partition_read(f->p, o, 1, 0, &r, NULL), 0);
        assert_int_equal(r.recs[0].offset, o);
        check_record(&r.recs[0]);
        partition_read_result_free(&r);
    }
    reopen(f, &rec);
    assert_int_equal(rec.indexes_rebuilt, 0);
}

/* A missing middle segment is a gap: open fails with BRK_ECORRUPT. */
static void test_gap_is_corrupt(void **state)
{
    struct fixture *f = *state;
    struct partition *p;
    char path[256];
    uint64_t bases[64];

    f->opt.segment_size = 1000;
    open_p(f, NULL);
    append(f->p, 60, 3);
    partition_close(f->p);
    f->p = NULL;
    assert_true(list_bases(f, bases, 64) >= 3);
    seg_path(f, bases[1], ".log", path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(partition_open(f->dir, &f->opt, &p, NULL, f->errmsg),
                     BRK_ECORRUPT);
    assert_non_null(strstr(f->errmsg, "gap"));
}

/* ==== Retention ==== */

/* Segments whose newest record is older than the retention time go, the
 * active one stays even when old; reads below the new start fail. */
static void test_retention_time(void **state)
{
    struct fixture *f = *state;
    struct partition_read_result r;
    struct partition_stats a, b;
    uint64_t before;
    char path[256];

    f->opt.segment_size = 1000;
    open_p(f, NULL);
    append_ts(f->p, 40, 4, TS_BASE);
    partition_stats(f->p, &a);
    append_ts(f->p, 40, 4, TS_BASE + 100000);
    publish_all(f->p);
    /* Nothing is older than a day. */
    assert_int_equal(partition_retention_point(f->p, TS_BASE + 100000, 86400000,
                                               -1, &before),
                     0);
    assert_int_equal(
        partition_retention_point(f->p, TS_BASE + 100000, 50000, -1, &before),
        1);
    /* Only segments made of old records go: the one that was active when
     * the new records came may hold both. */
    assert_true(before <= a.next_offset);
    assert_true(before > 0);
    assert_int_equal(partition_truncate_before(f->p, before, NULL), 0);
    partition_stats(f->p, &b);
    assert_int_equal(b.log_start_offset, before);
    assert_true(b.segments < a.segments + 5);
    seg_path(f, 0, ".log", path, sizeof(path));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(partition_read(f->p, before - 1, 10, 0, &r, f->errmsg),
                     BRK_EOFFSET_RANGE);
    assert_int_equal(read_all(f->p, before), 80);
    /* Everything old, even the active segment: it is kept. */
    assert_int_equal(
        partition_retention_point(f->p, TS_BASE + 10000000, 1, -1, &before), 1);
    partition_truncate_before(f->p, before, NULL);
    partition_stats(f->p, &b);
    assert_int_equal(b.segments, 1);
    assert_true(b.size_bytes > 0);
    assert_int_equal(
        partition_retention_point(f->p, TS_BASE + 10000000, 1, -1, &before), 0);
    assert_int_equal(partition_sync(f->p, NULL), 0);
}

/* Size retention deletes the oldest segments while the total is over the
 * cap, never the active one; the start offset survives a reopen. */
static void test_retention_size(void **state)
{
    struct fixture *f = *state;
    struct partition_stats st;
    uint64_t before;

    f->opt.segment_size = 1000;
    open_p(f, NULL);
    append(f->p, 100, 5);
    publish_all(f->p);
    partition_stats(f->p, &st);
    assert_int_equal(partition_retention_point(f->p, TS_BASE, -1,
                                               (int64_t)st.size_bytes, &before),
                     0);
    assert_int_equal(
        partition_retention_point(f->p, TS_BASE, -1, 2500, &before), 1);
    assert_int_equal(partition_truncate_before(f->p, before, NULL), 0);
    partition_stats(f->p, &st);
    assert_true(st.size_bytes <= 2500);
    assert_true(st.size_bytes > 1500); /* stopped as soon as it fit */
    assert_int_equal(st.log_start_offset, before);
    assert_int_equal(partition_retention_point(f->p, TS_BASE, -1, 0, &before),
                     1);
    assert_int_equal(partition_truncate_before(f->p, before, NULL), 0);
    partition_stats(f->p, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.next_offset, 100);
    reopen(f, NULL);
    partition_stats(f->p, &st);
    assert_int_equal(st.log_start_offset, before);
    assert_int_equal(read_all(f->p, before), 100);
}

static uint64_t hook_before;
static int hook_calls;

static void truncate_hook(struct partition *p, uint64_t offset)
{
    (void)offset;
    if (hook_calls++ == 0) {
        assert_int_equal(partition_truncate_before(p, hook_before, NULL), 0);
    }
}

/* A reader that holds a segment while retention deletes it still reads
 * it whole. */
static void test_read_while_deleted(void **state)
{
    struct fixture *f = *state;
    struct partition_read_result r;
    struct partition_stats st;
    char path[256];

    f->opt.segment_size = 1000;
    open_p(f, NULL);
    append(f->p, 80, 5);
    publish_all(f->p);
    hook_before = 10;
    hook_calls = 0;
    partition_read_hook = truncate_hook;
    assert_int_equal(partition_read(f->p, 0, 5, 0, &r, NULL), 0);
    partition_read_hook = NULL;
    seg_path(f, 0, ".log", path, sizeof(path));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.recs[4].offset, 4);
    check_record(&r.recs[4]);
    partition_read_result_free(&r);
    partition_stats(f->p, &st);
    assert_true(st.log_start_offset > 0);
    assert_true(st.segments >= 3);
}

/* A read spanning segments stops, with what it has, where retention
 * deleted the segment it was about to read. */
static void test_read_overtaken(void **state)
{
    struct fixture *f = *state;
    struct partition_read_result r;
    struct partition_stats st;

    f->opt.segment_size = 1000;
    open_p(f, NULL);
    append(f->p, 80, 5);
    publish_all(f->p);
    hook_before = UINT64_MAX;
    hook_calls = 0;
    partition_read_hook = truncate_hook;
    assert_int_equal(partition_read(f->p, 0, 1000, 0, &r, NULL), 0);
    partition_read_hook = NULL;
    partition_stats(f->p, &st);
    assert_int_equal(st.segments, 1);
    assert_true(r.n > 0);
    assert_true(r.next_offset < st.log_start_offset);
    check_record(&r.recs[r.n - 1]);
    partition_read_result_free(&r);
    assert_int_equal(partition_read(f->p, r.next_offset, 10, 0, &r, NULL),
                     BRK_EOFFSET_RANGE);
}

/* ==== Concurrency ==== */

struct race {
    struct partition *p;
    atomic_bool stop;  /* the writer is done and published everything */
    atomic_int errors; /* violations seen by readers */
};

static void *reader_main(void *arg)
{
    struct race *x = arg;
    struct partition_read_result r;
    struct partition_stats st;
    uint64_t next = 0;
    size_t i, n;
    bool stopped;

    do {
        stopped = atomic_load(&x->stop);
        if (partition_read(x->p, next, 37, 1500, &r, NULL) != 0) {
            atomic_fetch_add(&x->errors, 1);
            break;
        }
        partition_stats(x->p, &st);
        for (i = 0; i < r.n; i++) {
            char want[128];
            size_t len = value_of(r.recs[i].offset, want, sizeof(want));

            if (r.recs[i].offset != next + i ||
                r.recs[i].offset >= st.high_watermark ||
                r.recs[i].value_len != len ||
                memcmp(r.recs[i].value, want, len) != 0) {
                atomic_fetch_add(&x->errors, 1);
            }
        }
        next = r.next_offset;
        n = r.n;
        partition_read_result_free(&r);
        /* Once the writer is done, read on until caught up. */
    } while (!stopped || n > 0);
    return NULL;
}

/* Readers racing with appends, rolls and publishes never see a record at
 * or past the high watermark and never see a torn record. */
static void test_concurrent_readers(void **state)
{
    struct fixture *f = *state;
    struct race x;
    pthread_t th[3];
    struct partition_stats st;
    int i;

    f->opt.segment_size = 20000;
    f->opt.index_interval = 200;
    open_p(f, NULL);
    memset(&x, 0, sizeof(x));
    x.p = f->p;
    for (i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &x), 0);
    }
    /* Publish lagging one batch behind, so unpublished records are always
     * on disk for a faulty reader to trip over. */
    for (i = 0; i < 2000; i++) {
        partition_stats(f->p, &st);
        append(f->p, 1 + (size_t)i % 9, 9);
        partition_publish(f->p, st.next_offset);
    }
    publish_all(f->p);
    atomic_store(&x.stop, true);
    for (i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(atomic_load(&x.errors), 0);
    partition_stats(f->p, &st);
    assert_true(st.segments > 3);
    assert_int_equal(partition_sync(f->p, NULL), 0);
}

/* ==== Faults ==== */

/* A partition path under a regular file fails with BRK_EIO and a message
 * naming the path. */
static void test_open_not_a_dir(void **state)
{
    struct fixture *f = *state;
    struct partition *p;
    char file[128], dir[160];
    FILE *fp;

    snprintf(file, sizeof(file), "%s/file", f->root);
    fp = fopen(file, "w");
    fclose(fp);
    snprintf(dir, sizeof(dir), "%s/sub", file);
    assert_int_equal(partition_open(dir, &f->opt, &p, NULL, f->errmsg),
                     BRK_EIO);
    assert_non_null(strstr(f->errmsg, file));
}

/* A roll into a directory that vanished fails with BRK_EIO; the
 * partition's state stays as it was. */
static void test_roll_fails(void **state)
{
    struct fixture *f = *state;
    struct record rec = {.value = (const uint8_t *)"v", .value_len = 1};
    struct partition_stats st;
    uint64_t first;

    f->opt.segment_size = 100;
    open_p(f, NULL);
    append(f->p, 2, 2);
    assert_int_equal(fsutil_remove_tree(f->dir, NULL), 0);
    assert_int_equal(partition_append(f->p, &rec, 1, &first, f->errmsg),
                     BRK_EIO);
    assert_non_null(strstr(f->errmsg, "00000000000000000002.log"));
    partition_stats(f->p, &st);
    assert_int_equal(st.next_offset, 2);
}

/* A write cut short by the file size limit fails with BRK_EIO and leaves
 * nothing of the batch; later appends and a reopen are clean. */
static void test_short_write(void **state)
{
    struct fixture *f = *state;
    struct rlimit old, lim;
    struct partition_stats st;
    char path[256];
    off_t before;
    char vals[32][128];
    struct record recs[32];
    uint64_t first;
    size_t i;
    int rc;

    open_p(f, NULL);
    append(f->p, 5, 5);
    seg_path(f, 0, ".log", path, sizeof(path));
    before = file_size(path);
    for (i = 0; i < 32; i++) {
        memset(&recs[i], 0, sizeof(recs[i]));
        recs[i].value = (const uint8_t *)vals[i];
        recs[i].value_len = (uint32_t)value_of(5 + i, vals[i], 128);
    }
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)before + 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = partition_append(f->p, recs, 32, &first, f->errmsg);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(rc, BRK_EIO);
    assert_non_null(strstr(f->errmsg, "write"));
    assert_int_equal(file_size(path), before);
    partition_stats(f->p, &st);
    assert_int_equal(st.next_offset, 5);
    append(f->p, 5, 5);
    reopen(f, NULL);
    assert_int_equal(read_all(f->p, 0), 10);
}

/* partition_remove_dir deletes the directory and tolerates a missing one. */
static void test_remove_dir(void **state)
{
    struct fixture *f = *state;

    f->opt.segment_size = 500;
    open_p(f, NULL);
    append(f->p, 30, 3);
    partition_close(f->p);
    f->p = NULL;
    assert_int_equal(partition_remove_dir(f->dir, NULL), 0);
    assert_int_equal(access(f->dir, F_OK), -1);
    assert_int_equal(partition_remove_dir(f->dir, NULL), 0);
}

/* ==== Find by time ==== */

static uint64_t find_time(struct fixture *f, int64_t ts)
{
    uint64_t off = UINT64_MAX;

    if (partition_find_time(f->p, ts, &off, f->errmsg) != 0) {
        fail_msg("partition_find_time: %s", f->errmsg);
    }
    return off;
}

/* The first visible record whose timestamp is >= T, across segments and
 * with timestamps that step back; past the end, the high watermark;
 * records not yet published are not found. */
static void test_find_time(void **state)
{
    struct fixture *f = *state;
    struct partition_stats st;

    f->opt.segment_size = 1000;
    open_p(f, NULL);
    assert_int_equal(find_time(f, TS_BASE), 0); /* empty: hw 0 */
    append_ts(f->p, 40, 4, TS_BASE);            /* 0..39 */
    append_ts(f->p, 40, 4, TS_BASE + 1000);     /* 40..79 */
    append_ts(f->p, 4, 4, TS_BASE + 3000);      /* 80..83 */
    append_ts(f->p, 4, 4, TS_BASE + 2500);      /* 84..87: a step back */
    publish_all(f->p);
    partition_stats(f->p, &st);
    assert_true(st.segments > 3);
    assert_int_equal(find_time(f, 0), 0);
    assert_int_equal(find_time(f, TS_BASE), 0);
    assert_int_equal(find_time(f, TS_BASE + 1), 40);
    assert_int_equal(find_time(f, TS_BASE + 1000), 40);
    assert_int_equal(find_time(f, TS_BASE + 2000), 80);
    assert_int_equal(find_time(f, TS_BASE + 2600), 80);
    assert_int_equal(find_time(f, TS_BASE + 3000), 80);
    assert_int_equal(find_time(f, TS_BASE + 3001), 88);
    /* Written but not visible yet. */
    append_ts(f->p, 4, 4, TS_BASE + 9000);
    assert_int_equal(find_time(f, TS_BASE + 9000), 88);
    publish_all(f->p);
    assert_int_equal(find_time(f, TS_BASE + 9000), 88);
    assert_int_equal(find_time(f, TS_BASE + 9001), 92);
    /* Below the log start nothing is found, even inside a kept segment. */
    assert_int_equal(partition_truncate_before(f->p, 30, NULL), 0);
    assert_int_equal(find_time(f, 0), 30);
    assert_int_equal(find_time(f, TS_BASE + 1), 40);
}

/* The search reads through more records than one read returns. */
static void test_find_time_long_scan(void **state)
{
    struct fixture *f = *state;

    f->opt.segment_size = 1 << 20;
    open_p(f, NULL);
    append_ts(f->p, 3000, 32, TS_BASE);
    append_ts(f->p, 1, 1, TS_BASE + 5);
    publish_all(f->p);
    assert_int_equal(find_time(f, TS_BASE + 1), 3000);
    assert_int_equal(find_time(f, TS_BASE + 6), 3001);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_open_empty),
        TEST(test_publish_visibility),
        TEST(test_read_range),
        TEST(test_limit_max_bytes),
        TEST(test_record_too_large),
        TEST(test_roll),
        TEST(test_big_batch),
        TEST(test_reopen),
        TEST(test_empty_newest_segment),
        TEST(test_recover_truncated_tail),
        TEST(test_recover_flipped_byte),
        TEST(test_index_rebuilt),
        TEST(test_gap_is_corrupt),
        TEST(test_retention_time),
        TEST(test_retention_size),
        TEST(test_read_while_deleted),
        TEST(test_read_overtaken),
        TEST(test_concurrent_readers),
        TEST(test_open_not_a_dir),
        TEST(test_roll_fails),
        TEST(test_short_write),
        TEST(test_remove_dir),
        TEST(test_find_time),
        TEST(test_find_time_long_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
