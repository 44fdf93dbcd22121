/* The HTTP/JSON API (libmicrohttpd): routes of ../shared/API.md, request
 * bodies, suspension while the loop thread works, replies. */
#ifndef BROKER_HTTP_H
#define BROKER_HTTP_H
#include <stdbool.h>

#include "broker/config.h"
#include "broker/node.h"
#include "broker/state.h"

struct http_server;

struct http_deps {
    const struct config *cfg;
    struct state *st;          /* read paths: topics, groups */
    struct node *node;         /* write paths and status */
    const char *www_dir;       /* dashboard files */
};

/* Bind and start serving. @deps is copied; what it points to is borrowed
 * and must outlive the server. */
int http_server_start(const struct http_deps *deps, struct http_server **out,
                      char *errmsg);

/* Stop accepting new connections (requests in flight go on). */
void http_server_quiesce(struct http_server *s);

/* After the node has stopped (so every suspended request was resumed):
 * wait for those answers to go out, stop the daemon, free. False when
 * requests were still suspended after 5 s: the daemon's threads still run
 * and nothing they use (node, state) may be freed. */
bool http_server_stop(struct http_server *s);

#endif
