/* brokerctl consume: fetch pages from one or every partition, optionally
 * following (long poll from next_offset) and committing into a group. */
#include "brokerctl.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char HELP[] =
    "usage: brokerctl consume TOPIC [options]\n"
    "Prints messages from -o up to the end (or forever with -f).\n"
    "  -p, --partition N      partition (default 0)\n"
    "      --all-partitions   every partition of the topic\n"
    "  -o, --offset O         earliest (default), latest or a number\n"
    "      --timestamp MS     start at the first message at or after MS\n"
    "  -f, --follow           keep waiting for new messages (Ctrl-C stops);\n"
    "                         retries every second while no node answers\n"
    "  -n, --count N          stop after N messages\n"
    "  -g, --group G          start at G's committed offset; commit each page\n"
    "      --format F         json (default), value, or a string with\n"
    "                         %o offset %p partition %k key %v value\n"
    "                         %t timestamp %h headers, \\n \\t (kcat -f)\n";

#define MAX_PARTS 1024

struct copt {
    const char *topic, *offset, *timestamp, *group, *format;
    long partition, count, seen;
    int all, follow;
    long next[MAX_PARTS];
    int nparts;
};

static void put_headers(json_t *h)
{
    const char *k;
    json_t *v;
    int first = 1;
    json_object_foreach(h, k, v) {
        printf("%s%s=%s", first ? "" : ",", k, json_string_value(v));
        first = 0;
    }
}

static void put_field(char c, json_t *m, long part)
{
    switch (c) {
    case 'o': printf("%lld", (long long)json_integer_value(json_object_get(m, "offset"))); break;
    case 'p': printf("%ld", part); break;
    case 't': printf("%lld", (long long)json_integer_value(json_object_get(m, "timestamp"))); break;
    case 'k': {
        json_t *k = json_object_get(m, "key");
        if (!json_is_null(k))
            print_value(stdout, k);
        break;
    }
    case 'v': print_value(stdout, json_object_get(m, "value")); break;
    case 'h': put_headers(json_object_get(m, "headers")); break;
    case '%': putchar('%'); break;
    default: printf("%%%c", c);
    }
}

static void put_format(const char *f, json_t *m, long part)
{
    for (; *f; f++) {
        if (*f == '%' && f[1])
            put_field(*++f, m, part);
        else if (*f == '\\' && f[1] == 'n' && ++f)
            putchar('\n');
        else if (*f == '\\' && f[1] == 't' && ++f)
            putchar('\t');
        else
            putchar(*f);
    }
}

static void put_message(const struct copt *o, json_t *m, long part)
{
    if (!o->format || !strcmp(o->format, "json")) {
        json_object_set_new(m, "partition", json_integer(part));
        char *s = json_dumps(m, JSON_COMPACT);
        puts(s ? s : "");
        free(s);
    } else if (!strcmp(o->format, "value")) {
        print_value(stdout, json_object_get(m, "value"));
        putchar('\n');
    } else {
        put_format(o->format, m, part);
    }
    fflush(stdout);
}

static int commit(const struct copt *o, long part, long offset)
{
    char path[1024];
    char *g = esc(o->group);
    snprintf(path, sizeof path, "/groups/%s/offsets", g);
    free(g);
    json_t *body = json_pack("{s:s,s:i,s:I}", "topic", o->topic, "partition",
                             (int)part, "offset", (json_int_t)offset);
    json_t *ans;
    char *text = json_dumps(body, JSON_COMPACT);
    struct req q = {.method = "POST", .path = path, .body = text,
                    .body_len = strlen(text), .content_type = "application/json",
                    .quiet = 1};
    int rc = call_json(&q, &ans);
    free(text);
    json_decref(body);
    json_decref(ans);
    return rc;
}

/* One fetch of partition i; *more is set when the page was not empty. */
static int fetch_page(struct copt *o, int i, long wait_ms, int *done)
{
    long part = o->all ? i : o->partition;
    char path[1024], from[64];
    char *t = esc(o->topic);
    if (o->next[i] >= 0)
        snprintf(from, sizeof from, "offset=%ld", o->next[i]);
    else if (o->timestamp)
        snprintf(from, sizeof from, "timestamp=%.40s", o->timestamp);
    else
        snprintf(from, sizeof from, "offset=%.40s", o->offset);
    long limit = o->count > 0 && o->count - o->seen < 1000 ? o->count - o->seen : 1000;
    snprintf(path, sizeof path, "/topics/%s/partitions/%ld/messages?%s&limit=%ld&wait_ms=%ld",
             t, part, from, limit, wait_ms);
    free(t);
    struct req q = {.method = "GET", .path = path, .timeout_ms = wait_ms, .quiet = 1};
    json_t *ans;
    int rc = call_json(&q, &ans);
    if (rc)
        return rc;
    json_t *msgs = json_object_get(ans, "messages");
    size_t k;
    json_t *m;
    json_array_foreach(msgs, k, m) {
        if (o->count > 0 && o->seen >= o->count)
            break;
        put_message(o, m, part);
        o->seen++;
        o->next[i] = json_integer_value(json_object_get(m, "offset")) + 1;
    }
    if (json_array_size(msgs) == 0)
        o->next[i] = json_integer_value(json_object_get(ans, "next_offset"));
    long hw = json_integer_value(json_object_get(ans, "high_watermark"));
    size_t got = json_array_size(msgs);
    *done = o->next[i] >= hw;
    json_decref(ans);
    if (o->group && got > 0)
        rc = commit(o, part, o->next[i]);
    return rc;
}

static int group_start(struct copt *o)
{
    char path[1024];
    char *g = esc(o->group), *t = esc(o->topic);
    snprintf(path, sizeof path, "/groups/%s/offsets?topic=%s", g, t);
    free(g);
    free(t);
    struct req q = {.method = "GET", .path = path, .quiet = 1};
    json_t *ans;
    int rc = call_json(&q, &ans);
    size_t k;
    json_t *it;
    json_array_foreach(json_object_get(ans, "offsets"), k, it) {
        long p = json_integer_value(json_object_get(it, "partition"));
        int idx = o->all ? (int)p : (p == o->partition ? 0 : -1);
        if (idx >= 0 && idx < o->nparts)
            o->next[idx] = json_integer_value(json_object_get(it, "offset"));
    }
    json_decref(ans);
    return rc;
}

static int count_partitions(struct copt *o)
{
    char path[1024];
    char *t = esc(o->topic);
    snprintf(path, sizeof path, "/topics/%s", t);
    free(t);
    struct req q = {.method = "GET", .path = path, .quiet = 1};
    json_t *ans;
    int rc = call_json(&q, &ans);
    size_t n = json_array_size(json_object_get(ans, "partitions"));
    json_decref(ans);
    o->nparts = n > MAX_PARTS ? MAX_PARTS : (int)n;
    return rc;
}

static int run(struct copt *o)
{
    int rc = 0;
    for (;;) {
        int all_done = 1;
        for (int i = 0; i < o->nparts && !rc; i++) {
            int done = 0;
            long wait = o->follow ? (o->nparts > 1 ? 200 : 1000) : 0;
            rc = fetch_page(o, i, wait, &done);
            if (rc == EXIT_UNREACHABLE && o->follow && !g_stop) {
                /* follow mode outlives a restart: retry every second */
                fprintf(stderr, "brokerctl: no node reachable, retrying\n");
                sleep(1);
                rc = 0;
                done = 0;
            }
            all_done &= done;
            if (g_stop || (o->count > 0 && o->seen >= o->count))
                return rc;
        }
        if (rc || g_stop || (!o->follow && all_done))
            return rc;
    }
}

static int parse(struct copt *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"partition", required_argument, 0, 'p'}, {"all-partitions", no_argument, 0, 'A'},
        {"offset", required_argument, 0, 'o'}, {"timestamp", required_argument, 0, 'T'},
        {"follow", no_argument, 0, 'f'}, {"count", required_argument, 0, 'n'},
        {"group", required_argument, 0, 'g'}, {"format", required_argument, 0, 'F'},
        {0, 0, 0, 0}};
    int c;
    long tmp;
    while ((c = getopt_long(argc, argv, "p:o:fn:g:", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'p': bad = parse_long(optarg, 0, 1 << 20, &o->partition); break;
        case 'A': o->all = 1; break;
        case 'o': o->offset = optarg;
            bad = strcmp(optarg, "earliest") && strcmp(optarg, "latest") &&
                  parse_long(optarg, 0, __LONG_MAX__, &tmp);
            break;
        case 'T': o->timestamp = optarg; bad = parse_long(optarg, 0, __LONG_MAX__, &tmp); break;
        case 'f': o->follow = 1; break;
        case 'n': bad = parse_long(optarg, 1, __LONG_MAX__, &o->count); break;
        case 'g': o->group = optarg; break;
        case 'F': o->format = optarg; break;
        default: return usage_error(HELP, "bad option");
        }
        if (bad)
            return usage_error(HELP, "bad value '%s'", optarg);
    }
    if (optind >= argc)
        return usage_error(HELP, "consume: TOPIC is required");
    o->topic = argv[optind];
    return 0;
}

int cmd_consume(int argc, char **argv)
{
    if (want_help(argc, argv, HELP))
        return 0;
    struct copt o = {.offset = "earliest", .nparts = 1};
    int rc = parse(&o, argc, argv);
    for (int i = 0; i < MAX_PARTS; i++)
        o.next[i] = -1;
    if (!rc && o.all)
        rc = count_partitions(&o);
    if (!rc && o.group)
        rc = group_start(&o);
    return rc ? rc : run(&o);
}
