/* brokerctl: command-line client of the broker's HTTP API (docs/cli.md).
 * Links libcurl and jansson only, none of the server's code. */
#ifndef BROKERCTL_H
#define BROKERCTL_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

enum {
    EXIT_OKAY = 0,
    EXIT_SERVER = 1,      /* the server answered an error */
    EXIT_USAGE = 2,       /* bad command line */
    EXIT_UNREACHABLE = 3, /* no node of --url answered */
};

#define MAX_URLS 16
#define RESP_MAX (256u << 20) /* largest answer body accepted */

struct global_opt {
    const char *urls[MAX_URLS];
    int nurls, url_first;
    const char *token;
    int json, verbose;
};
extern struct global_opt g_opt;
extern volatile int g_stop; /* set by SIGINT/SIGTERM */

struct req {
    const char *method, *path;
    const char *body;
    size_t body_len;
    const char *content_type, *idem_key;
    long timeout_ms; /* server-side wait (wait_ms), added to the timeout */
    int quiet;       /* do not print the raw JSON answer under --json */
};

struct resp {
    long status;
    char *body;
    size_t len;
};

int http_do(const struct req *q, struct resp *r);
void resp_free(struct resp *r);
int report_error(const struct resp *r);
int call_json(const struct req *q, json_t **out);
int call(const char *method, const char *path, json_t *body, json_t **out);
char *esc(const char *s);

int usage_error(const char *help, const char *fmt, ...);
int parse_long(const char *s, long min, long max, long *out);
int want_help(int argc, char **argv, const char *help);
void print_value(FILE *f, json_t *v);

int cmd_produce(int argc, char **argv);
int cmd_consume(int argc, char **argv);
int cmd_topics(int argc, char **argv);
int cmd_groups(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_queue(int argc, char **argv);

#endif
