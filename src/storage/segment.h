/* One segment of a partition: a .log file of records and its sparse .index.
 *
 * Private to src/storage. This header owns the on-disk naming and format
 * constants of the storage area (see docs/storage.md).
 *
 * Threads: a segment belongs to a partition. The writer (loop thread) is the
 * only one that writes files or changes fields; the in-memory index and the
 * size/offset fields are changed under the partition mutex, so readers that
 * hold that mutex see a consistent state. The log descriptor is read with
 * pread() by any thread holding a reference, without any lock. */
#ifndef BROKER_STORAGE_SEGMENT_H
#define BROKER_STORAGE_SEGMENT_H
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/partition.h"
#include "broker/record.h"

/* ==== On-disk format ==== */

/* Names sort by base offset with a plain `ls`: 20 digits hold any u64. */
#define SEGMENT_NAME_DIGITS 20
#define SEGMENT_LOG_SUFFIX ".log"
#define SEGMENT_INDEX_SUFFIX ".index"
#define SEGMENT_LOG_TEMPLATE "%020" PRIu64 SEGMENT_LOG_SUFFIX
#define SEGMENT_INDEX_TEMPLATE "%020" PRIu64 SEGMENT_INDEX_SUFFIX
#define SEGMENT_NAME_MAX 32 /* 20 digits + ".index" + NUL, rounded up */

/* An index entry is {u32 relative offset, u32 file position}, little-endian.
 * Positions are u32, so a segment never grows past SEGMENT_MAX_BYTES. */
#define SEGMENT_INDEX_ENTRY_SIZE 8
#define SEGMENT_MAX_BYTES UINT32_MAX

/* Bytes read per pread() when scanning a segment during recovery. */
#define SEGMENT_SCAN_CHUNK (1u << 20)

/* ==== Little-endian helpers (shared with record.c) ==== */

static inline void le32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void le64_put(uint8_t *p, uint64_t v)
{
    le32_put(p, (uint32_t)v);
    le32_put(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t le32_get(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t le64_get(const uint8_t *p)
{
    return (uint64_t)le32_get(p) | (uint64_t)le32_get(p + 4) << 32;
}

/* ==== Segment ==== */

struct segment_index_entry {
    uint32_t rel_offset; /* record offset - base_offset */
    uint32_t position;   /* byte position of the record in the .log */
};

struct segment {
    uint64_t base_offset;    /* offset of the first record; from the name */
    uint64_t next_offset;    /* one past the last record */
    uint64_t size;           /* bytes of complete records in the .log */
    int64_t max_timestamp;   /* newest record's timestamp; INT64_MIN if empty */
    uint64_t last_cmd_index; /* cmd_index of the last record, 0 if empty */
    int fd;                  /* .log, read/write; closed at the last unref */
    int index_fd;            /* .index, open only while the segment is active */
    struct segment_index_entry *index; /* sparse, ascending */
    size_t index_n;                    /* entries in use */
    size_t index_cap;                  /* entries allocated */
    uint32_t index_interval;           /* record bytes between index entries */
    bool dirty;      /* written since the last sync (partition mutex) */
    atomic_int refs; /* the partition's reference + readers' */
    const char *dir; /* borrowed from the owner, for log lines */
    char name[SEGMENT_NAME_MAX]; /* "<base>.log", for messages */
};

/* A batch of records encoded for one segment, before it is written. */
struct segment_batch {
    uint8_t *buf;                        /* encoded records (owned) */
    size_t len;                          /* bytes in buf */
    struct segment_index_entry *entries; /* new index entries (owned) */
    size_t n_entries;
    uint64_t next_offset;    /* one past the batch's last record */
    int64_t max_timestamp;   /* largest timestamp in the batch */
    uint64_t last_cmd_index; /* cmd_index of the batch's last record */
};

/* What segment_load found and repaired. */
struct segment_load_info {
    uint64_t truncated_bytes; /* torn or corrupt tail cut off (newest only) */
    bool index_rebuilt;       /* an older segment's index was bad */
};

/* Format the file names of the segment based at @base into @buf
 * (SEGMENT_NAME_MAX bytes). */
void segment_log_name(uint64_t base, char *buf);
void segment_index_name(uint64_t base, char *buf);

/* Parse "<20 digits>.log". Returns true and sets *@base on a match. */
bool segment_parse_name(const char *name, uint64_t *base);

/* Base offsets of the segment files ("<20 digits>.log") in @dir, sorted,
 * in a malloc'd array (NULL when there are none) that the caller frees.
 * Errors: BRK_EIO, BRK_ENOMEM. */
int segment_list(const char *dir, uint64_t **out, size_t *n, char *errmsg);

/* Create an empty segment based at @base in the directory @dirfd (the
 * .log must not exist; a stale .index is replaced). @dir is that
 * directory's path, borrowed for log lines while the segment lives. The
 * caller owns the one reference. Errors: BRK_EIO, BRK_ENOMEM. */
int segment_create(int dirfd, const char *dir, uint64_t base,
                   uint32_t index_interval, struct segment **out, char *errmsg);

/* Open the existing segment based at @base. @newest: scan every record,
 * cut a torn or corrupt tail (ftruncate + fsync), rebuild the index and keep
 * it open for appends. Otherwise: load and check the index (rebuilt when
 * missing or bad) and scan only from its last entry to find next_offset,
 * max_timestamp and last_cmd_index. @info may be NULL. Errors: BRK_EIO,
 * BRK_ENOMEM, BRK_ECORRUPT (an older segment with a bad record). */
int segment_load(int dirfd, const char *dir, uint64_t base, bool newest,
                 uint32_t index_interval, struct segment **out,
                 struct segment_load_info *info, char *errmsg);

/* Take a reference (the caller already holds one, or the partition mutex
 * while the segment is listed). */
void segment_ref(struct segment *s);
/* Drop a reference; the last one closes the descriptors and frees @s. Any
 * thread. */
void segment_unref(struct segment *s);

/* Writer only. Stop appending index entries: closes the .index descriptor
 * (the in-memory index stays for readers). */
void segment_seal(struct segment *s);

/* Total encoded size of @recs into *@total. BRK_EMSG_TOO_LARGE when one
 * record passes RECORD_MAX_SIZE or the batch SEGMENT_MAX_BYTES. */
int segment_batch_bytes(const struct record *recs, size_t n, uint64_t *total,
                        char *errmsg);

/* Whether @n records of @bytes encoded bytes can be appended to @s without
 * its size passing @limit (capped at SEGMENT_MAX_BYTES) or its relative
 * offsets passing u32. */
bool segment_fits(const struct segment *s, uint64_t bytes, size_t n,
                  uint64_t limit);

/* Writer only, no lock needed. Encode @n records with offsets @first_offset..
 * (written back into recs[i].offset) as they would be appended to @s, and
 * plan the index entries they need. Free @b with segment_batch_free.
 * Errors: BRK_ENOMEM, BRK_EMSG_TOO_LARGE. */
int segment_batch_encode(const struct segment *s, struct record *recs, size_t n,
                         uint64_t first_offset, struct segment_batch *b,
                         char *errmsg);
void segment_batch_free(struct segment_batch *b);

/* Under the partition mutex: make room for @extra index entries so that
 * segment_commit cannot fail. BRK_ENOMEM on failure. */
int segment_index_reserve(struct segment *s, size_t extra);

/* Writer only, no lock held: write @b at the end of the .log with one
 * pwrite() (looping on short writes) and append its index entries to the
 * .index. On a log write error the file is cut back to its old size and
 * BRK_EIO returned; an index write error is only logged (the index is
 * rebuilt at the next open). */
int segment_write(struct segment *s, const struct segment_batch *b,
                  char *errmsg);

/* Under the partition mutex, after segment_write: make the batch part of
 * the segment's in-memory state (size, offsets, index). */
void segment_commit(struct segment *s, const struct segment_batch *b);

/* Under the partition mutex. File position from which to scan to find
 * @offset (base_offset <= @offset): the last index entry at or before it. */
uint64_t segment_lookup(const struct segment *s, uint64_t offset);

/* Any thread holding a reference: read exactly @len bytes at @pos.
 * BRK_EIO on an error, BRK_ESHORT when the file ends first. */
int segment_pread(const struct segment *s, uint8_t *buf, size_t len,
                  uint64_t pos, char *errmsg);

/* Any thread holding a reference: fdatasync the .log. BRK_EIO on
 * failure. */
int segment_sync(struct segment *s, char *errmsg);

/* Writer only: unlink the segment's files from @dirfd (.log first, so that a
 * crash in between leaves only an orphan .index, which is ignored). The
 * descriptor stays usable by readers until the last unref. */
int segment_unlink(struct segment *s, int dirfd, char *errmsg);

/* Writer only, no lock needed: the file position of the record @offset
 * (base <= @offset < next_offset) and the cmd_index of the record before
 * it in this segment (0 when @offset is the base), by walking record
 * headers from the index. BRK_ECORRUPT when the walk does not find it. */
int segment_find(const struct segment *s, uint64_t offset, uint64_t *pos,
                 uint64_t *prev_cmd, char *errmsg);

/* Writer, under the partition mutex: cut @s at @pos, where record @offset
 * starts (segment_find), fsync it, drop the index entries from @offset on
 * and rewrite the .index, kept open for appends (@s becomes the active
 * segment). max_timestamp stays: an upper bound only keeps retention
 * conservative. */
int segment_cut(struct segment *s, int dirfd, uint64_t offset, uint64_t pos,
                uint64_t prev_cmd, char *errmsg);

/* ==== Test hooks ==== */

/* Called by partition_read after it took a reference on the segment that
 * holds @offset and released the mutex, before reading it. NULL outside
 * tests; set it only while no other partition is in use. */
extern void (*partition_read_hook)(struct partition *p, uint64_t offset);

#endif
