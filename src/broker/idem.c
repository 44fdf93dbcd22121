/* Idempotency key table: a chained hash of keys plus a list in apply
 * order, so that expiry (oldest first) and the journal (newest last) are
 * both walks of one list. See idem.h. */
#include "broker/idem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/buf.h"
#include "broker/err.h"
#include "broker/fsutil.h"

struct idem_entry {
    struct idem_entry *hnext;        /* bucket chain */
    struct idem_entry *prev, *next;  /* apply order, oldest first */
    uint64_t fp, index;
    int64_t at;                      /* leader time of the apply */
    int err;
    int64_t timestamp;
    uint64_t range_start, range_end;
    char *errmsg;                    /* NULL when err == 0 */
    struct cmd_produced *produced;
    struct cmd_claimed *claimed;
    uint32_t n_produced, n_claimed;
    char key[];
};

struct idem_table {
    struct idem_entry **buckets;
    size_t n_buckets;                /* a power of two */
    struct idem_entry *oldest, *newest;
    struct idem_entry *unsaved;      /* first entry not yet journaled */
    _Atomic uint64_t count;
    int64_t window_ms;
    uint64_t max_keys;
    /* standalone journal */
    char *path;
    int fd;                          /* -1 = none */
    uint64_t journal_lines;
    pthread_mutex_t fd_lock;         /* fd against a rewrite's swap */
};

#define IDEM_MIN_BUCKETS 1024

uint64_t idem_fp_update(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

bool idem_key_valid(const char *key)
{
    size_t i;

    for (i = 0; key[i] != '\0'; i++)
        if (i >= CMD_IDEM_KEY_MAX || key[i] < 0x20 || key[i] > 0x7e)
            return false;
    return i > 0;
}

int idem_table_create(int64_t window_ms, uint64_t max_keys,
                      struct idem_table **out)
{
    struct idem_table *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return BRK_ENOMEM;
    t->n_buckets = IDEM_MIN_BUCKETS;
    t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
    if (t->buckets == NULL) {
        free(t);
        return BRK_ENOMEM;
    }
    t->window_ms = window_ms;
    t->max_keys = max_keys;
    t->fd = -1;
    pthread_mutex_init(&t->fd_lock, NULL);
    *out = t;
    return 0;
}

static void entry_free(struct idem_entry *e)
{
    free(e->errmsg);
    free(e->produced);
    free(e->claimed);
    free(e);
}

static void table_clear(struct idem_table *t)
{
    struct idem_entry *e, *next;

    for (e = t->oldest; e != NULL; e = next) {
        next = e->next;
        entry_free(e);
    }
    memset(t->buckets, 0, t->n_buckets * sizeof(*t->buckets));
    t->oldest = t->newest = t->unsaved = NULL;
    atomic_store(&t->count, 0);
}

void idem_table_destroy(struct idem_table *t)
{
    if (t == NULL)
        return;
    table_clear(t);
    if (t->fd >= 0)
        close(t->fd);
    pthread_mutex_destroy(&t->fd_lock);
    free(t->buckets);
    free(t->path);
    free(t);
}

uint64_t idem_count(struct idem_table *t)
{
    return t ? atomic_load(&t->count) : 0;
}

/* ==== hash ==== */

static struct idem_entry **slot(struct idem_table *t, const char *key)
{
    uint64_t h = idem_fp_update(IDEM_FP_INIT, key, strlen(key));
    struct idem_entry **pp = &t->buckets[h & (t->n_buckets - 1)];

    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

/* Double the buckets when the chains average more than one entry. */
static void maybe_grow(struct idem_table *t)
{
    size_t n = t->n_buckets * 2;
    struct idem_entry **b, *e;

    if (atomic_load(&t->count) < t->n_buckets ||
        (b = calloc(n, sizeof(*b))) == NULL)
        return; /* a failed grow only makes chains longer */
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
    for (e = t->oldest; e != NULL; e = e->next) {
        struct idem_entry **pp = slot(t, e->key);
        e->hnext = NULL;
        *pp = e;
    }
}

static void unlink_entry(struct idem_table *t, struct idem_entry *e)
{
    struct idem_entry **pp = slot(t, e->key);

    if (*pp == e)
        *pp = e->hnext;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        t->oldest = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        t->newest = e->prev;
    if (t->unsaved == e)
        t->unsaved = e->next;
    atomic_fetch_sub(&t->count, 1);
    entry_free(e);
}

static void append_entry(struct idem_table *t, struct idem_entry *e)
{
    struct idem_entry **pp = slot(t, e->key);

    if (*pp != NULL)
        unlink_entry(t, *pp); /* a journal's later line wins */
    pp = slot(t, e->key);
    e->hnext = NULL;
    *pp = e;
    e->next = NULL;
    e->prev = t->newest;
    if (t->newest != NULL)
        t->newest->next = e;
    else
        t->oldest = e;
    t->newest = e;
    if (t->unsaved == NULL)
        t->unsaved = e;
    atomic_fetch_add(&t->count, 1);
    maybe_grow(t);
}

/* ==== apply-time API ==== */

void idem_expire(struct idem_table *t, int64_t now_ms)
{
    /* Apply order, not time order: a new leader's clock may be behind, and
     * its keys then wait behind older ones. Deterministic either way. */
    while (t->oldest != NULL && t->oldest->at <= now_ms - t->window_ms)
        unlink_entry(t, t->oldest);
}

static void fill_result(const struct idem_entry *e, struct cmd_result *res)
{
    size_t np = e->n_produced * sizeof(*e->produced);
    size_t nc = e->n_claimed * sizeof(*e->claimed);

    cmd_result_clear(res);
    res->err = e->err;
    if (e->errmsg != NULL)
        snprintf(res->errmsg, sizeof(res->errmsg), "%s", e->errmsg);
    res->timestamp = e->timestamp;
    res->range_start = e->range_start;
    res->range_end = e->range_end;
    if (np > 0 && (res->produced = malloc(np)) != NULL) {
        memcpy(res->produced, e->produced, np);
        res->n_produced = e->n_produced;
    }
    if (nc > 0 && (res->claimed = malloc(nc)) != NULL) {
        memcpy(res->claimed, e->claimed, nc);
        res->n_claimed = e->n_claimed;
    }
    res->replayed = true;
}

enum idem_verdict idem_check(struct idem_table *t, const char *key,
                             uint64_t fp, struct cmd_result *res)
{
    struct idem_entry *e = *slot(t, key);

    if (e == NULL)
        return atomic_load(&t->count) >= t->max_keys ? IDEM_FULL : IDEM_NEW;
    if (e->fp != fp)
        return IDEM_REUSED;
    fill_result(e, res);
    return IDEM_REPLAY;
}

static struct idem_entry *entry_new(const char *key, size_t n_produced,
                                    size_t n_claimed)
{
    size_t klen = strlen(key);
    struct idem_entry *e = calloc(1, sizeof(*e) + klen + 1);

    if (e == NULL)
        return NULL;
    memcpy(e->key, key, klen + 1);
    if (n_produced > 0)
        e->produced = calloc(n_produced, sizeof(*e->produced));
    if (n_claimed > 0)
        e->claimed = calloc(n_claimed, sizeof(*e->claimed));
    if ((n_produced > 0 && e->produced == NULL) ||
        (n_claimed > 0 && e->claimed == NULL)) {
        entry_free(e);
        return NULL;
    }
    e->n_produced = (uint32_t)n_produced;
    e->n_claimed = (uint32_t)n_claimed;
    return e;
}

int idem_record(struct idem_table *t, const char *key, uint64_t fp,
                uint64_t index, int64_t at_ms, const struct cmd_result *res)
{
    struct idem_entry *e = entry_new(key, res->n_produced, res->n_claimed);

    if (e == NULL)
        return BRK_ENOMEM;
    e->fp = fp;
    e->index = index;
    e->at = at_ms;
    e->err = res->err;
    e->timestamp = res->timestamp;
    e->range_start = res->range_start;
    e->range_end = res->range_end;
    if (res->err != 0 && (e->errmsg = strdup(res->errmsg)) == NULL) {
        entry_free(e);
        return BRK_ENOMEM;
    }
    if (res->n_produced > 0)
        memcpy(e->produced, res->produced,
               res->n_produced * sizeof(*e->produced));
    if (res->n_claimed > 0)
        memcpy(e->claimed, res->claimed, res->n_claimed * sizeof(*e->claimed));
    append_entry(t, e);
    return 0;
}

/* ==== JSON form (snapshots and the journal) ==== */

static json_t *entry_json(const struct idem_entry *e)
{
    json_t *o, *p = json_array(), *c = json_array();
    char fp[17];
    uint32_t i;

    for (i = 0; i < e->n_produced; i++)
        json_array_append_new(p, json_pack("[i, I]",
                                           (int)e->produced[i].partition,
                                           (json_int_t)e->produced[i].offset));
    for (i = 0; i < e->n_claimed; i++)
        json_array_append_new(c, json_pack("[i, I, I]",
                                           (int)e->claimed[i].partition,
                                           (json_int_t)e->claimed[i].from,
                                           (json_int_t)e->claimed[i].to));
    snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)e->fp);
    o = json_pack("{s:s, s:s, s:I, s:I, s:i, s:I, s:o, s:o, s:[I, I]}", "k",
                  e->key, "f", fp, "i", (json_int_t)e->index, "a",
                  (json_int_t)e->at, "e", e->err, "t", (json_int_t)e->timestamp,
                  "p", p, "c", c, "r", (json_int_t)e->range_start,
                  (json_int_t)e->range_end);
    if (o != NULL && e->errmsg != NULL)
        json_object_set_new(o, "m", json_string(e->errmsg));
    return o;
}

static uint64_t jnum(json_t *v)
{
    return (uint64_t)json_integer_value(v);
}

static struct idem_entry *entry_from_json(json_t *o)
{
    const char *key = json_string_value(json_object_get(o, "k"));
    const char *fp = json_string_value(json_object_get(o, "f"));
    const char *msg = json_string_value(json_object_get(o, "m"));
    json_t *p = json_object_get(o, "p"), *c = json_object_get(o, "c");
    json_t *r = json_object_get(o, "r");
    struct idem_entry *e;
    size_t i;

    if (key == NULL || !idem_key_valid(key) || fp == NULL ||
        !json_is_array(p) || !json_is_array(c))
        return NULL;
    e = entry_new(key, json_array_size(p), json_array_size(c));
    if (e == NULL)
        return NULL;
    e->fp = strtoull(fp, NULL, 16);
    e->index = jnum(json_object_get(o, "i"));
    e->at = (int64_t)jnum(json_object_get(o, "a"));
    e->err = (int)json_integer_value(json_object_get(o, "e"));
    e->timestamp = (int64_t)jnum(json_object_get(o, "t"));
    e->range_start = jnum(json_array_get(r, 0));
    e->range_end = jnum(json_array_get(r, 1));
    if (msg != NULL && (e->errmsg = strdup(msg)) == NULL) {
        entry_free(e);
        return NULL;
    }
    for (i = 0; i < e->n_produced; i++) {
        json_t *x = json_array_get(p, i);
        e->produced[i].partition = (uint32_t)jnum(json_array_get(x, 0));
        e->produced[i].offset = jnum(json_array_get(x, 1));
    }
    for (i = 0; i < e->n_claimed; i++) {
        json_t *x = json_array_get(c, i);
        e->claimed[i].partition = (uint32_t)jnum(json_array_get(x, 0));
        e->claimed[i].from = jnum(json_array_get(x, 1));
        e->claimed[i].to = jnum(json_array_get(x, 2));
    }
    return e;
}

json_t *idem_dump(struct idem_table *t)
{
    json_t *arr = json_array();
    struct idem_entry *e;

    for (e = t->oldest; e != NULL && arr != NULL; e = e->next)
        if (json_array_append_new(arr, entry_json(e)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    return arr;
}

int idem_load(struct idem_table *t, json_t *arr, char *errmsg)
{
    size_t i;

    table_clear(t);
    for (i = 0; i < json_array_size(arr); i++) {
        struct idem_entry *e = entry_from_json(json_array_get(arr, i));
        if (e == NULL) {
            table_clear(t);
            return brk_errf(errmsg, BRK_ECORRUPT, "idempotency key %zu of "
                            "the snapshot is malformed", i);
        }
        append_entry(t, e);
    }
    t->unsaved = NULL;
    return 0;
}

/* ==== standalone journal ==== */

/* Lines of the entries from @from on, newest last. */
static char *lines_from(struct idem_entry *from, uint64_t *n)
{
    struct buf b;
    struct idem_entry *e;
    char *line;

    buf_init(&b);
    *n = 0;
    for (e = from; e != NULL; e = e->next) {
        json_t *o = entry_json(e);
        line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (line == NULL) {
            buf_free(&b);
            return NULL;
        }
        buf_puts(&b, line);
        buf_puts(&b, "\n");
        free(line);
        (*n)++;
    }
    if (b.oom) {
        buf_free(&b);
        return NULL;
    }
    line = buf_steal(&b, NULL);
    return line != NULL ? line : strdup("");
}

static int write_all(int fd, const char *p, size_t len, const char *path,
                     char *errmsg)
{
    if (fsutil_write_all(fd, p, len) != 0)
        return brk_errf(errmsg, BRK_EIO, "write %s: %s", path,
                        strerror(errno));
    return 0;
}

static int open_append(struct idem_table *t, char *errmsg)
{
    int fd = open(t->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

    if (fd < 0)
        return brk_errf(errmsg, BRK_EIO, "open %s: %s", t->path,
                        strerror(errno));
    pthread_mutex_lock(&t->fd_lock);
    if (t->fd >= 0)
        close(t->fd);
    t->fd = fd;
    pthread_mutex_unlock(&t->fd_lock);
    return 0;
}

/* Replace the journal with the live keys (durably), then append to it. */
static int journal_rewrite(struct idem_table *t, char *errmsg)
{
    uint64_t n;
    char *text = lines_from(t->oldest, &n);
    int rv;

    if (text == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "idempotency journal");
    rv = fsutil_write_atomic(t->path, text, strlen(text), errmsg);
    free(text);
    if (rv == 0)
        rv = open_append(t, errmsg);
    if (rv == 0) {
        t->journal_lines = n;
        t->unsaved = NULL;
    }
    return rv;
}

/* Intents (produces about to be applied) seen while loading, until the
 * line of their answer supersedes them. Few at a time: the answer's line
 * follows its intent within the same batch. */
struct intents {
    json_t *list;                    /* array of intent objects */
};

static void intents_drop(struct intents *in, const char *key)
{
    size_t i;

    for (i = 0; i < json_array_size(in->list); i++)
        if (strcmp(json_string_value(json_object_get(
                       json_array_get(in->list, i), "k")), key) == 0) {
            json_array_remove(in->list, i);
            return;
        }
}

/* A crash after an intent's records and before its answer's line: rebuild
 * the answer from the records, or forget the key (nothing was written). */
static void intent_resolve(struct idem_table *t, json_t *o,
                           const struct idem_journal_hooks *hooks)
{
    json_t *rp = json_object_get(o, "rp");
    const char *fp = json_string_value(json_object_get(o, "f"));
    struct cmd_result res = {0};
    struct idem_intent in = {
        .key = json_string_value(json_object_get(o, "k")),
        .fp = fp ? strtoull(fp, NULL, 16) : 0,
        .index = jnum(json_object_get(o, "i")),
        .at = (int64_t)jnum(json_object_get(o, "a")),
        .topic = json_string_value(json_object_get(o, "topic")),
        .n = json_array_size(rp)};
    uint32_t *parts = calloc(in.n ? in.n : 1, sizeof(*parts));
    size_t i;

    if (parts == NULL || in.topic == NULL || in.n == 0 ||
        !idem_key_valid(in.key)) {
        free(parts);
        return;
    }
    for (i = 0; i < in.n; i++)
        parts[i] = (uint32_t)jnum(json_array_get(rp, i));
    in.parts = parts;
    if (hooks->resolve(hooks->ctx, &in, &res))
        idem_record(t, in.key, in.fp, in.index, in.at, &res);
    cmd_result_clear(&res);
    free(parts);
}

/* One line: an intent, or a key with its answer. */
static void load_line(struct idem_table *t, const char *line,
                      struct intents *pending,
                      const struct idem_journal_hooks *hooks)
{
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    struct idem_entry *e;

    if (o != NULL && json_is_array(json_object_get(o, "rp")) &&
        json_is_string(json_object_get(o, "k"))) {
        intents_drop(pending, json_string_value(json_object_get(o, "k")));
        json_array_append_new(pending->list, o);
        return;
    }
    e = o ? entry_from_json(o) : NULL;
    json_decref(o);
    /* A torn last line (crash while appending) does not parse. */
    if (e == NULL)
        return;
    intents_drop(pending, e->key);
    if (!hooks->durable(hooks->ctx, e->index)) {
        entry_free(e);
        return;
    }
    append_entry(t, e);
}

static int journal_load(struct idem_table *t,
                        const struct idem_journal_hooks *hooks, char *errmsg)
{
    struct intents pending = {json_array()};
    char *text, *line, *save = NULL;
    struct idem_entry *e;
    int64_t latest = INT64_MIN;
    size_t len, i;
    int rv = fsutil_read_file(t->path, SIZE_MAX / 2, &text, &len, errmsg);

    if (rv == 0 && pending.list == NULL) {
        free(text);
        rv = brk_errf(errmsg, BRK_ENOMEM, "idempotency journal");
    }
    if (rv != 0) {
        json_decref(pending.list);
        return rv == BRK_ENOT_FOUND ? 0 : rv;
    }
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save))
        load_line(t, line, &pending, hooks);
    free(text);
    for (i = 0; i < json_array_size(pending.list); i++)
        intent_resolve(t, json_array_get(pending.list, i), hooks);
    json_decref(pending.list);
    for (e = t->oldest; e != NULL; e = e->next)
        if (e->at > latest)
            latest = e->at;
    if (latest != INT64_MIN)
        idem_expire(t, latest);
    return 0;
}

int idem_journal_open(struct idem_table *t, const char *path,
                      const struct idem_journal_hooks *hooks, char *errmsg)
{
    int rv;

    free(t->path);
    if ((t->path = strdup(path)) == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "idempotency journal");
    rv = journal_load(t, hooks, errmsg);
    return rv != 0 ? rv : journal_rewrite(t, errmsg);
}

bool idem_journal_active(struct idem_table *t)
{
    return t != NULL && t->path != NULL;
}

int idem_journal_intent(struct idem_table *t, const struct idem_intent *in,
                        char *errmsg)
{
    json_t *o, *rp = json_array();
    char fp[17], *line = NULL;
    size_t i;
    int rv = BRK_ENOMEM;

    if (!idem_journal_active(t)) {
        json_decref(rp);
        return 0;
    }
    for (i = 0; rp != NULL && i < in->n; i++)
        json_array_append_new(rp, json_integer(in->parts[i]));
    snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)in->fp);
    o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:o}", "k", in->key, "f", fp,
                  "i", (json_int_t)in->index, "a", (json_int_t)in->at,
                  "topic", in->topic, "rp", rp);
    if (o != NULL)
        line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (line != NULL) {
        size_t n = strlen(line);
        line[n] = '\n'; /* json_dumps leaves room for its NUL */
        pthread_mutex_lock(&t->fd_lock);
        rv = write_all(t->fd, line, n + 1, t->path, errmsg);
        pthread_mutex_unlock(&t->fd_lock);
        t->journal_lines++;
    }
    free(line);
    return rv == BRK_ENOMEM ? brk_errf(errmsg, rv, "idempotency journal") : rv;
}

/* Rewrite rather than append once most lines are of expired keys. */
static bool journal_bloated(const struct idem_table *t)
{
    return t->journal_lines > 2 * atomic_load(&t->count) + 100000;
}

int idem_journal_append(struct idem_table *t, char *errmsg)
{
    uint64_t n;
    char *text;
    int rv;

    if (t->path == NULL || t->unsaved == NULL)
        return 0;
    if (journal_bloated(t))
        return journal_rewrite(t, errmsg);
    text = lines_from(t->unsaved, &n);
    if (text == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "idempotency journal");
    pthread_mutex_lock(&t->fd_lock);
    rv = write_all(t->fd, text, strlen(text), t->path, errmsg);
    pthread_mutex_unlock(&t->fd_lock);
    free(text);
    if (rv == 0) {
        t->journal_lines += n;
        t->unsaved = NULL;
    }
    return rv;
}

bool idem_journal_pending(struct idem_table *t)
{
    return t != NULL && t->path != NULL && t->unsaved != NULL;
}

int idem_journal_sync(struct idem_table *t, char *errmsg)
{
    int rv = 0;

    if (t == NULL)
        return 0;
    pthread_mutex_lock(&t->fd_lock);
    if (t->fd >= 0 && fsync(t->fd) != 0)
        rv = brk_errf(errmsg, BRK_EIO, "fsync %s: %s", t->path,
                      strerror(errno));
    pthread_mutex_unlock(&t->fd_lock);
    return rv;
}
