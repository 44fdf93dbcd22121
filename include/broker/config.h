/* Broker configuration: defaults, loading from a JSON file, validation.
 * Field names follow ../shared/CONFIG.md exactly. */
#ifndef BROKER_CONFIG_H
#define BROKER_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_PATH_MAX 1024
#define CONFIG_ADDR_MAX 256
#define CONFIG_MAX_MEMBERS 16
#define CONFIG_MAX_UNKNOWN 32

struct config_server {
    char host[CONFIG_ADDR_MAX];      /* HTTP bind address, "0.0.0.0" */
    int port;                        /* 9092; 0 is refused */
    char advertise[CONFIG_ADDR_MAX]; /* host:port; "" = derived, see config_load */
    char log_file[CONFIG_PATH_MAX];  /* "" = stderr */
    char log_level[16];              /* "info" */
    int64_t max_connections_per_client; /* 0 = no limit */
};

struct config_cluster {
    bool enabled;                    /* false */
    uint64_t node_id;                /* >= 1, required when enabled */
    char raft_address[CONFIG_ADDR_MAX];
    char initial_members[CONFIG_MAX_MEMBERS][CONFIG_ADDR_MAX];
    int n_initial_members;
    char data_dir[CONFIG_PATH_MAX];
    int64_t rtt_ms;                  /* 100 */
    int64_t election_rtt;            /* 10 */
    int64_t heartbeat_rtt;           /* 1 */
    bool check_quorum;               /* true */
    int64_t snapshot_entries;        /* 10000 */
    int64_t compaction_overhead;     /* 5000 */
    char secret_file[CONFIG_PATH_MAX]; /* "" = no cluster secret */
    char secret[256];                /* its content, loaded; never logged */
};

struct config {
    char data_dir[CONFIG_PATH_MAX];  /* "./data" */
    int64_t max_topic_partitions;    /* 16 */
    int64_t default_partitions;      /* 1 */
    bool auto_create_topics;         /* true */
    int64_t segment_size;            /* 1073741824 bytes */
    int64_t retention_ms;            /* "retention_time", 168h */
    int64_t cleanup_interval_ms;     /* "cleanup_interval", 1m */
    int64_t retention_bytes;         /* -1 = none */
    int64_t max_message_size;        /* 1048576 */
    int64_t max_request_bytes;       /* 16777216 */
    int64_t max_storage_size;        /* -1 = none */
    int64_t flush_interval_ms;       /* "flush_interval", 0 = fsync per ack */
    int64_t digest_interval_ms;      /* "digest_interval", 1m, 0 = off */
    int64_t digest_chunk;            /* offsets per replica digest chunk */
    int64_t scrub_interval_ms;       /* "scrub_interval", 24h, 0 = off */
    int64_t scrub_bytes_per_s;       /* 52428800 (50 MiB/s) */
    int64_t idempotency_window_ms;   /* "idempotency_window", 10m */
    int64_t idempotency_max_keys;    /* 1000000 */
    struct config_server server;
    struct config_cluster cluster;
    /* Keys present in the file that the broker does not know, for the log. */
    char unknown[CONFIG_MAX_UNKNOWN][128];
    int n_unknown;
};

/* Fill @c with the defaults of CONFIG.md (advertise derived as below). */
void config_defaults(struct config *c);

/* Defaults, then the JSON object in @text (@name is the file name used in
 * messages), then validation. On error returns BRK_EINVAL with @errmsg like
 * "broker.json: field 'server.port': must be 1..65535". Unknown keys (also
 * nested ones, as "cluster.foo") are recorded in c->unknown, not errors.
 * server.advertise, when empty, becomes host of cluster.raft_address (or
 * 127.0.0.1) + ":" + server.port. */
int config_parse(struct config *c, const char *text, const char *name,
                 char *errmsg);

/* config_parse on the contents of @path. A file that cannot be read is
 * BRK_EINVAL with the path and strerror in @errmsg. */
int config_load(struct config *c, const char *path, char *errmsg);

/* True for a numeric IPv4 address with a port ("10.0.0.1:8001"), the only
 * form c-raft's TCP transport accepts. */
bool config_raft_address_valid(const char *s);

/* Resolve "host:port" (a host name or numeric IPv4) to "a.b.c.d:port" in
 * @out (@cap bytes) with getaddrinfo, IPv4 only (c-raft 0.15's transport
 * cannot carry IPv6 or names). Returns 0, or -1 with a sentence in @why.
 * Blocks while resolving: call at start or on an HTTP thread, never on
 * the loop thread. */
int config_resolve_raft_address(const char *in, char *out, size_t cap,
                                char *why, size_t why_cap);

/* Go-style duration: "168h", "30m", "1h30m", "90s", "500ms", "0s", "1.5h".
 * Units ns us ms s m h, and d (24h, not in Go: "7d", "1d12h"); no sign;
 * at least one unit. Result rounded down to
 * whole milliseconds. Returns 0, or -1 for anything else (empty, "10",
 * "1x", "-5s", overflow). */
int config_parse_duration(const char *s, int64_t *ms);

#endif
