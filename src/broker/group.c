/* Consumer group offsets: a JSON tree {group: {topic: {"p": offset}}}
 * guarded by a mutex, written whole to groups.json when it changes. */
#include "broker/group.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/err.h"
#include "broker/fsutil.h"

#define GROUP_FILE "groups.json"
#define GROUP_FILE_MAX (256u << 20)

struct group_store {
    pthread_mutex_t lock;
    json_t *root;          /* {group: {topic: {"partition": offset}}} */
    bool dirty;
    uint64_t applied_index;  /* last command applied to the groups */
    char path[1100];
};

static int load_root(struct group_store *gs, const char *text, char *errmsg)
{
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    json_t *groups;

    if (o == NULL)
        return brk_errf(errmsg, BRK_ECORRUPT, "%s: %s", gs->path, jerr.text);
    groups = json_object_get(o, "groups");
    if (!json_is_object(groups)) {
        json_decref(o);
        return brk_errf(errmsg, BRK_ECORRUPT, "%s: no groups object",
                        gs->path);
    }
    json_incref(groups);
    gs->applied_index =
        (uint64_t)json_integer_value(json_object_get(o, "applied_index"));
    json_decref(o);
    json_decref(gs->root);
    gs->root = groups;
    return 0;
}

int group_store_open(const char *data_dir, struct group_store **out,
                     char *errmsg)
{
    struct group_store *gs = calloc(1, sizeof(*gs));
    char *text;
    size_t len;
    int rv;

    if (gs == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "allocate group store");
    pthread_mutex_init(&gs->lock, NULL);
    snprintf(gs->path, sizeof(gs->path), "%s/%s", data_dir, GROUP_FILE);
    gs->root = json_object();
    rv = fsutil_read_file(gs->path, GROUP_FILE_MAX, &text, &len, errmsg);
    if (rv == BRK_ENOT_FOUND) {
        rv = 0;
    } else if (rv == 0) {
        rv = load_root(gs, text, errmsg);
        free(text);
    }
    if (rv != 0 || gs->root == NULL) {
        group_store_close(gs);
        return rv ? rv : BRK_ENOMEM;
    }
    *out = gs;
    return 0;
}

void group_store_close(struct group_store *gs)
{
    if (gs == NULL)
        return;
    json_decref(gs->root);
    pthread_mutex_destroy(&gs->lock);
    free(gs);
}

/* Get or create root[a][b] as an object. Lock held. */
static json_t *child_object(json_t *parent, const char *key)
{
    json_t *o = json_object_get(parent, key);

    if (json_is_object(o))
        return o;
    o = json_object();
    if (o == NULL || json_object_set_new(parent, key, o) != 0)
        return NULL;
    return o;
}

int group_commit(struct group_store *gs, const char *group, const char *topic,
                 uint32_t partition, uint64_t offset)
{
    char key[16];
    json_t *g, *t;
    int rv = BRK_ENOMEM;

    snprintf(key, sizeof(key), "%u", partition);
    pthread_mutex_lock(&gs->lock);
    g = child_object(gs->root, group);
    t = g ? child_object(g, topic) : NULL;
    if (t != NULL &&
        json_object_set_new(t, key, json_integer((json_int_t)offset)) == 0) {
        gs->dirty = true;
        rv = 0;
    }
    pthread_mutex_unlock(&gs->lock);
    return rv;
}

int group_offset(struct group_store *gs, const char *group, const char *topic,
                 uint32_t partition, uint64_t *offset)
{
    char key[16];
    json_t *v;
    int rv = BRK_ENOT_FOUND;

    snprintf(key, sizeof(key), "%u", partition);
    pthread_mutex_lock(&gs->lock);
    v = json_object_get(json_object_get(json_object_get(gs->root, group),
                                        topic), key);
    if (json_is_integer(v)) {
        *offset = (uint64_t)json_integer_value(v);
        rv = 0;
    }
    pthread_mutex_unlock(&gs->lock);
    return rv;
}

int group_delete(struct group_store *gs, const char *group)
{
    int rv;

    pthread_mutex_lock(&gs->lock);
    rv = json_object_del(gs->root, group) == 0 ? 0 : BRK_EUNKNOWN_GROUP;
    if (rv == 0)
        gs->dirty = true;
    pthread_mutex_unlock(&gs->lock);
    return rv;
}

void group_forget_topic(struct group_store *gs, const char *topic)
{
    const char *name;
    json_t *g;

    pthread_mutex_lock(&gs->lock);
    json_object_foreach(gs->root, name, g)
    {
        if (json_object_del(g, topic) == 0)
            gs->dirty = true;
    }
    pthread_mutex_unlock(&gs->lock);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *group_list_json(struct group_store *gs)
{
    json_t *arr = json_array(), *g;
    const char *name, **names;
    size_t n = 0, i;

    pthread_mutex_lock(&gs->lock);
    names = calloc(json_object_size(gs->root) + 1, sizeof(*names));
    if (names != NULL) {
        json_object_foreach(gs->root, name, g) names[n++] = name;
        qsort(names, n, sizeof(*names), cmp_str);
        for (i = 0; i < n; i++)
            json_array_append_new(arr, json_string(names[i]));
        free(names);
    }
    pthread_mutex_unlock(&gs->lock);
    return arr;
}

static void append_topic_offsets(json_t *arr, const char *topic, json_t *parts)
{
    const char *key;
    json_t *v;

    json_object_foreach(parts, key, v)
    {
        json_array_append_new(
            arr, json_pack("{s:s, s:i, s:I}", "topic", topic, "partition",
                           atoi(key), "offset", json_integer_value(v)));
    }
}

json_t *group_offsets_json(struct group_store *gs, const char *group,
                           const char *topic)
{
    json_t *g, *arr = NULL, *parts;
    const char *tname;

    pthread_mutex_lock(&gs->lock);
    g = json_object_get(gs->root, group);
    if (g != NULL) {
        arr = json_array();
        json_object_foreach(g, tname, parts)
        {
            if (topic == NULL || strcmp(topic, tname) == 0)
                append_topic_offsets(arr, tname, parts);
        }
    }
    pthread_mutex_unlock(&gs->lock);
    return arr;
}

char *group_store_dump(struct group_store *gs)
{
    json_t *o;
    char *text;

    pthread_mutex_lock(&gs->lock);
    o = json_pack("{s:O, s:I}", "groups", gs->root, "applied_index",
                  (json_int_t)gs->applied_index);
    text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    pthread_mutex_unlock(&gs->lock);
    json_decref(o);
    return text;
}

char *group_store_take_dirty(struct group_store *gs, bool *err)
{
    char *text;
    bool dirty;

    *err = false;
    pthread_mutex_lock(&gs->lock);
    dirty = gs->dirty;
    gs->dirty = false;
    pthread_mutex_unlock(&gs->lock);
    if (!dirty)
        return NULL;
    text = group_store_dump(gs);
    *err = text == NULL;
    return text;
}

int group_store_write(struct group_store *gs, const char *text, char *errmsg)
{
    return fsutil_write_atomic(gs->path, text, strlen(text), errmsg);
}

int group_store_load_text(struct group_store *gs, const char *text,
                          char *errmsg)
{
    int rv;

    pthread_mutex_lock(&gs->lock);
    rv = load_root(gs, text, errmsg);
    if (rv == 0)
        gs->dirty = true;
    pthread_mutex_unlock(&gs->lock);
    return rv;
}

uint64_t group_store_applied_index(struct group_store *gs)
{
    return gs->applied_index;
}

void group_store_set_applied_index(struct group_store *gs, uint64_t index)
{
    pthread_mutex_lock(&gs->lock);
    if (index > gs->applied_index)
        gs->applied_index = index;
    pthread_mutex_unlock(&gs->lock);
}

int group_store_revert(struct group_store *gs, char *errmsg)
{
    char *text = NULL;
    size_t len;
    int rv = fsutil_read_file(gs->path, GROUP_FILE_MAX, &text, &len, errmsg);

    pthread_mutex_lock(&gs->lock);
    if (rv == BRK_ENOT_FOUND) {
        json_decref(gs->root);
        gs->root = json_object();
        gs->applied_index = 0;
        rv = gs->root != NULL ? 0 : BRK_ENOMEM;
    } else if (rv == 0) {
        rv = load_root(gs, text, errmsg);
    }
    /* What could not be reloaded stays in memory, written at the next
     * change or flush. */
    gs->dirty = rv != 0;
    pthread_mutex_unlock(&gs->lock);
    free(text);
    return rv;
}

void group_store_mark_dirty(struct group_store *gs)
{
    pthread_mutex_lock(&gs->lock);
    gs->dirty = true;
    pthread_mutex_unlock(&gs->lock);
}
