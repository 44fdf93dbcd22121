/* Replica digests: a CRC32C per chunk of DIGEST chunk-size offsets of a
 * partition, so that replicas can be compared without shipping records.
 *
 * A chunk k covers offsets [k*N, (k+1)*N). Its checksum is CRC32C over the
 * content of its records in offset order: offset, timestamp, cmd_index,
 * flags, key, value, headers (digest_record_crc), each chunk seeded with 0:
 * chunks do not chain, so a replica whose log start moved (retention) or
 * that restarted still computes the same value for every chunk it holds
 * whole. cmd_index is included: replay and claim idempotence depend on it,
 * and catch-up copies records verbatim, so healthy replicas agree on it.
 * Only chunks lying wholly at or above the log start are kept or
 * reported; memory is 4 bytes per chunk.
 *
 * Maintenance: the writer folds every appended batch in (partition_append
 * calls digest_note_append). After a restart the partition's records are
 * folded in lazily by digest_build_step, run from a background thread:
 * until it reaches the end, appends past its position are ignored (it
 * reads them from disk later). A generation number, bumped by cut/reset,
 * makes a builder page read before a cut be discarded.
 *
 * Threads: the writer calls note_append/cut/reset/drop_before; any thread
 * may call build_step and range. */
#ifndef BROKER_DIGEST_H
#define BROKER_DIGEST_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/record.h"

#define DIGEST_DEFAULT_CHUNK 1024
/* Most records a range with a step other than the chunk size may cover
 * (such a range is computed by reading the records from disk). */
#define DIGEST_MAX_DISK_RECORDS 65536u

struct digest;
struct partition;

/* A digest with chunks of @chunk offsets (0: DIGEST_DEFAULT_CHUNK) for a
 * partition starting at @log_start; nothing folded in yet. NULL on ENOMEM. */
struct digest *digest_create(uint32_t chunk, uint64_t log_start);
void digest_destroy(struct digest *d);
uint32_t digest_chunk_size(const struct digest *d);
/* Any thread. Every record below this offset is folded in. */
uint64_t digest_folded_to(struct digest *d);

/* Extend @crc over the content of @r (the canonical form above). */
uint32_t digest_record_crc(uint32_t crc, const struct record *r);

/* Writer: @n records were appended, recs[i].offset set. */
void digest_note_append(struct digest *d, const struct record *recs, size_t n);
/* Writer: records at and after @offset were removed; what remains of the
 * chunk holding @offset must be folded in again (digest_build_step). */
void digest_cut(struct digest *d, uint64_t offset);
/* Writer: the partition restarts empty at @base. */
void digest_reset(struct digest *d, uint64_t base);
/* Writer: the log start moved to @log_start: forget chunks below it. */
void digest_drop_before(struct digest *d, uint64_t log_start);

/* Any thread. Fold in up to @max_records visible records of @p from
 * where the digest stands. Returns 1 when more remain (some may not be
 * visible yet), 0 when the digest covers every written record, or an
 * error (BRK_ECORRUPT, BRK_EIO) with @errmsg. */
int digest_build_step(struct partition *p, size_t max_records, char *errmsg);

/* The checksums of [from, to) in steps of @step offsets. */
struct digest_range {
    uint64_t from;   /* first offset covered: @step-aligned, >= log start */
    uint64_t to;     /* one past the last offset covered */
    uint32_t step;
    size_t n;        /* entry i covers [from + i*step, min(+step, to)) */
    uint32_t *crcs;  /* malloc'd */
    size_t cap;      /* entries allocated */
    bool building;   /* @to was lowered: the digest is not built that far */
};

/* Any thread. Checksums of the visible records of @p over [@from, @to)
 * clamped to [log start rounded up to @step, high watermark). With @step
 * equal to the chunk size, whole chunks come from memory (the range ends
 * early, building = true, where the digest is not built yet) and a
 * partial last chunk is read from disk; any other @step reads every
 * record from disk and the range may hold at most
 * DIGEST_MAX_DISK_RECORDS offsets (BRK_EINVAL). Free with
 * digest_range_free. */
int digest_range(struct partition *p, uint64_t from, uint64_t to,
                 uint32_t step, struct digest_range *out, char *errmsg);
void digest_range_free(struct digest_range *r);

#endif
