/* Commands: every change of broker state, as built by the HTTP layer and
 * applied by the state machine (state.h), plus their binary encoding for
 * the Raft log. One write path for standalone and cluster mode. */
#ifndef BROKER_CMD_H
#define BROKER_CMD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/err.h"
#include "broker/topic.h"

enum cmd_type {
    CMD_CREATE_TOPIC = 1,
    CMD_DELETE_TOPIC = 2,
    CMD_PRODUCE = 3,
    CMD_COMMIT_OFFSETS = 4,
    CMD_DELETE_GROUP = 5,
    CMD_CLAIM = 6,
    CMD_TRUNCATE = 7,     /* retention: drop segments below an offset */
    CMD_SET_MEMBER = 8,   /* a member's HTTP address (cluster) */
};

struct cmd_record {
    uint32_t partition;   /* chosen by the proposer, checked at apply */
    uint8_t flags;        /* RECORD_F_* */
    uint8_t *key;         /* owned; NULL = no key */
    uint32_t key_len;
    uint8_t *value;       /* owned */
    uint32_t value_len;
    uint8_t *headers;     /* owned JSON object text; NULL = none */
    uint32_t headers_len;
};

/* A committed offset, or with partition CMD_PARTITION_ALL a reset of
 * every partition of the topic, resolved at apply from each partition's
 * own data: offset CMD_RESET_EARLIEST, CMD_RESET_LATEST, or else a
 * timestamp (ms). Plain offsets are at most INT64_MAX, so the encoding of
 * the Raft log stays as it was. */
struct cmd_offset {
    char topic[TOPIC_NAME_MAX + 1];
    uint32_t partition;
    uint64_t offset;
};
#define CMD_PARTITION_ALL UINT32_MAX
#define CMD_RESET_EARLIEST UINT64_MAX
#define CMD_RESET_LATEST (UINT64_MAX - 1)

/* Idempotency-Key: 1..128 printable ASCII (API.md v2). */
#define CMD_IDEM_KEY_MAX 128

struct cmd {
    enum cmd_type type;
    char topic[TOPIC_NAME_MAX + 1];  /* create, delete, produce, claim, truncate */
    char group[TOPIC_NAME_MAX + 1];  /* commit, delete group, claim */
    uint32_t partitions;             /* create; produce: auto-create count, 0 = no */
    int64_t retention_ms;            /* create: -1 = broker default */
    struct cmd_record *records;      /* produce */
    size_t n_records;
    struct cmd_offset *offsets;      /* commit */
    size_t n_offsets;
    uint32_t limit;                  /* claim */
    uint32_t partition;              /* truncate */
    uint64_t before;                 /* truncate */
    uint64_t node_id;                /* set member */
    char address[256];               /* set member: http address */
    char idem_key[CMD_IDEM_KEY_MAX + 1]; /* Idempotency-Key, "" = none */
    uint64_t idem_fp;                /* fingerprint of the keyed request */
};

/* Free what a cmd owns (records, offsets) and zero it. */
void cmd_clear(struct cmd *c);

struct cmd_produced {
    uint32_t partition;
    uint64_t offset;
};

struct cmd_claimed {
    uint32_t partition;
    uint64_t from, to;               /* [from, to) handed to this claimer */
};

/* Result of applying one command. */
struct cmd_result {
    int err;                         /* 0 or enum brk_err */
    char errmsg[BRK_ERRMSG_LEN];
    int64_t timestamp;               /* produce: the records' timestamp */
    struct cmd_produced *produced;   /* produce: one per record, in order */
    size_t n_produced;
    struct cmd_claimed *claimed;     /* claim */
    size_t n_claimed;
    uint64_t range_start, range_end; /* BRK_EOFFSET_RANGE: the bounds */
    bool replayed;                   /* the answer of an earlier request
                                        with the same Idempotency-Key */
};

void cmd_result_clear(struct cmd_result *r);

/* ==== Raft log entry codec ====
 * An entry holds a header (magic, version, leader timestamp, count) and
 * @n commands. Little-endian, length-prefixed, bounds-checked. Version 2
 * adds each command's idempotency key and fingerprint; version 1 entries
 * (no key) are still read. */

/* Encode into a malloc'd buffer (*@buf, *@len), zero-padded to a multiple
 * of 8 bytes as c-raft requires. */
int cmd_encode_entry(int64_t timestamp, struct cmd *const *cmds, size_t n,
                     uint8_t **buf, size_t *len);

/* Decode an entry: *@cmds is a malloc'd array of *@n commands whose
 * buffers are copies (free each with cmd_clear, then the array).
 * BRK_EMALFORMED-style errors are BRK_ECORRUPT. */
int cmd_decode_entry(const uint8_t *buf, size_t len, int64_t *timestamp,
                     struct cmd **cmds, size_t *n);

#endif
