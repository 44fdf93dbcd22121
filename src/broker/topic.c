/* Topic registry: topics and their partitions on disk, looked up by name. */
#include "broker/topic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/err.h"
#include "broker/fsutil.h"
#include "broker/log.h"
#include "broker/metrics.h"

#define TOPIC_META_FILE "topic.json"

struct topic_registry {
    pthread_rwlock_t lock;     /* guards the array, not the topics */
    struct topic **topics;     /* sorted by name, one reference each */
    size_t n, cap;
    char topics_dir[1024];
    char trash_dir[1024];
    struct partition_options popt;
    uint64_t trash_seq;
};

bool topic_name_valid(const char *name)
{
    size_t i, len = strnlen(name, TOPIC_NAME_MAX + 1);

    if (len == 0 || len > TOPIC_NAME_MAX)
        return false;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* ==== topic objects ==== */

static void topic_free(struct topic *t)
{
    uint32_t i;

    for (i = 0; i < t->n_partitions; i++)
        if (t->partitions[i] != NULL)
            partition_close(t->partitions[i]);
    free(t->partitions);
    free(t->waiters);
    free(t);
}

void topic_get(struct topic *t)
{
    atomic_fetch_add(&t->refs, 1);
}

void topic_put(struct topic *t)
{
    if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1)
        topic_free(t);
}

static struct topic *topic_alloc(const char *name, uint32_t n_partitions,
                                 int64_t retention_ms, uint64_t index)
{
    struct topic *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->partitions = calloc(n_partitions, sizeof(*t->partitions));
    t->waiters = calloc(n_partitions, sizeof(*t->waiters));
    if (t->partitions == NULL || t->waiters == NULL) {
        free(t->partitions);
        free(t->waiters);
        free(t);
        return NULL;
    }
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->n_partitions = n_partitions;
    t->retention_ms = retention_ms;
    t->created_index = index;
    atomic_init(&t->refs, 1);
    atomic_init(&t->deleted, false);
    atomic_init(&t->next_partition, 0);
    return t;
}

static int topic_open_partitions(struct topic *t,
                                 const struct partition_options *popt,
                                 char *errmsg)
{
    uint32_t i;
    char dir[1600];
    struct partition_recovery rec;
    int rv;

    for (i = 0; i < t->n_partitions; i++) {
        snprintf(dir, sizeof(dir), "%s/%u", t->dir, i);
        memset(&rec, 0, sizeof(rec));
        rv = partition_open(dir, popt, &t->partitions[i], &rec, errmsg);
        if (rv != 0)
            return brk_errwrap(errmsg, rv, "topic %s partition %u", t->name,
                               i);
        metrics_add(MET_STORAGE_INDEX_REBUILDS, rec.indexes_rebuilt);
        metrics_add(MET_STORAGE_CORRUPT_RECORDS, rec.missing_records);
        if (rec.truncated_bytes > 0 || rec.indexes_rebuilt > 0)
            log_warn("recovered %s/%u: cut %llu bytes of torn tail, "
                     "rebuilt %u indexes", t->name, i,
                     (unsigned long long)rec.truncated_bytes,
                     rec.indexes_rebuilt);
    }
    return 0;
}

/* ==== topic.json ==== */

static int meta_write(const struct topic *t, char *errmsg)
{
    json_t *o;
    char *text, path[1600];
    int rv;

    o = json_pack("{s:s, s:I, s:I, s:I}", "name", t->name, "partitions",
                  (json_int_t)t->n_partitions, "retention_ms",
                  (json_int_t)t->retention_ms, "created_index",
                  (json_int_t)t->created_index);
    if (o == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "encode topic metadata");
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "encode topic metadata");
    snprintf(path, sizeof(path), "%s/%s", t->dir, TOPIC_META_FILE);
    rv = fsutil_write_atomic(path, text, strlen(text), errmsg);
    free(text);
    return rv;
}

static int meta_read(const char *dir, const char *name, struct topic **out,
                     char *errmsg)
{
    char path[1600];
    json_error_t jerr;
    json_t *o;
    json_int_t parts = 0, ret = -1, idx = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, TOPIC_META_FILE);
    o = json_load_file(path, 0, &jerr);
    if (o == NULL)
        return brk_errf(errmsg, BRK_ECORRUPT, "%s: %s", path, jerr.text);
    if (json_unpack(o, "{s:I, s?I, s?I}", "partitions", &parts,
                    "retention_ms", &ret, "created_index", &idx) != 0 ||
        parts < 1 || parts > 100000) {
        json_decref(o);
        return brk_errf(errmsg, BRK_ECORRUPT, "%s: bad fields", path);
    }
    json_decref(o);
    *out = topic_alloc(name, (uint32_t)parts, ret, (uint64_t)idx);
    if (*out == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "load topic %s", name);
    snprintf((*out)->dir, sizeof((*out)->dir), "%s", dir);
    return 0;
}

/* ==== registry array ==== */

static size_t reg_find(struct topic_registry *reg, const char *name,
                       bool *found)
{
    size_t lo = 0, hi = reg->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(reg->topics[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Insert @t (the registry takes over the caller's reference). */
static int reg_insert(struct topic_registry *reg, struct topic *t)
{
    bool found;
    size_t pos;

    /* Growing moves the array that readers search under the read lock,
     * so it happens under the write lock too. */
    pthread_rwlock_wrlock(&reg->lock);
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        struct topic **a = realloc(reg->topics, cap * sizeof(*a));
        if (a == NULL) {
            pthread_rwlock_unlock(&reg->lock);
            return BRK_ENOMEM;
        }
        reg->topics = a;
        reg->cap = cap;
    }
    pos = reg_find(reg, t->name, &found);
    memmove(&reg->topics[pos + 1], &reg->topics[pos],
            (reg->n - pos) * sizeof(*reg->topics));
    reg->topics[pos] = t;
    reg->n++;
    pthread_rwlock_unlock(&reg->lock);
    return 0;
}

struct topic *topic_registry_get(struct topic_registry *reg, const char *name)
{
    struct topic *t = NULL;
    bool found;
    size_t pos;

    pthread_rwlock_rdlock(&reg->lock);
    pos = reg_find(reg, name, &found);
    if (found) {
        t = reg->topics[pos];
        topic_get(t);
    }
    pthread_rwlock_unlock(&reg->lock);
    return t;
}

int topic_registry_list(struct topic_registry *reg, struct topic ***out,
                        size_t *n)
{
    size_t i;

    pthread_rwlock_rdlock(&reg->lock);
    *out = calloc(reg->n ? reg->n : 1, sizeof(**out));
    if (*out == NULL) {
        pthread_rwlock_unlock(&reg->lock);
        return BRK_ENOMEM;
    }
    for (i = 0; i < reg->n; i++) {
        (*out)[i] = reg->topics[i];
        topic_get(reg->topics[i]);
    }
    *n = reg->n;
    pthread_rwlock_unlock(&reg->lock);
    return 0;
}

void topic_list_free(struct topic **list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        topic_put(list[i]);
    free(list);
}

uint64_t topic_registry_size_bytes(struct topic_registry *reg)
{
    struct topic **list;
    size_t n, i;
    uint32_t p;
    uint64_t sum = 0;
    struct partition_stats st;

    if (topic_registry_list(reg, &list, &n) != 0)
        return 0;
    for (i = 0; i < n; i++)
        for (p = 0; p < list[i]->n_partitions; p++) {
            partition_stats(list[i]->partitions[p], &st);
            sum += st.size_bytes;
        }
    topic_list_free(list, n);
    return sum;
}

/* ==== open / close ==== */

static int load_topic(struct topic_registry *reg, const char *name,
                      char *errmsg)
{
    char dir[1300], meta[1600];
    struct topic *t;
    int rv;

    snprintf(dir, sizeof(dir), "%s/%s", reg->topics_dir, name);
    snprintf(meta, sizeof(meta), "%s/%s", dir, TOPIC_META_FILE);
    if (!topic_name_valid(name))
        return 0; /* not ours: leave it alone */
    if (access(meta, F_OK) != 0) {
        /* A create that crashed before its metadata was written. */
        log_warn("removing incomplete topic directory %s", dir);
        return fsutil_remove_tree(dir, errmsg);
    }
    rv = meta_read(dir, name, &t, errmsg);
    if (rv != 0)
        return rv;
    rv = topic_open_partitions(t, &reg->popt, errmsg);
    if (rv == 0)
        rv = reg_insert(reg, t);
    if (rv != 0)
        topic_put(t);
    return rv;
}

static int load_topics(struct topic_registry *reg, char *errmsg)
{
    DIR *d = opendir(reg->topics_dir);
    struct dirent *e;
    int rv = 0;

    if (d == NULL)
        return brk_errf(errmsg, BRK_EIO, "open %s: %s", reg->topics_dir,
                        strerror(errno));
    while (rv == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' &&
            (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
            continue;
        rv = load_topic(reg, e->d_name, errmsg);
    }
    closedir(d);
    return rv;
}

/* glibc's default rwlock prefers readers: HTTP threads looking topics up
 * back to back could keep the loop thread waiting in create or delete
 * indefinitely. Prefer the writer (no read lock is ever taken twice by
 * one thread, which this kind would not allow). */
static void lock_init(pthread_rwlock_t *lock)
{
    pthread_rwlockattr_t attr;

    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(lock, &attr);
    pthread_rwlockattr_destroy(&attr);
}

int topic_registry_open(const char *data_dir,
                        const struct partition_options *popt,
                        struct topic_registry **out, char *errmsg)
{
    struct topic_registry *reg = calloc(1, sizeof(*reg));
    int rv;

    if (reg == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "allocate topic registry");
    lock_init(&reg->lock);
    reg->popt = *popt;
    snprintf(reg->topics_dir, sizeof(reg->topics_dir), "%s/topics", data_dir);
    snprintf(reg->trash_dir, sizeof(reg->trash_dir), "%s/trash", data_dir);
    /* Deletes that were interrupted finish now. */
    rv = fsutil_remove_tree(reg->trash_dir, errmsg);
    if (rv == 0)
        rv = fsutil_mkdirs(reg->topics_dir, errmsg);
    if (rv == 0)
        rv = fsutil_mkdirs(reg->trash_dir, errmsg);
    if (rv == 0)
        rv = load_topics(reg, errmsg);
    if (rv != 0) {
        topic_registry_close(reg);
        return rv;
    }
    *out = reg;
    return 0;
}

void topic_registry_close(struct topic_registry *reg)
{
    size_t i;

    if (reg == NULL)
        return;
    for (i = 0; i < reg->n; i++)
        topic_put(reg->topics[i]);
    free(reg->topics);
    pthread_rwlock_destroy(&reg->lock);
    free(reg);
}

/* ==== create / delete ==== */

int topic_registry_create(struct topic_registry *reg, const char *name,
                          uint32_t n_partitions, int64_t retention_ms,
                          uint64_t cmd_index, struct topic **out,
                          char *errmsg)
{
    struct topic *t;
    bool found;
    int rv;

    pthread_rwlock_rdlock(&reg->lock);
    reg_find(reg, name, &found);
    pthread_rwlock_unlock(&reg->lock);
    if (found)
        return brk_errf(errmsg, BRK_ETOPIC_EXISTS, "topic '%s' already exists",
                        name);
    t = topic_alloc(name, n_partitions, retention_ms, cmd_index);
    if (t == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "allocate topic");
    snprintf(t->dir, sizeof(t->dir), "%s/%s", reg->topics_dir, name);
    /* topic.json is written last: a directory without it is a create that
     * did not finish, removed at the next start. */
    rv = fsutil_mkdirs(t->dir, errmsg);
    if (rv == 0)
        rv = topic_open_partitions(t, &reg->popt, errmsg);
    if (rv == 0)
        rv = meta_write(t, errmsg);
    if (rv == 0)
        rv = fsutil_sync_dir(reg->topics_dir, errmsg);
    if (rv == 0)
        rv = reg_insert(reg, t);
    if (rv != 0) {
        char ignored[BRK_ERRMSG_LEN];
        fsutil_remove_tree(t->dir, ignored);
        topic_put(t);
        return rv;
    }
    if (out != NULL)
        *out = t;
    return 0;
}

int topic_registry_delete(struct topic_registry *reg, const char *name,
                          char *errmsg)
{
    struct topic *t;
    bool found;
    size_t pos;
    char trash[1600];
    int rv;

    pthread_rwlock_wrlock(&reg->lock);
    pos = reg_find(reg, name, &found);
    if (!found) {
        pthread_rwlock_unlock(&reg->lock);
        return brk_errf(errmsg, BRK_EUNKNOWN_TOPIC, "unknown topic '%s'",
                        name);
    }
    t = reg->topics[pos];
    memmove(&reg->topics[pos], &reg->topics[pos + 1],
            (reg->n - pos - 1) * sizeof(*reg->topics));
    reg->n--;
    pthread_rwlock_unlock(&reg->lock);
    atomic_store(&t->deleted, true);
    /* Renaming into trash is atomic: a crash leaves either the whole topic
     * or nothing (trash is emptied at start). Open descriptors held by
     * readers stay valid until they finish. */
    snprintf(trash, sizeof(trash), "%s/%s.%llu", reg->trash_dir, name,
             (unsigned long long)++reg->trash_seq);
    if (rename(t->dir, trash) != 0) {
        rv = brk_errf(errmsg, brk_err_from_errno(errno), "rename %s: %s",
                      t->dir, strerror(errno));
        /* Nothing changed on disk (read-only, no permission): the topic
         * stays, as it will after a restart. */
        atomic_store(&t->deleted, false);
        if (reg_insert(reg, t) == 0)
            return rv;
    } else {
        fsutil_sync_dir(reg->topics_dir, errmsg);
        /* The topic is gone once renamed; what cannot be removed now is
         * removed with the trash at the next start. */
        if (fsutil_remove_tree(trash, errmsg) != 0)
            log_warn("delete topic %s: %s", name, errmsg);
        rv = 0;
    }
    topic_put(t);
    return rv;
}
