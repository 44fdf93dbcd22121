/* Broker configuration: a table of keys (path, type, default, bounds,
 * target field) driving defaults, JSON loading and validation. */
#include "broker/config.h"

#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/addr.h"
#include "broker/err.h"
#include "broker/log.h"
#include "broker/secret.h"

/* ==== The key table ==================================================== */

enum cfg_type {
    CFG_STRING,   /* char[size] */
    CFG_BOOL,     /* bool */
    CFG_INT64,    /* int64_t, JSON integer */
    CFG_UINT64,   /* uint64_t, JSON integer */
    CFG_DURATION, /* int64_t milliseconds, Go-style duration string */
    CFG_PORT,     /* int, JSON integer or numeric string, 1..65535 */
    CFG_MEMBERS,  /* cluster.initial_members + n_initial_members */
};

#define CFG_MINUS1_OK 0x1 /* -1 ("none") is valid besides min..max */
#define CFG_NONEMPTY 0x2  /* a string that must not be "" */

/* Returns NULL when @s is acceptable, else the reason it is not. */
typedef const char *(*cfg_check_cb)(const char *s);

struct cfg_row {
    const char *path;   /* dotted JSON path, as in CONFIG.md */
    enum cfg_type type;
    size_t offset;      /* of the target field in struct config */
    size_t size;        /* of the target field */
    int64_t def;        /* default of numbers, bools, durations (ms) */
    const char *def_str; /* default of strings */
    int64_t min;        /* inclusive bounds of numbers and durations */
    int64_t max;
    unsigned flags;     /* CFG_MINUS1_OK, CFG_NONEMPTY */
    cfg_check_cb check; /* extra check of strings, or NULL */
};

#define CFG_FIELD(f) \
    .offset = offsetof(struct config, f), \
    .size = sizeof(((struct config *)0)->f)

#define MS_PER_HOUR (3600 * 1000LL)

static const char *check_log_level(const char *s);
static const char *check_host_port_or_empty(const char *s);
static const char *check_advertise(const char *s);

static const struct cfg_row cfg_rows[] = {
    {.path = "data_dir", .type = CFG_STRING, CFG_FIELD(data_dir),
     .def_str = "./data", .flags = CFG_NONEMPTY},
    {.path = "max_topic_partitions", .type = CFG_INT64,
     CFG_FIELD(max_topic_partitions), .def = 16, .min = 1, .max = 10000},
    /* Its upper bound is max_topic_partitions, checked once both are read. */
    {.path = "default_partitions", .type = CFG_INT64,
     CFG_FIELD(default_partitions), .def = 1, .min = 1, .max = 10000},
    {.path = "auto_create_topics", .type = CFG_BOOL,
     CFG_FIELD(auto_create_topics), .def = 1},
    {.path = "segment_size", .type = CFG_INT64, CFG_FIELD(segment_size),
     .def = 1073741824, .min = 1024, .max = 1LL << 40},
    {.path = "retention_time", .type = CFG_DURATION, CFG_FIELD(retention_ms),
     .def = 168 * MS_PER_HOUR, .min = 0, .max = INT64_MAX},
    /* Zero would make the retention timer spin. */
    {.path = "cleanup_interval", .type = CFG_DURATION,
     CFG_FIELD(cleanup_interval_ms), .def = 60 * 1000, .min = 1,
     .max = INT64_MAX},
    {.path = "retention_bytes", .type = CFG_INT64, CFG_FIELD(retention_bytes),
     .def = -1, .min = 0, .max = INT64_MAX, .flags = CFG_MINUS1_OK},
    /* Its upper bound is max_request_bytes, checked once both are read. */
    {.path = "max_message_size", .type = CFG_INT64,
     CFG_FIELD(max_message_size), .def = 1048576, .min = 1,
     .max = 1LL << 31},
    {.path = "max_request_bytes", .type = CFG_INT64,
     CFG_FIELD(max_request_bytes), .def = 16777216, .min = 1024,
     .max = 1LL << 31},
    {.path = "max_storage_size", .type = CFG_INT64,
     CFG_FIELD(max_storage_size), .def = -1, .min = 1, .max = INT64_MAX,
     .flags = CFG_MINUS1_OK},
    {.path = "flush_interval", .type = CFG_DURATION,
     CFG_FIELD(flush_interval_ms), .def = 0, .min = 0, .max = INT64_MAX},
    /* Replica comparison (docs/clustering.md): how often the leader
     * compares digests, and the records per digest chunk. */
    {.path = "digest_interval", .type = CFG_DURATION,
     CFG_FIELD(digest_interval_ms), .def = 60 * 1000, .min = 0,
     .max = INT64_MAX},
    {.path = "digest_chunk", .type = CFG_INT64, CFG_FIELD(digest_chunk),
     .def = 1024, .min = 16, .max = 1 << 20},
    /* 0s turns the periodic scrub off (the verification at start stays). */
    {.path = "scrub_interval", .type = CFG_DURATION,
     CFG_FIELD(scrub_interval_ms), .def = 24 * MS_PER_HOUR, .min = 0,
     .max = INT64_MAX},
    {.path = "scrub_bytes_per_s", .type = CFG_INT64,
     CFG_FIELD(scrub_bytes_per_s), .def = 50LL << 20, .min = 1,
     .max = INT64_MAX},
    /* Idempotency keys (API.md v2 "Exactly-once writes"). */
    {.path = "idempotency_window", .type = CFG_DURATION,
     CFG_FIELD(idempotency_window_ms), .def = 10 * 60 * 1000, .min = 1000,
     .max = INT64_MAX},
    {.path = "idempotency_max_keys", .type = CFG_INT64,
     CFG_FIELD(idempotency_max_keys), .def = 1000000, .min = 1,
     .max = 100000000},

    {.path = "server.host", .type = CFG_STRING, CFG_FIELD(server.host),
     .def_str = "0.0.0.0", .flags = CFG_NONEMPTY},
    {.path = "server.port", .type = CFG_PORT, CFG_FIELD(server.port),
     .def = 9092},
    /* Other nodes relay writes to it: the same rule as for announced
     * member addresses (addr.h). */
    {.path = "server.advertise", .type = CFG_STRING,
     CFG_FIELD(server.advertise), .def_str = "",
     .check = check_advertise},
    {.path = "server.log_file", .type = CFG_STRING,
     CFG_FIELD(server.log_file), .def_str = ""},
    {.path = "server.log_level", .type = CFG_STRING,
     CFG_FIELD(server.log_level), .def_str = "info",
     .check = check_log_level},
    /* MHD's per-IP limit. A follower keeps one keep-alive connection per
     * HTTP pool thread (32) to the leader: stay well above that. */
    {.path = "server.max_connections_per_client", .type = CFG_INT64,
     CFG_FIELD(server.max_connections_per_client), .def = 0, .min = 0,
     .max = 100000},

    {.path = "cluster.enabled", .type = CFG_BOOL, CFG_FIELD(cluster.enabled),
     .def = 0},
    /* 0 means "not set"; required (>= 1) only when the cluster is enabled. */
    {.path = "cluster.node_id", .type = CFG_UINT64, CFG_FIELD(cluster.node_id),
     .def = 0, .min = 1, .max = INT64_MAX},
    {.path = "cluster.raft_address", .type = CFG_STRING,
     CFG_FIELD(cluster.raft_address), .def_str = "",
     .check = check_host_port_or_empty},
    {.path = "cluster.initial_members", .type = CFG_MEMBERS,
     CFG_FIELD(cluster.initial_members)},
    {.path = "cluster.data_dir", .type = CFG_STRING,
     CFG_FIELD(cluster.data_dir), .def_str = ""},
    /* The *_rtt bounds keep rtt_ms * election_rtt within an unsigned
     * millisecond count, which is what c-raft takes. */
    {.path = "cluster.rtt_ms", .type = CFG_INT64, CFG_FIELD(cluster.rtt_ms),
     .def = 100, .min = 1, .max = 60000},
    {.path = "cluster.election_rtt", .type = CFG_INT64,
     CFG_FIELD(cluster.election_rtt), .def = 10, .min = 2, .max = 10000},
    {.path = "cluster.heartbeat_rtt", .type = CFG_INT64,
     CFG_FIELD(cluster.heartbeat_rtt), .def = 1, .min = 1, .max = 10000},
    {.path = "cluster.check_quorum", .type = CFG_BOOL,
     CFG_FIELD(cluster.check_quorum), .def = 1},
    {.path = "cluster.snapshot_entries", .type = CFG_INT64,
     CFG_FIELD(cluster.snapshot_entries), .def = 10000, .min = 1,
     .max = UINT32_MAX},
    {.path = "cluster.compaction_overhead", .type = CFG_INT64,
     CFG_FIELD(cluster.compaction_overhead), .def = 5000, .min = 0,
     .max = UINT32_MAX},
    /* Read at load time into cluster.secret (see load_secret). */
    {.path = "cluster.secret_file", .type = CFG_STRING,
     CFG_FIELD(cluster.secret_file), .def_str = ""},
};

#define CFG_N_ROWS (sizeof cfg_rows / sizeof cfg_rows[0])

/* Objects that hold nested keys ("server.port"). */
static const char *const cfg_sections[] = {"server", "cluster"};
#define CFG_N_SECTIONS (sizeof cfg_sections / sizeof cfg_sections[0])

/* ==== Small helpers ==================================================== */

static void *field_ptr(struct config *c, const struct cfg_row *row)
{
    return (char *)c + row->offset;
}

/* "NAME: field 'PATH': <message>", always BRK_EINVAL. */
__attribute__((format(printf, 4, 5))) static int field_err(
    char *errmsg, const char *name, const char *path, const char *fmt, ...)
{
    char text[BRK_ERRMSG_LEN];
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(text, sizeof text, fmt, ap) < 0) {
        text[0] = '\0';
    }
    va_end(ap);
    return brk_errf(errmsg, BRK_EINVAL, "%s: field '%s': %s", name, path,
                    text);
}

/* Digits only, no sign or spaces, value 1..65535. Returns 0 or -1. */
static int parse_port_digits(const char *s, int *port)
{
    long v = 0;
    const char *p;

    if (*s == '\0') {
        return -1;
    }
    for (p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        v = v * 10 + (*p - '0');
        if (v > 65535) {
            return -1;
        }
    }
    if (v < 1) {
        return -1;
    }
    *port = (int)v;
    return 0;
}

/* Length of the host part of "host:port" (up to the last ':'), or -1. */
static int host_port_split(const char *s, int *port)
{
    const char *colon = strrchr(s, ':');

    if (colon == NULL || colon == s) {
        return -1;
    }
    if (parse_port_digits(colon + 1, port) != 0) {
        return -1;
    }
    return (int)(colon - s);
}

static const char *check_host_port(const char *s)
{
    int port;

    if (host_port_split(s, &port) < 0) {
        return "must be \"host:port\" with a port 1..65535";
    }
    return NULL;
}

static const char *check_host_port_or_empty(const char *s)
{
    return s[0] == '\0' ? NULL : check_host_port(s);
}

static const char *check_advertise(const char *s)
{
    if (s[0] == '\0' || addr_http_valid(s)) {
        return NULL;
    }
    return "must be \"host:port\": a host name, IPv4 address or [IPv6] "
           "address and a port 1..65535, no spaces or control characters";
}

static const char *check_log_level(const char *s)
{
    enum log_level level;

    if (log_level_parse(s, &level) != 0) {
        return "must be one of \"debug\", \"info\", \"warn\", \"error\"";
    }
    return NULL;
}

/* ==== Defaults ========================================================= */

static void set_row_default(struct config *c, const struct cfg_row *row)
{
    void *p = field_ptr(c, row);

    switch (row->type) {
        case CFG_STRING:
            /* Defaults are short literals; the table is ours. */
            snprintf(p, row->size, "%s", row->def_str);
            break;
        case CFG_BOOL:
            *(bool *)p = row->def != 0;
            break;
        case CFG_INT64:
        case CFG_DURATION:
            *(int64_t *)p = row->def;
            break;
        case CFG_UINT64:
            *(uint64_t *)p = (uint64_t)row->def;
            break;
        case CFG_PORT:
            *(int *)p = (int)row->def;
            break;
        case CFG_MEMBERS:
            c->cluster.n_initial_members = 0;
            break;
    }
}

static void set_defaults(struct config *c)
{
    size_t i;

    memset(c, 0, sizeof *c);
    for (i = 0; i < CFG_N_ROWS; i++) {
        set_row_default(c, &cfg_rows[i]);
    }
}

/* server.advertise = host of cluster.raft_address (or 127.0.0.1) + port. */
static int derive_advertise(struct config *c)
{
    const char *host = "127.0.0.1";
    int host_len = (int)strlen(host);
    int port;
    int n;

    if (c->server.advertise[0] != '\0') {
        return 0;
    }
    if (c->cluster.raft_address[0] != '\0') {
        n = host_port_split(c->cluster.raft_address, &port);
        if (n > 0) {
            host = c->cluster.raft_address;
            host_len = n;
        }
    }
    n = snprintf(c->server.advertise, sizeof c->server.advertise, "%.*s:%d",
                 host_len, host, c->server.port);
    if (n < 0 || (size_t)n >= sizeof c->server.advertise) {
        c->server.advertise[0] = '\0';
        return -1;
    }
    return 0;
}

void config_defaults(struct config *c)
{
    set_defaults(c);
    derive_advertise(c);
}

/* ==== Reading one key ================================================== */

static int read_string(char *dst, size_t size, const char *path,
                       const json_t *v, const char *name, char *errmsg)
{
    const char *s;
    size_t len;

    if (!json_is_string(v)) {
        return field_err(errmsg, name, path, "must be a string");
    }
    s = json_string_value(v);
    len = json_string_length(v);
    /* Never truncate: a cut path or address would fail later, far from
     * the cause. */
    if (len >= size) {
        return field_err(errmsg, name, path,
                         "too long (%zu bytes, at most %zu)", len, size - 1);
    }
    memcpy(dst, s, len + 1);
    return 0;
}

static int apply_string(struct config *c, const struct cfg_row *row,
                        const json_t *v, const char *name, char *errmsg)
{
    char *dst = field_ptr(c, row);
    const char *why;
    int rv;

    rv = read_string(dst, row->size, row->path, v, name, errmsg);
    if (rv != 0) {
        return rv;
    }
    if ((row->flags & CFG_NONEMPTY) && dst[0] == '\0') {
        return field_err(errmsg, name, row->path, "must not be empty");
    }
    if (row->check != NULL && (why = row->check(dst)) != NULL) {
        return field_err(errmsg, name, row->path, "%s (got \"%.64s\")", why,
                         dst);
    }
    return 0;
}

static int check_range(const struct cfg_row *row, int64_t x,
                       const char *name, char *errmsg)
{
    const char *none = (row->flags & CFG_MINUS1_OK) ? "-1 or " : "";

    if ((x >= row->min && x <= row->max) ||
        ((row->flags & CFG_MINUS1_OK) && x == -1)) {
        return 0;
    }
    if (row->max == INT64_MAX) {
        return field_err(errmsg, name, row->path,
                         "must be %s>= %lld (got %lld)", none,
                         (long long)row->min, (long long)x);
    }
    return field_err(errmsg, name, row->path, "must be %s%lld..%lld (got %lld)",
                     none, (long long)row->min, (long long)row->max,
                     (long long)x);
}

static int apply_int(struct config *c, const struct cfg_row *row,
                     const json_t *v, const char *name, char *errmsg)
{
    int64_t x;
    int rv;

    if (!json_is_integer(v)) {
        return field_err(errmsg, name, row->path, "must be an integer");
    }
    x = (int64_t)json_integer_value(v);
    rv = check_range(row, x, name, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (row->type == CFG_UINT64) {
        *(uint64_t *)field_ptr(c, row) = (uint64_t)x;
    } else {
        *(int64_t *)field_ptr(c, row) = x;
    }
    return 0;
}

static int apply_duration(struct config *c, const struct cfg_row *row,
                          const json_t *v, const char *name, char *errmsg)
{
    int64_t ms;

    if (!json_is_string(v)) {
        return field_err(errmsg, name, row->path,
                         "must be a duration string such as \"90s\" or "
                         "\"1h30m\"");
    }
    if (config_parse_duration(json_string_value(v), &ms) != 0) {
        return field_err(errmsg, name, row->path,
                         "bad duration \"%.64s\" (a number and unit, e.g. "
                         "7d, 168h, 1h30m, 90s, 500ms; units ns us ms s m h d)",
                         json_string_value(v));
    }
    if (ms < row->min) {
        return field_err(errmsg, name, row->path,
                         "must be at least %lldms (got \"%.64s\")",
                         (long long)row->min, json_string_value(v));
    }
    *(int64_t *)field_ptr(c, row) = ms;
    return 0;
}

static int apply_port(struct config *c, const struct cfg_row *row,
                      const json_t *v, const char *name, char *errmsg)
{
    json_int_t x;
    int port;

    if (json_is_integer(v)) {
        x = json_integer_value(v);
        if (x < 1 || x > 65535) {
            goto bad;
        }
        port = (int)x;
    } else if (json_is_string(v)) {
        if (parse_port_digits(json_string_value(v), &port) != 0) {
            goto bad;
        }
    } else {
        goto bad;
    }
    *(int *)field_ptr(c, row) = port;
    return 0;
bad:
    return field_err(errmsg, name, row->path,
                     "must be a number or numeric string 1..65535");
}

static int apply_bool(struct config *c, const struct cfg_row *row,
                      const json_t *v, const char *name, char *errmsg)
{
    if (!json_is_boolean(v)) {
        return field_err(errmsg, name, row->path, "must be true or false");
    }
    *(bool *)field_ptr(c, row) = json_is_true(v);
    return 0;
}

/* One entry of cluster.initial_members, checked against earlier ones. */
static int apply_member(struct config *c, size_t i, const json_t *v,
                        const char *name, char *errmsg)
{
    char path[64];
    char *dst = c->cluster.initial_members[i];
    const char *why;
    size_t j;
    int rv;

    snprintf(path, sizeof path, "cluster.initial_members[%zu]", i);
    rv = read_string(dst, CONFIG_ADDR_MAX, path, v, name, errmsg);
    if (rv != 0) {
        return rv;
    }
    if ((why = check_host_port(dst)) != NULL) {
        return field_err(errmsg, name, path, "%s (got \"%.64s\")", why, dst);
    }
    for (j = 0; j < i; j++) {
        if (strcmp(c->cluster.initial_members[j], dst) == 0) {
            return field_err(errmsg, name, path,
                             "\"%.64s\" is listed twice (also entry %zu)",
                             dst, j);
        }
    }
    return 0;
}

static int apply_members(struct config *c, const struct cfg_row *row,
                         const json_t *v, const char *name, char *errmsg)
{
    size_t i;
    int rv;

    if (!json_is_array(v)) {
        return field_err(errmsg, name, row->path,
                         "must be an array of \"host:port\" strings");
    }
    if (json_array_size(v) > CONFIG_MAX_MEMBERS) {
        return field_err(errmsg, name, row->path,
                         "at most %d members (got %zu)", CONFIG_MAX_MEMBERS,
                         json_array_size(v));
    }
    c->cluster.n_initial_members = 0;
    for (i = 0; i < json_array_size(v); i++) {
        rv = apply_member(c, i, json_array_get(v, i), name, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    c->cluster.n_initial_members = (int)json_array_size(v);
    return 0;
}

static int apply_row(struct config *c, const struct cfg_row *row,
                     const json_t *v, const char *name, char *errmsg)
{
    switch (row->type) {
        case CFG_STRING:
            return apply_string(c, row, v, name, errmsg);
        case CFG_BOOL:
            return apply_bool(c, row, v, name, errmsg);
        case CFG_INT64:
        case CFG_UINT64:
            return apply_int(c, row, v, name, errmsg);
        case CFG_DURATION:
            return apply_duration(c, row, v, name, errmsg);
        case CFG_PORT:
            return apply_port(c, row, v, name, errmsg);
        case CFG_MEMBERS:
            return apply_members(c, row, v, name, errmsg);
    }
    return brk_errf(errmsg, BRK_EINTERNAL, "config: bad table row %s",
                    row->path);
}

/* ==== Walking the document ============================================= */

/* The value at a dotted @path ("server.port"), or NULL when absent. */
static json_t *lookup(json_t *root, const char *path)
{
    const char *dot = strchr(path, '.');
    char section[32];
    json_t *obj;

    if (dot == NULL) {
        return json_object_get(root, path);
    }
    snprintf(section, sizeof section, "%.*s", (int)(dot - path), path);
    obj = json_object_get(root, section);
    if (!json_is_object(obj)) {
        return NULL;
    }
    return json_object_get(obj, dot + 1);
}

static int check_sections(json_t *root, const char *name, char *errmsg)
{
    json_t *v;
    size_t i;

    for (i = 0; i < CFG_N_SECTIONS; i++) {
        v = json_object_get(root, cfg_sections[i]);
        if (v != NULL && !json_is_object(v) && !json_is_null(v)) {
            return field_err(errmsg, name, cfg_sections[i],
                             "must be an object");
        }
    }
    return 0;
}

static int apply_rows(struct config *c, json_t *root, const char *name,
                      char *errmsg)
{
    json_t *v;
    size_t i;
    int rv;

    for (i = 0; i < CFG_N_ROWS; i++) {
        v = lookup(root, cfg_rows[i].path);
        /* null keeps the default, as Go's encoding/json does. */
        if (v == NULL || json_is_null(v)) {
            continue;
        }
        rv = apply_row(c, &cfg_rows[i], v, name, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int is_known(const char *section, const char *key)
{
    char path[160];
    size_t i;

    if (section == NULL) {
        for (i = 0; i < CFG_N_SECTIONS; i++) {
            if (strcmp(key, cfg_sections[i]) == 0) {
                return 1;
            }
        }
        snprintf(path, sizeof path, "%s", key);
    } else {
        snprintf(path, sizeof path, "%s.%s", section, key);
    }
    for (i = 0; i < CFG_N_ROWS; i++) {
        if (strcmp(path, cfg_rows[i].path) == 0) {
            return 1;
        }
    }
    return 0;
}

static void record_unknown(struct config *c, const char *section,
                           const char *key)
{
    char *dst;

    if (is_known(section, key) || c->n_unknown >= CONFIG_MAX_UNKNOWN) {
        return;
    }
    dst = c->unknown[c->n_unknown++];
    /* Only a name for a warning line, so a cut is harmless here. */
    if (section == NULL) {
        snprintf(dst, sizeof c->unknown[0], "%.120s", key);
    } else {
        snprintf(dst, sizeof c->unknown[0], "%s.%.100s", section, key);
    }
}

static void collect_unknown(struct config *c, json_t *root)
{
    const char *key;
    json_t *v;
    json_t *sv;
    size_t i;

    json_object_foreach(root, key, v) {
        record_unknown(c, NULL, key);
    }
    for (i = 0; i < CFG_N_SECTIONS; i++) {
        sv = json_object_get(root, cfg_sections[i]);
        if (!json_is_object(sv)) {
            continue;
        }
        json_object_foreach(sv, key, v) {
            record_unknown(c, cfg_sections[i], key);
        }
    }
}

/* ==== Checks across keys =============================================== */

static int validate_bounds(const struct config *c, const char *name,
                           char *errmsg)
{
    if (c->default_partitions > c->max_topic_partitions) {
        return field_err(errmsg, name, "default_partitions",
                         "must be 1..max_topic_partitions (%lld), got %lld",
                         (long long)c->max_topic_partitions,
                         (long long)c->default_partitions);
    }
    if (c->max_message_size > c->max_request_bytes) {
        return field_err(errmsg, name, "max_message_size",
                         "must be 1..max_request_bytes (%lld), got %lld",
                         (long long)c->max_request_bytes,
                         (long long)c->max_message_size);
    }
    if (c->cluster.heartbeat_rtt >= c->cluster.election_rtt) {
        return field_err(errmsg, name, "cluster.heartbeat_rtt",
                         "must be less than cluster.election_rtt (%lld), "
                         "got %lld",
                         (long long)c->cluster.election_rtt,
                         (long long)c->cluster.heartbeat_rtt);
    }
    return 0;
}

/* Node i is entry i-1 of initial_members: default raft_address from it, or
 * insist that an explicit one agrees, since a mismatch splits the cluster
 * view between this node and its peers. */
static int resolve_raft_address(struct config *c, const char *name,
                                char *errmsg)
{
    struct config_cluster *cl = &c->cluster;
    const char *member;

    if (cl->node_id > (uint64_t)cl->n_initial_members) {
        if (cl->raft_address[0] == '\0') {
            return field_err(errmsg, name, "cluster.raft_address",
                             "required when cluster.enabled is true and "
                             "cluster.node_id (%llu) is not in "
                             "cluster.initial_members",
                             (unsigned long long)cl->node_id);
        }
        return 0;
    }
    member = cl->initial_members[cl->node_id - 1];
    if (cl->raft_address[0] == '\0') {
        memcpy(cl->raft_address, member, strlen(member) + 1);
        return 0;
    }
    if (strcmp(cl->raft_address, member) != 0) {
        return field_err(errmsg, name, "cluster.raft_address",
                         "\"%.64s\" differs from \"%.64s\", the entry of "
                         "node %llu in cluster.initial_members (index %llu)",
                         cl->raft_address, member,
                         (unsigned long long)cl->node_id,
                         (unsigned long long)(cl->node_id - 1));
    }
    return 0;
}

/* c-raft's TCP transport takes numeric IPv4 "a.b.c.d:port" only: a host
 * name fails inside raft_start, far from the config. */
bool config_raft_address_valid(const char *s)
{
    char host[64];
    struct in_addr a;
    int port, n = host_port_split(s, &port);

    if (n <= 0 || (size_t)n >= sizeof(host))
        return false;
    memcpy(host, s, (size_t)n);
    host[n] = '\0';
    return inet_pton(AF_INET, host, &a) == 1;
}

int config_resolve_raft_address(const char *in, char *out, size_t cap,
                                char *why, size_t why_cap)
{
    struct addrinfo hints = {0}, *res = NULL;
    char host[256], ip[INET_ADDRSTRLEN];
    int port, rv, n = host_port_split(in, &port);

    if (n <= 0 || (size_t)n >= sizeof(host)) {
        snprintf(why, why_cap, "must be \"host:port\" with a port 1..65535");
        return -1;
    }
    memcpy(host, in, (size_t)n);
    host[n] = '\0';
    /* c-raft 0.15 parses addresses with uv_ip4_addr: IPv4 only. */
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    rv = getaddrinfo(host, NULL, &hints, &res);
    if (rv != 0 || res == NULL) {
        snprintf(why, why_cap, "cannot resolve \"%.64s\" to an IPv4 address "
                 "(%s); the Raft transport carries IPv4 only", host,
                 rv != 0 ? gai_strerror(rv) : "no address");
        return -1;
    }
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip,
              sizeof(ip));
    freeaddrinfo(res);
    rv = snprintf(out, cap, "%s:%d", ip, port);
    if (rv < 0 || (size_t)rv >= cap) {
        snprintf(why, why_cap, "resolved address is too long");
        return -1;
    }
    return 0;
}

/* Resolve @addr (a field's value, CONFIG_ADDR_MAX bytes) in place. */
static int resolve_field(char *addr, const char *name, const char *field,
                         char *errmsg)
{
    char out[CONFIG_ADDR_MAX], why[192];

    if (config_resolve_raft_address(addr, out, sizeof(out), why,
                                    sizeof(why)) != 0)
        return field_err(errmsg, name, field, "\"%.64s\": %s", addr, why);
    memcpy(addr, out, strlen(out) + 1);
    return 0;
}

/* Host names become numeric IPv4 addresses here, once at start, since
 * c-raft's transport cannot resolve them; compared and used resolved. */
static int validate_raft_addresses(struct config_cluster *cl,
                                   const char *name, char *errmsg)
{
    char field[64];
    int i, j, rv;

    for (i = 0; i < cl->n_initial_members; i++) {
        snprintf(field, sizeof(field), "cluster.initial_members[%d]", i);
        rv = resolve_field(cl->initial_members[i], name, field, errmsg);
        if (rv != 0)
            return rv;
        for (j = 0; j < i; j++)
            if (strcmp(cl->initial_members[j], cl->initial_members[i]) == 0)
                return field_err(errmsg, name, field, "%s is already "
                                 "cluster.initial_members[%d]",
                                 cl->initial_members[i], j);
    }
    if (cl->raft_address[0] != '\0')
        return resolve_field(cl->raft_address, name, "cluster.raft_address",
                             errmsg);
    return 0;
}

static int validate_cluster(struct config *c, const char *name, char *errmsg)
{
    struct config_cluster *cl = &c->cluster;
    int rv;

    if (!cl->enabled) {
        return 0;
    }
    if (cl->node_id < 1) {
        return field_err(errmsg, name, "cluster.node_id",
                         "required when cluster.enabled is true (an id >= 1)");
    }
    if (cl->n_initial_members == 0) {
        return field_err(errmsg, name, "cluster.initial_members",
                         "required when cluster.enabled is true (at least "
                         "one \"host:port\")");
    }
    if (cl->data_dir[0] == '\0') {
        return field_err(errmsg, name, "cluster.data_dir",
                         "required when cluster.enabled is true");
    }
    rv = validate_raft_addresses(cl, name, errmsg);
    return rv != 0 ? rv : resolve_raft_address(c, name, errmsg);
}

/* The secret itself never goes into a message, only the file's name. */
static int load_secret(struct config *c, const char *name, char *errmsg)
{
    char why[BRK_ERRMSG_LEN];

    c->cluster.secret[0] = '\0';
    if (c->cluster.secret_file[0] == '\0') {
        return 0;
    }
    if (secret_load(c->cluster.secret_file, c->cluster.secret,
                    sizeof c->cluster.secret, why) != 0) {
        return field_err(errmsg, name, "cluster.secret_file", "%s", why);
    }
    return 0;
}

static int validate(struct config *c, const char *name, char *errmsg)
{
    int rv;

    rv = validate_bounds(c, name, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = validate_cluster(c, name, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = load_secret(c, name, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (derive_advertise(c) != 0) {
        return field_err(errmsg, name, "server.advertise",
                         "derived value is too long; set it explicitly");
    }
    return 0;
}

/* ==== Entry points ===================================================== */

static int parse_buffer(struct config *c, const char *text, size_t len,
                        const char *name, char *errmsg)
{
    json_error_t jerr;
    json_t *root;
    int rv;

    set_defaults(c);
    /* DECODE_ANY so that a scalar document gets our own clear message. */
    root = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        rv = brk_errf(errmsg, BRK_EINVAL,
                      "%s: invalid JSON at line %d, column %d: %s", name,
                      jerr.line, jerr.column, jerr.text);
        goto err;
    }
    if (!json_is_object(root)) {
        rv = brk_errf(errmsg, BRK_EINVAL,
                      "%s: the top-level value must be a JSON object", name);
        goto err_after_load;
    }
    rv = check_sections(root, name, errmsg);
    if (rv == 0) {
        rv = apply_rows(c, root, name, errmsg);
    }
    if (rv == 0) {
        collect_unknown(c, root);
        rv = validate(c, name, errmsg);
    }
err_after_load:
    json_decref(root);
err:
    return rv;
}

int config_parse(struct config *c, const char *text, const char *name,
                 char *errmsg)
{
    return parse_buffer(c, text, strlen(text), name, errmsg);
}

#define CONFIG_FILE_MAX (16u << 20) /* a config file is never this big */

/* Read all of @fd into a malloc'd buffer. Returns 0 or an errno value. */
static int read_all(int fd, char **out, size_t *out_len)
{
    char *buf = NULL;
    char *grown;
    size_t len = 0;
    size_t cap = 0;
    ssize_t n;

    for (;;) {
        if (len == cap) {
            cap = cap == 0 ? 4096 : cap * 2;
            if (cap > CONFIG_FILE_MAX) {
                free(buf);
                return EFBIG;
            }
            grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                return ENOMEM;
            }
            buf = grown;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            n = errno;
            free(buf);
            return (int)n;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

int config_load(struct config *c, const char *path, char *errmsg)
{
    char *text = NULL;
    size_t len = 0;
    int fd;
    int e;
    int rv;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        e = errno;
        set_defaults(c);
        return brk_errf(errmsg, BRK_EINVAL, "%s: cannot open: %s", path,
                        strerror(e));
    }
    e = read_all(fd, &text, &len);
    close(fd);
    if (e != 0) {
        set_defaults(c);
        return brk_errf(errmsg, BRK_EINVAL, "%s: cannot read: %s", path,
                        strerror(e));
    }
    rv = parse_buffer(c, text, len, path, errmsg);
    free(text);
    return rv;
}
