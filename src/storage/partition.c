/* A partition: the list of segments of one directory, offsets, the high
 * watermark, sync, retention and start-up recovery.
 *
 * DESIGN
 * - One writer (the loop thread) appends, rolls and truncates. It encodes a
 *   batch into one buffer and writes it with one pwrite() without holding
 *   the mutex, then takes the mutex to update the in-memory state
 *   (segment size, index, next_offset). Only the writer changes the segment
 *   list, so the writer reads it without the mutex.
 * - Readers take the mutex only to check the range, find the segment and
 *   its index position and take a reference on it; they pread() and decode
 *   without any lock, up to the size the segment had under the mutex, and
 *   stop at the high watermark read at the start.
 * - partition_sync marks nothing itself: appends flag their segment dirty
 *   and rolls/deletes flag the directory, under the mutex; sync takes
 *   references on the dirty segments, clears the flags and fsyncs outside
 *   the mutex. A failed fsync is sticky: the kernel may have dropped the
 *   dirty pages, so a later "successful" fsync would prove nothing.
 * - Rolling fdatasyncs the old segment first (once per segment, on the
 *   writer): recovery only repairs the newest segment, so older ones must
 *   be whole after a crash even when the layer above rarely syncs.
 * - A segment deleted by retention stays readable by readers holding a
 *   reference: the file is unlinked, the descriptor closed at the last
 *   unref. */
#include "broker/partition.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/digest.h"
#include "broker/err.h"
#include "broker/fsutil.h"
#include "broker/log.h"
#include "segment.h"

#define PARTITION_DEFAULT_SEGMENT_SIZE (1ull << 30)

/* Bytes a reader asks pread() for at a time (more when a record is larger). */
#define PARTITION_READ_CHUNK (64u << 10)

/* Segments removed per locked pass in partition_truncate_before. */
#define PARTITION_DELETE_BATCH 32

void (*partition_read_hook)(struct partition *p, uint64_t offset);

struct partition {
    char *dir;               /* path, for messages */
    int dirfd;               /* the directory: openat, unlinkat, fsync */
    uint64_t segment_size;   /* roll threshold */
    uint32_t index_interval; /* bytes between index entries */
    uint32_t digest_chunk;   /* offsets per replica digest chunk */
    struct digest *digest;   /* replica digest (digest.h), own lock */
    pthread_mutex_t mu;      /* guards every field below */
    struct segment **segs;   /* ascending base offsets; the last is active */
    size_t n_segs;
    size_t cap_segs;
    uint64_t log_start_offset; /* >= base of segs[0]: see truncate */
    uint64_t next_offset;      /* one past the last written record */
    uint64_t high_watermark;   /* one past the last visible record */
    uint64_t size_bytes;       /* sum of the segments' sizes */
    uint64_t last_cmd_index;   /* of the last written record */
    bool dir_dirty;            /* a segment was created or deleted */
    bool sync_failed;          /* an fsync failed: durability is unknown */
};

/* ==== Segment list ==== */

/* Index of the segment holding @offset: the last with base <= @offset.
 * Under the mutex (or writer); @offset >= log_start_offset. */
static size_t find_segment(const struct partition *p, uint64_t offset)
{
    size_t lo = 0, hi = p->n_segs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (p->segs[mid]->base_offset <= offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo == 0 ? 0 : lo - 1;
}

/* Under the mutex: append @s to the list. */
static int push_segment(struct partition *p, struct segment *s)
{
    struct segment **v;
    size_t cap;

    if (p->n_segs == p->cap_segs) {
        cap = p->cap_segs == 0 ? 8 : p->cap_segs * 2;
        if (cap > SIZE_MAX / sizeof(*v)) {
            return BRK_ENOMEM;
        }
        v = realloc(p->segs, cap * sizeof(*v));
        if (v == NULL) {
            return BRK_ENOMEM;
        }
        p->segs = v;
        p->cap_segs = cap;
    }
    p->segs[p->n_segs++] = s;
    return 0;
}

static struct segment *active(const struct partition *p)
{
    return p->segs[p->n_segs - 1];
}

/* ==== Open and close ==== */

/* Offsets must run on from one segment to the next: a gap means records
 * were lost, an overlap that two files claim the same offsets. */
static int check_continuity(const struct segment *prev, const struct segment *s,
                            char *errmsg)
{
    if (prev->next_offset == s->base_offset) {
        return 0;
    }
    return brk_errf(errmsg, BRK_ECORRUPT,
                    "%s ends at offset %" PRIu64 " but %s starts at %" PRIu64
                    " (%s)",
                    prev->name, prev->next_offset, s->name, s->base_offset,
                    prev->next_offset < s->base_offset ? "gap" : "overlap");
}

static int load_segments(struct partition *p, const uint64_t *bases, size_t n,
                         struct partition_recovery *rec, char *errmsg)
{
    struct segment_load_info info;
    struct segment *s;
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        rc = segment_load(p->dirfd, p->dir, bases[i], i == n - 1,
                          p->index_interval, &s, &info, errmsg);
        if (rc != 0) {
            return rc;
        }
        if (push_segment(p, s) != 0) {
            segment_unref(s);
            return brk_errf(errmsg, BRK_ENOMEM, "load %s: out of memory",
                            s->name);
        }
        rec->truncated_bytes += info.truncated_bytes;
        rec->indexes_rebuilt += info.index_rebuilt ? 1 : 0;
        rec->segments++;
        if (i > 0) {
            rc = check_continuity(p->segs[i - 1], s, errmsg);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* An empty directory gets its first segment, based at offset 0. */
static int create_first_segment(struct partition *p,
                                struct partition_recovery *rec, char *errmsg)
{
    struct segment *s;
    int rc = segment_create(p->dirfd, p->dir, 0, p->index_interval, &s, errmsg);

    if (rc != 0) {
        return rc;
    }
    if (push_segment(p, s) != 0) {
        segment_unref(s);
        return brk_errf(errmsg, BRK_ENOMEM, "out of memory");
    }
    p->dir_dirty = true;
    rec->segments = 1;
    return 0;
}

/* Derive the partition's offsets and totals from its loaded segments. */
static void summarize(struct partition *p)
{
    size_t i;

    p->log_start_offset = p->segs[0]->base_offset;
    p->next_offset = active(p)->next_offset;
    p->high_watermark = p->next_offset;
    p->size_bytes = 0;
    p->last_cmd_index = 0;
    for (i = 0; i < p->n_segs; i++) {
        p->size_bytes += p->segs[i]->size;
        if (p->segs[i]->size > 0) {
            p->last_cmd_index = p->segs[i]->last_cmd_index;
        }
    }
}

static int recover(struct partition *p, struct partition_recovery *rec,
                   char *errmsg)
{
    uint64_t *bases = NULL;
    size_t n;
    int rc = segment_list(p->dir, &bases, &n, errmsg);

    if (rc != 0) {
        return rc;
    }
    rc = n == 0 ? create_first_segment(p, rec, errmsg)
                : load_segments(p, bases, n, rec, errmsg);
    free(bases);
    if (rc == 0) {
        summarize(p);
    }
    return rc;
}

static struct partition *partition_alloc(const char *dir,
                                         const struct partition_options *opt)
{
    struct partition *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        return NULL;
    }
    p->dir = strdup(dir);
    if (p->dir == NULL) {
        free(p);
        return NULL;
    }
    p->dirfd = -1;
    p->segment_size = opt != NULL && opt->segment_size > 0
                          ? opt->segment_size
                          : PARTITION_DEFAULT_SEGMENT_SIZE;
    p->index_interval = opt != NULL && opt->index_interval > 0
                            ? opt->index_interval
                            : PARTITION_DEFAULT_INDEX_INTERVAL;
    p->digest_chunk = opt != NULL ? opt->digest_chunk : 0;
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

/* Make the directory entry of a freshly created partition directory
 * durable, so a crash cannot lose a directory whose data was acknowledged. */
static int sync_parent(const char *dir, char *errmsg)
{
    char *copy = strdup(dir);
    int rc;

    if (copy == NULL) {
        return brk_errf(errmsg, BRK_ENOMEM, "out of memory");
    }
    rc = fsutil_sync_dir(dirname(copy), errmsg);
    free(copy);
    return rc;
}

static bool parent_exists(const char *dir)
{
    char *copy = strdup(dir);
    bool yes = copy != NULL && access(dirname(copy), F_OK) == 0;

    free(copy);
    return yes;
}

static int open_dir(struct partition *p, char *errmsg)
{
    bool existed = access(p->dir, F_OK) == 0;
    int rc = fsutil_mkdirs(p->dir, errmsg);

    if (rc != 0) {
        return rc;
    }
    p->dirfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (p->dirfd < 0) {
        return brk_errf(errmsg, BRK_EIO, "open %s: %s", p->dir,
                        strerror(errno));
    }
    return existed ? 0 : sync_parent(p->dir, errmsg);
}

int partition_open(const char *dir, const struct partition_options *opt,
                   struct partition **out, struct partition_recovery *rec,
                   char *errmsg)
{
    struct partition_recovery dummy;
    struct partition *p = partition_alloc(dir, opt);
    int rc;

    if (rec == NULL) {
        rec = &dummy;
    }
    memset(rec, 0, sizeof(*rec));
    if (p == NULL) {
        return brk_errf(errmsg, BRK_ENOMEM, "open partition %s: out of memory",
                        dir);
    }
    rc = open_dir(p, errmsg);
    if (rc == 0) {
        rc = recover(p, rec, errmsg);
    }
    if (rc == 0 &&
        (p->digest = digest_create(p->digest_chunk, p->log_start_offset)) ==
            NULL) {
        rc = brk_errf(errmsg, BRK_ENOMEM, "out of memory");
    }
    if (rc != 0) {
        partition_close(p);
        return brk_errwrap(errmsg, rc, "open partition %s", dir);
    }
    *out = p;
    return 0;
}

void partition_close(struct partition *p)
{
    size_t i;

    if (p == NULL) {
        return;
    }
    for (i = 0; i < p->n_segs; i++) {
        segment_unref(p->segs[i]);
    }
    if (p->dirfd >= 0) {
        close(p->dirfd);
    }
    pthread_mutex_destroy(&p->mu);
    digest_destroy(p->digest);
    free(p->segs);
    free(p->dir);
    free(p);
}

/* ==== Append ==== */

/* Writer only: start a new active segment at next_offset. */
static int roll(struct partition *p, char *errmsg)
{
    struct segment *old = active(p), *s;
    int rc;

    /* Recovery repairs only the newest segment, so every older one must be
     * whole after a crash, even when the layer above syncs rarely (cluster
     * mode): sync it once, here, before anything lands after it. */
    rc = segment_sync(old, errmsg);
    if (rc != 0) {
        pthread_mutex_lock(&p->mu);
        p->sync_failed = true;
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    rc = segment_create(p->dirfd, p->dir, p->next_offset, p->index_interval, &s,
                        errmsg);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&p->mu);
    rc = push_segment(p, s);
    if (rc == 0) {
        p->dir_dirty = true;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc != 0) {
        segment_unlink(s, p->dirfd, NULL);
        segment_unref(s);
        return brk_errf(errmsg, rc, "roll: out of memory");
    }
    /* The old segment is complete: its index file gets no more entries. */
    segment_seal(old);
    return 0;
}

/* Writer only: roll first when the batch would make a non-empty active
 * segment pass segment_size. */
static int roll_if_needed(struct partition *p, const struct record *recs,
                          size_t n, char *errmsg)
{
    uint64_t bytes = 0;
    int rc = segment_batch_bytes(recs, n, &bytes, errmsg);

    if (rc != 0) {
        return rc;
    }
    if (active(p)->size == 0 ||
        segment_fits(active(p), bytes, n, p->segment_size)) {
        return 0;
    }
    return roll(p, errmsg);
}

int partition_append(struct partition *p, struct record *recs, size_t n,
                     uint64_t *first_offset, char *errmsg)
{
    struct segment_batch b;
    struct segment *s;
    int rc;

    if (n == 0) {
        *first_offset = p->next_offset;
        return 0;
    }
    rc = roll_if_needed(p, recs, n, errmsg);
    if (rc != 0) {
        return brk_errwrap(errmsg, rc, "append to %s", p->dir);
    }
    s = active(p);
    rc = segment_batch_encode(s, recs, n, p->next_offset, &b, errmsg);
    if (rc != 0) {
        return brk_errwrap(errmsg, rc, "append to %s", p->dir);
    }
    /* Growing the index may move it: readers look at it under the mutex. */
    pthread_mutex_lock(&p->mu);
    rc = segment_index_reserve(s, b.n_entries);
    pthread_mutex_unlock(&p->mu);
    if (rc == 0) {
        rc = segment_write(s, &b, errmsg);
    } else {
        rc = brk_errf(errmsg, rc, "out of memory");
    }
    if (rc == 0) {
        pthread_mutex_lock(&p->mu);
        segment_commit(s, &b);
        s->dirty = true;
        p->next_offset = b.next_offset;
        p->size_bytes += b.len;
        p->last_cmd_index = b.last_cmd_index;
        pthread_mutex_unlock(&p->mu);
        *first_offset = b.next_offset - n;
        digest_note_append(p->digest, recs, n);
    }
    segment_batch_free(&b);
    return rc == 0 ? 0 : brk_errwrap(errmsg, rc, "append to %s", p->dir);
}

void partition_publish(struct partition *p, uint64_t offset)
{
    pthread_mutex_lock(&p->mu);
    if (offset > p->next_offset) {
        offset = p->next_offset;
    }
    if (offset > p->high_watermark) {
        p->high_watermark = offset;
    }
    pthread_mutex_unlock(&p->mu);
}

/* ==== Sync ==== */

/* Under the mutex: take a reference on each dirty segment and clear its
 * flag. *@out is NULL when none is dirty. */
static int collect_dirty(struct partition *p, struct segment ***out, size_t *n)
{
    size_t i, k = 0;

    *out = NULL;
    for (i = 0; i < p->n_segs; i++) {
        k += p->segs[i]->dirty ? 1 : 0;
    }
    *n = k;
    if (k == 0) {
        return 0;
    }
    *out = malloc(k * sizeof(**out));
    if (*out == NULL) {
        return BRK_ENOMEM;
    }
    for (i = 0, k = 0; i < p->n_segs; i++) {
        if (p->segs[i]->dirty) {
            p->segs[i]->dirty = false;
            segment_ref(p->segs[i]);
            (*out)[k++] = p->segs[i];
        }
    }
    return 0;
}

static int sync_segments(struct segment **v, size_t n, char *errmsg)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < n; i++) {
        if (rc == 0) {
            rc = segment_sync(v[i], errmsg);
        }
        segment_unref(v[i]);
    }
    return rc;
}

static int sync_dir(struct partition *p, char *errmsg)
{
    if (fsync(p->dirfd) != 0) {
        return brk_errf(errmsg, BRK_EIO, "fsync directory: %s",
                        strerror(errno));
    }
    return 0;
}

int partition_sync(struct partition *p, char *errmsg)
{
    struct segment **dirty;
    size_t n;
    bool dir;
    int rc;

    pthread_mutex_lock(&p->mu);
    rc = p->sync_failed ? BRK_EIO : collect_dirty(p, &dirty, &n);
    dir = rc == 0 && p->dir_dirty;
    if (dir) {
        p->dir_dirty = false;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc != 0) {
        return brk_errf(
            errmsg, rc, "sync %s: %s", p->dir,
            rc == BRK_EIO ? "an earlier fsync failed" : "out of memory");
    }
    rc = sync_segments(dirty, n, errmsg);
    free(dirty);
    if (rc == 0 && dir) {
        rc = sync_dir(p, errmsg);
    }
    if (rc != 0) {
        pthread_mutex_lock(&p->mu);
        p->sync_failed = true;
        pthread_mutex_unlock(&p->mu);
        return brk_errwrap(errmsg, rc, "sync %s", p->dir);
    }
    return 0;
}

/* ==== Read ==== */

/* Where a taken record's fields sit in the read buffer, which may move
 * while it grows; pointers are set once reading is over. */
struct rec_loc {
    size_t key; /* SIZE_MAX when there is no key */
    size_t value;
    size_t headers; /* SIZE_MAX when there are no headers */
};

struct read_ctx {
    uint64_t next;        /* offset of the next record wanted */
    uint64_t hw;          /* high watermark when the read began */
    size_t limit;         /* most records to take */
    size_t max_bytes;     /* most encoded bytes past the first; 0 = any */
    uint8_t *buf;         /* bytes read so far */
    size_t len;           /* bytes in buf */
    size_t cap;           /* bytes allocated */
    size_t scan;          /* first byte of buf not decoded yet */
    uint64_t scan_pos;    /* file position of buf[scan] */
    struct record *recs;  /* taken records, pointers unset */
    struct rec_loc *locs; /* where their fields are in buf */
    size_t n;             /* records taken */
    size_t n_cap;         /* records allocated */
    size_t taken_bytes;   /* encoded bytes of the records taken */
    bool done;            /* limit, max_bytes or hw reached */
};

static size_t loc_of(const uint8_t *p, const uint8_t *buf)
{
    return p == NULL ? SIZE_MAX : (size_t)(p - buf);
}

static const uint8_t *ptr_of(size_t loc, const uint8_t *buf)
{
    return loc == SIZE_MAX ? NULL : buf + loc;
}

static int grow_recs(struct read_ctx *c)
{
    size_t cap = c->n_cap == 0 ? 64 : c->n_cap * 2;
    struct record *r;
    struct rec_loc *l;

    if (c->n < c->n_cap) {
        return 0;
    }
    if (cap > SIZE_MAX / sizeof(*r)) {
        return BRK_ENOMEM;
    }
    r = realloc(c->recs, cap * sizeof(*r));
    if (r == NULL) {
        return BRK_ENOMEM;
    }
    c->recs = r;
    l = realloc(c->locs, cap * sizeof(*l));
    if (l == NULL) {
        return BRK_ENOMEM;
    }
    c->locs = l;
    c->n_cap = cap;
    return 0;
}

/* Take @r, decoded from buf[scan], @size bytes long, unless a limit says
 * the read is over. */
static int take_record(struct read_ctx *c, const struct record *r, size_t size)
{
    if (c->max_bytes > 0 && c->n > 0 && c->taken_bytes + size > c->max_bytes) {
        c->done = true;
        return 0;
    }
    if (grow_recs(c) != 0) {
        return BRK_ENOMEM;
    }
    c->recs[c->n] = *r;
    c->locs[c->n].key = loc_of(r->key, c->buf);
    c->locs[c->n].value = loc_of(r->value, c->buf);
    c->locs[c->n].headers = loc_of(r->headers, c->buf);
    c->n++;
    c->next++;
    c->taken_bytes += size;
    c->done = c->n >= c->limit ||
              (c->max_bytes > 0 && c->taken_bytes >= c->max_bytes);
    return 0;
}

/* Decode the buffered records of segment @s. *@need gets the bytes the
 * record at buf[scan] needs when it is incomplete. */
static int take_records(struct read_ctx *c, const struct segment *s,
                        size_t *need, char *errmsg)
{
    struct record r;
    size_t used;
    int rc;

    *need = 0;
    while (!c->done && c->scan < c->len) {
        rc = record_decode(c->buf + c->scan, c->len - c->scan, &r, &used);
        if (rc == BRK_ESHORT) {
            *need = used > 0 ? used : 4;
            return 0;
        }
        if (rc == 0 && r.offset >= c->hw) {
            c->done = true;
            return 0;
        }
        /* The index lands up to one interval before the offset wanted;
         * anything else out of sequence is damage. */
        if (rc != 0 || (r.offset != c->next && c->n > 0) ||
            r.offset > c->next) {
            return brk_errf(errmsg, BRK_ECORRUPT,
                            "%s: bad record at position %" PRIu64
                            " (reading offset %" PRIu64 ")",
                            s->name, c->scan_pos, c->next);
        }
        if (r.offset == c->next) {
            rc = take_record(c, &r, used);
            if (rc != 0 || c->done) {
                return rc;
            }
        }
        c->scan += used;
        c->scan_pos += used;
    }
    return 0;
}

/* Drop skipped bytes from the front of the buffer while no record has been
 * taken, so that skipping never makes the buffer grow. */
static void compact(struct read_ctx *c)
{
    if (c->n > 0 || c->scan == 0) {
        return;
    }
    memmove(c->buf, c->buf + c->scan, c->len - c->scan);
    c->len -= c->scan;
    c->scan = 0;
}

/* Read up to @want more bytes of @s at @pos into the buffer. */
static int fill(struct read_ctx *c, const struct segment *s, uint64_t pos,
                size_t want, char *errmsg)
{
    size_t cap;
    uint8_t *b;
    int rc;

    if (want > SIZE_MAX - c->len) {
        return brk_errf(errmsg, BRK_ENOMEM, "read: out of memory");
    }
    if (c->len + want > c->cap) {
        cap = c->cap > SIZE_MAX / 2 ? c->len + want : c->cap * 2;
        cap = cap < c->len + want ? c->len + want : cap;
        b = realloc(c->buf, cap);
        if (b == NULL) {
            return brk_errf(errmsg, BRK_ENOMEM, "read: out of memory");
        }
        c->buf = b;
        c->cap = cap;
    }
    rc = segment_pread(s, c->buf + c->len, want, pos, errmsg);
    if (rc != 0) {
        /* The file is shorter than the size we recorded for it. */
        return rc == BRK_ESHORT ? BRK_ECORRUPT : rc;
    }
    c->len += want;
    return 0;
}

/* Read records of @s from @pos (a record boundary) up to @end. */
static int read_segment(struct read_ctx *c, const struct segment *s,
                        uint64_t pos, uint64_t end, char *errmsg)
{
    size_t need = 0, want;
    int rc;

    c->scan = c->len;
    c->scan_pos = pos;
    while (!c->done) {
        compact(c);
        if (pos >= end) {
            /* Bytes left over are a record cut by the recorded size. */
            return c->scan == c->len
                       ? 0
                       : brk_errf(errmsg, BRK_ECORRUPT,
                                  "%s: torn record at position %" PRIu64,
                                  s->name, c->scan_pos);
        }
        want = need > PARTITION_READ_CHUNK ? need : PARTITION_READ_CHUNK;
        want = end - pos < want ? (size_t)(end - pos) : want;
        rc = fill(c, s, pos, want, errmsg);
        if (rc == 0) {
            pos += want;
            rc = take_records(c, s, &need, errmsg);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Find the segment holding c->next, with a reference, its start position
 * and the size it had. BRK_EOFFSET_RANGE when retention removed it. */
static int locate(struct partition *p, struct read_ctx *c, struct segment **s,
                  uint64_t *pos, uint64_t *end)
{
    int rc = 0;

    pthread_mutex_lock(&p->mu);
    if (c->next < p->log_start_offset) {
        rc = BRK_EOFFSET_RANGE;
    } else {
        *s = p->segs[find_segment(p, c->next)];
        segment_ref(*s);
        *pos = segment_lookup(*s, c->next);
        *end = (*s)->size;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int read_records(struct partition *p, struct read_ctx *c, char *errmsg)
{
    struct segment *s;
    uint64_t pos, end, from;
    int rc;

    while (!c->done && c->next < c->hw) {
        from = c->next;
        rc = locate(p, c, &s, &pos, &end);
        if (rc != 0) {
            /* Retention overtook a read that already has records. */
            return c->n > 0
                       ? 0
                       : brk_errf(errmsg, rc,
                                  "offset %" PRIu64 " was deleted by retention",
                                  c->next);
        }
        if (partition_read_hook != NULL) {
            partition_read_hook(p, c->next);
        }
        rc = read_segment(c, s, pos, end, errmsg);
        /* A segment that ends before the offset it was chosen for would
         * be chosen again forever. */
        if (rc == 0 && !c->done && c->next == from) {
            rc = brk_errf(errmsg, BRK_ECORRUPT,
                          "%s ends before offset %" PRIu64, s->name, from);
        }
        segment_unref(s);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Check @offset against the partition's range; reads c->hw. */
static int check_range(struct partition *p, uint64_t offset, struct read_ctx *c,
                       char *errmsg)
{
    uint64_t start;

    pthread_mutex_lock(&p->mu);
    start = p->log_start_offset;
    c->hw = p->high_watermark;
    pthread_mutex_unlock(&p->mu);
    if (offset < start || offset > c->hw) {
        return brk_errf(errmsg, BRK_EOFFSET_RANGE,
                        "offset %" PRIu64 " is outside [%" PRIu64 ", %" PRIu64
                        "]",
                        offset, start, c->hw);
    }
    return 0;
}

/* Hand the records over to @out, pointing into the final buffer. */
static void read_finish(struct read_ctx *c, struct partition_read_result *out)
{
    size_t i;

    for (i = 0; i < c->n; i++) {
        c->recs[i].key = ptr_of(c->locs[i].key, c->buf);
        c->recs[i].value = ptr_of(c->locs[i].value, c->buf);
        c->recs[i].headers = ptr_of(c->locs[i].headers, c->buf);
    }
    free(c->locs);
    out->buf = c->buf;
    out->recs = c->recs;
    out->n = c->n;
    out->next_offset = c->next;
}

int partition_read(struct partition *p, uint64_t offset, size_t limit,
                   size_t max_bytes, struct partition_read_result *out,
                   char *errmsg)
{
    struct read_ctx c;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&c, 0, sizeof(c));
    c.next = offset;
    c.limit = limit;
    c.max_bytes = max_bytes;
    c.done = limit == 0;
    rc = check_range(p, offset, &c, errmsg);
    if (rc == 0) {
        rc = read_records(p, &c, errmsg);
    }
    if (rc != 0) {
        free(c.buf);
        free(c.recs);
        free(c.locs);
        return brk_errwrap(errmsg, rc, "read %s", p->dir);
    }
    read_finish(&c, out);
    return 0;
}

void partition_read_result_free(struct partition_read_result *r)
{
    free(r->buf);
    free(r->recs);
    memset(r, 0, sizeof(*r));
}

/* ==== Find by time ==== */

/* Records read per step of partition_find_time. */
#define PARTITION_FIND_BATCH 1000

/* Where the search starts: the first record of the first segment (from
 * the log start on) holding a timestamp >= @ts; every record before it is
 * older. *@hw gets the high watermark the search stops at. */
static uint64_t find_time_start(struct partition *p, int64_t ts, uint64_t *hw)
{
    uint64_t from;
    size_t i;

    pthread_mutex_lock(&p->mu);
    *hw = p->high_watermark;
    from = *hw;
    for (i = find_segment(p, p->log_start_offset); i < p->n_segs; i++) {
        if (p->segs[i]->max_timestamp >= ts) {
            from = p->segs[i]->base_offset;
            break;
        }
    }
    if (from < p->log_start_offset) {
        from = p->log_start_offset;
    }
    pthread_mutex_unlock(&p->mu);
    return from < *hw ? from : *hw;
}

int partition_find_time(struct partition *p, int64_t ts, uint64_t *offset,
                        char *errmsg)
{
    struct partition_read_result r;
    struct partition_stats st;
    uint64_t hw, from = find_time_start(p, ts, &hw);
    size_t i;
    int rc;

    while (from < hw) {
        rc = partition_read(p, from, PARTITION_FIND_BATCH, 0, &r, errmsg);
        if (rc == BRK_EOFFSET_RANGE) {
            /* Retention overtook the scan: go on from the new log start. */
            partition_stats(p, &st);
            if (st.log_start_offset <= from) {
                return rc;
            }
            from = st.log_start_offset;
            continue;
        }
        if (rc != 0) {
            return rc;
        }
        i = 0;
        while (i < r.n && r.recs[i].timestamp < ts) {
            i++;
        }
        if (i < r.n) {
            from = r.recs[i].offset;
            partition_read_result_free(&r);
            break;
        }
        from = r.n > 0 ? r.next_offset : hw;
        partition_read_result_free(&r);
    }
    *offset = from < hw ? from : hw;
    return 0;
}

/* ==== Stats ==== */

void partition_stats(struct partition *p, struct partition_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->log_start_offset = p->log_start_offset;
    out->high_watermark = p->high_watermark;
    out->next_offset = p->next_offset;
    out->size_bytes = p->size_bytes;
    out->segments = (uint32_t)p->n_segs;
    out->last_cmd_index = p->last_cmd_index;
    pthread_mutex_unlock(&p->mu);
}

/* ==== Retention ==== */

int partition_retention_point(struct partition *p, int64_t now_ms,
                              int64_t retention_ms, int64_t retention_bytes,
                              uint64_t *before)
{
    uint64_t size = p->size_bytes;
    int64_t cutoff = INT64_MIN;
    size_t i;

    /* now - retention can only underflow, as retention_ms >= 0 here. */
    if (retention_ms >= 0 && now_ms > INT64_MIN + retention_ms) {
        cutoff = now_ms - retention_ms;
    }
    for (i = 0; i + 1 < p->n_segs; i++) {
        const struct segment *s = p->segs[i];
        bool old = retention_ms >= 0 && s->max_timestamp < cutoff;
        bool big = retention_bytes >= 0 && size > (uint64_t)retention_bytes;

        if (!old && !big) {
            break;
        }
        size -= s->size;
    }
    *before = p->segs[i]->base_offset;
    return i > 0 ? 1 : 0;
}

/* Under the mutex: unlist up to @max leading non-active segments whose
 * records all lie below @before into @v. */
static size_t unlist_segments(struct partition *p, uint64_t before,
                              struct segment **v, size_t max)
{
    size_t k = 0;

    while (k < max && k + 1 < p->n_segs && p->segs[k]->next_offset <= before) {
        v[k] = p->segs[k];
        p->size_bytes -= v[k]->size;
        k++;
    }
    if (k == 0) {
        return 0;
    }
    memmove(p->segs, p->segs + k, (p->n_segs - k) * sizeof(*p->segs));
    p->n_segs -= k;
    if (p->segs[0]->base_offset > p->log_start_offset)
        p->log_start_offset = p->segs[0]->base_offset;
    p->dir_dirty = true;
    return k;
}

int partition_truncate_before(struct partition *p, uint64_t before,
                              char *errmsg)
{
    struct segment *v[PARTITION_DELETE_BATCH];
    size_t k, i;
    int rc = 0, r;

    do {
        pthread_mutex_lock(&p->mu);
        k = unlist_segments(p, before, v, PARTITION_DELETE_BATCH);
        pthread_mutex_unlock(&p->mu);
        /* Unlinked outside the mutex; readers holding a reference keep
         * reading through their descriptor. */
        for (i = 0; i < k; i++) {
            r = segment_unlink(v[i], p->dirfd, errmsg);
            if (r == 0) {
                log_info("%s: deleted segment %s by retention", p->dir,
                         v[i]->name);
            }
            rc = rc != 0 ? rc : r;
            segment_unref(v[i]);
        }
    } while (k == PARTITION_DELETE_BATCH);
    /* Replicas can split their segments differently (a follower that
     * caught up appended fetched pages, not the original batches), so the
     * log start is an offset, not a file boundary: records below @before
     * are hidden even where their segment must stay. */
    pthread_mutex_lock(&p->mu);
    if (before > p->log_start_offset)
        p->log_start_offset = before < p->next_offset ? before : p->next_offset;
    pthread_mutex_unlock(&p->mu);
    digest_drop_before(p->digest, p->log_start_offset);
    return rc == 0 ? 0 : brk_errwrap(errmsg, rc, "truncate %s", p->dir);
}

/* Writer only. Drop every segment and start empty at @base. The mutex is
 * held across the unlinks and the create: this runs only when a snapshot
 * says the local data is unusable, never on a hot path, and readers must
 * never see a partition without segments. */
int partition_reset(struct partition *p, uint64_t base, char *errmsg)
{
    struct segment **old, *s = NULL;
    size_t n, i;
    int rc = 0;

    pthread_mutex_lock(&p->mu);
    old = p->segs;
    n = p->n_segs;
    for (i = 0; i < n && rc == 0; i++)
        rc = segment_unlink(old[i], p->dirfd, errmsg);
    if (rc == 0)
        rc = segment_create(p->dirfd, p->dir, base, p->index_interval, &s,
                            errmsg);
    if (rc == 0) {
        p->segs = NULL;
        p->n_segs = p->cap_segs = 0;
        rc = push_segment(p, s);
    }
    if (rc == 0) {
        for (i = 0; i < n; i++)
            segment_unref(old[i]);
        free(old);
        summarize(p);
        p->dir_dirty = true;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc == 0)
        digest_reset(p->digest, base);
    return rc == 0 ? 0 : brk_errwrap(errmsg, rc, "reset %s", p->dir);
}

int partition_remove_dir(const char *dir, char *errmsg)
{
    int rc = fsutil_remove_tree(dir, errmsg);

    /* The parent's entry for @dir must go durably too, when the parent
     * itself is still there. */
    if (rc == 0 && parent_exists(dir)) {
        rc = sync_parent(dir, errmsg);
    }
    return rc == 0 ? 0 : brk_errwrap(errmsg, rc, "remove partition %s", dir);
}

/* ==== Replica digest and tail cut ==== */

struct digest *partition_digest(struct partition *p)
{
    return p->digest;
}

/* Under the mutex: unlist segments from index @k on into *@out (malloc'd,
 * NULL when none). */
static int unlist_tail(struct partition *p, size_t k, struct segment ***out,
                       size_t *n)
{
    *n = p->n_segs - k;
    *out = NULL;
    if (*n == 0)
        return 0;
    *out = malloc(*n * sizeof(**out));
    if (*out == NULL)
        return BRK_ENOMEM;
    memcpy(*out, p->segs + k, *n * sizeof(**out));
    for (size_t i = k; i < p->n_segs; i++)
        p->size_bytes -= p->segs[i]->size;
    p->n_segs = k;
    p->dir_dirty = true;
    return 0;
}

static int unlink_all(struct partition *p, struct segment **v, size_t n,
                      char *errmsg)
{
    size_t i;
    int rc = 0, r;

    for (i = 0; i < n; i++) {
        r = segment_unlink(v[i], p->dirfd, errmsg);
        rc = rc != 0 ? rc : r;
        segment_unref(v[i]);
    }
    free(v);
    return rc;
}

/* @offset is the base of segs[@i], i > 0: drop segs[i..] and start a new
 * active segment there (the previous one stays sealed). */
static int cut_at_base(struct partition *p, size_t i, uint64_t offset,
                       char *errmsg)
{
    struct segment **gone, *s;
    size_t n;
    int rc;

    pthread_mutex_lock(&p->mu);
    rc = unlist_tail(p, i, &gone, &n);
    if (rc == 0) {
        p->next_offset = offset;
        p->last_cmd_index = p->segs[i - 1]->last_cmd_index;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc != 0)
        return brk_errf(errmsg, rc, "out of memory");
    rc = unlink_all(p, gone, n, errmsg);
    if (rc == 0)
        rc = segment_create(p->dirfd, p->dir, offset, p->index_interval, &s,
                            errmsg);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&p->mu);
    rc = push_segment(p, s);
    pthread_mutex_unlock(&p->mu);
    if (rc != 0) {
        segment_unlink(s, p->dirfd, NULL);
        segment_unref(s);
        return brk_errf(errmsg, rc, "out of memory");
    }
    return 0;
}

/* Cut segs[@i] at @offset (inside it) and drop every later segment. */
static int cut_inside(struct partition *p, size_t i, uint64_t offset,
                      char *errmsg)
{
    struct segment *s = p->segs[i], **gone = NULL;
    uint64_t pos, prev_cmd;
    size_t n = 0;
    int rc = segment_find(s, offset, &pos, &prev_cmd, errmsg);

    if (rc != 0)
        return rc;
    pthread_mutex_lock(&p->mu);
    rc = unlist_tail(p, i + 1, &gone, &n);
    if (rc == 0) {
        p->size_bytes -= s->size;
        rc = segment_cut(s, p->dirfd, offset, pos, prev_cmd, errmsg);
        p->size_bytes += s->size;
        s->dirty = true;
        p->next_offset = s->next_offset;
        p->last_cmd_index = s->size > 0 ? s->last_cmd_index : 0;
    } else {
        rc = brk_errf(errmsg, rc, "out of memory");
    }
    pthread_mutex_unlock(&p->mu);
    if (n > 0) {
        int r = unlink_all(p, gone, n, errmsg);
        rc = rc != 0 ? rc : r;
    }
    return rc;
}

/* Fold what is left of the chunk holding the cut back into the digest
 * (fewer than one chunk of records) when it had been built that far. */
static void rebuild_digest_tail(struct partition *p, bool was_built)
{
    char errmsg[BRK_ERRMSG_LEN];
    int rc, steps = 0;

    if (!was_built)
        return; /* the background builder gets there */
    do {
        rc = digest_build_step(p, digest_chunk_size(p->digest), errmsg);
    } while (rc == 1 && ++steps < 1024);
    if (rc < 0 || rc > 1)
        log_warn("%s: digest after a cut: %s", p->dir, errmsg);
}

int partition_cut_tail(struct partition *p, uint64_t offset, char *errmsg)
{
    bool was_built;
    size_t i;
    int rc;

    if (offset >= p->next_offset)
        return 0;
    if (offset < p->log_start_offset)
        return brk_errf(errmsg, BRK_EINVAL, "cut %s at %" PRIu64
                        ": below the log start %" PRIu64, p->dir, offset,
                        p->log_start_offset);
    /* No reader starts in the removed range from here on. */
    pthread_mutex_lock(&p->mu);
    if (p->high_watermark > offset)
        p->high_watermark = offset;
    pthread_mutex_unlock(&p->mu);
    was_built = digest_folded_to(p->digest) >= offset;
    i = find_segment(p, offset);
    rc = offset == p->segs[i]->base_offset && i > 0
             ? cut_at_base(p, i, offset, errmsg)
             : cut_inside(p, i, offset, errmsg);
    digest_cut(p->digest, offset);
    if (rc == 0)
        rebuild_digest_tail(p, was_built);
    if (rc == 0)
        log_warn("%s: cut the log back to offset %" PRIu64, p->dir, offset);
    return rc == 0 ? 0 : brk_errwrap(errmsg, rc, "cut %s", p->dir);
}
