/* broker: parse arguments, load the configuration, open storage, start the
 * loop thread and the HTTP server, and stop them in reverse order on
 * SIGINT/SIGTERM. */
#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/announce.h"
#include "broker/config.h"
#include "broker/dirlock.h"
#include "broker/err.h"
#include "broker/forward.h"
#include "broker/fsutil.h"
#include "broker/http.h"
#include "broker/log.h"
#include "broker/node.h"
#include "broker/replica.h"
#include "broker/repair.h"
#include "broker/scrub.h"
#include "broker/state.h"
#include "broker/topic.h"

#ifndef BROKER_VERSION
#define BROKER_VERSION "dev"
#endif
#ifndef BROKER_DEFAULT_WWW
#define BROKER_DEFAULT_WWW "www"
#endif

#define EXIT_CONFIG 2

struct args {
    const char *config;
    const char *www;
    bool repair;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: broker [-config=FILE | --config FILE] [--www DIR]\n"
            "       broker [--config FILE] --repair\n"
            "       broker -h | --help | --version\n\n"
            "--repair: offline, on a stopped standalone broker's data_dir:\n"
            "verify every partition and cut each damaged one at its first\n"
            "damaged offset, moving what follows into <partition>/quarantine/\n"
            "(see docs/storage.md).\n\n"
            "Without a config file the broker runs standalone on :9092 with\n"
            "its data in ./data. See docs/configuration.md.\n");
}

/* Returns -1 to continue, or an exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0 ||
            strcmp(s, "-help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(s, "--version") == 0 || strcmp(s, "-version") == 0) {
            printf("broker %s\n", BROKER_VERSION);
            return 0;
        } else if (strncmp(s, "-config=", 8) == 0) {
            a->config = s + 8;
        } else if (strncmp(s, "--config=", 9) == 0) {
            a->config = s + 9;
        } else if ((strcmp(s, "--config") == 0 || strcmp(s, "-config") == 0) &&
                   i + 1 < argc) {
            a->config = argv[++i];
        } else if (strcmp(s, "--repair") == 0 || strcmp(s, "-repair") == 0) {
            a->repair = true;
        } else if (strcmp(s, "--www") == 0 && i + 1 < argc) {
            a->www = argv[++i];
        } else {
            fprintf(stderr, "broker: unknown argument '%s'\n", s);
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    return -1;
}

static const char *www_dir(const struct args *a)
{
    const char *env = getenv("BROKER_WWW");

    if (a->www != NULL)
        return a->www;
    if (env != NULL && env[0] != '\0')
        return env;
    if (access("www/index.html", R_OK) == 0)
        return "www";
    return BROKER_DEFAULT_WWW;
}

static int load_config(const struct args *a, struct config *cfg)
{
    char errmsg[BRK_ERRMSG_LEN];
    enum log_level lvl = LOG_LEVEL_INFO;
    int i;

    if (a->config != NULL) {
        if (config_load(cfg, a->config, errmsg) != 0) {
            fprintf(stderr, "broker: invalid configuration: %s\n", errmsg);
            return EXIT_CONFIG;
        }
    } else {
        config_defaults(cfg);
    }
    log_level_parse(cfg->server.log_level, &lvl);
    if (log_open(cfg->server.log_file, lvl, errmsg) != 0) {
        fprintf(stderr, "broker: server.log_file: %s\n", errmsg);
        return EXIT_CONFIG;
    }
    for (i = 0; i < cfg->n_unknown; i++)
        log_warn("config: unknown field '%s' ignored", cfg->unknown[i]);
    if (cfg->cluster.enabled && cfg->cluster.secret[0] == '\0')
        log_warn("config: cluster.secret_file is not set: /internal/* "
                 "routes are open to anyone who can reach the HTTP port, and "
                 "member announcements are checked only by source address "
                 "and a call-back (see docs/security.md)");
    forward_set_secret(cfg->cluster.secret);
    if (cfg->cluster.enabled && !cfg->cluster.check_quorum)
        log_warn("config: cluster.check_quorum=false is not supported by "
                 "c-raft 0.15; the leader still steps down without a quorum");
    return -1;
}

/* Take data_dir and cluster.data_dir before anything in them is opened:
 * two brokers on one directory would both answer 201 at the same offset.
 * Returns -1 to continue, or an exit status. */
static int lock_dirs(const struct config *cfg, struct dirlock *locks)
{
    char errmsg[BRK_ERRMSG_LEN];
    const char *field = "data_dir";
    int rv = dirlock_acquire(locks, cfg->data_dir, errmsg);

    if (rv == 0 && cfg->cluster.enabled) {
        field = "cluster.data_dir";
        rv = dirlock_acquire(locks, cfg->cluster.data_dir, errmsg);
    }
    if (rv == 0)
        return -1;
    brk_errwrap(errmsg, rv, "%s", field);
    fprintf(stderr, "broker: cannot start: %s\n", errmsg);
    if (cfg->server.log_file[0] != '\0')
        log_error("cannot start: %s", errmsg);
    return rv == BRK_ECONFLICT ? EXIT_CONFIG : 1;
}

static int wait_for_signal(void)
{
    sigset_t set;
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigwait(&set, &sig);
    return sig;
}

static void block_signals(void)
{
    sigset_t set;

    /* A killed peer must not take us down (writes to a closed socket). */
    signal(SIGPIPE, SIG_IGN);
    /* Every thread inherits this mask; main waits with sigwait. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* One partition of broker --repair: prints what it did. */
static int repair_partition(const struct config *cfg, const struct topic *t,
                            uint32_t p)
{
    struct partition_options popt = {
        .segment_size = (uint64_t)cfg->segment_size,
        .index_interval = PARTITION_DEFAULT_INDEX_INTERVAL};
    struct partition_offline_repair rep;
    char dir[1600], errmsg[BRK_ERRMSG_LEN];

    snprintf(dir, sizeof(dir), "%s/%u", t->dir, p);
    if (partition_repair_offline(dir, &popt, &rep, errmsg) != 0) {
        fprintf(stderr, "broker: repair %s/%u: %s\n", t->name, p, errmsg);
        return 1;
    }
    if (!rep.damaged)
        printf("%s/%u: ok\n", t->name, p);
    else
        printf("%s/%u: damaged at offset %llu: cut there; %llu records (%u "
               "segments) moved to %s/quarantine/\n", t->name, p,
               (unsigned long long)rep.cut_at,
               (unsigned long long)rep.records_removed,
               rep.segments_quarantined, dir);
    return 0;
}

/* broker --repair: offline, see usage(). The registry is opened to find
 * the partitions, then closed so that each is repaired alone. */
static int run_repair(const struct config *cfg)
{
    struct partition_options popt = {
        .segment_size = (uint64_t)cfg->segment_size,
        .index_interval = PARTITION_DEFAULT_INDEX_INTERVAL};
    char errmsg[BRK_ERRMSG_LEN];
    struct topic_registry *reg;
    struct topic **list;
    size_t n = 0, i;
    uint32_t p;
    int rv = 0;

    if (cfg->cluster.enabled) {
        fprintf(stderr, "broker: --repair is for standalone data: a cluster "
                "node repairs damaged ranges from its peers by itself (see "
                "docs/clustering.md)\n");
        return EXIT_CONFIG;
    }
    if (topic_registry_open(cfg->data_dir, &popt, &reg, errmsg) != 0) {
        fprintf(stderr, "broker: cannot open %s: %s\n", cfg->data_dir, errmsg);
        return 1;
    }
    if (topic_registry_list(reg, &list, &n) != 0)
        n = 0;
    /* The topics stay referenced (their dir and name) after the close;
     * their partitions are closed only at the last put. */
    for (i = 0; i < n; i++)
        for (p = 0; p < list[i]->n_partitions; p++) {
            partition_close(list[i]->partitions[p]);
            list[i]->partitions[p] = NULL;
        }
    topic_registry_close(reg);
    for (i = 0; i < n; i++)
        for (p = 0; p < list[i]->n_partitions; p++)
            rv |= repair_partition(cfg, list[i], p);
    topic_list_free(list, n);
    return rv;
}

static int run(const struct config *cfg, const char *www)
{
    char errmsg[BRK_ERRMSG_LEN];
    struct state st;
    struct node *node = NULL;
    struct http_server *http = NULL;
    struct http_deps deps;
    struct announcer *ann = NULL;
    struct scrubber *scrub = NULL;
    struct repairer *rep = NULL;
    int sig;

    if (fsutil_check_writable(cfg->data_dir, errmsg) != 0) {
        log_error("cannot use data_dir: %s", errmsg);
        return 1;
    }
    if (state_open(&st, cfg, errmsg) != 0) {
        log_error("cannot open storage in %s: %s", cfg->data_dir, errmsg);
        return 1;
    }
    if (node_start(cfg, &st, &node, errmsg) != 0) {
        log_error("cannot start: %s", errmsg);
        state_close(&st);
        return 1;
    }
    deps = (struct http_deps){cfg, &st, node, www};
    if (http_server_start(&deps, &http, errmsg) != 0) {
        log_error("cannot start HTTP server: %s", errmsg);
        node_stop(node);
        node_destroy(node);
        state_close(&st);
        return 1;
    }
    if (cfg->cluster.enabled && announcer_start(node, cfg, &ann, errmsg) != 0)
        log_error("%s", errmsg);
    /* Standalone too: it keeps digests built after a restart. */
    if (replica_start(node, cfg, &st, errmsg) != 0)
        log_error("%s", errmsg);
    /* After the server is up: the verification runs in the background and
     * never delays readiness. */
    if (scrubber_start(st.topics, cfg->scrub_interval_ms,
                       cfg->scrub_bytes_per_s, &scrub, errmsg) != 0)
        log_error("%s", errmsg);
    if (cfg->cluster.enabled && repairer_start(node, st.topics, &rep,
                                               errmsg) != 0)
        log_error("%s", errmsg);
    log_info("broker %s listening on %s:%d (advertised %s), data in %s, %s",
             BROKER_VERSION, cfg->server.host, cfg->server.port,
             cfg->server.advertise, cfg->data_dir,
             cfg->cluster.enabled ? "cluster mode" : "standalone");
    sig = wait_for_signal();
    log_info("received %s: finishing in-flight requests",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_quiesce(http);
    scrubber_stop(scrub);
    repairer_stop(rep);
    announcer_stop(ann);
    replica_stop();
    node_stop(node); /* everything acknowledged is on disk from here */
    if (!http_server_stop(http)) {
        log_warn("stopping without freeing: HTTP threads still busy");
        log_close();
        _exit(0); /* the data is safe; the busy threads must not see frees */
    }
    node_destroy(node);
    state_close(&st);
    log_info("stopped cleanly");
    return 0;
}

int main(int argc, char **argv)
{
    static struct config cfg;
    static struct dirlock locks;
    struct args a = {0};
    int rv;

    rv = parse_args(argc, argv, &a);
    if (rv >= 0)
        return rv;
    block_signals();
    rv = load_config(&a, &cfg);
    if (rv >= 0)
        return rv;
    dirlock_init(&locks);
    rv = lock_dirs(&cfg, &locks);
    if (rv >= 0) {
        log_close();
        return rv;
    }
    if (a.repair) {
        /* Offline, but never beside a running broker: locked first. */
        rv = run_repair(&cfg);
        dirlock_release(&locks);
        log_close();
        return rv;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rv = run(&cfg, www_dir(&a));
    curl_global_cleanup();
    dirlock_release(&locks);
    log_close();
    return rv;
}
