/* Verification of whole segments: the check behind the background
 * verification at start and the scrubber (one function for both).
 *
 * A segment is read with pread() through a reference, without any lock, so
 * it runs concurrently with appends and reads. Every record must decode
 * (length, CRC, magic, inner lengths) and carry the next offset; a bad one
 * starts a damaged run that ends where a valid record with a later offset
 * decodes again (found by trying every byte position: the CRC makes a false
 * match practically impossible). The index given is checked against the
 * records found and a fresh one is built from them, with an entry at every
 * point where good records resume, so reads after a damaged run land on
 * good records. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/fsutil.h"
#include "broker/err.h"
#include "broker/log.h"
#include "segment.h"
#include "storage_internal.h"

#define VERIFY_CHUNK (1u << 20)

pthread_mutex_t storage_maint_mu = PTHREAD_MUTEX_INITIALIZER;
#define VERIFY_MIN_RECORD (RECORD_HEADER_SIZE + 8)

/* A window of the .log held in memory. */
struct vreader {
    const struct segment *s;
    struct segment_verify *v;
    uint8_t *buf;
    size_t cap, len;
    uint64_t at; /* file position of buf[0] */
};

/* Make [pos, pos + need) available (need <= end - pos); *@p and *@avail
 * get the bytes from @pos on. */
static int window(struct vreader *r, uint64_t pos, size_t need,
                  const uint8_t **p, size_t *avail, char *errmsg)
{
    uint64_t end = r->v->end;
    size_t want;
    int rc;

    if (pos >= r->at && pos + need <= r->at + r->len) {
        *p = r->buf + (pos - r->at);
        *avail = (size_t)(r->at + r->len - pos);
        return 0;
    }
    want = need > VERIFY_CHUNK ? need : VERIFY_CHUNK;
    want = end - pos < want ? (size_t)(end - pos) : want;
    if (want > r->cap) {
        uint8_t *b = realloc(r->buf, want);
        if (b == NULL) {
            return brk_errf(errmsg, BRK_ENOMEM, "verify: out of memory");
        }
        r->buf = b;
        r->cap = want;
    }
    r->len = 0;
    rc = segment_pread(r->s, r->buf, want, pos, errmsg);
    if (rc != 0) {
        return rc;
    }
    r->at = pos;
    r->len = want;
    r->v->bytes += want;
    if (r->v->throttle != NULL && !r->v->throttle(r->v->arg, want)) {
        r->v->stopped = true;
    }
    *p = r->buf;
    *avail = want;
    return 0;
}

static int push_entry(struct segment_verify *v, uint64_t rel, uint64_t pos)
{
    if (v->rebuilt_n == v->rebuilt_cap) {
        size_t cap = v->rebuilt_cap ? v->rebuilt_cap * 2 : 64;
        void *p = realloc(v->rebuilt, cap * sizeof(*v->rebuilt));
        if (p == NULL) {
            return BRK_ENOMEM;
        }
        v->rebuilt = p;
        v->rebuilt_cap = cap;
    }
    v->rebuilt[v->rebuilt_n].rel_offset = (uint32_t)rel;
    v->rebuilt[v->rebuilt_n].position = (uint32_t)pos;
    v->rebuilt_n++;
    return 0;
}

/* Add (or extend the last) damaged run. */
static int push_damage(struct segment_verify *v, uint64_t from, uint64_t to,
                       uint64_t pos_from, uint64_t pos_to)
{
    struct segment_damage *last =
        v->n_damage > 0 ? &v->damage[v->n_damage - 1] : NULL;

    if (from >= to) {
        return 0;
    }
    if (last != NULL && last->to == from && last->pos_to == pos_from) {
        last->to = to;
        last->pos_to = pos_to;
        return 0;
    }
    if (v->n_damage == v->damage_cap) {
        size_t cap = v->damage_cap ? v->damage_cap * 2 : 4;
        void *p = realloc(v->damage, cap * sizeof(*v->damage));
        if (p == NULL) {
            return BRK_ENOMEM;
        }
        v->damage = p;
        v->damage_cap = cap;
    }
    v->damage[v->n_damage++] =
        (struct segment_damage){from, to, pos_from, pos_to};
    return 0;
}

/* Scan state. */
struct vscan {
    uint64_t pos;     /* file position of the next record */
    uint64_t expect;  /* offset it must carry */
    uint64_t last_ix; /* position of the last rebuilt entry */
    size_t j;         /* next entry of v->index to check */
};

/* Check the given index's entries up to position @pos against the good
 * record (@offset) found there; entries before @skip_below lie in a
 * damaged run and are not judged. */
static void check_index(struct segment_verify *v, const struct segment *s,
                        struct vscan *sc, uint64_t pos, uint64_t offset,
                        uint64_t skip_below)
{
    while (sc->j < v->index_n && v->index[sc->j].position < pos) {
        if (v->index[sc->j].position < skip_below && v->index_why == NULL) {
            v->index_why = "an entry points inside a record";
        }
        sc->j++;
    }
    if (sc->j < v->index_n && v->index[sc->j].position == pos) {
        if (v->index[sc->j].rel_offset != offset - s->base_offset &&
            v->index_why == NULL) {
            v->index_why = "an entry names the wrong offset";
        }
        sc->j++;
    }
}

static int take_good(struct segment_verify *v, const struct segment *s,
                     struct vscan *sc, const struct record *r, size_t used,
                     bool force_entry)
{
    check_index(v, s, sc, sc->pos, r->offset, sc->pos);
    if (force_entry || v->rebuilt_n == 0 ||
        sc->pos - sc->last_ix >= s->index_interval) {
        if (v->rebuilt_n == 0 || v->rebuilt[v->rebuilt_n - 1].position !=
                                     sc->pos) {
            if (push_entry(v, r->offset - s->base_offset, sc->pos) != 0) {
                return BRK_ENOMEM;
            }
        }
        sc->last_ix = sc->pos;
    }
    v->next_offset = r->offset + 1;
    v->max_timestamp =
        r->timestamp > v->max_timestamp ? r->timestamp : v->max_timestamp;
    v->last_cmd_index = r->cmd_index;
    sc->pos += used;
    sc->expect = r->offset + 1;
    return 0;
}

/* Whether a valid record with an offset in (expect, end_offset) starts at
 * @c; its offset into *@off. */
static int resync_at(struct vreader *rd, uint64_t c, uint64_t expect,
                     uint64_t *off, bool *found, char *errmsg)
{
    struct segment_verify *v = rd->v;
    const uint8_t *p = NULL;
    size_t avail = 0, used;
    uint64_t size;
    struct record r;
    int rc;

    *found = false;
    rc = window(rd, c, RECORD_HEADER_SIZE, &p, &avail, errmsg);
    if (rc != 0) {
        return rc;
    }
    size = (uint64_t)le32_get(p) + 4;
    *off = le64_get(p + 10);
    if (p[8] != RECORD_MAGIC || size < VERIFY_MIN_RECORD ||
        size > RECORD_MAX_SIZE || size > v->end - c || *off <= expect ||
        *off >= v->end_offset) {
        return 0;
    }
    rc = window(rd, c, (size_t)size, &p, &avail, errmsg);
    if (rc != 0) {
        return rc;
    }
    *found = record_decode(p, avail, &r, &used) == 0 && r.offset == *off;
    return 0;
}

/* Find where good records resume after a bad one at @bad. */
static int resync(struct vreader *rd, uint64_t bad, uint64_t expect,
                  uint64_t *pos, uint64_t *off, bool *found, char *errmsg)
{
    uint64_t c;
    int rc;

    *found = false;
    for (c = bad + 1; c + RECORD_HEADER_SIZE <= rd->v->end; c++) {
        rc = resync_at(rd, c, expect, off, found, errmsg);
        if (rc != 0 || *found) {
            *pos = c;
            return rc;
        }
        if (rd->v->stopped) {
            return 0;
        }
    }
    return 0;
}

/* A bad record at sc->pos: note the damaged run up to where good records
 * resume, and move there. */
static int take_bad(struct vreader *rd, const struct segment *s,
                    struct vscan *sc, bool *resumed, char *errmsg)
{
    struct segment_verify *v = rd->v;
    uint64_t pos = v->end, off = v->end_offset;
    bool found;
    int rc = resync(rd, sc->pos, sc->expect, &pos, &off, &found, errmsg);

    if (rc != 0) {
        return rc;
    }
    if (!found) {
        pos = v->end;
        off = v->end_offset;
    }
    if (push_damage(v, sc->expect, off, sc->pos, pos) != 0) {
        return brk_errf(errmsg, BRK_ENOMEM, "verify: out of memory");
    }
    /* Entries inside the run cannot be judged. */
    while (sc->j < v->index_n && v->index[sc->j].position < pos) {
        sc->j++;
    }
    (void)s;
    sc->pos = pos;
    sc->expect = off;
    *resumed = found;
    return 0;
}

/* Decode the record at sc->pos. *@r/@used set when it is whole and valid;
 * *@ok false when it is bad or torn. */
static int next_record(struct vreader *rd, struct vscan *sc, struct record *r,
                       size_t *used, bool *ok, char *errmsg)
{
    uint64_t left = rd->v->end - sc->pos;
    size_t need = left < RECORD_HEADER_SIZE ? (size_t)left : RECORD_HEADER_SIZE;
    const uint8_t *p = NULL;
    size_t avail = 0;
    int rc = window(rd, sc->pos, need, &p, &avail, errmsg), d;

    *ok = false;
    if (rc != 0) {
        return rc;
    }
    d = record_decode(p, avail, r, used);
    if (d == BRK_ESHORT && *used > 0 && *used <= left) {
        rc = window(rd, sc->pos, *used, &p, &avail, errmsg);
        if (rc != 0) {
            return rc;
        }
        d = record_decode(p, avail, r, used);
    }
    *ok = d == 0;
    return 0;
}

static int verify_records(struct vreader *rd, const struct segment *s,
                          char *errmsg)
{
    struct segment_verify *v = rd->v;
    struct vscan sc = {0, s->base_offset, 0, 0};
    bool ok, force = false;
    struct record r;
    size_t used;
    int rc = 0;

    if (v->end > 0 && push_entry(v, 0, 0) != 0) {
        return brk_errf(errmsg, BRK_ENOMEM, "verify: out of memory");
    }
    if (v->index_n > 0 &&
        (v->index[0].position != 0 || v->index[0].rel_offset != 0)) {
        v->index_why = "first entry is not the first record";
    }
    while (rc == 0 && sc.pos < v->end && !v->stopped) {
        rc = next_record(rd, &sc, &r, &used, &ok, errmsg);
        if (rc != 0) {
            break;
        }
        if (ok && r.offset > sc.expect && r.offset < v->end_offset) {
            /* Records missing before a good one. */
            rc = push_damage(v, sc.expect, r.offset, sc.pos, sc.pos);
            sc.expect = r.offset;
            force = true;
        }
        if (ok && r.offset == sc.expect && r.offset < v->end_offset) {
            rc = rc != 0 ? rc : take_good(v, s, &sc, &r, used, force);
            force = false;
            continue;
        }
        rc = take_bad(rd, s, &sc, &force, errmsg);
    }
    if (rc == 0 && !v->stopped && sc.expect < v->end_offset) {
        /* The file ends before the records the segment claims. */
        rc = push_damage(v, sc.expect, v->end_offset, sc.pos, sc.pos);
    }
    if (rc == 0 && v->index_why == NULL && sc.j < v->index_n && !v->stopped) {
        v->index_why = "an entry points past the last record";
    }
    return rc == BRK_ENOMEM ? brk_errf(errmsg, rc, "verify: out of memory")
                            : rc;
}

int segment_verify(const struct segment *s, struct segment_verify *v,
                   char *errmsg)
{
    struct vreader rd = {s, v, NULL, 0, 0, 0};
    int rc;

    v->next_offset = s->base_offset;
    v->max_timestamp = INT64_MIN;
    v->last_cmd_index = 0;
    rc = verify_records(&rd, s, errmsg);
    free(rd.buf);
    return rc;
}

void segment_verify_free(struct segment_verify *v)
{
    free(v->rebuilt);
    free(v->damage);
    v->rebuilt = NULL;
    v->damage = NULL;
    v->rebuilt_n = v->rebuilt_cap = v->n_damage = v->damage_cap = 0;
}

void segment_adopt_verify(struct segment *s, struct segment_verify *v)
{
    free(s->index);
    s->index = v->rebuilt;
    s->index_n = v->rebuilt_n;
    s->index_cap = v->rebuilt_cap;
    v->rebuilt = NULL;
    v->rebuilt_n = v->rebuilt_cap = 0;
    s->size = v->end;
    s->next_offset = v->next_offset;
    s->max_timestamp = v->max_timestamp;
    s->last_cmd_index = v->last_cmd_index;
}

/* ==== Index files ==== */

static uint8_t *index_encode(const struct segment_index_entry *idx, size_t n)
{
    uint8_t *buf = malloc(n * SEGMENT_INDEX_ENTRY_SIZE + 1);
    size_t i;

    for (i = 0; buf != NULL && i < n; i++) {
        le32_put(buf + i * 8, idx[i].rel_offset);
        le32_put(buf + i * 8 + 4, idx[i].position);
    }
    return buf;
}

bool segment_index_file_equals(int dirfd, uint64_t base,
                               const struct segment_index_entry *idx,
                               size_t n)
{
    char name[SEGMENT_NAME_MAX];
    size_t len = n * SEGMENT_INDEX_ENTRY_SIZE;
    uint8_t *want = index_encode(idx, n), *have = malloc(len + 1);
    struct stat st;
    bool same = false;
    int fd;

    segment_index_name(base, name);
    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && want != NULL && have != NULL && fstat(fd, &st) == 0 &&
        (uint64_t)st.st_size == len &&
        pread(fd, have, len, 0) == (ssize_t)len) {
        same = memcmp(want, have, len) == 0;
    }
    if (fd >= 0) {
        close(fd);
    }
    free(want);
    free(have);
    return same;
}

int segment_index_write_file(int dirfd, const char *name,
                             const struct segment_index_entry *idx, size_t n,
                             char *errmsg)
{
    uint8_t *buf = index_encode(idx, n);
    int fd, rc = 0;

    if (buf == NULL) {
        return brk_errf(errmsg, BRK_ENOMEM, "write index: out of memory");
    }
    fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 ||
        fsutil_write_all(fd, buf, n * SEGMENT_INDEX_ENTRY_SIZE) != 0 ||
        fsync(fd) != 0) {
        rc = brk_errf(errmsg, BRK_EIO, "write %s: %s", name, strerror(errno));
        unlinkat(dirfd, name, 0);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return rc;
}

int segment_index_write_atomic(int dirfd, uint64_t base,
                               const struct segment_index_entry *idx,
                               size_t n, char *errmsg)
{
    char name[SEGMENT_NAME_MAX], tmp[SEGMENT_NAME_MAX + 8];
    int rc;

    segment_index_name(base, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    rc = segment_index_write_file(dirfd, tmp, idx, n, errmsg);
    if (rc == 0 && (renameat(dirfd, tmp, dirfd, name) != 0 ||
                    fsync(dirfd) != 0)) {
        rc = brk_errf(errmsg, BRK_EIO, "replace %s: %s", name,
                      strerror(errno));
        unlinkat(dirfd, tmp, 0);
    }
    return rc;
}

/* ==== Partitions ==== */

/* Install the rebuilt index of a closed segment: file first, then memory. */
static void install_index(struct partition *p, struct segment_snap *sn,
                          struct segment_verify *v,
                          struct partition_verify_stats *st)
{
    char err[BRK_ERRMSG_LEN];

    if (sn->active) {
        return; /* the writer owns it; rebuilt at the next start */
    }
    pthread_mutex_lock(&storage_maint_mu);
    if (!partition_segment_listed(p, sn->s)) {
        /* Deleted or replaced by a repair meanwhile. */
    } else if (segment_index_write_atomic(partition_dirfd(p),
                                          sn->s->base_offset, v->rebuilt,
                                          v->rebuilt_n, err) != 0) {
        log_warn("%s: %s", partition_dir(p), err);
    } else {
        if (partition_index_swap(p, sn->s, v->rebuilt, v->rebuilt_n)) {
            v->rebuilt = NULL;
            v->rebuilt_n = v->rebuilt_cap = 0;
        }
        st->indexes_rebuilt += v->index_why != NULL ? 1 : 0;
    }
    pthread_mutex_unlock(&storage_maint_mu);
}

static void report_damage(struct partition *p, const struct segment *s,
                          const struct segment_verify *v, const bool *fresh,
                          struct partition_verify_stats *st)
{
    size_t i;

    for (i = 0; i < v->n_damage; i++) {
        st->damaged_ranges++;
        if (fresh != NULL && !fresh[i]) {
            continue;
        }
        log_error("%s: %s: offsets [%llu, %llu) are damaged (bytes %llu.."
                  "%llu fail their checks)", partition_dir(p), s->name,
                  (unsigned long long)v->damage[i].from,
                  (unsigned long long)v->damage[i].to,
                  (unsigned long long)v->damage[i].pos_from,
                  (unsigned long long)v->damage[i].pos_to);
        st->corrupt_records += v->damage[i].to - v->damage[i].from;
    }
}

static int verify_one(struct partition *p, struct segment_snap *sn,
                      partition_throttle_cb cb, void *arg,
                      struct partition_verify_stats *st, char *errmsg)
{
    struct segment_verify v = {.end = sn->size, .end_offset = sn->next_offset,
                               .index = sn->index, .index_n = sn->index_n,
                               .throttle = cb, .arg = arg};
    bool *fresh;
    int rc = segment_verify(sn->s, &v, errmsg);

    st->bytes += v.bytes;
    if (rc != 0 || v.stopped) {
        segment_verify_free(&v);
        return rc;
    }
    if (v.index_why == NULL && !sn->active &&
        !segment_index_file_equals(partition_dirfd(p), sn->s->base_offset,
                                   sn->index, sn->index_n)) {
        v.index_why = "file differs from the loaded index";
    }
    /* The index first: once a range is published as damaged, reads past
     * it must land on the good records after it. */
    if (v.index_why != NULL || v.n_damage > 0) {
        if (v.index_why != NULL && !sn->active) {
            log_warn("%s: %s: index %s; rebuilding it", partition_dir(p),
                     sn->s->name, v.index_why);
        }
        install_index(p, sn, &v, st);
    }
    fresh = v.n_damage > 0 ? calloc(v.n_damage, sizeof(*fresh)) : NULL;
    /* Skipped (@fresh left all false) when a repair came in between. */
    partition_damage_set(p, sn->s, v.damage, v.n_damage, fresh, sn->repairs);
    report_damage(p, sn->s, &v, fresh, st);
    free(fresh);
    segment_verify_free(&v);
    return 0;
}

int partition_verify(struct partition *p, partition_throttle_cb cb, void *arg,
                     struct partition_verify_stats *st, char *errmsg)
{
    struct segment_snap sn;
    bool have = false;
    uint64_t after = 0;
    int rc = 0;

    memset(st, 0, sizeof(*st));
    while (rc == 0 && partition_snap_next(p, have, after, &sn)) {
        have = true;
        after = sn.s->base_offset;
        rc = verify_one(p, &sn, cb, arg, st, errmsg);
        segment_snap_free(&sn);
        if (cb != NULL && !cb(arg, 0)) {
            st->stopped = true;
            break;
        }
    }
    return rc;
}
