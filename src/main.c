/* broker: parse arguments, load the configuration, open storage, start the
 * loop thread and the HTTP server, and stop them in reverse order on
 * SIGINT/SIGTERM. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/announce.h"
#include "broker/config.h"
#include "broker/err.h"
#include "broker/forward.h"
#include "broker/fsutil.h"
#include "broker/http.h"
#include "broker/log.h"
#include "broker/node.h"
#include "broker/replica.h"
#include "broker/state.h"

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
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: broker [-config=FILE | --config FILE] [--www DIR]\n"
            "       broker -h | --help | --version\n\n"
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

static int run(const struct config *cfg, const char *www)
{
    char errmsg[BRK_ERRMSG_LEN];
    struct state st;
    struct node *node = NULL;
    struct http_server *http = NULL;
    struct http_deps deps;
    struct announcer *ann = NULL;
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
    log_info("broker %s listening on %s:%d (advertised %s), data in %s, %s",
             BROKER_VERSION, cfg->server.host, cfg->server.port,
             cfg->server.advertise, cfg->data_dir,
             cfg->cluster.enabled ? "cluster mode" : "standalone");
    sig = wait_for_signal();
    log_info("received %s: finishing in-flight requests",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_quiesce(http);
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
    struct args a = {0};
    int rv;

    rv = parse_args(argc, argv, &a);
    if (rv >= 0)
        return rv;
    block_signals();
    rv = load_config(&a, &cfg);
    if (rv >= 0)
        return rv;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rv = run(&cfg, www_dir(&a));
    curl_global_cleanup();
    log_close();
    return rv;
}
