/* Repairing damaged ranges: online, with records fetched from a peer
 * (partition_repair_range), and offline, by truncating at the damage
 * (partition_repair_offline, behind `broker --repair`).
 *
 * An online repair never writes to the damaged file: the segment is written
 * anew beside it ("<base>.log.repair"), fsync'd, verified whole, and renamed
 * over the old one under the partition mutex, so a crash at any point
 * leaves either the old damaged file or the new whole one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/err.h"
#include "broker/fsutil.h"
#include "broker/log.h"
#include "segment.h"
#include "storage_internal.h"

#define REPAIR_COPY_CHUNK (1u << 20)
#define REPAIR_SUFFIX ".repair"
#define QUARANTINE_DIR "quarantine"

/* @buf must hold exactly the records from..to-1, each whole and valid. */
static int check_records(const uint8_t *buf, size_t len, uint64_t from,
                         uint64_t to, char *errmsg)
{
    uint64_t want = from;
    struct record r;
    size_t used;

    while (len > 0) {
        if (record_decode(buf, len, &r, &used) != 0 || r.offset != want) {
            return brk_errf(errmsg, BRK_ECORRUPT, "record %llu of the "
                            "repair is bad or out of place",
                            (unsigned long long)want);
        }
        buf += used;
        len -= used;
        want++;
    }
    if (want != to) {
        return brk_errf(errmsg, BRK_ECORRUPT, "the repair holds offsets up "
                        "to %llu, not %llu", (unsigned long long)want,
                        (unsigned long long)to);
    }
    return 0;
}

/* Append bytes [from, to) of @s to @fd. */
static int copy_range(const struct segment *s, int fd, uint64_t from,
                      uint64_t to, char *errmsg)
{
    uint8_t *buf = malloc(REPAIR_COPY_CHUNK);
    size_t n;
    int rc = 0;

    if (buf == NULL) {
        return brk_errf(errmsg, BRK_ENOMEM, "repair: out of memory");
    }
    while (rc == 0 && from < to) {
        n = to - from < REPAIR_COPY_CHUNK ? (size_t)(to - from)
                                          : REPAIR_COPY_CHUNK;
        rc = segment_pread(s, buf, n, from, errmsg);
        if (rc == 0 && fsutil_write_all(fd, buf, n) != 0) {
            rc = brk_errf(errmsg, BRK_EIO, "write: %s", strerror(errno));
        }
        from += n;
    }
    free(buf);
    return rc;
}

/* Write the segment @s with the bytes [pos_from, pos_to) replaced by @buf
 * into @tmp, fsync'd. */
static int write_spliced(int dirfd, const char *tmp, const struct segment *s,
                         const struct segment_damage *d, const uint8_t *buf,
                         size_t len, char *errmsg)
{
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                    0644);
    int rc;

    if (fd < 0) {
        return brk_errf(errmsg, BRK_EIO, "create %s: %s", tmp,
                        strerror(errno));
    }
    rc = copy_range(s, fd, 0, d->pos_from, errmsg);
    if (rc == 0 && fsutil_write_all(fd, buf, len) != 0) {
        rc = brk_errf(errmsg, BRK_EIO, "write %s: %s", tmp, strerror(errno));
    }
    if (rc == 0) {
        rc = copy_range(s, fd, d->pos_to, s->size, errmsg);
    }
    if (rc == 0 && fsync(fd) != 0) {
        rc = brk_errf(errmsg, BRK_EIO, "fsync %s: %s", tmp, strerror(errno));
    }
    close(fd);
    return rc;
}

/* Open the rewritten file and check it whole: it must hold every offset of
 * the old segment, each record valid. */
static int verify_spliced(struct partition *p, const struct segment *old,
                          const char *tmp, struct segment **out, char *errmsg)
{
    struct segment *s;
    struct stat st;
    struct segment_verify v = {0};
    int rc = segment_open_raw(partition_dirfd(p), partition_dir(p), tmp,
                              old->base_offset, partition_index_interval(p),
                              &s, errmsg);

    if (rc != 0) {
        return rc;
    }
    if (fstat(s->fd, &st) != 0) {
        rc = brk_errf(errmsg, BRK_EIO, "stat %s: %s", tmp, strerror(errno));
    }
    v.end = (uint64_t)st.st_size;
    v.end_offset = old->next_offset;
    if (rc == 0) {
        rc = segment_verify(s, &v, errmsg);
    }
    if (rc == 0 && (v.n_damage > 0 || v.next_offset != old->next_offset)) {
        rc = brk_errf(errmsg, BRK_ECORRUPT, "the rewritten %s does not "
                      "verify", old->name);
    }
    if (rc == 0) {
        segment_adopt_verify(s, &v);
        *out = s;
    } else {
        segment_unref(s);
    }
    segment_verify_free(&v);
    return rc;
}

/* Write @base's records with @d replaced by @buf beside it as @tlog,
 * verify the file whole and write its index as @tidx: a segment ready to
 * be renamed into place (*@repl), or an error with nothing left behind. */
static int stage_segment(struct partition *p, const struct segment *base,
                         const struct segment_damage *d, const uint8_t *buf,
                         size_t len, const char *tlog, const char *tidx,
                         struct segment **repl, char *errmsg)
{
    int dirfd = partition_dirfd(p);
    int rc = write_spliced(dirfd, tlog, base, d, buf, len, errmsg);

    if (rc == 0) {
        rc = verify_spliced(p, base, tlog, repl, errmsg);
    }
    if (rc == 0) {
        rc = segment_index_write_file(dirfd, tidx, (*repl)->index,
                                      (*repl)->index_n, errmsg);
    }
    return rc;
}

/* Undo a staged segment that was not installed. */
static void unstage(struct partition *p, const char *tlog, const char *tidx,
                    struct segment *repl)
{
    unlinkat(partition_dirfd(p), tlog, 0);
    unlinkat(partition_dirfd(p), tidx, 0);
    if (repl != NULL) {
        segment_unref(repl);
    }
}

static int repair_segment(struct partition *p, struct segment *old,
                          const struct segment_damage *d, const uint8_t *buf,
                          size_t len, char *errmsg)
{
    char tlog[SEGMENT_NAME_MAX + 8], tidx[SEGMENT_NAME_MAX + 8];
    char iname[SEGMENT_NAME_MAX];
    struct segment *repl = NULL;
    int rc;

    segment_index_name(old->base_offset, iname);
    snprintf(tlog, sizeof(tlog), "%s" REPAIR_SUFFIX, old->name);
    snprintf(tidx, sizeof(tidx), "%s" REPAIR_SUFFIX, iname);
    rc = stage_segment(p, old, d, buf, len, tlog, tidx, &repl, errmsg);
    if (rc == 0) {
        rc = partition_segment_replace(p, old, repl, tlog, tidx, errmsg);
    }
    if (rc != 0) {
        unstage(p, tlog, tidx, repl);
    }
    return rc;
}

/* Fill the gap after @prev with a new segment based at d->from holding
 * @buf, written and verified beside it first. */
static int repair_gap(struct partition *p, struct segment *prev,
                      const struct segment_damage *d, const uint8_t *buf,
                      size_t len, char *errmsg)
{
    char name[SEGMENT_NAME_MAX], iname[SEGMENT_NAME_MAX];
    char tlog[SEGMENT_NAME_MAX + 8], tidx[SEGMENT_NAME_MAX + 8];
    struct segment_damage whole = {d->from, d->to, 0, 0};
    struct segment empty = {.base_offset = d->from, .next_offset = d->to,
                            .fd = -1};
    struct segment *repl = NULL;
    int rc;

    segment_log_name(d->from, name);
    segment_index_name(d->from, iname);
    snprintf(tlog, sizeof(tlog), "%s" REPAIR_SUFFIX, name);
    snprintf(tidx, sizeof(tidx), "%s" REPAIR_SUFFIX, iname);
    snprintf(empty.name, sizeof(empty.name), "%s", name);
    rc = stage_segment(p, &empty, &whole, buf, len, tlog, tidx, &repl,
                       errmsg);
    if (rc == 0) {
        rc = partition_segment_insert(p, prev, repl, tlog, tidx, errmsg);
    }
    if (rc != 0) {
        unstage(p, tlog, tidx, repl);
    }
    return rc;
}

/* The active segment belongs to the writer, which keeps appending to its
 * file: it cannot be renamed over. When the records fetched take exactly
 * the bytes of the damaged run (a flipped byte does not change a record's
 * size), they are written in place, fsync'd and read back. Readers that
 * meet the run meanwhile still fail its CRC; a crash in the middle leaves a
 * run that fails its checks again, which the start-up recovery of the
 * newest segment treats as it did before the repair. */
static int repair_in_place(struct partition *p, struct segment *s,
                           const struct segment_damage *d, const uint8_t *buf,
                           size_t len, char *errmsg)
{
    uint8_t *back;
    ssize_t n;
    int rc = 0;

    if (d->pos_to - d->pos_from != len) {
        return brk_errf(errmsg, BRK_ECONFLICT, "offsets [%llu, %llu) are in "
                        "the active segment and their size changed; "
                        "repaired once it rolls",
                        (unsigned long long)d->from,
                        (unsigned long long)d->to);
    }
    back = malloc(len + 1);
    if (back == NULL) {
        return brk_errf(errmsg, BRK_ENOMEM, "repair: out of memory");
    }
    n = pwrite(s->fd, buf, len, (off_t)d->pos_from);
    if (n != (ssize_t)len || fdatasync(s->fd) != 0) {
        rc = brk_errf(errmsg, BRK_EIO, "rewrite %s in place: %s", s->name,
                      n < 0 ? strerror(errno) : "short write");
    }
    if (rc == 0) {
        rc = segment_pread(s, back, len, d->pos_from, errmsg);
    }
    if (rc == 0 && memcmp(back, buf, len) != 0) {
        rc = brk_errf(errmsg, BRK_EIO, "%s reads back differently", s->name);
    }
    free(back);
    /* Not found: a scrub pass read the run after the write, found it whole
     * and forgot it already. A pass that read it before the write may add
     * it again; the next repair round rewrites the same bytes. */
    if (rc == 0) {
        partition_damage_drop(p, s, d->from, d->to);
    }
    return rc;
}

int partition_repair_range(struct partition *p, uint64_t from, uint64_t to,
                           const uint8_t *buf, size_t len, char *errmsg)
{
    struct segment *s;
    struct segment_damage d;
    bool is_active, missing;
    int rc = check_records(buf, len, from, to, errmsg);

    if (rc != 0) {
        return rc;
    }
    if (!partition_damage_find(p, from, to, &s, &d, &is_active, &missing)) {
        return brk_errf(errmsg, BRK_ECONFLICT, "offsets [%llu, %llu) are not "
                        "a known damaged range", (unsigned long long)from,
                        (unsigned long long)to);
    }
    pthread_mutex_lock(&storage_maint_mu);
    if (missing) {
        rc = repair_gap(p, s, &d, buf, len, errmsg);
    } else if (is_active) {
        rc = repair_in_place(p, s, &d, buf, len, errmsg);
    } else {
        rc = repair_segment(p, s, &d, buf, len, errmsg);
    }
    pthread_mutex_unlock(&storage_maint_mu);
    segment_unref(s);
    return rc;
}

/* ==== Offline: truncate at the first damage ==== */

/* Move @name from @dirfd into @qfd, under a name not taken yet there. */
static int quarantine_file(int dirfd, int qfd, const char *name, char *errmsg)
{
    char dst[SEGMENT_NAME_MAX + 16];
    int i;

    if (faccessat(dirfd, name, F_OK, 0) != 0) {
        return 0;
    }
    snprintf(dst, sizeof(dst), "%s", name);
    for (i = 1; faccessat(qfd, dst, F_OK, 0) == 0 && i < 1000; i++) {
        snprintf(dst, sizeof(dst), "%s.%d", name, i);
    }
    if (renameat(dirfd, name, qfd, dst) != 0) {
        return brk_errf(errmsg, BRK_EIO, "move %s aside: %s", name,
                        strerror(errno));
    }
    return 0;
}

/* What the verification found, kept after the partition is closed. */
struct offline_plan {
    uint64_t base;     /* damaged segment */
    uint64_t pos_from; /* first bad byte in it */
    uint64_t from;     /* first bad offset */
    uint64_t next_offset;
};

static int plan_repair(const char *dir, const struct partition_options *opt,
                       struct offline_plan *plan, bool *damaged, char *errmsg)
{
    struct partition *p;
    struct partition_verify_stats st;
    struct partition_damage first;
    struct partition_stats ps;
    struct segment_damage d;
    struct segment *s;
    bool is_active, missing;
    int rc = partition_open(dir, opt, &p, NULL, errmsg);

    *damaged = false;
    if (rc != 0) {
        return rc;
    }
    rc = partition_verify(p, NULL, NULL, &st, errmsg);
    if (rc == 0 && partition_damage(p, &first, 1) > 0 &&
        partition_damage_find(p, first.from, first.to, &s, &d, &is_active,
                              &missing)) {
        partition_stats(p, &ps);
        *plan = (struct offline_plan){s->base_offset, d.pos_from, d.from,
                                      ps.next_offset};
        *damaged = true;
        segment_unref(s);
    }
    partition_close(p);
    return rc;
}

/* Quarantine every segment based at or after plan->base. */
static int quarantine_from(const char *dir, int dirfd, int qfd,
                           const struct offline_plan *plan, uint32_t *moved,
                           char *errmsg)
{
    uint64_t *bases = NULL;
    char name[SEGMENT_NAME_MAX];
    size_t n, i;
    int rc = segment_list(dir, &bases, &n, errmsg);

    for (i = 0; rc == 0 && i < n; i++) {
        if (bases[i] < plan->base) {
            continue;
        }
        segment_log_name(bases[i], name);
        rc = quarantine_file(dirfd, qfd, name, errmsg);
        segment_index_name(bases[i], name);
        if (rc == 0) {
            rc = quarantine_file(dirfd, qfd, name, errmsg);
        }
        *moved += rc == 0 ? 1 : 0;
    }
    free(bases);
    return rc;
}

/* Write the good head of the quarantined damaged segment back. */
static int write_head(int dirfd, int qfd, const struct offline_plan *plan,
                      char *errmsg)
{
    char name[SEGMENT_NAME_MAX], tmp[SEGMENT_NAME_MAX + 8];
    struct segment *q;
    int fd, rc;

    segment_log_name(plan->base, name);
    snprintf(tmp, sizeof(tmp), "%s" REPAIR_SUFFIX, name);
    rc = segment_open_raw(qfd, QUARANTINE_DIR, name, plan->base, 0, &q, errmsg);
    if (rc != 0) {
        return rc;
    }
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = brk_errf(errmsg, BRK_EIO, "create %s: %s", tmp, strerror(errno));
    } else {
        rc = copy_range(q, fd, 0, plan->pos_from, errmsg);
        if (rc == 0 && fsync(fd) != 0) {
            rc = brk_errf(errmsg, BRK_EIO, "fsync %s: %s", tmp,
                          strerror(errno));
        }
        close(fd);
    }
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) != 0) {
        rc = brk_errf(errmsg, BRK_EIO, "rename %s: %s", tmp, strerror(errno));
    }
    segment_unref(q);
    return rc;
}

static int truncate_at(const char *dir, const struct offline_plan *plan,
                       struct partition_offline_repair *rep, char *errmsg)
{
    char qdir[1400];
    int dirfd = -1, qfd = -1, rc;

    snprintf(qdir, sizeof(qdir), "%s/" QUARANTINE_DIR, dir);
    rc = fsutil_mkdirs(qdir, errmsg);
    if (rc == 0) {
        dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        qfd = open(qdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0 || qfd < 0) {
            rc = brk_errf(errmsg, BRK_EIO, "open %s: %s", qdir,
                          strerror(errno));
        }
    }
    if (rc == 0) {
        rc = quarantine_from(dir, dirfd, qfd, plan,
                             &rep->segments_quarantined, errmsg);
    }
    if (rc == 0) {
        rc = write_head(dirfd, qfd, plan, errmsg);
    }
    if (rc == 0 && (fsync(qfd) != 0 || fsync(dirfd) != 0)) {
        rc = brk_errf(errmsg, BRK_EIO, "fsync %s: %s", dir, strerror(errno));
    }
    if (dirfd >= 0) {
        close(dirfd);
    }
    if (qfd >= 0) {
        close(qfd);
    }
    return rc;
}

int partition_repair_offline(const char *dir,
                             const struct partition_options *opt,
                             struct partition_offline_repair *rep,
                             char *errmsg)
{
    struct offline_plan plan;
    struct partition *p;
    struct partition_stats st;
    bool damaged;
    int rc = plan_repair(dir, opt, &plan, &damaged, errmsg);

    memset(rep, 0, sizeof(*rep));
    if (rc != 0 || !damaged) {
        return rc;
    }
    rep->damaged = true;
    rep->cut_at = plan.from;
    rep->records_removed = plan.next_offset - plan.from;
    rc = truncate_at(dir, &plan, rep, errmsg);
    if (rc != 0) {
        return rc;
    }
    /* Opening it again proves it consistent (and rebuilds the index). */
    rc = partition_open(dir, opt, &p, NULL, errmsg);
    if (rc == 0) {
        partition_stats(p, &st);
        if (st.next_offset != plan.from) {
            rc = brk_errf(errmsg, BRK_EINTERNAL, "after the cut the "
                          "partition ends at %llu, not %llu",
                          (unsigned long long)st.next_offset,
                          (unsigned long long)plan.from);
        }
        partition_close(p);
    }
    return rc;
}
