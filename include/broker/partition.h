/* A partition: an append-only log of records kept in segment files under
 * one directory, with a published high watermark for readers.
 *
 * Threads: one writer (the loop thread) calls append/truncate/close; any
 * thread may read, publish, sync and take stats. Readers never see records
 * at or above the published high watermark, so a record becomes visible
 * only once the writer says it is durable (partition_publish).
 * Files: "<20-digit base offset>.log" and ".index" per segment (see
 * docs/storage.md). */
#ifndef BROKER_PARTITION_H
#define BROKER_PARTITION_H
#include <stddef.h>
#include <stdint.h>

#include "broker/record.h"

struct partition;

struct partition_options {
    uint64_t segment_size;   /* roll when a segment would pass this size */
    uint32_t index_interval; /* record bytes between sparse index entries */
    uint32_t digest_chunk;   /* offsets per replica digest chunk (0: 1024) */
};
#define PARTITION_DEFAULT_INDEX_INTERVAL 4096

struct partition_stats {
    uint64_t log_start_offset; /* first offset still stored */
    uint64_t high_watermark;   /* one past the last visible record */
    uint64_t next_offset;      /* one past the last written record */
    uint64_t size_bytes;       /* bytes of all .log files */
    uint32_t segments;
    uint64_t last_cmd_index;   /* cmd_index of the last written record, 0 if none */
};

/* What start-up recovery found and repaired. */
struct partition_recovery {
    uint64_t truncated_bytes;  /* torn or corrupt tail cut off */
    uint32_t indexes_rebuilt;
    uint32_t segments;
};

/* Open (creating @dir and a first empty segment if needed) and recover:
 * the newest segment is validated record by record and a torn or corrupt
 * tail truncated to the last good record; a missing or bad index is
 * rebuilt. All recovered records are visible. @rec may be NULL. Errors:
 * BRK_EIO, BRK_ENOMEM, BRK_ECORRUPT (damage before the newest segment's
 * tail that cannot be repaired safely), with @errmsg. */
int partition_open(const char *dir, const struct partition_options *opt,
                   struct partition **out, struct partition_recovery *rec,
                   char *errmsg);

/* Free the partition (files stay). No reader may use it afterwards. */
void partition_close(struct partition *p);

/* Writer only. Assign offsets next_offset.. to @recs (each recs[i].offset
 * is overwritten; timestamp, cmd_index, flags, key, value, headers are
 * taken as given), write them to the active segment, rolling to a new
 * segment first when the active one is not empty and would pass
 * segment_size. One write() for the batch where possible. *@first_offset
 * gets the first assigned offset. Not visible until partition_publish.
 * On BRK_EIO nothing of the batch stays (the file is cut back). */
int partition_append(struct partition *p, struct record *recs, size_t n,
                     uint64_t *first_offset, char *errmsg);

/* Any thread. Raise the high watermark to @offset (clamped to
 * next_offset; never lowered). */
void partition_publish(struct partition *p, uint64_t offset);

/* Any thread, concurrently with append: fdatasync every segment written to
 * since the previous sync, and the directory after a segment was created
 * or deleted. No lock is held during the fsync itself. */
int partition_sync(struct partition *p, char *errmsg);

struct partition_read_result {
    uint8_t *buf;          /* owns the bytes the records point into */
    struct record *recs;   /* n decoded records, ascending offsets */
    size_t n;
    uint64_t next_offset;  /* offset to ask for next */
};

/* Any thread. Read visible records starting at @offset: at most @limit
 * records and, past the first record, at most @max_bytes of encoded
 * record bytes (0 = no byte limit). Reads at most one index interval
 * before reaching @offset. @offset == high watermark gives n == 0.
 * BRK_EOFFSET_RANGE when @offset < log_start_offset or > high watermark.
 * BRK_ECORRUPT/BRK_EIO on damaged or unreadable files. Free the result
 * with partition_read_result_free (also safe on a zeroed result). */
int partition_read(struct partition *p, uint64_t offset, size_t limit,
                   size_t max_bytes, struct partition_read_result *out,
                   char *errmsg);
void partition_read_result_free(struct partition_read_result *r);

/* Any thread. *@offset gets the first visible offset at or past the log
 * start whose record's timestamp is >= @ts, or the high watermark when no
 * visible record is that new. Timestamps need not be ordered: segments
 * whose newest record is older than @ts are skipped unread, and the scan
 * starts in the first one that is not. BRK_ECORRUPT/BRK_EIO as for
 * partition_read, with @errmsg. */
int partition_find_time(struct partition *p, int64_t ts, uint64_t *offset,
                        char *errmsg);

/* Any thread. */
void partition_stats(struct partition *p, struct partition_stats *out);

/* Writer only. The offset before which retention would delete: whole
 * non-active segments, oldest first, whose newest record is older than
 * @now_ms - @retention_ms (@retention_ms < 0: no time limit) or while the
 * partition's total size exceeds @retention_bytes (< 0: no size limit).
 * *@before is the base offset of the first segment kept; returns 1 when
 * something would be deleted, 0 when nothing. */
int partition_retention_point(struct partition *p, int64_t now_ms,
                              int64_t retention_ms, int64_t retention_bytes,
                              uint64_t *before);

/* Writer only. Delete every non-active segment whose records all lie
 * below @before, and raise log_start_offset to @before (clamped to
 * next_offset): records below it are hidden even where their segment must
 * stay, so replicas that split segments differently agree. Readers that are reading a deleted segment finish safely (the
 * file is unlinked, its descriptor closed after the last reader). */
int partition_truncate_before(struct partition *p, uint64_t before,
                              char *errmsg);

/* Writer only. Delete every segment and start empty at offset @base
 * (log start = high watermark = @base): a replica whose data a snapshot
 * cannot build on. Readers of deleted segments finish safely. */
int partition_reset(struct partition *p, uint64_t base, char *errmsg);

/* The partition's replica digest (digest.h). Any thread. */
struct digest *partition_digest(struct partition *p);

/* Writer only. Remove every record at and after @offset (log start <=
 * @offset; nothing to do at or past next_offset): later segments are
 * deleted, the one holding @offset is cut (ftruncate) and its index
 * rewritten, or, when @offset is its base, replaced by a new empty
 * segment. next_offset and the high watermark become @offset; the replica
 * digest is cut to match. Used to repair a divergent replica's tail
 * before re-fetching it. A reader already reading the removed range may
 * get BRK_ECORRUPT (bytes shorter than it saw); it never gets bad records.
 * The cut is made durable by the next partition_sync. */
int partition_cut_tail(struct partition *p, uint64_t offset, char *errmsg);

/* Remove a partition directory and every file in it (after
 * partition_close, or while readers still hold descriptors). */
int partition_remove_dir(const char *dir, char *errmsg);

#endif
