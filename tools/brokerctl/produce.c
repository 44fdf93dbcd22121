/* brokerctl produce: values from arguments, stdin lines or a file. */
#include "brokerctl.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char HELP[] =
    "usage: brokerctl produce TOPIC [VALUE...] [options]\n"
    "Writes one message per VALUE; without VALUE (or with '-') one per stdin\n"
    "line. Prints 'partition P offset O' per message.\n"
    "  -k, --key K            message key\n"
    "  -H, --header k=v       header (repeatable)\n"
    "  -p, --partition N      partition (default: by key, else round-robin)\n"
    "      --file F           one message whose value is F's bytes (raw)\n"
    "      --json-values      parse each value as JSON (else a string)\n"
    "      --batch N          send stdin lines N per request\n"
    "      --idempotency-key K  sent as the Idempotency-Key header\n";

struct popt {
    const char *topic, *key, *file, *idem;
    json_t *headers;
    long partition, batch;
    int json_values;
};

static int make_record(const struct popt *o, const char *text, json_t **out)
{
    json_t *v;
    if (o->json_values) {
        json_error_t e;
        v = json_loads(text, JSON_DECODE_ANY, &e);
        if (!v)
            return usage_error(NULL, "value '%s' is not JSON: %s", text, e.text);
    } else {
        v = json_string(text);
        if (!v)
            return usage_error(NULL, "value is not valid UTF-8");
    }
    json_t *r = json_pack("{s:o}", "value", v);
    if (o->key)
        json_object_set_new(r, "key", json_string(o->key));
    if (json_object_size(o->headers))
        json_object_set(r, "headers", o->headers);
    if (o->partition >= 0)
        json_object_set_new(r, "partition", json_integer(o->partition));
    *out = r;
    return 0;
}

static void print_offsets(json_t *ans)
{
    if (g_opt.json)
        return;
    json_t *list = json_object_get(ans, "offsets");
    if (!list) {
        printf("partition %lld offset %lld\n",
               (long long)json_integer_value(json_object_get(ans, "partition")),
               (long long)json_integer_value(json_object_get(ans, "offset")));
        return;
    }
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it)
        printf("partition %lld offset %lld\n",
               (long long)json_integer_value(json_object_get(it, "partition")),
               (long long)json_integer_value(json_object_get(it, "offset")));
}

static int send_body(const struct popt *o, json_t *body, const char *ctype,
                     const char *raw, size_t raw_len, const char *path)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct req q = {.method = "POST", .path = path, .idem_key = o->idem,
                    .body = text ? text : raw,
                    .body_len = text ? strlen(text) : raw_len,
                    .content_type = ctype};
    json_t *ans;
    int rc = call_json(&q, &ans);
    free(text);
    if (!rc)
        print_offsets(ans);
    json_decref(ans);
    return rc;
}

static void topic_path(const struct popt *o, char *buf, size_t n)
{
    char *t = esc(o->topic);
    snprintf(buf, n, "/topics/%s/messages", t);
    free(t);
}

/* Sends the records gathered so far as one batch (or one record). */
static int flush(const struct popt *o, json_t *records)
{
    if (json_array_size(records) == 0)
        return 0;
    char path[1024];
    topic_path(o, path, sizeof path);
    json_t *body = json_array_size(records) == 1 && o->batch <= 1
                       ? json_incref(json_array_get(records, 0))
                       : json_pack("{s:O}", "records", records);
    int rc = send_body(o, body, "application/json", NULL, 0, path);
    json_decref(body);
    json_array_clear(records);
    return rc;
}

static int add_value(const struct popt *o, json_t *records, const char *text)
{
    json_t *r;
    int rc = make_record(o, text, &r);
    if (rc)
        return rc;
    json_array_append_new(records, r);
    if ((long)json_array_size(records) >= (o->batch > 0 ? o->batch : 1))
        return flush(o, records);
    return 0;
}

static int from_stdin(const struct popt *o, json_t *records)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (!rc && !g_stop && (n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        rc = add_value(o, records, line);
    }
    free(line);
    return rc ? rc : flush(o, records);
}

static int from_file(const struct popt *o)
{
    if (json_object_size(o->headers))
        return usage_error(HELP, "--header cannot go with --file (raw body)");
    FILE *f = fopen(o->file, "rb");
    if (!f)
        return usage_error(NULL, "cannot open %s", o->file);
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[65536];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            char *g = realloc(buf, cap);
            if (!g) { free(buf); fclose(f); return EXIT_USAGE; }
            buf = g;
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    char path[2048], base[1024];
    topic_path(o, base, sizeof base);
    char *k = o->key ? esc(o->key) : NULL;
    int pn = snprintf(path, sizeof path, "%s%s%s", base, k ? "?key=" : "",
                     k ? k : "");
    if (o->partition >= 0 && pn > 0 && (size_t)pn < sizeof path)
        snprintf(path + pn, sizeof path - pn, "%spartition=%ld", k ? "&" : "?",
                 o->partition);
    free(k);
    int rc = send_body(o, NULL, "application/octet-stream", buf ? buf : "",
                       len, path);
    free(buf);
    return rc;
}

static int add_header(struct popt *o, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return usage_error(HELP, "--header wants k=v, got '%s'", kv);
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(eq - kv), kv);
    json_object_set_new(o->headers, name, json_string(eq + 1));
    return 0;
}

static int parse(struct popt *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, 0, 'k'}, {"header", required_argument, 0, 'H'},
        {"partition", required_argument, 0, 'p'}, {"file", required_argument, 0, 'F'},
        {"json-values", no_argument, 0, 'J'}, {"batch", required_argument, 0, 'b'},
        {"idempotency-key", required_argument, 0, 'I'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "k:H:p:", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'k': o->key = optarg; break;
        case 'H': if (add_header(o, optarg)) return EXIT_USAGE; break;
        case 'p': bad = parse_long(optarg, 0, 1 << 20, &o->partition); break;
        case 'F': o->file = optarg; break;
        case 'J': o->json_values = 1; break;
        case 'b': bad = parse_long(optarg, 1, 10000, &o->batch); break;
        case 'I': o->idem = optarg; break;
        default: return usage_error(HELP, "bad option");
        }
        if (bad)
            return usage_error(HELP, "bad number '%s'", optarg);
    }
    if (optind >= argc)
        return usage_error(HELP, "produce: TOPIC is required");
    o->topic = argv[optind++];
    return 0;
}

int cmd_produce(int argc, char **argv)
{
    if (want_help(argc, argv, HELP))
        return 0;
    struct popt o = {.partition = -1, .headers = json_object()};
    int rc = parse(&o, argc, argv);
    json_t *records = json_array();
    if (!rc && o.file)
        rc = from_file(&o);
    else if (!rc && (optind >= argc || !strcmp(argv[optind], "-")))
        rc = from_stdin(&o, records);
    else
        for (int i = optind; !rc && i < argc; i++)
            rc = add_value(&o, records, argv[i]);
    if (!rc)
        rc = flush(&o, records);
    json_decref(records);
    json_decref(o.headers);
    return rc;
}
