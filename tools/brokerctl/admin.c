/* brokerctl topics / groups / cluster: thin wrappers over the admin
 * routes, printing aligned columns (or the raw JSON with --json). */
#include "brokerctl.h"

#include <stdlib.h>
#include <string.h>

static const char TOPICS_HELP[] =
    "usage: brokerctl topics list\n"
    "       brokerctl topics create NAME [--partitions N] [--retention-time D]\n"
    "       brokerctl topics describe NAME\n"
    "       brokerctl topics alter NAME ...   (needs PATCH /topics/{t})\n"
    "       brokerctl topics delete NAME\n";
static const char GROUPS_HELP[] =
    "usage: brokerctl groups list\n"
    "       brokerctl groups describe G       offsets with lag\n"
    "       brokerctl groups reset G --topic T --to earliest|latest|MS\n"
    "       brokerctl groups delete G\n";
static const char CLUSTER_HELP[] =
    "usage: brokerctl cluster status|members|raft\n"
    "       brokerctl cluster add ID RAFT_ADDR [HTTP_ADDR]\n"
    "       brokerctl cluster remove ID\n"
    "       brokerctl cluster transfer [ID]\n";

#define I(o, k) ((long long)json_integer_value(json_object_get((o), (k))))
#define S(o, k) (json_string_value(json_object_get((o), (k))) ? json_string_value(json_object_get((o), (k))) : "")

static int path_of(char *buf, size_t n, const char *fmt, const char *name)
{
    char *e = esc(name);
    snprintf(buf, n, fmt, e);
    free(e);
    return 0;
}

/* Runs a request; prints nothing itself unless --json. */
static int simple(const char *method, const char *fmt, const char *name,
                  json_t *body, json_t **out)
{
    char path[1024];
    path_of(path, sizeof path, fmt, name ? name : "");
    int rc = call(method, path, body, out);
    json_decref(body);
    return rc;
}

static void print_kv(json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (json_is_array(v) || json_is_object(v))
            continue;
        printf("%-22s ", k);
        print_value(stdout, v);
        putchar('\n');
    }
}

static int topics_list(void)
{
    json_t *a;
    int rc = simple("GET", "/topics%s", "", NULL, &a);
    if (rc || g_opt.json)
        return json_decref(a), rc;
    printf("%-32s %s\n", "TOPIC", "PARTITIONS");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(a, "topics"), i, t)
        printf("%-32s %lld\n", S(t, "name"), I(t, "partitions"));
    json_decref(a);
    return 0;
}

static int topics_describe(const char *name)
{
    json_t *a;
    int rc = simple("GET", "/topics/%s", name, NULL, &a);
    if (rc || g_opt.json)
        return json_decref(a), rc;
    printf("topic %s  retention %s\n", S(a, "name"), S(a, "retention_time"));
    printf("%-9s %-16s %-16s %-12s %s\n", "PARTITION", "LOG_START", "HIGH_WATERMARK",
           "SIZE_BYTES", "SEGMENTS");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(a, "partitions"), i, p)
        printf("%-9lld %-16lld %-16lld %-12lld %lld\n", I(p, "partition"),
               I(p, "log_start_offset"), I(p, "high_watermark"), I(p, "size_bytes"),
               I(p, "segments"));
    json_decref(a);
    return 0;
}

static int topics_create(int argc, char **argv)
{
    json_t *body = json_pack("{s:s}", "name", argv[2]);
    for (int i = 3; i < argc; i++) {
        long n;
        if (!strcmp(argv[i], "--partitions") && i + 1 < argc) {
            if (parse_long(argv[++i], 1, 1 << 20, &n))
                return json_decref(body), usage_error(TOPICS_HELP, "bad --partitions");
            json_object_set_new(body, "partitions", json_integer(n));
        } else if (!strcmp(argv[i], "--retention-time") && i + 1 < argc) {
            json_object_set_new(body, "retention_time", json_string(argv[++i]));
        } else {
            json_decref(body);
            return usage_error(TOPICS_HELP, "bad argument '%s'", argv[i]);
        }
    }
    json_t *a;
    int rc = simple("POST", "/topics%s", "", body, &a);
    if (!rc && !g_opt.json)
        printf("created topic %s with %lld partitions\n", S(a, "name"), I(a, "partitions"));
    json_decref(a);
    return rc;
}

static int topics_alter(const char *name)
{
    /* Probe: the server answers 405 while PATCH /topics/{t} does not exist. */
    char path[1024];
    path_of(path, sizeof path, "/topics/%s", name);
    struct req q = {.method = "PATCH", .path = path, .body = "{}", .body_len = 2,
                    .content_type = "application/json"};
    struct resp r = {0};
    int rc = http_do(&q, &r);
    if (!rc && (r.status == 405 || r.status == 404 || r.status == 400)) {
        fprintf(stderr, "brokerctl: topics alter: not supported by this server "
                        "(no PATCH /topics/{topic}; HTTP %ld)\n", r.status);
        rc = EXIT_SERVER;
    } else if (!rc && r.status >= 300) {
        rc = report_error(&r);
    }
    resp_free(&r);
    return rc;
}

int cmd_topics(int argc, char **argv)
{
    if (want_help(argc, argv, TOPICS_HELP))
        return 0;
    const char *sub = argc > 1 ? argv[1] : "";
    if (!strcmp(sub, "list") && argc == 2)
        return topics_list();
    if (argc < 3)
        return usage_error(TOPICS_HELP, "topics: missing subcommand or NAME");
    if (!strcmp(sub, "create"))
        return topics_create(argc, argv);
    if (argc != 3 && strcmp(sub, "alter"))
        return usage_error(TOPICS_HELP, "topics %s: too many arguments", sub);
    if (!strcmp(sub, "describe"))
        return topics_describe(argv[2]);
    if (!strcmp(sub, "alter"))
        return topics_alter(argv[2]);
    if (!strcmp(sub, "delete")) {
        int rc = simple("DELETE", "/topics/%s", argv[2], NULL, NULL);
        if (!rc && !g_opt.json)
            printf("deleted topic %s\n", argv[2]);
        return rc;
    }
    return usage_error(TOPICS_HELP, "topics: unknown subcommand '%s'", sub);
}

static void print_offsets(json_t *a)
{
    printf("%-24s %-9s %-12s %-14s %s\n", "TOPIC", "PARTITION", "OFFSET",
           "HIGH_WATERMARK", "LAG");
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(a, "offsets"), i, o)
        printf("%-24s %-9lld %-12lld %-14lld %lld\n", S(o, "topic"), I(o, "partition"),
               I(o, "offset"), I(o, "high_watermark"), I(o, "lag"));
}

static int groups_reset(int argc, char **argv)
{
    const char *topic = NULL, *to = NULL;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--topic"))
            topic = argv[i + 1];
        else if (!strcmp(argv[i], "--to"))
            to = argv[i + 1];
        else
            return usage_error(GROUPS_HELP, "bad argument '%s'", argv[i]);
    }
    long ms;
    if (!topic || !to || argc % 2 == 0)
        return usage_error(GROUPS_HELP, "groups reset: --topic T --to X required");
    json_t *target = !parse_long(to, 0, __LONG_MAX__, &ms) ? json_integer(ms)
                     : (!strcmp(to, "earliest") || !strcmp(to, "latest")) ? json_string(to)
                                                                          : NULL;
    if (!target)
        return usage_error(GROUPS_HELP, "--to must be earliest, latest or MS");
    json_t *a, *body = json_pack("{s:s,s:o}", "topic", topic, "reset", target);
    int rc = simple("POST", "/groups/%s/offsets", argv[2], body, &a);
    if (!rc && !g_opt.json)
        print_offsets(a);
    json_decref(a);
    return rc;
}

int cmd_groups(int argc, char **argv)
{
    if (want_help(argc, argv, GROUPS_HELP))
        return 0;
    const char *sub = argc > 1 ? argv[1] : "";
    json_t *a = NULL;
    int rc;
    if (!strcmp(sub, "list") && argc == 2) {
        if ((rc = simple("GET", "/groups%s", "", NULL, &a)) || g_opt.json)
            return json_decref(a), rc;
        size_t i;
        json_t *g;
        printf("GROUP\n");
        json_array_foreach(json_object_get(a, "groups"), i, g)
            printf("%s\n", json_string_value(g));
        return json_decref(a), 0;
    }
    if (argc < 3)
        return usage_error(GROUPS_HELP, "groups: missing subcommand or GROUP");
    if (!strcmp(sub, "reset"))
        return groups_reset(argc, argv);
    if (argc != 3)
        return usage_error(GROUPS_HELP, "groups %s: too many arguments", sub);
    if (!strcmp(sub, "describe")) {
        if (!(rc = simple("GET", "/groups/%s/offsets", argv[2], NULL, &a)) && !g_opt.json)
            print_offsets(a);
        return json_decref(a), rc;
    }
    if (!strcmp(sub, "delete")) {
        if (!(rc = simple("DELETE", "/groups/%s", argv[2], NULL, NULL)) && !g_opt.json)
            printf("deleted group %s\n", argv[2]);
        return rc;
    }
    return usage_error(GROUPS_HELP, "groups: unknown subcommand '%s'", sub);
}

static void print_members(json_t *a)
{
    printf("%-7s %-22s %-22s %s\n", "NODE_ID", "RAFT_ADDRESS", "HTTP_ADDRESS", "ROLE");
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(a, "members"), i, m)
        printf("%-7lld %-22s %-22s %s\n", I(m, "node_id"), S(m, "raft_address"),
               S(m, "http_address"), S(m, "role"));
    json_t *l = json_object_get(a, "leader");
    if (l)
        printf("leader: %lld (%s)\n", I(l, "node_id"), S(l, "http_address"));
}

static int cluster_change(int argc, char **argv, const char *sub)
{
    long id = 0;
    json_t *a = NULL, *body = NULL;
    char path[256];
    int need = !strcmp(sub, "transfer") ? 2 : 3;
    if (argc < need || (argc > 2 && parse_long(argv[2], 1, __LONG_MAX__, &id)))
        return usage_error(CLUSTER_HELP, "cluster %s: bad or missing ID", sub);
    int rc;
    if (!strcmp(sub, "add")) {
        if (argc < 4 || argc > 5)
            return usage_error(CLUSTER_HELP, "cluster add ID RAFT_ADDR [HTTP_ADDR]");
        body = json_pack("{s:I,s:s}", "node_id", (json_int_t)id, "raft_address", argv[3]);
        if (argc == 5)
            json_object_set_new(body, "http_address", json_string(argv[4]));
        rc = simple("POST", "/cluster/members%s", "", body, &a);
    } else if (!strcmp(sub, "remove")) {
        snprintf(path, sizeof path, "/cluster/members/%ld", id);
        rc = call("DELETE", path, NULL, &a);
    } else {
        if (id)
            body = json_pack("{s:I}", "node_id", (json_int_t)id);
        rc = simple("POST", "/cluster/leader/transfer%s", "", body, &a);
    }
    if (!rc && !g_opt.json)
        print_members(a);
    json_decref(a);
    return rc;
}

int cmd_cluster(int argc, char **argv)
{
    if (want_help(argc, argv, CLUSTER_HELP))
        return 0;
    const char *sub = argc > 1 ? argv[1] : "";
    static const char *const views[][2] = {
        {"status", "/cluster/status"}, {"members", "/cluster/members"},
        {"raft", "/cluster/raft"}};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(sub, views[i][0]))
            continue;
        if (argc != 2)
            return usage_error(CLUSTER_HELP, "cluster %s takes no argument", sub);
        json_t *a;
        int rc = call("GET", views[i][1], NULL, &a);
        if (!rc && !g_opt.json)
            i == 1 ? print_members(a) : print_kv(a);
        json_decref(a);
        return rc;
    }
    if (!strcmp(sub, "add") || !strcmp(sub, "remove") || !strcmp(sub, "transfer"))
        return cluster_change(argc, argv, sub);
    return usage_error(CLUSTER_HELP, "cluster: unknown subcommand '%s'", sub);
}
