/* One segment on disk: a .log of records plus its sparse .index.
 *
 * The index holds an entry for the first record and then for the first
 * record at least index_interval bytes after the previous entry, so a
 * lookup lands at most one interval before any record. It lives in memory
 * and is appended to the .index file, which is never fsync'd: it is rebuilt
 * by scanning the .log whenever it is missing or fails its checks. */
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/err.h"
#include "broker/log.h"

/* Smallest encoded record; bounds how many index entries a file can need. */
#define SEGMENT_MIN_RECORD (RECORD_HEADER_SIZE + 8)

/* Index entries encoded per write() when appending to the .index. */
#define SEGMENT_INDEX_WRITE_BATCH 64

/* State of a record-by-record scan of a .log file. */
struct scan {
    uint64_t pos;            /* file position of the next record */
    uint64_t end;            /* file size */
    uint64_t next_offset;    /* offset the next record must carry */
    int64_t max_timestamp;   /* largest timestamp seen */
    uint64_t last_cmd_index; /* cmd_index of the last record seen */
    bool build_index;        /* add index entries to the segment */
};

/* ==== Names ==== */

void segment_log_name(uint64_t base, char *buf)
{
    snprintf(buf, SEGMENT_NAME_MAX, SEGMENT_LOG_TEMPLATE, base);
}

void segment_index_name(uint64_t base, char *buf)
{
    snprintf(buf, SEGMENT_NAME_MAX, SEGMENT_INDEX_TEMPLATE, base);
}

bool segment_parse_name(const char *name, uint64_t *base)
{
    uint64_t v = 0;
    int i;

    if (strlen(name) != SEGMENT_NAME_DIGITS + strlen(SEGMENT_LOG_SUFFIX) ||
        strcmp(name + SEGMENT_NAME_DIGITS, SEGMENT_LOG_SUFFIX) != 0) {
        return false;
    }
    for (i = 0; i < SEGMENT_NAME_DIGITS; i++) {
        unsigned d = (unsigned)(name[i] - '0');

        /* Twenty digits can spell more than UINT64_MAX. */
        if (d > 9 || v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *base = v;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int add_base(uint64_t **v, size_t *n, size_t *cap, uint64_t base)
{
    uint64_t *nv;

    if (*n == *cap) {
        *cap = *cap == 0 ? 16 : *cap * 2;
        nv = *cap > SIZE_MAX / sizeof(**v) ? NULL
                                           : realloc(*v, *cap * sizeof(**v));
        if (nv == NULL) {
            return BRK_ENOMEM;
        }
        *v = nv;
    }
    (*v)[(*n)++] = base;
    return 0;
}

int segment_list(const char *dir, uint64_t **out, size_t *n, char *errmsg)
{
    uint64_t *v = NULL, base;
    size_t cap = 0;
    struct dirent *de;
    DIR *d = opendir(dir);
    int rc = 0;

    *n = 0;
    if (d == NULL) {
        return brk_errf(errmsg, BRK_EIO, "list %s: %s", dir, strerror(errno));
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (segment_parse_name(de->d_name, &base)) {
            rc = add_base(&v, n, &cap, base);
        }
    }
    closedir(d);
    if (rc != 0) {
        free(v);
        return brk_errf(errmsg, rc, "list %s: out of memory", dir);
    }
    if (*n > 1) {
        qsort(v, *n, sizeof(*v), cmp_u64);
    }
    *out = v;
    return 0;
}

/* ==== Lifetime ==== */

static struct segment *segment_alloc(const char *dir, uint64_t base,
                                     uint32_t index_interval)
{
    struct segment *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->dir = dir;
    s->base_offset = base;
    s->next_offset = base;
    s->max_timestamp = INT64_MIN;
    s->fd = -1;
    s->index_fd = -1;
    s->index_interval =
        index_interval > 0 ? index_interval : PARTITION_DEFAULT_INDEX_INTERVAL;
    atomic_init(&s->refs, 1);
    segment_log_name(base, s->name);
    return s;
}

void segment_ref(struct segment *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void segment_unref(struct segment *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1) {
        return;
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    if (s->index_fd >= 0) {
        close(s->index_fd);
    }
    free(s->index);
    free(s);
}

void segment_seal(struct segment *s)
{
    if (s->index_fd >= 0) {
        close(s->index_fd);
        s->index_fd = -1;
    }
}

int segment_create(int dirfd, const char *dir, uint64_t base,
                   uint32_t index_interval, struct segment **out, char *errmsg)
{
    struct segment *s = segment_alloc(dir, base, index_interval);
    char iname[SEGMENT_NAME_MAX];
    int rc;

    if (s == NULL) {
        return brk_errf(errmsg, BRK_ENOMEM, "create segment: out of memory");
    }
    /* O_EXCL: a .log with this base would hold records we must not lose. */
    s->fd = openat(dirfd, s->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        rc = brk_errf(errmsg, BRK_EIO, "create %s: %s", s->name,
                      strerror(errno));
        goto err;
    }
    segment_index_name(base, iname);
    s->index_fd =
        openat(dirfd, iname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->index_fd < 0) {
        rc = brk_errf(errmsg, BRK_EIO, "create %s: %s", iname, strerror(errno));
        unlinkat(dirfd, s->name, 0);
        goto err;
    }
    *out = s;
    return 0;

err:
    segment_unref(s);
    return rc;
}

/* ==== Reading ==== */

/* pread exactly @len bytes. Returns 0, an errno value, or -1 at EOF. */
static int pread_full(int fd, uint8_t *buf, size_t len, uint64_t pos)
{
    while (len > 0) {
        ssize_t n = pread(fd, buf, len, (off_t)pos);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? errno : -1;
        }
        buf += n;
        len -= (size_t)n;
        pos += (uint64_t)n;
    }
    return 0;
}

int segment_pread(const struct segment *s, uint8_t *buf, size_t len,
                  uint64_t pos, char *errmsg)
{
    int e = pread_full(s->fd, buf, len, pos);

    if (e < 0) {
        return brk_errf(errmsg, BRK_ESHORT,
                        "read %s at %" PRIu64 ": unexpected end of file",
                        s->name, pos);
    }
    if (e > 0) {
        return brk_errf(errmsg, BRK_EIO, "read %s at %" PRIu64 ": %s", s->name,
                        pos, strerror(e));
    }
    return 0;
}

/* ==== Index ==== */

int segment_index_reserve(struct segment *s, size_t extra)
{
    size_t cap = s->index_cap;
    struct segment_index_entry *p;

    if (extra <= s->index_cap - s->index_n) {
        return 0;
    }
    if (extra > SIZE_MAX / sizeof(*p) - s->index_n) {
        return BRK_ENOMEM;
    }
    if (cap < 16) {
        cap = 16;
    }
    while (cap < s->index_n + extra) {
        cap = cap > SIZE_MAX / sizeof(*p) / 2 ? s->index_n + extra : cap * 2;
    }
    p = realloc(s->index, cap * sizeof(*p));
    if (p == NULL) {
        return BRK_ENOMEM;
    }
    s->index = p;
    s->index_cap = cap;
    return 0;
}

/* Whether a record at @pos needs an index entry, given the last entry's
 * position (@have_last false when there is none yet). */
static bool index_due(bool have_last, uint64_t last_pos, uint64_t pos,
                      uint32_t interval)
{
    return !have_last || pos - last_pos >= interval;
}

/* Add an entry for the record @offset at @pos if one is due. */
static int index_note(struct segment *s, uint64_t offset, uint64_t pos)
{
    bool have = s->index_n > 0;
    uint64_t last = have ? s->index[s->index_n - 1].position : 0;

    if (!index_due(have, last, pos, s->index_interval)) {
        return 0;
    }
    if (segment_index_reserve(s, 1) != 0) {
        return BRK_ENOMEM;
    }
    s->index[s->index_n].rel_offset = (uint32_t)(offset - s->base_offset);
    s->index[s->index_n].position = (uint32_t)pos;
    s->index_n++;
    return 0;
}

uint64_t segment_lookup(const struct segment *s, uint64_t offset)
{
    uint64_t rel = offset - s->base_offset;
    size_t lo = 0, hi = s->index_n;

    /* Find the last entry whose rel_offset <= rel; entries ascend. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (s->index[mid].rel_offset <= rel) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo == 0 ? 0 : s->index[lo - 1].position;
}

/* Write @n entries to the .index in batches. Errors only stop further
 * index writes: the file is rebuilt if what it holds is unusable. */
static void index_append_file(struct segment *s,
                              const struct segment_index_entry *e, size_t n)
{
    uint8_t buf[SEGMENT_INDEX_WRITE_BATCH * SEGMENT_INDEX_ENTRY_SIZE];

    while (n > 0 && s->index_fd >= 0) {
        size_t k =
            n < SEGMENT_INDEX_WRITE_BATCH ? n : SEGMENT_INDEX_WRITE_BATCH;
        size_t len = k * SEGMENT_INDEX_ENTRY_SIZE, i;

        for (i = 0; i < k; i++) {
            le32_put(buf + i * 8, e[i].rel_offset);
            le32_put(buf + i * 8 + 4, e[i].position);
        }
        if (write(s->index_fd, buf, len) != (ssize_t)len) {
            log_warn("%s: %s: index write failed (%s); it will be rebuilt",
                     s->dir, s->name, strerror(errno));
            segment_seal(s);
        }
        e += k;
        n -= k;
    }
}

/* Replace the .index file with the in-memory index. @keep_open leaves the
 * descriptor open for appends. Failures are logged, not returned: the
 * in-memory index is complete and a bad file is rebuilt at the next open. */
static void index_write_file(struct segment *s, int dirfd, bool keep_open)
{
    char iname[SEGMENT_NAME_MAX];

    segment_index_name(s->base_offset, iname);
    s->index_fd =
        openat(dirfd, iname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->index_fd < 0) {
        log_warn("%s: %s: cannot write the index: %s", s->dir, iname,
                 strerror(errno));
        return;
    }
    index_append_file(s, s->index, s->index_n);
    if (!keep_open) {
        segment_seal(s);
    }
}

/* Check decoded index entries against the .log size. Returns NULL when
 * they are usable, else why not. */
static const char *index_check(const struct segment *s, uint64_t log_size)
{
    size_t i;

    if (s->index_n == 0) {
        return log_size == 0 ? NULL : "empty";
    }
    if (s->index[0].rel_offset != 0 || s->index[0].position != 0) {
        return "first entry is not the first record";
    }
    for (i = 1; i < s->index_n; i++) {
        if (s->index[i].rel_offset <= s->index[i - 1].rel_offset ||
            s->index[i].position <= s->index[i - 1].position) {
            return "entries not ascending";
        }
    }
    if (s->index[s->index_n - 1].position >= log_size) {
        return "entry points past the end of the log";
    }
    return NULL;
}

/* Decode @n entries from @buf into the in-memory index. */
static int index_decode(struct segment *s, const uint8_t *buf, size_t n)
{
    size_t i;

    if (segment_index_reserve(s, n) != 0) {
        return BRK_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        s->index[i].rel_offset = le32_get(buf + i * SEGMENT_INDEX_ENTRY_SIZE);
        s->index[i].position = le32_get(buf + i * SEGMENT_INDEX_ENTRY_SIZE + 4);
    }
    s->index_n = n;
    return 0;
}

/* Read the .index of @s into memory. Returns 0 when usable, BRK_ECORRUPT
 * with *@why set when it must be rebuilt, BRK_EIO/BRK_ENOMEM otherwise. */
static int index_load_file(struct segment *s, int dirfd, uint64_t log_size,
                           const char **why, char *errmsg)
{
    char iname[SEGMENT_NAME_MAX];
    struct stat st;
    uint8_t *buf = NULL;
    int fd, rc;

    segment_index_name(s->base_offset, iname);
    fd = openat(dirfd, iname, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = "missing";
        return errno == ENOENT ? BRK_ECORRUPT
                               : brk_errf(errmsg, BRK_EIO, "open %s: %s", iname,
                                          strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        rc = brk_errf(errmsg, BRK_EIO, "stat %s: %s", iname, strerror(errno));
        goto out;
    }
    rc = BRK_ECORRUPT;
    if (st.st_size % SEGMENT_INDEX_ENTRY_SIZE != 0) {
        *why = "size not a multiple of the entry size";
        goto out;
    }
    /* A garbage size must not make us allocate it: at most one entry per
     * record can be valid. */
    if ((uint64_t)st.st_size / SEGMENT_INDEX_ENTRY_SIZE >
        log_size / SEGMENT_MIN_RECORD + 1) {
        *why = "more entries than records";
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = brk_errf(errmsg, BRK_ENOMEM, "load %s: out of memory", iname);
        goto out;
    }
    rc = pread_full(fd, buf, (size_t)st.st_size, 0);
    if (rc != 0) {
        rc = brk_errf(errmsg, BRK_EIO, "read %s: %s", iname,
                      rc > 0 ? strerror(rc) : "file shrank");
        goto out;
    }
    rc = index_decode(s, buf, (size_t)st.st_size / SEGMENT_INDEX_ENTRY_SIZE);
    if (rc != 0) {
        rc = brk_errf(errmsg, rc, "load %s: out of memory", iname);
        goto out;
    }
    *why = index_check(s, log_size);
    rc = *why == NULL ? 0 : BRK_ECORRUPT;

out:
    free(buf);
    close(fd);
    return rc;
}

/* ==== Scanning ==== */

/* Take the complete records at the start of @buf (@len bytes read at
 * sc->pos). *@need gets the size of a record that does not fit in @buf
 * (0 when everything was taken). BRK_ECORRUPT at the first bad record,
 * with sc->pos at its position. */
static int scan_chunk(struct segment *s, struct scan *sc, const uint8_t *buf,
                      size_t len, size_t *need, char *errmsg)
{
    size_t at = 0, used;
    struct record r;
    int rc;

    *need = 0;
    while (at < len) {
        rc = record_decode(buf + at, len - at, &r, &used);
        if (rc == BRK_ESHORT) {
            *need = used > 0 ? used : 4;
            return 0;
        }
        if (rc != 0) {
            return brk_errf(errmsg, BRK_ECORRUPT,
                            "%s: bad record at position %" PRIu64, s->name,
                            sc->pos);
        }
        if (r.offset != sc->next_offset) {
            return brk_errf(errmsg, BRK_ECORRUPT,
                            "%s: record at position %" PRIu64
                            " has offset %" PRIu64 ", expected %" PRIu64,
                            s->name, sc->pos, r.offset, sc->next_offset);
        }
        if (sc->build_index && index_note(s, r.offset, sc->pos) != 0) {
            return brk_errf(errmsg, BRK_ENOMEM, "%s: out of memory", s->name);
        }
        sc->next_offset++;
        sc->max_timestamp =
            r.timestamp > sc->max_timestamp ? r.timestamp : sc->max_timestamp;
        sc->last_cmd_index = r.cmd_index;
        sc->pos += used;
        at += used;
    }
    return 0;
}

/* Grow the scan buffer to hold @need bytes. */
static int scan_grow(uint8_t **buf, size_t *cap, size_t need)
{
    uint8_t *p;

    if (need <= *cap) {
        return 0;
    }
    p = realloc(*buf, need);
    if (p == NULL) {
        return BRK_ENOMEM;
    }
    *buf = p;
    *cap = need;
    return 0;
}

/* Decode every record from sc->pos to sc->end. Returns 0 when all of it
 * holds whole, valid records; BRK_ECORRUPT with sc->pos at the first bad or
 * torn record; BRK_EIO or BRK_ENOMEM. */
static int scan_records(struct segment *s, struct scan *sc, char *errmsg)
{
    size_t cap = SEGMENT_SCAN_CHUNK, need, want;
    uint8_t *buf = malloc(cap);
    int rc = 0;

    if (buf == NULL) {
        return brk_errf(errmsg, BRK_ENOMEM, "%s: out of memory", s->name);
    }
    while (sc->pos < sc->end) {
        want = sc->end - sc->pos < cap ? (size_t)(sc->end - sc->pos) : cap;
        rc = segment_pread(s, buf, want, sc->pos, errmsg);
        if (rc == 0) {
            rc = scan_chunk(s, sc, buf, want, &need, errmsg);
        }
        if (rc != 0) {
            break;
        }
        /* record_decode bounds @need by RECORD_MAX_SIZE. */
        if (need > sc->end - sc->pos) {
            rc = brk_errf(errmsg, BRK_ECORRUPT,
                          "%s: torn record at position %" PRIu64, s->name,
                          sc->pos);
            break;
        }
        if (scan_grow(&buf, &cap, need) != 0) {
            rc = brk_errf(errmsg, BRK_ENOMEM, "%s: out of memory", s->name);
            break;
        }
    }
    free(buf);
    return rc;
}

static void scan_apply(struct segment *s, const struct scan *sc)
{
    s->size = sc->pos;
    s->next_offset = sc->next_offset;
    s->max_timestamp = sc->max_timestamp;
    s->last_cmd_index = sc->last_cmd_index;
}

/* ==== Loading ==== */

/* Cut the newest segment back to @keep bytes, durably, after a scan found
 * a torn or corrupt record there. */
static int cut_tail(struct segment *s, uint64_t keep, uint64_t size,
                    const char *why, char *errmsg)
{
    log_warn("%s: %s; cutting %" PRIu64 " bytes at position %" PRIu64
             " to recover",
             s->dir, why, size - keep, keep);
    if (ftruncate(s->fd, (off_t)keep) != 0 || fsync(s->fd) != 0) {
        return brk_errf(errmsg, BRK_EIO, "truncate %s to %" PRIu64 ": %s",
                        s->name, keep, strerror(errno));
    }
    return 0;
}

static int load_newest(struct segment *s, int dirfd, uint64_t size,
                       struct segment_load_info *info, char *errmsg)
{
    struct scan sc = {0, size, s->base_offset, INT64_MIN, 0, true};
    char why[BRK_ERRMSG_LEN];
    int rc = scan_records(s, &sc, why);

    if (rc != 0 && rc != BRK_ECORRUPT) {
        return brk_errf(errmsg, rc, "%s", why);
    }
    if (rc == BRK_ECORRUPT) {
        rc = cut_tail(s, sc.pos, size, why, errmsg);
        if (rc != 0) {
            return rc;
        }
        info->truncated_bytes = size - sc.pos;
    }
    scan_apply(s, &sc);
    /* Always rebuilt: entries past a cut tail, or never written before a
     * crash, would otherwise point at bytes that are gone. */
    index_write_file(s, dirfd, true);
    return 0;
}

/* Rebuild an older segment's index by scanning the whole .log. Any bad
 * record here is corruption we cannot repair: later segments follow it. */
static int rebuild_older(struct segment *s, int dirfd, uint64_t size,
                         const char *why, char *errmsg)
{
    struct scan sc = {0, size, s->base_offset, INT64_MIN, 0, true};
    int rc;

    log_warn("%s: %s: index %s, rebuilding it", s->dir, s->name, why);
    s->index_n = 0;
    rc = scan_records(s, &sc, errmsg);
    if (rc != 0) {
        return rc;
    }
    scan_apply(s, &sc);
    index_write_file(s, dirfd, false);
    return 0;
}

static int load_older(struct segment *s, int dirfd, uint64_t size,
                      struct segment_load_info *info, char *errmsg)
{
    struct scan sc = {0, size, s->base_offset, INT64_MIN, 0, false};
    const char *why = NULL;
    int rc = index_load_file(s, dirfd, size, &why, errmsg);

    if (rc == 0 && s->index_n > 0) {
        /* Only the tail after the last entry is scanned; a failure there
         * may be a bad entry, which a full rebuild sorts out. */
        sc.pos = s->index[s->index_n - 1].position;
        sc.next_offset = s->base_offset + s->index[s->index_n - 1].rel_offset;
        rc = scan_records(s, &sc, errmsg);
        why = "does not match the log";
    }
    if (rc == 0) {
        scan_apply(s, &sc);
        return 0;
    }
    if (rc != BRK_ECORRUPT) {
        return rc;
    }
    info->index_rebuilt = true;
    return rebuild_older(s, dirfd, size, why, errmsg);
}

int segment_load(int dirfd, const char *dir, uint64_t base, bool newest,
                 uint32_t index_interval, struct segment **out,
                 struct segment_load_info *info, char *errmsg)
{
    struct segment_load_info dummy;
    struct segment *s = segment_alloc(dir, base, index_interval);
    struct stat st;
    int rc;

    if (info == NULL) {
        info = &dummy;
    }
    memset(info, 0, sizeof(*info));
    if (s == NULL) {
        return brk_errf(errmsg, BRK_ENOMEM, "load segment: out of memory");
    }
    s->fd = openat(dirfd, s->name, O_RDWR | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &st) != 0) {
        rc = brk_errf(errmsg, BRK_EIO, "open %s: %s", s->name, strerror(errno));
        goto err;
    }
    if ((uint64_t)st.st_size > SEGMENT_MAX_BYTES) {
        rc = brk_errf(errmsg, BRK_ECORRUPT,
                      "%s: %" PRIu64 " bytes, more than a segment can hold",
                      s->name, (uint64_t)st.st_size);
        goto err;
    }
    rc = newest ? load_newest(s, dirfd, (uint64_t)st.st_size, info, errmsg)
                : load_older(s, dirfd, (uint64_t)st.st_size, info, errmsg);
    if (rc != 0) {
        goto err;
    }
    *out = s;
    return 0;

err:
    segment_unref(s);
    return rc;
}

/* ==== Appending ==== */

void segment_batch_free(struct segment_batch *b)
{
    free(b->buf);
    free(b->entries);
    memset(b, 0, sizeof(*b));
}

/* Total encoded size of @recs, each checked against RECORD_MAX_SIZE. */
static int batch_size(const struct record *recs, size_t n, uint64_t *total,
                      char *errmsg)
{
    uint64_t sum = 0;
    size_t i, sz;

    for (i = 0; i < n; i++) {
        sz = record_encoded_size(&recs[i]);
        if (sz > RECORD_MAX_SIZE) {
            return brk_errf(errmsg, BRK_EMSG_TOO_LARGE,
                            "record %zu is %zu bytes, more than %u", i, sz,
                            RECORD_MAX_SIZE);
        }
        sum += sz;
        /* No batch may outgrow a segment; stopping here also keeps the
         * sum far from overflowing. */
        if (sum > SEGMENT_MAX_BYTES) {
            return brk_errf(errmsg, BRK_EMSG_TOO_LARGE,
                            "batch of %zu records is larger than a segment", n);
        }
    }
    *total = sum;
    return 0;
}

int segment_batch_bytes(const struct record *recs, size_t n, uint64_t *total,
                        char *errmsg)
{
    return batch_size(recs, n, total, errmsg);
}

bool segment_fits(const struct segment *s, uint64_t bytes, size_t n,
                  uint64_t limit)
{
    uint64_t max = limit < SEGMENT_MAX_BYTES ? limit : SEGMENT_MAX_BYTES;
    uint64_t rel_last = s->next_offset - s->base_offset + n - 1;

    /* Relative offsets are u32 in the index, like positions. */
    return n > 0 && bytes <= max && s->size <= max - bytes &&
           rel_last <= UINT32_MAX;
}

/* Encode the records of @b's batch and note their index entries. */
static void batch_fill(const struct segment *s, struct record *recs, size_t n,
                       uint64_t first_offset, struct segment_batch *b)
{
    bool have = s->index_n > 0;
    uint64_t last = have ? s->index[s->index_n - 1].position : 0;
    uint64_t pos = s->size;
    size_t at = 0, i, w;

    b->max_timestamp = INT64_MIN;
    for (i = 0; i < n; i++) {
        recs[i].offset = first_offset + i;
        w = record_encode(&recs[i], b->buf + at, b->len - at);
        if (index_due(have, last, pos, s->index_interval)) {
            b->entries[b->n_entries].rel_offset =
                (uint32_t)(recs[i].offset - s->base_offset);
            b->entries[b->n_entries].position = (uint32_t)pos;
            b->n_entries++;
            have = true;
            last = pos;
        }
        if (recs[i].timestamp > b->max_timestamp) {
            b->max_timestamp = recs[i].timestamp;
        }
        at += w;
        pos += w;
    }
    b->next_offset = first_offset + n;
    b->last_cmd_index = recs[n - 1].cmd_index;
}

int segment_batch_encode(const struct segment *s, struct record *recs, size_t n,
                         uint64_t first_offset, struct segment_batch *b,
                         char *errmsg)
{
    uint64_t total = 0;
    int rc;

    memset(b, 0, sizeof(*b));
    rc = batch_size(recs, n, &total, errmsg);
    if (rc != 0) {
        return rc;
    }
    if (n == 0 || first_offset != s->next_offset ||
        !segment_fits(s, total, n, SEGMENT_MAX_BYTES)) {
        return brk_errf(errmsg, BRK_EMSG_TOO_LARGE,
                        "%s: batch of %zu records (%" PRIu64
                        " bytes) does not fit",
                        s->name, n, total);
    }
    if (total > SIZE_MAX) {
        return brk_errf(errmsg, BRK_ENOMEM, "%s: batch too large for memory",
                        s->name);
    }
    b->len = (size_t)total;
    b->buf = malloc(b->len);
    b->entries = calloc(n, sizeof(*b->entries));
    if (b->buf == NULL || b->entries == NULL) {
        segment_batch_free(b);
        return brk_errf(errmsg, BRK_ENOMEM, "%s: encode batch: out of memory",
                        s->name);
    }
    batch_fill(s, recs, n, first_offset, b);
    return 0;
}

int segment_write(struct segment *s, const struct segment_batch *b,
                  char *errmsg)
{
    const uint8_t *p = b->buf;
    size_t left = b->len;
    uint64_t pos = s->size;
    ssize_t n;
    int e;

    while (left > 0) {
        n = pwrite(s->fd, p, left, (off_t)pos);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            goto err;
        }
        p += n;
        left -= (size_t)n;
        pos += (uint64_t)n;
    }
    index_append_file(s, b->entries, b->n_entries);
    return 0;

err:
    e = n < 0 ? errno : ENOSPC;
    /* Nothing of a failed batch may stay: a later batch would otherwise
     * land after garbage that recovery would cut, with it. */
    if (ftruncate(s->fd, (off_t)s->size) != 0) {
        log_error("%s: %s: cannot cut back a failed write: %s", s->dir, s->name,
                  strerror(errno));
    }
    return brk_errf(errmsg, BRK_EIO, "write %s at %" PRIu64 ": %s", s->name,
                    pos, strerror(e));
}

void segment_commit(struct segment *s, const struct segment_batch *b)
{
    memcpy(s->index + s->index_n, b->entries,
           b->n_entries * sizeof(*b->entries));
    s->index_n += b->n_entries;
    s->size += b->len;
    s->next_offset = b->next_offset;
    if (b->max_timestamp > s->max_timestamp) {
        s->max_timestamp = b->max_timestamp;
    }
    s->last_cmd_index = b->last_cmd_index;
}

/* ==== Sync and delete ==== */

int segment_sync(struct segment *s, char *errmsg)
{
    if (fdatasync(s->fd) != 0) {
        return brk_errf(errmsg, BRK_EIO, "fdatasync %s: %s", s->name,
                        strerror(errno));
    }
    return 0;
}

int segment_unlink(struct segment *s, int dirfd, char *errmsg)
{
    char iname[SEGMENT_NAME_MAX];

    if (unlinkat(dirfd, s->name, 0) != 0 && errno != ENOENT) {
        return brk_errf(errmsg, BRK_EIO, "unlink %s: %s", s->name,
                        strerror(errno));
    }
    segment_index_name(s->base_offset, iname);
    if (unlinkat(dirfd, iname, 0) != 0 && errno != ENOENT) {
        return brk_errf(errmsg, BRK_EIO, "unlink %s: %s", iname,
                        strerror(errno));
    }
    return 0;
}

/* ==== Cutting the tail (replica repair) ==== */

/* Offsets of the header fields segment_find reads (see record.h). */
#define SEG_REC_OFFSET 10
#define SEG_REC_CMD_INDEX 26

int segment_find(const struct segment *s, uint64_t offset, uint64_t *pos,
                 uint64_t *prev_cmd, char *errmsg)
{
    uint8_t h[RECORD_HEADER_SIZE];
    uint64_t at = segment_lookup(s, offset > s->base_offset ? offset - 1
                                                           : offset);
    uint64_t len, off;
    int rc;

    *prev_cmd = 0;
    while (at < s->size) {
        rc = segment_pread(s, h, sizeof(h), at, errmsg);
        if (rc != 0)
            return rc == BRK_ESHORT ? BRK_ECORRUPT : rc;
        len = (uint64_t)le32_get(h) + 4;
        off = le64_get(h + SEG_REC_OFFSET);
        if (off == offset) {
            *pos = at;
            return 0;
        }
        if (len < SEGMENT_MIN_RECORD || len > RECORD_MAX_SIZE ||
            len > s->size - at || off > offset)
            break;
        *prev_cmd = le64_get(h + SEG_REC_CMD_INDEX);
        at += len;
    }
    return brk_errf(errmsg, BRK_ECORRUPT, "%s: offset %" PRIu64
                    " not found at position %" PRIu64, s->name, offset, at);
}

int segment_cut(struct segment *s, int dirfd, uint64_t offset, uint64_t pos,
                uint64_t prev_cmd, char *errmsg)
{
    uint64_t rel = offset - s->base_offset;

    if (ftruncate(s->fd, (off_t)pos) != 0 || fdatasync(s->fd) != 0)
        return brk_errf(errmsg, BRK_EIO, "truncate %s to %" PRIu64 ": %s",
                        s->name, pos, strerror(errno));
    while (s->index_n > 0 && s->index[s->index_n - 1].rel_offset >= rel)
        s->index_n--;
    s->size = pos;
    s->next_offset = offset;
    s->last_cmd_index = prev_cmd;
    segment_seal(s);
    index_write_file(s, dirfd, true);
    return 0;
}
