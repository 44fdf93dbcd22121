/* Idempotency keys: the replicated table of write requests already
 * answered (API.md v2 "Exactly-once writes"). Each key is remembered with
 * a fingerprint of its request and a compact copy of the command's result
 * (struct cmd_result), from which the HTTP layer rebuilds the same answer.
 *
 * Part of the state machine: changed only by state_apply (loop thread),
 * with the leader's timestamp of the command as the only clock, so every
 * replica holds the same keys. Keys expire in apply order once their time
 * plus the window has passed; the table refuses new keys at its cap.
 * Transactions can reuse it: a key stands for one command, whatever it is.
 *
 * Standalone mode keeps a journal (one JSON line per key) next to the
 * data; a cluster keeps the table in its Raft snapshots instead. */
#ifndef BROKER_IDEM_H
#define BROKER_IDEM_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/cmd.h"

struct idem_table;

enum idem_verdict {
    IDEM_NEW,    /* not held: apply the command, then idem_record */
    IDEM_REPLAY, /* held with this fingerprint: @res holds its answer */
    IDEM_REUSED, /* held for another request */
    IDEM_FULL,   /* not held and the table is at its cap */
};

int idem_table_create(int64_t window_ms, uint64_t max_keys,
                      struct idem_table **out);
void idem_table_destroy(struct idem_table *t);

/* Whether @key is 1..CMD_IDEM_KEY_MAX printable ASCII characters. */
bool idem_key_valid(const char *key);

/* 64-bit FNV-1a over @len bytes, continuing from @h (start with
 * IDEM_FP_INIT): the fingerprint of a request. */
#define IDEM_FP_INIT 0xcbf29ce484222325ull
uint64_t idem_fp_update(uint64_t h, const void *data, size_t len);

/* Drop the keys whose time plus the window is at or before @now_ms. */
void idem_expire(struct idem_table *t, int64_t now_ms);

/* Look @key up; on IDEM_REPLAY fill @res (cleared first) with the stored
 * result and set res->replayed. */
enum idem_verdict idem_check(struct idem_table *t, const char *key,
                             uint64_t fp, struct cmd_result *res);

/* Remember @key for command @index applied at @at_ms with result @res. */
int idem_record(struct idem_table *t, const char *key, uint64_t fp,
                uint64_t index, int64_t at_ms, const struct cmd_result *res);

/* Keys held. Any thread. */
uint64_t idem_count(struct idem_table *t);

/* The whole table as a JSON array (snapshots), and back: idem_load
 * replaces the table with @arr (NULL or not an array: empty). */
json_t *idem_dump(struct idem_table *t);
int idem_load(struct idem_table *t, json_t *arr, char *errmsg);

/* ==== standalone journal ==== */

/* A keyed produce about to be applied: written to the journal before its
 * records, so that start-up can rebuild its answer from the records when
 * a crash came before its key's own line (idem_resolve_cb). */
struct idem_intent {
    const char *key;
    uint64_t fp, index;
    int64_t at;
    const char *topic;
    const uint32_t *parts;           /* each record's partition */
    size_t n;
};

struct idem_journal_hooks {
    /* Whether the command numbered @index is durable in storage (the
     * journal is fsync'd before the data: a key of a command that did not
     * reach the disk is dropped at start-up). */
    bool (*durable)(void *ctx, uint64_t index);
    /* Fill @res with the answer of @in from its records on disk; false
     * when they are not (all) there. */
    bool (*resolve)(void *ctx, const struct idem_intent *in,
                    struct cmd_result *res);
    void *ctx;
};

/* Open (create) the journal at @path and load it through @hooks, then
 * rewrite the live keys compactly. Loop thread, before any apply. */
int idem_journal_open(struct idem_table *t, const char *path,
                      const struct idem_journal_hooks *hooks, char *errmsg);
/* Whether a journal is open. */
bool idem_journal_active(struct idem_table *t);
/* Write @in's line now (no fsync). Loop thread. */
int idem_journal_intent(struct idem_table *t, const struct idem_intent *in,
                        char *errmsg);
/* Write the keys recorded since the last call (no fsync; a journal grown
 * well past the live keys is rewritten instead). Loop thread. */
int idem_journal_append(struct idem_table *t, char *errmsg);
/* Whether keys wait for idem_journal_append. Loop thread. */
bool idem_journal_pending(struct idem_table *t);
/* fsync what was appended. Any thread. No-op without a journal. */
int idem_journal_sync(struct idem_table *t, char *errmsg);

#endif
