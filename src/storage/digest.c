/* Replica digests (see include/broker/digest.h). */
#include "broker/digest.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "broker/crc32c.h"
#include "broker/err.h"
#include "broker/partition.h"
#include "segment.h"

/* Bytes a builder or range read asks partition_read for at a time. */
#define DIGEST_READ_BYTES (1u << 20)

struct digest {
    pthread_mutex_t mu;  /* guards every field below */
    uint32_t chunk;      /* offsets per chunk (N) */
    uint64_t first;      /* chunk number of crcs[0] */
    uint32_t *crcs;      /* complete chunks first .. first + n - 1 */
    size_t n, cap;
    uint64_t cur_next;   /* folded in: every record below this offset ... */
    uint32_t cur_crc;    /* ... of chunk first + n, from its start */
    uint64_t gen;        /* bumped when folded records are taken back */
};

static uint64_t round_up(uint64_t v, uint64_t step)
{
    uint64_t r = v % step;

    return r == 0 || v > UINT64_MAX - step ? v : v + (step - r);
}

struct digest *digest_create(uint32_t chunk, uint64_t log_start)
{
    struct digest *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    pthread_mutex_init(&d->mu, NULL);
    d->chunk = chunk > 0 ? chunk : DIGEST_DEFAULT_CHUNK;
    digest_reset(d, log_start);
    return d;
}

void digest_destroy(struct digest *d)
{
    if (d == NULL)
        return;
    pthread_mutex_destroy(&d->mu);
    free(d->crcs);
    free(d);
}

uint32_t digest_chunk_size(const struct digest *d)
{
    return d->chunk;
}

uint64_t digest_folded_to(struct digest *d)
{
    uint64_t v;

    pthread_mutex_lock(&d->mu);
    v = d->cur_next;
    pthread_mutex_unlock(&d->mu);
    return v;
}

/* ==== canonical record content ==== */

static uint32_t crc_u64(uint32_t crc, uint64_t v)
{
    uint8_t b[8];

    le64_put(b, v);
    return crc32c(crc, b, sizeof(b));
}

static uint32_t crc_bytes(uint32_t crc, const uint8_t *p, uint32_t len,
                          uint32_t len_field)
{
    uint8_t b[4];

    le32_put(b, len_field);
    crc = crc32c(crc, b, sizeof(b));
    return len > 0 ? crc32c(crc, p, len) : crc;
}

uint32_t digest_record_crc(uint32_t crc, const struct record *r)
{
    crc = crc_u64(crc, r->offset);
    crc = crc_u64(crc, (uint64_t)r->timestamp);
    crc = crc_u64(crc, r->cmd_index);
    crc = crc32c(crc, &r->flags, 1);
    crc = r->key == NULL ? crc_bytes(crc, NULL, 0, RECORD_NO_KEY)
                         : crc_bytes(crc, r->key, r->key_len, r->key_len);
    crc = crc_bytes(crc, r->value, r->value_len, r->value_len);
    return crc_bytes(crc, r->headers, r->headers ? r->headers_len : 0,
                     r->headers ? r->headers_len : 0);
}

/* ==== folding (under the mutex) ==== */

static void push_chunk(struct digest *d)
{
    uint32_t *v;
    size_t cap;

    if (d->n == d->cap) {
        cap = d->cap ? d->cap * 2 : 16;
        v = cap > SIZE_MAX / sizeof(*v) ? NULL : realloc(d->crcs, cap * 4);
        if (v == NULL) {
            /* Without memory the chunk cannot be kept: start again from
             * the next chunk boundary; earlier chunks stay comparable. */
            d->first += d->n + 1;
            d->n = 0;
            d->cur_crc = 0;
            return;
        }
        d->crcs = v;
        d->cap = cap;
    }
    d->crcs[d->n++] = d->cur_crc;
    d->cur_crc = 0;
}

/* Fold in the records at cur_next and after, skipping older ones and
 * stopping at a gap. */
static void fold(struct digest *d, const struct record *recs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (recs[i].offset < d->cur_next)
            continue;
        if (recs[i].offset > d->cur_next)
            return;
        d->cur_crc = digest_record_crc(d->cur_crc, &recs[i]);
        d->cur_next++;
        if (d->cur_next % d->chunk == 0)
            push_chunk(d);
    }
}

void digest_note_append(struct digest *d, const struct record *recs, size_t n)
{
    if (d == NULL || n == 0)
        return;
    pthread_mutex_lock(&d->mu);
    /* Past cur_next the builder has not caught up: it reads these later. */
    if (recs[0].offset <= d->cur_next)
        fold(d, recs, n);
    pthread_mutex_unlock(&d->mu);
}

void digest_cut(struct digest *d, uint64_t offset)
{
    uint64_t k;

    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->gen++;
    if (offset < d->cur_next) {
        k = offset / d->chunk;
        if (k < d->first) {
            d->n = 0;
            d->cur_next = d->first * d->chunk;
        } else {
            d->n = (size_t)(k - d->first);
            d->cur_next = k * d->chunk;
        }
        d->cur_crc = 0;
    }
    pthread_mutex_unlock(&d->mu);
}

void digest_reset(struct digest *d, uint64_t base)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->gen++;
    d->first = round_up(base, d->chunk) / d->chunk;
    d->n = 0;
    d->cur_next = d->first * d->chunk;
    d->cur_crc = 0;
    pthread_mutex_unlock(&d->mu);
}

void digest_drop_before(struct digest *d, uint64_t log_start)
{
    uint64_t k;
    size_t drop;

    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    k = round_up(log_start, d->chunk) / d->chunk;
    if (k > d->first + d->n) {
        /* Retention passed what is folded in: start at the new log start. */
        d->gen++;
        d->first = k;
        d->n = 0;
        if (d->cur_next < k * d->chunk) {
            d->cur_next = k * d->chunk;
            d->cur_crc = 0;
        }
    } else if (k > d->first) {
        drop = (size_t)(k - d->first);
        memmove(d->crcs, d->crcs + drop, (d->n - drop) * sizeof(*d->crcs));
        d->n -= drop;
        d->first = k;
    }
    pthread_mutex_unlock(&d->mu);
}

/* ==== building ==== */

int digest_build_step(struct partition *p, size_t max_records, char *errmsg)
{
    struct digest *d = partition_digest(p);
    struct partition_read_result res = {0};
    struct partition_stats st;
    uint64_t from, gen;
    int rc;

    pthread_mutex_lock(&d->mu);
    from = d->cur_next;
    gen = d->gen;
    pthread_mutex_unlock(&d->mu);
    partition_stats(p, &st);
    if (from >= st.next_offset)
        return 0;
    if (from >= st.high_watermark || from < st.log_start_offset)
        return 1; /* not visible yet, or retention is moving the start */
    rc = partition_read(p, from, max_records, DIGEST_READ_BYTES, &res, errmsg);
    if (rc == BRK_EOFFSET_RANGE)
        return 1;
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    if (d->gen == gen && d->cur_next == from)
        fold(d, res.recs, res.n);
    from = d->cur_next;
    pthread_mutex_unlock(&d->mu);
    partition_read_result_free(&res);
    partition_stats(p, &st);
    return from < st.next_offset ? 1 : 0;
}

/* ==== ranges ==== */

static int range_push(struct digest_range *r, uint32_t crc)
{
    uint32_t *v;
    size_t cap;

    if (r->n == r->cap) {
        cap = r->cap ? r->cap * 2 : 16;
        v = cap > SIZE_MAX / sizeof(*v) ? NULL : realloc(r->crcs, cap * 4);
        if (v == NULL)
            return BRK_ENOMEM;
        r->crcs = v;
        r->cap = cap;
    }
    r->crcs[r->n++] = crc;
    return 0;
}

/* Read [@a, @b) from disk into entries of @r->step offsets, @a aligned to
 * an entry start. */
static int range_from_disk(struct partition *p, uint64_t a, uint64_t b,
                           struct digest_range *r, char *errmsg)
{
    struct partition_read_result res = {0};
    uint32_t crc = 0;
    uint64_t next = a;
    size_t i;
    int rc = 0;

    while (rc == 0 && next < b) {
        rc = partition_read(p, next, (size_t)(b - next), DIGEST_READ_BYTES,
                            &res, errmsg);
        if (rc == 0 && res.n == 0)
            rc = brk_errf(errmsg, BRK_ECORRUPT, "no record at offset %llu",
                          (unsigned long long)next);
        for (i = 0; rc == 0 && i < res.n; i++) {
            crc = digest_record_crc(crc, &res.recs[i]);
            next = res.recs[i].offset + 1;
            if (next % r->step == 0 || next == b) {
                rc = range_push(r, crc);
                crc = 0;
            }
        }
        partition_read_result_free(&res);
    }
    return rc;
}

/* Whole chunks of [@from, *@end) from memory; *@end lowered where the
 * digest is not built. */
static int range_from_memory(struct digest *d, uint64_t from, uint64_t *end,
                             struct digest_range *r)
{
    uint64_t k = from / d->chunk, stop;
    int rc = 0;

    pthread_mutex_lock(&d->mu);
    stop = (d->first + d->n) * d->chunk; /* end of the complete chunks */
    if (stop < *end) {
        *end = stop > from ? stop : from;
        r->building = true;
    }
    if (k < d->first && from < *end) {
        *end = from; /* chunks dropped for lack of memory */
        r->building = true;
    }
    for (; rc == 0 && (k + 1) * d->chunk <= *end; k++)
        rc = range_push(r, d->crcs[k - d->first]);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int digest_range(struct partition *p, uint64_t from, uint64_t to,
                 uint32_t step, struct digest_range *out, char *errmsg)
{
    struct digest *d = partition_digest(p);
    struct partition_stats st;
    uint64_t whole, lo;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (step == 0)
        return brk_errf(errmsg, BRK_EINVAL, "step must be at least 1");
    partition_stats(p, &st);
    lo = from > st.log_start_offset ? from : st.log_start_offset;
    if (step == d->chunk && lo < round_up(st.log_start_offset, step))
        lo = round_up(st.log_start_offset, step);
    out->step = step;
    out->from = round_up(lo, step);
    out->to = to < st.high_watermark ? to : st.high_watermark;
    if (out->to < out->from)
        out->to = out->from;
    if (step != d->chunk) {
        if (out->to - out->from > DIGEST_MAX_DISK_RECORDS)
            return brk_errf(errmsg, BRK_EINVAL, "a range with step %u may "
                            "cover at most %u offsets", step,
                            DIGEST_MAX_DISK_RECORDS);
        rc = range_from_disk(p, out->from, out->to, out, errmsg);
    } else {
        whole = out->to / step * step;
        if (whole < out->from)
            whole = out->from;
        lo = whole;
        rc = range_from_memory(d, out->from, &whole, out);
        if (whole < lo)
            out->to = whole; /* not built that far: no partial tail */
        else if (whole < out->to)
            rc = rc ? rc : range_from_disk(p, whole, out->to, out, errmsg);
    }
    if (rc != 0)
        digest_range_free(out);
    return rc == BRK_ENOMEM ? brk_errf(errmsg, rc, "digest: out of memory")
                            : rc;
}

void digest_range_free(struct digest_range *r)
{
    free(r->crcs);
    memset(r, 0, sizeof(*r));
}
