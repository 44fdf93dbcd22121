/* broker-bench: load generator for the broker's HTTP message API. */

/*
 * DESIGN
 *
 * Modelled on kafka-producer-perf-test and kafka-consumer-perf-test.
 *
 * Threads. The main thread parses the options, does the blocking setup
 * requests (create the topic, read the high watermarks), starts --threads
 * workers and then only waits for them, printing progress lines. Each worker
 * owns one libcurl multi handle and a contiguous block of the connections.
 * A connection is one easy handle with at most one request in flight;
 * libcurl keeps its TCP connection open between requests (keep-alive), so
 * N connections means N sockets and N requests in flight.
 *
 * Shared state is small: the --messages budget (atomic), the consume work
 * list (mutex), the progress and printed-error counters (atomic) and the
 * SIGINT flag. Statistics are kept per worker and merged after the join.
 *
 * Time. Warmup runs from the start to t_measure, the measured window from
 * t_measure to t_end. A request counts in the window when its answer
 * arrives after t_measure. From t_end on no request starts; the requests in
 * flight finish and are counted, so the window closes at the last answer.
 * SIGINT aborts the requests in flight; they are not counted.
 *
 * Consume. The offsets [log_start_offset, high watermark at start) of every
 * partition are cut into slices, a few per connection. A connection takes a
 * slice, fetches it from its start advancing by next_offset, then takes the
 * next one, so all connections are busy even with fewer partitions.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_VERSION "0.1"
#define BENCH_DEFAULT_URL "http://127.0.0.1:9092"
#define BENCH_MAX_URLS 64
#define BENCH_MAX_URL_LEN 2048
#define BENCH_MAX_CONNECTIONS 10000
#define BENCH_MAX_THREADS 256
#define BENCH_MAX_MESSAGE_SIZE (64LL << 20)
#define BENCH_MAX_BATCH 100000
#define BENCH_MAX_BODY ((size_t)256 << 20)  /* one produce request */
#define BENCH_RECORD_OVERHEAD 64            /* {"key":"k<20>","value":""}, */
#define BENCH_RESP_MAX ((size_t)64 << 20)   /* answers larger are errors */
#define BENCH_RESP_KEEP ((size_t)4 << 20)   /* larger buffers freed after use */
#define BENCH_ERR_PRINTS 5                  /* error bodies shown on stderr */
#define BENCH_ERR_SNIPPET 400               /* bytes of each shown body */
#define BENCH_MAX_RETRIES 20                /* consume: failures per slice */
#define BENCH_MAX_FETCH_LIMIT 10000         /* API.md: limit max 10000 */

#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)
#define BENCH_RETRY_NS (50 * NS_PER_MS) /* pause after a failed request */
#define BENCH_MIB (1024.0 * 1024.0)

static volatile sig_atomic_t g_interrupted; /* set by SIGINT/SIGTERM */

/* ==== Small helpers ===================================================== */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t secs_to_ns(double s)
{
    return (uint64_t)llround(s * (double)NS_PER_S);
}

static double ns_to_ms(uint64_t ns)
{
    return (double)ns / (double)NS_PER_MS;
}

/* Round to 3 decimals so the JSON line stays short. */
static double round3(double v)
{
    return round(v * 1000.0) / 1000.0;
}

/* A growable byte buffer, always NUL-terminated when data != NULL. */
struct buf {
    char *data;
    size_t len; /* bytes used, NUL excluded */
    size_t cap; /* bytes allocated, NUL included */
};

static int buf_reserve(struct buf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 4096;
    char *p;

    if (need >= SIZE_MAX / 2) {
        return -1;
    }
    while (cap < need + 1) {
        cap *= 2;
    }
    if (cap == b->cap) {
        return 0;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Response sink for curl: a buffer capped at BENCH_RESP_MAX. */
struct sink {
    struct buf buf;
    int overflow; /* the answer was larger than BENCH_RESP_MAX */
    int oom;      /* growing the buffer failed */
};

static void sink_reset(struct sink *s)
{
    s->buf.len = 0;
    if (s->buf.data != NULL) {
        s->buf.data[0] = '\0';
    }
    s->overflow = 0;
    s->oom = 0;
}

static size_t sink_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    size_t n = size * nmemb;

    if (n > BENCH_RESP_MAX - s->buf.len) {
        s->overflow = 1;
        return 0; /* curl aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (buf_reserve(&s->buf, s->buf.len + n) != 0) {
        s->oom = 1;
        return 0;
    }
    memcpy(s->buf.data + s->buf.len, ptr, n);
    s->buf.len += n;
    s->buf.data[s->buf.len] = '\0';
    return n;
}

/* Bounded output cursor used to build request bodies. */
struct out {
    char *p;
    size_t len;
    size_t cap;
};

static int out_put(struct out *o, const char *s, size_t n)
{
    if (n > o->cap - o->len) {
        return -1;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    return 0;
}

static int out_str(struct out *o, const char *s)
{
    return out_put(o, s, strlen(s));
}

/* ==== Latency histogram ================================================= */

/*
 * Log-linear buckets over nanoseconds, like HdrHistogram with two
 * significant digits: values below 256 ns are exact; above, every power of
 * two is split into 128 equal buckets. A bucket is at most 1/128 (0.8%) of
 * its lower bound wide, so its midpoint is within 0.4% of any value in it.
 */
#define HIST_SUB_BITS 7
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
#define HIST_LINEAR (2u * HIST_SUB_COUNT)
#define HIST_MAX_MSB 47 /* 2^48 ns is 78 hours; longer is clamped */
#define HIST_BUCKETS \
    (HIST_LINEAR + (HIST_MAX_MSB - HIST_SUB_BITS) * HIST_SUB_COUNT)

struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total; /* values recorded */
    uint64_t min;   /* exact, ns */
    uint64_t max;   /* exact, ns */
    double sum;     /* ns, for the mean; a double cannot overflow */
};

static size_t hist_index(uint64_t v)
{
    unsigned msb;
    unsigned shift;

    if (v < HIST_LINEAR) {
        return (size_t)v;
    }
    if (v >> (HIST_MAX_MSB + 1)) {
        v = (UINT64_C(1) << (HIST_MAX_MSB + 1)) - 1;
    }
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - HIST_SUB_BITS;
    return HIST_LINEAR + (size_t)(msb - HIST_SUB_BITS - 1) * HIST_SUB_COUNT +
           (size_t)((v >> shift) - HIST_SUB_COUNT);
}

static uint64_t hist_bucket_mid(size_t i)
{
    size_t group;
    uint64_t sub;
    unsigned shift;

    if (i < HIST_LINEAR) {
        return i;
    }
    group = (i - HIST_LINEAR) / HIST_SUB_COUNT;
    sub = HIST_SUB_COUNT + (i - HIST_LINEAR) % HIST_SUB_COUNT;
    shift = (unsigned)group + 1;
    return (sub << shift) + ((UINT64_C(1) << shift) >> 1);
}

static void hist_record(struct hist *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    if (h->total == 0 || v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
    h->total++;
    h->sum += (double)v;
}

static void hist_merge(struct hist *dst, const struct hist *src)
{
    size_t i;

    if (src->total == 0) {
        return;
    }
    for (i = 0; i < HIST_BUCKETS; i++) {
        dst->counts[i] += src->counts[i];
    }
    if (dst->total == 0 || src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
    dst->total += src->total;
    dst->sum += src->sum;
}

/* The value at rank ceil(q * total), as its bucket midpoint within min..max. */
static uint64_t hist_percentile(const struct hist *h, double q)
{
    uint64_t rank;
    uint64_t seen = 0;
    uint64_t mid;
    size_t i;

    if (h->total == 0) {
        return 0;
    }
    if (q >= 1.0) {
        return h->max;
    }
    rank = (uint64_t)ceil(q * (double)h->total);
    rank = rank < 1 ? 1 : (rank > h->total ? h->total : rank);
    for (i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            mid = hist_bucket_mid(i);
            mid = mid < h->min ? h->min : mid;
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}

static double hist_mean(const struct hist *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}

/* ==== Options =========================================================== */

enum bench_mode { MODE_PRODUCE, MODE_CONSUME };

struct bench_opts {
    char *urls[BENCH_MAX_URLS]; /* owned, no trailing '/' */
    int n_urls;
    enum bench_mode mode;
    const char *topic;         /* borrowed from argv */
    long long partitions;      /* produce: create with P; 0 = don't */
    long long connections;
    long long threads;
    long long message_size;    /* value bytes */
    long long batch;           /* records per produce request */
    double duration;           /* measured seconds; 0 = no limit */
    long long messages;        /* stop after; 0 = no limit */
    double warmup;             /* seconds excluded from the stats */
    long long key_cardinality; /* 0 = no key */
    long long fetch_limit;
    double timeout;            /* per request, seconds */
    double report_interval;    /* progress lines; 0 = off */
    int raw;
    int json;
    int allow_errors;
    int duration_set;
    int warmup_set;
};

enum {
    OPT_URL = 256,
    OPT_MODE,
    OPT_TOPIC,
    OPT_PARTITIONS,
    OPT_CONNECTIONS,
    OPT_THREADS,
    OPT_MESSAGE_SIZE,
    OPT_BATCH,
    OPT_DURATION,
    OPT_MESSAGES,
    OPT_WARMUP,
    OPT_RAW,
    OPT_KEY_CARDINALITY,
    OPT_FETCH_LIMIT,
    OPT_TIMEOUT,
    OPT_REPORT_INTERVAL,
    OPT_JSON,
    OPT_ALLOW_ERRORS,
};

static const struct option bench_long_opts[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"mode", required_argument, NULL, OPT_MODE},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"partitions", required_argument, NULL, OPT_PARTITIONS},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"message-size", required_argument, NULL, OPT_MESSAGE_SIZE},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"messages", required_argument, NULL, OPT_MESSAGES},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"raw", no_argument, NULL, OPT_RAW},
    {"key-cardinality", required_argument, NULL, OPT_KEY_CARDINALITY},
    {"fetch-limit", required_argument, NULL, OPT_FETCH_LIMIT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"report-interval", required_argument, NULL, OPT_REPORT_INTERVAL},
    {"json", no_argument, NULL, OPT_JSON},
    {"allow-errors", no_argument, NULL, OPT_ALLOW_ERRORS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fputs(
        "Usage: broker-bench [OPTIONS]\n"
        "Load generator for the broker's HTTP message API.\n"
        "\n"
        "  --url URL             broker base URL; repeatable or comma list,\n"
        "                        connections spread round-robin\n"
        "                        (default " BENCH_DEFAULT_URL ")\n"
        "  --mode MODE           produce or consume (default produce)\n"
        "  --topic NAME          topic (default bench)\n"
        "  --partitions P        produce: create the topic with P partitions\n"
        "                        first (an existing topic is fine)\n"
        "  --connections N       concurrent connections (default 8)\n"
        "  --threads N           worker threads, one curl multi each (default 1)\n"
        "  --message-size BYTES  value bytes per message (default 1024)\n"
        "  --batch B             records per produce request (default 1)\n"
        "  --duration SECONDS    measured time after warmup (default 10;\n"
        "                        0 = no limit, needs --messages)\n"
        "  --messages COUNT      stop after COUNT messages, warmup included\n"
        "  --warmup SECONDS      not measured (default 1; 0 with --messages)\n"
        "  --raw                 send the value as an application/octet-stream\n"
        "                        body (produce, batch 1 only)\n"
        "  --key-cardinality K   keys k0..k{K-1} round-robin; 0 = no key\n"
        "  --fetch-limit L       consume: messages per fetch (default 1000)\n"
        "  --timeout SECONDS     per-request timeout (default 30)\n"
        "  --report-interval S   progress line on stderr every S s (0 = off)\n"
        "  --json                one JSON summary line on stdout (the human\n"
        "                        summary then goes to stderr)\n"
        "  --allow-errors        exit 0 even when requests failed\n"
        "  -h, --help            this help\n"
        "\n"
        "Exit status: 0 ok, 1 a request or the setup failed, 2 bad options.\n",
        out);
}

static int parse_int(const char *opt, const char *s, long long lo,
                     long long hi, long long *out)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr,
                "broker-bench: --%s: expected an integer in %lld..%lld, "
                "got '%s'\n",
                opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_secs(const char *opt, const char *s, double lo, double hi,
                      double *out)
{
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < lo ||
        v > hi) {
        fprintf(stderr,
                "broker-bench: --%s: expected seconds in %g..%g, got '%s'\n",
                opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* API.md: ^[A-Za-z0-9._-]{1,249}$, not "." or "..". */
static int topic_valid(const char *t)
{
    size_t n = strnlen(t, 250);
    size_t i;

    if (n < 1 || n > 249 || strcmp(t, ".") == 0 || strcmp(t, "..") == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char c = t[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int add_one_url(struct bench_opts *o, const char *u)
{
    size_t n = strnlen(u, BENCH_MAX_URL_LEN + 1);

    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) {
        fprintf(stderr, "broker-bench: --url: '%s' is not http(s)://\n", u);
        return -1;
    }
    if (n > BENCH_MAX_URL_LEN) {
        fprintf(stderr, "broker-bench: --url: longer than %d bytes\n",
                BENCH_MAX_URL_LEN);
        return -1;
    }
    if (o->n_urls >= BENCH_MAX_URLS) {
        fprintf(stderr, "broker-bench: --url: more than %d urls\n",
                BENCH_MAX_URLS);
        return -1;
    }
    o->urls[o->n_urls] = strndup(u, n);
    if (o->urls[o->n_urls] == NULL) {
        fprintf(stderr, "broker-bench: --url: out of memory\n");
        return -1;
    }
    /* Paths are appended as "/topics/...", so drop trailing slashes. */
    while (n > 0 && o->urls[o->n_urls][n - 1] == '/') {
        o->urls[o->n_urls][--n] = '\0';
    }
    o->n_urls++;
    return 0;
}

/* Add a comma-separated list of base URLs. */
static int add_urls(struct bench_opts *o, const char *arg)
{
    char *copy = strdup(arg);
    char *save = NULL;
    char *tok;
    int rc = 0;

    if (copy == NULL) {
        fprintf(stderr, "broker-bench: --url: out of memory\n");
        return -1;
    }
    for (tok = strtok_r(copy, ",", &save); tok != NULL && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        rc = add_one_url(o, tok);
    }
    free(copy);
    return rc;
}

static void opts_init(struct bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = MODE_PRODUCE;
    o->topic = "bench";
    o->connections = 8;
    o->threads = 1;
    o->message_size = 1024;
    o->batch = 1;
    o->duration = 10.0;
    o->warmup = 1.0;
    o->fetch_limit = 1000;
    o->timeout = 30.0;
}

static void opts_free(struct bench_opts *o)
{
    int i;

    for (i = 0; i < o->n_urls; i++) {
        free(o->urls[i]);
        o->urls[i] = NULL;
    }
    o->n_urls = 0;
}

static int apply_mode(struct bench_opts *o, const char *arg)
{
    if (strcmp(arg, "produce") == 0) {
        o->mode = MODE_PRODUCE;
    } else if (strcmp(arg, "consume") == 0) {
        o->mode = MODE_CONSUME;
    } else {
        fprintf(stderr,
                "broker-bench: --mode: expected produce or consume, got '%s'\n",
                arg);
        return -1;
    }
    return 0;
}

static int apply_topic(struct bench_opts *o, const char *arg)
{
    if (!topic_valid(arg)) {
        fprintf(stderr,
                "broker-bench: --topic: '%s' is not a valid topic name "
                "([A-Za-z0-9._-]{1,249})\n",
                arg);
        return -1;
    }
    o->topic = arg;
    return 0;
}

/* Apply one option; 0 on success, -1 after printing why not. */
static int apply_opt(struct bench_opts *o, int c, const char *arg)
{
    switch (c) {
    case OPT_URL: return add_urls(o, arg);
    case OPT_MODE: return apply_mode(o, arg);
    case OPT_TOPIC: return apply_topic(o, arg);
    case OPT_PARTITIONS:
        return parse_int("partitions", arg, 1, 1000000, &o->partitions);
    case OPT_CONNECTIONS:
        return parse_int("connections", arg, 1, BENCH_MAX_CONNECTIONS,
                         &o->connections);
    case OPT_THREADS:
        return parse_int("threads", arg, 1, BENCH_MAX_THREADS, &o->threads);
    case OPT_MESSAGE_SIZE:
        return parse_int("message-size", arg, 0, BENCH_MAX_MESSAGE_SIZE,
                         &o->message_size);
    case OPT_BATCH:
        return parse_int("batch", arg, 1, BENCH_MAX_BATCH, &o->batch);
    case OPT_DURATION:
        o->duration_set = 1;
        return parse_secs("duration", arg, 0.0, 1e7, &o->duration);
    case OPT_MESSAGES:
        return parse_int("messages", arg, 1, INT64_MAX / 2, &o->messages);
    case OPT_WARMUP:
        o->warmup_set = 1;
        return parse_secs("warmup", arg, 0.0, 1e6, &o->warmup);
    case OPT_RAW: o->raw = 1; return 0;
    case OPT_KEY_CARDINALITY:
        return parse_int("key-cardinality", arg, 0, INT64_MAX / 2,
                         &o->key_cardinality);
    case OPT_FETCH_LIMIT:
        return parse_int("fetch-limit", arg, 1, BENCH_MAX_FETCH_LIMIT,
                         &o->fetch_limit);
    case OPT_TIMEOUT:
        return parse_secs("timeout", arg, 0.001, 86400.0, &o->timeout);
    case OPT_REPORT_INTERVAL:
        return parse_secs("report-interval", arg, 0.0, 86400.0,
                          &o->report_interval);
    case OPT_JSON: o->json = 1; return 0;
    case OPT_ALLOW_ERRORS: o->allow_errors = 1; return 0;
    default: return -1;
    }
}

static int bad(const char *opt, const char *why)
{
    fprintf(stderr, "broker-bench: --%s: %s\n", opt, why);
    return -1;
}

/* Checks that involve several options, and defaults that depend on others. */
static int opts_check(struct bench_opts *o)
{
    size_t per_record = (size_t)o->message_size + BENCH_RECORD_OVERHEAD;

    if (o->n_urls == 0 && add_one_url(o, BENCH_DEFAULT_URL) != 0) {
        return -1;
    }
    if (o->messages > 0 && !o->duration_set) {
        o->duration = 0.0; /* --messages alone: no time limit */
    }
    if ((o->messages > 0 || o->mode == MODE_CONSUME) && !o->warmup_set) {
        /* With --messages every requested message should be measured, and
         * a consumer reads a finite backlog that may take under a second. */
        o->warmup = 0.0;
    }
    if (o->duration == 0.0 && o->messages == 0) {
        return bad("duration", "0 (no time limit) needs --messages");
    }
    if (o->threads > o->connections) {
        return bad("threads", "must not exceed --connections");
    }
    if (o->raw && o->batch != 1) {
        return bad("raw", "only with --batch 1");
    }
    if (o->raw && o->mode != MODE_PRODUCE) {
        return bad("raw", "only in produce mode");
    }
    if ((size_t)o->batch > (BENCH_MAX_BODY - 32) / per_record) {
        return bad("batch", "batch x message size exceeds 256 MiB a request");
    }
    if (o->mode == MODE_CONSUME && o->partitions > 0) {
        fprintf(stderr, "broker-bench: note: --partitions is ignored in "
                        "consume mode\n");
    }
    return 0;
}

/* Returns 0 to run, 1 after --help, -1 for bad options (exit status 2). */
static int opts_parse(int argc, char **argv, struct bench_opts *o)
{
    int c;

    opts_init(o);
    while ((c = getopt_long(argc, argv, "h", bench_long_opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "Try 'broker-bench --help'.\n");
            return -1;
        }
        if (apply_opt(o, c, optarg) != 0) {
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "broker-bench: unexpected argument '%s'\n",
                argv[optind]);
        return -1;
    }
    return opts_check(o);
}

/* ==== Run state ========================================================= */

/* A range of one partition's offsets for the consumer: [from, to). */
struct slice {
    long long partition;
    int64_t from;
    int64_t to;
};

/* What one partition held when the consumer started. */
struct part_info {
    long long partition;
    int64_t start; /* log_start_offset */
    int64_t hwm;   /* high_watermark */
};

/* Per-phase counters. */
struct counts {
    uint64_t requests; /* answers and transport failures */
    uint64_t messages; /* messages in successful answers */
    uint64_t bytes;    /* value bytes of those messages */
    uint64_t errors;   /* non-2xx answers and transport failures */
};

/* Shared by all workers; read-only once they start, except the atomics. */
struct bench_run {
    const struct bench_opts *opts;
    char *value;                    /* message_size ASCII bytes + NUL */
    char *shared_body;              /* keyless full-batch JSON body */
    size_t shared_body_len;
    struct curl_slist *headers;     /* Content-Type and empty Expect: */
    uint64_t t_start;
    uint64_t t_measure;             /* end of warmup */
    uint64_t t_end;                 /* stop starting requests */
    atomic_llong budget;            /* messages left under --messages */
    atomic_ullong progress;         /* messages done, warmup included */
    atomic_int error_prints;        /* error bodies printed so far */
    atomic_int warn_prints;         /* given-up warnings printed so far */
    atomic_llong skipped;           /* consume: offsets given up on */
    atomic_int workers_done;
    pthread_mutex_t slice_lock;
    struct slice *slices;           /* consume work list */
    size_t n_slices;
    size_t next_slice;              /* under slice_lock */
    int64_t consume_target;         /* messages below the watermarks */
};

struct worker;

/* One keep-alive connection with at most one request in flight. */
struct conn {
    struct worker *w;
    CURL *easy;
    const char *base;         /* borrowed from opts->urls */
    char *url;                /* owned */
    size_t url_cap;
    char *body;               /* owned, for bodies not shared */
    size_t body_cap;
    struct sink resp;
    char errbuf[CURL_ERROR_SIZE];
    uint64_t sent_at;         /* ns, when the request was handed to curl */
    uint64_t retry_at;        /* ns, no request before this */
    uint64_t req_msgs;        /* produce: records sent; consume: limit */
    int busy;                 /* a request is in flight */
    int done;                 /* no more work for this connection */
    struct slice slice;       /* consume: current slice */
    int64_t cursor;           /* consume: next offset to fetch */
    int failures;             /* consume: failures in a row on this slice */
};

struct worker {
    struct bench_run *run;
    int id;
    CURLM *multi;
    struct conn *conns;       /* owned array */
    size_t n_conns;
    uint64_t key_seq;         /* next key number, modulo the cardinality */
    struct counts warm;       /* answers during warmup */
    struct counts meas;       /* answers in the measured window */
    struct hist hist;         /* latency of successful measured requests */
    uint64_t finished_at;     /* ns */
    int failed;               /* local failure (out of memory) */
    pthread_t thread;
};

/* Outcome of one request. */
struct result {
    int error;                /* counts as an error */
    uint64_t messages;
    uint64_t bytes;
};

/* Take up to @want messages from the --messages budget. */
static uint64_t budget_take(struct bench_run *run, uint64_t want)
{
    long long cur;
    long long take;

    if (run->opts->messages == 0) {
        return want;
    }
    cur = atomic_load(&run->budget);
    do {
        if (cur <= 0) {
            return 0;
        }
        take = cur < (long long)want ? cur : (long long)want;
    } while (!atomic_compare_exchange_weak(&run->budget, &cur, cur - take));
    return (uint64_t)take;
}

static void budget_refund(struct bench_run *run, uint64_t n)
{
    if (run->opts->messages > 0 && n > 0) {
        atomic_fetch_add(&run->budget, (long long)n);
    }
}

/* Print one of the first BENCH_ERR_PRINTS errors to stderr. */
static void error_print(struct conn *c, const char *what)
{
    char snippet[BENCH_ERR_SNIPPET + 1];
    size_t n = 0;
    size_t i;

    if (atomic_fetch_add(&c->w->run->error_prints, 1) >= BENCH_ERR_PRINTS) {
        return;
    }
    if (c->resp.buf.data != NULL) {
        n = c->resp.buf.len < BENCH_ERR_SNIPPET ? c->resp.buf.len
                                                : BENCH_ERR_SNIPPET;
        memcpy(snippet, c->resp.buf.data, n);
    }
    for (i = 0; i < n; i++) {
        if ((unsigned char)snippet[i] < 0x20) {
            snippet[i] = ' '; /* keep it on one line */
        }
    }
    snippet[n] = '\0';
    fprintf(stderr, "broker-bench: error: %s %s: %s%s%s\n",
            c->w->run->opts->mode == MODE_PRODUCE ? "POST" : "GET", c->url,
            what, n ? ": " : "", snippet);
}

/* ==== Producing ========================================================= */

/* Fill the value with pseudo-random letters and digits (no JSON escapes). */
static char *value_create(size_t size)
{
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    uint64_t x = UINT64_C(0x9E3779B97F4A7C15);
    char *v = malloc(size + 1);
    size_t i;

    if (v == NULL) {
        return NULL;
    }
    for (i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v[i] = alphabet[x % (sizeof alphabet - 1)];
    }
    v[size] = '\0';
    return v;
}

static size_t body_cap_for(const struct bench_opts *o, uint64_t n)
{
    return (size_t)n * ((size_t)o->message_size + BENCH_RECORD_OVERHEAD) + 32;
}

static int record_put(const struct bench_run *run, struct out *o,
                      uint64_t *key_seq)
{
    const struct bench_opts *opts = run->opts;
    char key[40];
    int n;
    int rc = out_str(o, "{");

    if (opts->key_cardinality > 0) {
        n = snprintf(key, sizeof key, "\"key\":\"k%" PRIu64 "\",",
                     *key_seq % (uint64_t)opts->key_cardinality);
        if (n < 0 || (size_t)n >= sizeof key) {
            return -1;
        }
        (*key_seq)++;
        rc |= out_str(o, key);
    }
    rc |= out_str(o, "\"value\":\"");
    rc |= out_put(o, run->value, (size_t)opts->message_size);
    rc |= out_str(o, "\"}");
    return rc;
}

/* {"value": ...} for one record, {"records": [...]} for more. */
static int body_build(const struct bench_run *run, struct out *o, uint64_t n,
                      uint64_t *key_seq)
{
    uint64_t i;
    int rc = 0;

    o->len = 0;
    if (n > 1) {
        rc |= out_str(o, "{\"records\":[");
    }
    for (i = 0; i < n && rc == 0; i++) {
        if (i > 0) {
            rc |= out_str(o, ",");
        }
        rc |= record_put(run, o, key_seq);
    }
    if (n > 1) {
        rc |= out_str(o, "]}");
    }
    return rc ? -1 : 0;
}

/* Point the easy handle at @n records' worth of JSON body. */
static int produce_json_body(struct conn *c, uint64_t n)
{
    struct bench_run *run = c->w->run;
    const struct bench_opts *o = run->opts;
    struct out out;

    if (o->key_cardinality == 0 && n == (uint64_t)o->batch) {
        /* Keyless full batches are identical: share one read-only body. */
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)run->shared_body_len);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, run->shared_body);
        return 0;
    }
    if (c->body == NULL) {
        c->body_cap = body_cap_for(o, (uint64_t)o->batch);
        c->body = malloc(c->body_cap);
        if (c->body == NULL) {
            return -1;
        }
    }
    out.p = c->body;
    out.cap = c->body_cap;
    if (body_build(run, &out, n, &c->w->key_seq) != 0) {
        return -1;
    }
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)out.len);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
    return 0;
}

/* --raw: the value is the body, the key goes in the query string. */
static int produce_raw_body(struct conn *c)
{
    struct bench_run *run = c->w->run;
    const struct bench_opts *o = run->opts;
    uint64_t key;
    int n;

    if (o->key_cardinality > 0) {
        key = c->w->key_seq++ % (uint64_t)o->key_cardinality;
        n = snprintf(c->url, c->url_cap, "%s/topics/%s/messages?key=k%" PRIu64,
                     c->base, o->topic, key);
        if (n < 0 || (size_t)n >= c->url_cap) {
            return -1;
        }
        curl_easy_setopt(c->easy, CURLOPT_URL, c->url);
    }
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)o->message_size);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, run->value);
    return 0;
}

static void produce_result(struct conn *c, long status, struct result *r)
{
    char what[64];

    if (status == 201) {
        r->messages = c->req_msgs;
        r->bytes = c->req_msgs * (uint64_t)c->w->run->opts->message_size;
        return;
    }
    r->error = 1;
    snprintf(what, sizeof what, "HTTP %ld (expected 201)", status);
    error_print(c, what);
}

/* ==== Consuming ========================================================= */

/* Hand the next slice of the work list to @c; -1 when none is left. */
static int slice_next(struct bench_run *run, struct conn *c)
{
    int rc = -1;

    pthread_mutex_lock(&run->slice_lock);
    if (run->next_slice < run->n_slices) {
        c->slice = run->slices[run->next_slice++];
        c->cursor = c->slice.from;
        c->failures = 0;
        rc = 0;
    }
    pthread_mutex_unlock(&run->slice_lock);
    return rc;
}

/* Bytes of a fetched message's value, as the producer sent them. */
static uint64_t value_bytes(json_t *msg)
{
    json_t *v = json_object_get(msg, "value");
    const char *enc = json_string_value(json_object_get(msg, "value_encoding"));
    size_t n;

    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    n = json_string_length(v);
    if (enc != NULL && strcmp(enc, "base64") == 0) {
        const char *s = json_string_value(v);
        size_t pad = (n >= 1 && s[n - 1] == '=') + (n >= 2 && s[n - 2] == '=');
        return n / 4 * 3 >= pad ? n / 4 * 3 - pad : 0;
    }
    return n;
}

/* Count a page's messages below the slice end and advance the cursor. */
static int consume_page(struct conn *c, json_t *root, struct result *r)
{
    json_t *list = json_object_get(root, "messages");
    json_t *next = json_object_get(root, "next_offset");
    json_t *m;
    json_t *off;
    size_t i;

    if (!json_is_array(list) || !json_is_integer(next)) {
        return -1;
    }
    json_array_foreach(list, i, m)
    {
        off = json_object_get(m, "offset");
        if (json_is_integer(off) && json_integer_value(off) >= c->slice.to) {
            continue; /* past this slice: another connection counts it */
        }
        r->messages++;
        r->bytes += value_bytes(m);
    }
    if (json_integer_value(next) <= c->cursor) {
        c->failures++; /* no progress (lagging node?): retry after a pause */
        c->retry_at = now_ns() + BENCH_RETRY_NS;
    } else {
        c->cursor = json_integer_value(next);
        c->failures = 0;
    }
    return 0;
}

static void consume_result(struct conn *c, long status, struct result *r)
{
    char what[64];
    json_error_t jerr;
    json_t *root;

    if (status != 200) {
        snprintf(what, sizeof what, "HTTP %ld (expected 200)", status);
        goto err;
    }
    root = json_loadb(c->resp.buf.data ? c->resp.buf.data : "",
                      c->resp.buf.len, 0, &jerr);
    if (root == NULL || consume_page(c, root, r) != 0) {
        json_decref(root);
        snprintf(what, sizeof what, "HTTP 200 with an unexpected body");
        goto err;
    }
    json_decref(root);
    return;

err:
    r->error = 1;
    r->messages = 0;
    r->bytes = 0;
    c->failures++;
    error_print(c, what);
}

/* 4xx answers other than 408 and 429 will not change on a retry. */
static int status_permanent(long status)
{
    return status >= 400 && status < 500 && status != 408 && status != 429;
}

/* After a fetch: give back the unused budget, drop hopeless slices. */
static void consume_settle(struct conn *c, long status, const struct result *r)
{
    struct bench_run *run = c->w->run;

    if (r->messages < c->req_msgs) {
        budget_refund(run, c->req_msgs - r->messages);
    }
    if (c->failures <= BENCH_MAX_RETRIES &&
        !(r->error && status_permanent(status))) {
        return;
    }
    if (atomic_fetch_add(&run->warn_prints, 1) < BENCH_ERR_PRINTS) {
        fprintf(stderr,
                "broker-bench: warning: giving up partition %lld offsets "
                "%" PRId64 "..%" PRId64 " after %d failure(s)\n",
                c->slice.partition, c->cursor, c->slice.to, c->failures);
    }
    atomic_fetch_add(&run->skipped, (long long)(c->slice.to - c->cursor));
    c->cursor = c->slice.to;
}

/* ==== Connections ======================================================= */

static int conn_setup_easy(struct conn *c)
{
    const struct bench_opts *o = c->w->run->opts;
    long timeout_ms = (long)ceil(o->timeout * 1000.0);
    CURL *e = c->easy;

    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->resp);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "broker-bench/" BENCH_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->w->run->headers);
    if (o->mode == MODE_PRODUCE) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_URL, c->url);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    return 0;
}

static int conn_init(struct conn *c, struct worker *w, size_t index)
{
    const struct bench_opts *o = w->run->opts;
    int n;

    memset(c, 0, sizeof *c);
    c->w = w;
    c->base = o->urls[index % (size_t)o->n_urls];
    c->url_cap = strlen(c->base) + strlen(o->topic) + 160;
    c->url = malloc(c->url_cap);
    c->easy = curl_easy_init();
    if (c->url == NULL || c->easy == NULL) {
        return -1;
    }
    n = snprintf(c->url, c->url_cap, "%s/topics/%s/messages", c->base,
                 o->topic);
    if (n < 0 || (size_t)n >= c->url_cap) {
        return -1;
    }
    return conn_setup_easy(c);
}

static void conn_close(struct conn *c)
{
    if (c->easy != NULL) {
        curl_easy_cleanup(c->easy);
    }
    free(c->url);
    free(c->body);
    buf_free(&c->resp.buf);
    memset(c, 0, sizeof *c);
}

static int conn_start(struct conn *c)
{
    sink_reset(&c->resp);
    c->errbuf[0] = '\0';
    c->sent_at = now_ns();
    if (curl_multi_add_handle(c->w->multi, c->easy) != CURLM_OK) {
        return -1;
    }
    c->busy = 1;
    return 0;
}

static int produce_issue(struct conn *c)
{
    const struct bench_opts *o = c->w->run->opts;
    uint64_t n = budget_take(c->w->run, (uint64_t)o->batch);
    int rc;

    if (n == 0) {
        c->done = 1; /* --messages reached */
        return 0;
    }
    rc = o->raw ? produce_raw_body(c) : produce_json_body(c, n);
    if (rc != 0) {
        return -1;
    }
    c->req_msgs = n;
    return conn_start(c);
}

static int consume_issue(struct conn *c)
{
    struct bench_run *run = c->w->run;
    int64_t left;
    uint64_t n;
    int len;

    if (c->cursor >= c->slice.to && slice_next(run, c) != 0) {
        c->done = 1; /* everything below the watermarks is taken */
        return 0;
    }
    left = c->slice.to - c->cursor;
    n = budget_take(run, (uint64_t)(left < run->opts->fetch_limit
                                        ? left
                                        : run->opts->fetch_limit));
    if (n == 0) {
        return 0; /* --messages reached, unless a fetch gives some back */
    }
    len = snprintf(c->url, c->url_cap,
                   "%s/topics/%s/partitions/%lld/messages?offset=%" PRId64
                   "&limit=%" PRIu64,
                   c->base, run->opts->topic, c->slice.partition, c->cursor, n);
    if (len < 0 || (size_t)len >= c->url_cap) {
        budget_refund(run, n);
        return -1;
    }
    curl_easy_setopt(c->easy, CURLOPT_URL, c->url);
    c->req_msgs = n;
    return conn_start(c);
}

static void conn_transport_error(struct conn *c, CURLcode rc, struct result *r)
{
    char what[CURL_ERROR_SIZE + 64];

    r->error = 1;
    if (c->resp.overflow) {
        snprintf(what, sizeof what, "response larger than %zu MiB",
                 BENCH_RESP_MAX >> 20);
    } else {
        snprintf(what, sizeof what, "%s",
                 c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    }
    sink_reset(&c->resp); /* a partial body is not worth printing */
    if (c->w->run->opts->mode == MODE_CONSUME) {
        c->failures++;
    }
    error_print(c, what);
}

static void stats_record(struct worker *w, uint64_t sent, uint64_t now,
                         const struct result *r)
{
    struct bench_run *run = w->run;
    int measured = now >= run->t_measure;
    struct counts *k = measured ? &w->meas : &w->warm;

    k->requests++;
    if (r->error) {
        k->errors++;
        return;
    }
    k->messages += r->messages;
    k->bytes += r->bytes;
    if (measured) {
        hist_record(&w->hist, now - sent);
    }
    atomic_fetch_add_explicit(&run->progress, r->messages,
                              memory_order_relaxed);
}

/* A request ended: classify it, record it, prepare the next one. */
static void conn_finish(struct conn *c, CURLcode rc)
{
    uint64_t now = now_ns();
    struct result r = {0, 0, 0};
    long status = 0;

    c->busy = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        conn_transport_error(c, rc, &r);
    } else if (c->w->run->opts->mode == MODE_PRODUCE) {
        produce_result(c, status, &r);
    } else {
        consume_result(c, status, &r);
    }
    stats_record(c->w, c->sent_at, now, &r);
    if (c->w->run->opts->mode == MODE_CONSUME) {
        consume_settle(c, rc == CURLE_OK ? status : 0, &r);
    }
    if (r.error) {
        c->retry_at = now + BENCH_RETRY_NS; /* don't spin on a dead node */
    }
    if (c->resp.buf.cap > BENCH_RESP_KEEP) {
        buf_free(&c->resp.buf);
    }
}

/* ==== Workers =========================================================== */

static int conn_issue(struct conn *c)
{
    if (c->w->run->opts->mode == MODE_PRODUCE) {
        return produce_issue(c);
    }
    return consume_issue(c);
}

/* Start a request on every idle connection; return how many are busy. */
static size_t worker_issue(struct worker *w, uint64_t now, int *waiting)
{
    size_t busy = 0;
    size_t i;

    *waiting = 0;
    for (i = 0; i < w->n_conns; i++) {
        struct conn *c = &w->conns[i];
        if (!c->busy && !c->done && c->retry_at > now) {
            *waiting = 1;
            continue;
        }
        if (!c->busy && !c->done && conn_issue(c) != 0) {
            fprintf(stderr, "broker-bench: connection %zu: cannot start a "
                            "request (out of memory?)\n", i);
            c->done = 1;
            w->failed = 1;
        }
        busy += c->busy ? 1 : 0;
    }
    return busy;
}

static size_t worker_busy(const struct worker *w)
{
    size_t busy = 0;
    size_t i;

    for (i = 0; i < w->n_conns; i++) {
        busy += w->conns[i].busy ? 1 : 0;
    }
    return busy;
}

/* SIGINT: drop the requests in flight without counting them. */
static void worker_abort(struct worker *w)
{
    size_t i;

    for (i = 0; i < w->n_conns; i++) {
        struct conn *c = &w->conns[i];
        if (c->busy) {
            curl_multi_remove_handle(w->multi, c->easy);
            c->busy = 0;
            budget_refund(w->run, c->req_msgs);
        }
    }
}

static void worker_drain(struct worker *w)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(w->multi, &left)) != NULL) {
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        void *c = NULL;

        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &c);
        curl_multi_remove_handle(w->multi, easy); /* m is invalid now */
        if (c != NULL) {
            conn_finish((struct conn *)c, rc);
        }
    }
}

static void worker_loop(struct worker *w)
{
    int running = 0;
    int waiting = 0;
    size_t busy;
    uint64_t now;

    for (;;) {
        now = now_ns();
        if (g_interrupted) {
            worker_abort(w);
            break;
        }
        if (now >= w->run->t_end) {
            waiting = 0; /* time is up: only let the requests in flight end */
            busy = worker_busy(w);
        } else {
            busy = worker_issue(w, now, &waiting);
        }
        if (busy == 0 && !waiting) {
            break;
        }
        /* New handles have a zero timeout, so this returns at once. */
        curl_multi_poll(w->multi, NULL, 0, waiting ? 10 : 100, NULL);
        curl_multi_perform(w->multi, &running);
        worker_drain(w);
    }
    w->finished_at = now_ns();
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    worker_loop(w);
    atomic_fetch_add(&w->run->workers_done, 1);
    return NULL;
}

/* Give worker @w the connections [first, last). */
static int worker_init(struct worker *w, struct bench_run *run, int id,
                       size_t first, size_t last)
{
    size_t i;

    w->run = run;
    w->id = id;
    w->multi = curl_multi_init();
    w->conns = calloc(last - first, sizeof *w->conns);
    if (w->multi == NULL || w->conns == NULL) {
        return -1;
    }
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)(last - first));
    for (i = first; i < last; i++) {
        if (conn_init(&w->conns[w->n_conns++], w, i) != 0) {
            return -1;
        }
    }
    return 0;
}

static void worker_close(struct worker *w)
{
    size_t i;

    for (i = 0; i < w->n_conns; i++) {
        if (w->conns[i].busy) {
            curl_multi_remove_handle(w->multi, w->conns[i].easy);
        }
        conn_close(&w->conns[i]);
    }
    free(w->conns);
    if (w->multi != NULL) {
        curl_multi_cleanup(w->multi);
    }
    w->conns = NULL;
    w->multi = NULL;
}

/* ==== Setup requests (blocking, main thread) ============================ */

/* One blocking request; 0 if an HTTP answer came back (any status). */
static int http_call(const struct bench_opts *o, const char *url,
                     const char *body, long *status, struct sink *resp)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *e = curl_easy_init();
    CURLcode rc;

    if (e == NULL) {
        fprintf(stderr, "broker-bench: %s: curl_easy_init failed\n", url);
        return -1;
    }
    sink_reset(resp);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(o->timeout * 1000.0));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    if (body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }
    rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
        fprintf(stderr, "broker-bench: %s: %s%s%s\n", url,
                curl_easy_strerror(rc), errbuf[0] ? ": " : "", errbuf);
        return -1;
    }
    return 0;
}

/* GET /topics/T; the answer's root object (transferred) or NULL. */
static json_t *topic_describe(const struct bench_opts *o, long *status)
{
    char url[BENCH_MAX_URL_LEN + 320];
    struct sink resp = {{NULL, 0, 0}, 0, 0};
    json_error_t jerr;
    json_t *root = NULL;
    int n;

    *status = 0;
    n = snprintf(url, sizeof url, "%s/topics/%s", o->urls[0], o->topic);
    if (n < 0 || (size_t)n >= sizeof url) {
        return NULL; /* cannot happen: both parts are length-checked */
    }
    if (http_call(o, url, NULL, status, &resp) == 0 && *status == 200) {
        root = json_loadb(resp.buf.data ? resp.buf.data : "", resp.buf.len, 0,
                          &jerr);
        if (root == NULL) {
            fprintf(stderr, "broker-bench: %s: bad JSON: %s\n", url,
                    jerr.text);
        }
    } else if (*status != 0) {
        fprintf(stderr, "broker-bench: %s: HTTP %ld: %.300s\n", url, *status,
                resp.buf.data ? resp.buf.data : "");
    }
    buf_free(&resp.buf);
    return root;
}

/* After a 409: warn when the existing topic has another partition count. */
static void topic_check_partitions(const struct bench_opts *o)
{
    long status = 0;
    json_t *root = topic_describe(o, &status);
    json_t *parts = json_object_get(root, "partitions");
    size_t n = json_is_array(parts) ? json_array_size(parts)
                                    : (size_t)json_integer_value(parts);

    if (root != NULL && n != (size_t)o->partitions) {
        fprintf(stderr,
                "broker-bench: note: topic %s exists with %zu partitions, "
                "not %lld\n",
                o->topic, n, o->partitions);
    }
    json_decref(root);
}

/* POST /topics {"name","partitions"}; 201 and 409 are both fine. */
static int topic_create(const struct bench_opts *o)
{
    char url[BENCH_MAX_URL_LEN + 32];
    struct sink resp = {{NULL, 0, 0}, 0, 0};
    json_t *req = json_pack("{s:s, s:I}", "name", o->topic, "partitions",
                            (json_int_t)o->partitions);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    long status = 0;
    int n = snprintf(url, sizeof url, "%s/topics", o->urls[0]);
    int rc = -1;

    if (n > 0 && (size_t)n < sizeof url && body != NULL &&
        http_call(o, url, body, &status, &resp) == 0) {
        if (status == 201 || status == 409) {
            rc = 0;
        } else {
            fprintf(stderr, "broker-bench: POST %s: HTTP %ld: %.300s\n", url,
                    status, resp.buf.data ? resp.buf.data : "");
        }
    }
    free(body);
    json_decref(req);
    buf_free(&resp.buf);
    if (rc == 0 && status == 409) {
        topic_check_partitions(o);
    }
    return rc;
}

static int part_parse(json_t *p, struct part_info *out)
{
    json_t *id = json_object_get(p, "partition");
    json_t *hwm = json_object_get(p, "high_watermark");
    json_t *start = json_object_get(p, "log_start_offset");

    if (!json_is_integer(id) || !json_is_integer(hwm) ||
        json_integer_value(hwm) < 0) {
        return -1;
    }
    out->partition = json_integer_value(id);
    out->hwm = json_integer_value(hwm);
    out->start = json_is_integer(start) ? json_integer_value(start) : 0;
    out->start = out->start < 0 ? 0 : out->start;
    return 0;
}

/* Read every partition's log start and high watermark. */
static int topic_load_parts(const struct bench_opts *o, struct part_info **out,
                            size_t *n_out)
{
    long status = 0;
    json_t *root = topic_describe(o, &status);
    json_t *parts = json_object_get(root, "partitions");
    struct part_info *info;
    size_t i;

    if (!json_is_array(parts) || json_array_size(parts) == 0) {
        if (root != NULL) {
            fprintf(stderr, "broker-bench: GET /topics/%s: no partitions "
                            "array in the answer\n", o->topic);
        }
        json_decref(root);
        return -1;
    }
    info = calloc(json_array_size(parts), sizeof *info);
    for (i = 0; info != NULL && i < json_array_size(parts); i++) {
        if (part_parse(json_array_get(parts, i), &info[i]) != 0) {
            fprintf(stderr, "broker-bench: GET /topics/%s: partition %zu "
                            "lacks partition/high_watermark\n", o->topic, i);
            free(info);
            info = NULL;
        }
    }
    *n_out = json_array_size(parts);
    json_decref(root);
    *out = info;
    return info != NULL ? 0 : -1;
}

/* Cut [start, hwm) of every partition into about 4 slices per connection. */
static int slices_build(struct bench_run *run, const struct part_info *p,
                        size_t n)
{
    int64_t total = 0;
    int64_t chunk;
    int64_t at;
    size_t i;
    size_t count = 0;

    for (i = 0; i < n; i++) {
        total += p[i].hwm > p[i].start ? p[i].hwm - p[i].start : 0;
    }
    chunk = (total + run->opts->connections * 4 - 1) /
            (run->opts->connections * 4);
    chunk = chunk < run->opts->fetch_limit ? run->opts->fetch_limit : chunk;
    /* At most total / chunk + n slices, i.e. 4 per connection + n. */
    run->slices = calloc((size_t)(total / chunk) + n + 1, sizeof *run->slices);
    if (run->slices == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        for (at = p[i].start; at < p[i].hwm; at += chunk) {
            struct slice *s = &run->slices[count++];
            s->partition = p[i].partition;
            s->from = at;
            s->to = p[i].hwm - at > chunk ? at + chunk : p[i].hwm;
        }
    }
    run->n_slices = count;
    run->consume_target = total;
    return 0;
}

static int consume_setup(struct bench_run *run)
{
    struct part_info *parts = NULL;
    size_t n = 0;
    int rc;

    if (topic_load_parts(run->opts, &parts, &n) != 0) {
        fprintf(stderr, "broker-bench: cannot read topic %s\n",
                run->opts->topic);
        return -1;
    }
    rc = slices_build(run, parts, n);
    free(parts);
    if (rc == 0) {
        fprintf(stderr, "broker-bench: consuming %" PRId64 " messages from "
                        "%zu partitions of %s%s\n",
                run->consume_target, n, run->opts->topic,
                run->consume_target ? "" : " (the topic is empty)");
    }
    return rc;
}

/* ==== Run =============================================================== */

static int run_init(struct bench_run *run, const struct bench_opts *o)
{
    struct out out;
    uint64_t seq = 0;
    const char *ctype = o->raw ? "Content-Type: application/octet-stream"
                               : "Content-Type: application/json";

    run->opts = o;
    atomic_init(&run->budget, o->messages);
    atomic_init(&run->progress, 0);
    atomic_init(&run->error_prints, 0);
    atomic_init(&run->warn_prints, 0);
    atomic_init(&run->skipped, 0);
    atomic_init(&run->workers_done, 0);
    pthread_mutex_init(&run->slice_lock, NULL);
    run->value = value_create((size_t)o->message_size);
    /* An empty Expect: stops curl from waiting for 100-continue. */
    run->headers = curl_slist_append(NULL, "Expect:");
    if (run->value == NULL || run->headers == NULL) {
        return -1;
    }
    if (o->mode == MODE_PRODUCE) {
        struct curl_slist *more = curl_slist_append(run->headers, ctype);
        if (more == NULL) {
            return -1;
        }
        run->headers = more;
    }
    if (o->mode != MODE_PRODUCE || o->raw || o->key_cardinality > 0) {
        return 0;
    }
    out.cap = body_cap_for(o, (uint64_t)o->batch);
    out.p = run->shared_body = malloc(out.cap);
    if (out.p == NULL || body_build(run, &out, (uint64_t)o->batch, &seq) != 0) {
        return -1;
    }
    run->shared_body_len = out.len;
    return 0;
}

static void run_close(struct bench_run *run)
{
    free(run->value);
    free(run->shared_body);
    free(run->slices);
    curl_slist_free_all(run->headers);
    pthread_mutex_destroy(&run->slice_lock);
}

static void progress_print(struct bench_run *run, uint64_t *last_n,
                           uint64_t *last_t)
{
    uint64_t now = now_ns();
    uint64_t n = atomic_load(&run->progress);
    double dt = (double)(now - *last_t) / (double)NS_PER_S;

    fprintf(stderr, "broker-bench: %6.1f s%s: %" PRIu64 " msgs, %.1f msgs/s\n",
            (double)(now - run->t_start) / (double)NS_PER_S,
            now < run->t_measure ? " (warmup)" : "", n,
            dt > 0 ? (double)(n - *last_n) / dt : 0.0);
    *last_n = n;
    *last_t = now;
}

/* Wait for the workers, printing progress every --report-interval. */
static void run_wait(struct bench_run *run, int n_workers)
{
    const struct timespec tick = {0, 50 * 1000 * 1000};
    uint64_t every = secs_to_ns(run->opts->report_interval);
    uint64_t last_t = run->t_start;
    uint64_t last_n = 0;

    while (atomic_load(&run->workers_done) < n_workers) {
        nanosleep(&tick, NULL);
        if (every > 0 && now_ns() - last_t >= every) {
            progress_print(run, &last_n, &last_t);
        }
    }
}

static void run_set_clock(struct bench_run *run)
{
    const struct bench_opts *o = run->opts;

    run->t_start = now_ns();
    run->t_measure = run->t_start + secs_to_ns(o->warmup);
    run->t_end = o->duration > 0 ? run->t_measure + secs_to_ns(o->duration)
                                 : UINT64_MAX;
}

/* Start the workers, wait for them; -1 if one could not be set up. */
static int run_workers(struct bench_run *run, struct worker *ws, int n)
{
    size_t conns = (size_t)run->opts->connections;
    int started = 0;
    int rc = 0;
    int i;

    for (i = 0; i < n && rc == 0; i++) {
        rc = worker_init(&ws[i], run, i, conns * (size_t)i / (size_t)n,
                         conns * (size_t)(i + 1) / (size_t)n);
    }
    if (rc != 0) {
        fprintf(stderr, "broker-bench: cannot set up the connections\n");
        return -1;
    }
    run_set_clock(run);
    for (i = 0; i < n; i++) {
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "broker-bench: cannot start thread %d\n", i);
            g_interrupted = 1; /* stop the ones already running */
            rc = -1;
            break;
        }
        started++;
    }
    run_wait(run, started);
    for (i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
    }
    return rc;
}

/* ==== Report ============================================================ */

struct summary {
    uint64_t skipped;     /* consume: offsets given up on */
    struct counts warm;
    struct counts meas;
    struct hist *hist;    /* merged, owned */
    double elapsed_s;     /* measured window */
    int interrupted;
    int failed;           /* a worker hit a local failure */
};

static int summary_merge(struct summary *s, const struct bench_run *run,
                         const struct worker *ws, int n)
{
    uint64_t end = 0;
    int i;

    memset(s, 0, sizeof *s);
    s->hist = calloc(1, sizeof *s->hist);
    if (s->hist == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        s->warm.requests += ws[i].warm.requests;
        s->warm.messages += ws[i].warm.messages;
        s->warm.errors += ws[i].warm.errors;
        s->meas.requests += ws[i].meas.requests;
        s->meas.messages += ws[i].meas.messages;
        s->meas.bytes += ws[i].meas.bytes;
        s->meas.errors += ws[i].meas.errors;
        s->failed |= ws[i].failed;
        hist_merge(s->hist, &ws[i].hist);
        end = ws[i].finished_at > end ? ws[i].finished_at : end;
    }
    s->elapsed_s = end > run->t_measure
                       ? (double)(end - run->t_measure) / (double)NS_PER_S
                       : 0.0;
    s->interrupted = g_interrupted != 0;
    s->skipped = (uint64_t)atomic_load(&run->skipped);
    return 0;
}

static double per_s(double v, double secs)
{
    return secs > 0 ? v / secs : 0.0;
}

/* Consume: the average value size read; produce: --message-size. */
static long long summary_message_size(const struct bench_opts *o,
                                      const struct summary *s)
{
    if (o->mode == MODE_PRODUCE) {
        return o->message_size;
    }
    return s->meas.messages ? (long long)(s->meas.bytes / s->meas.messages)
                            : 0;
}

static void summary_print(FILE *f, const struct bench_opts *o,
                          const struct summary *s)
{
    const struct hist *h = s->hist;

    if (o->mode == MODE_PRODUCE) {
        fprintf(f, "produce %s: %lld connections, %lld thread(s), %d url(s), "
                   "message size %lld B, batch %lld%s%s\n",
                o->topic, o->connections, o->threads, o->n_urls,
                o->message_size, o->batch, o->raw ? ", raw" : "",
                s->interrupted ? " (interrupted)" : "");
    } else {
        fprintf(f, "consume %s: %lld connections, %lld thread(s), %d url(s), "
                   "fetch limit %lld, average value %lld B%s\n",
                o->topic, o->connections, o->threads, o->n_urls,
                o->fetch_limit, summary_message_size(o, s),
                s->interrupted ? " (interrupted)" : "");
    }
    fprintf(f, "  measured %.2f s after %.2f s warmup: %" PRIu64
               " requests, %" PRIu64 " messages, %" PRIu64 " errors",
            s->elapsed_s, o->warmup, s->meas.requests, s->meas.messages,
            s->meas.errors);
    if (s->warm.errors > 0) {
        fprintf(f, " (+%" PRIu64 " during warmup)", s->warm.errors);
    }
    fprintf(f, "\n  throughput: %.1f msgs/s, %.2f MB/s (MB = 2^20 value bytes)\n",
            per_s((double)s->meas.messages, s->elapsed_s),
            per_s((double)s->meas.bytes / BENCH_MIB, s->elapsed_s));
    fprintf(f, "  latency ms: p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  "
               "mean %.3f  (%" PRIu64 " requests)\n",
            ns_to_ms(hist_percentile(h, 0.50)),
            ns_to_ms(hist_percentile(h, 0.99)),
            ns_to_ms(hist_percentile(h, 0.999)), ns_to_ms(h->max),
            hist_mean(h) / (double)NS_PER_MS, h->total);
    if (s->meas.errors + s->warm.errors > BENCH_ERR_PRINTS) {
        fprintf(f, "  (only the first %d errors were shown on stderr)\n",
                BENCH_ERR_PRINTS);
    }
    if (s->skipped > 0) {
        fprintf(f, "  gave up on %" PRIu64 " offsets after failures\n",
                s->skipped);
    }
    if (s->elapsed_s == 0.0) {
        fprintf(f, "  note: the run ended during warmup; try --warmup 0\n");
    }
}

static json_t *latency_json(const struct hist *h)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f}",
                     "p50", round3(ns_to_ms(hist_percentile(h, 0.50))),
                     "p99", round3(ns_to_ms(hist_percentile(h, 0.99))),
                     "p999", round3(ns_to_ms(hist_percentile(h, 0.999))),
                     "max", round3(ns_to_ms(h->max)),
                     "mean", round3(hist_mean(h) / (double)NS_PER_MS));
}

static int summary_json(FILE *f, const struct bench_opts *o,
                        const struct summary *s)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:I, s:I, "
        "s:f, s:f, s:o, s:b, s:I, s:I}",
        "mode", o->mode == MODE_PRODUCE ? "produce" : "consume",
        "topic", o->topic,
        "connections", (json_int_t)o->connections,
        "threads", (json_int_t)o->threads,
        "urls", (json_int_t)o->n_urls,
        "message_size", (json_int_t)summary_message_size(o, s),
        "batch", (json_int_t)(o->mode == MODE_PRODUCE ? o->batch
                                                      : o->fetch_limit),
        "warmup_s", round3(o->warmup),
        "duration_s", round3(s->elapsed_s),
        "requests", (json_int_t)s->meas.requests,
        "messages", (json_int_t)s->meas.messages,
        "errors", (json_int_t)s->meas.errors,
        "total_errors", (json_int_t)(s->meas.errors + s->warm.errors),
        "msgs_per_s", round3(per_s((double)s->meas.messages, s->elapsed_s)),
        "mb_per_s", round3(per_s((double)s->meas.bytes / BENCH_MIB,
                                 s->elapsed_s)),
        "latency_ms", latency_json(s->hist),
        "interrupted", s->interrupted,
        "fetch_limit", (json_int_t)o->fetch_limit,
        "skipped", (json_int_t)s->skipped);
    char *line = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15))
                   : NULL;

    if (line != NULL) {
        fprintf(f, "%s\n", line);
        fflush(f);
    }
    free(line);
    json_decref(j);
    return line != NULL ? 0 : -1;
}

/* ==== Main ============================================================== */

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

static void signals_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second ^C kills at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Everything after option parsing; returns the exit status. */
static int bench_run_all(const struct bench_opts *o)
{
    int n = (int)o->threads;
    struct bench_run run;
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    struct summary s = {0};
    int rc = 1;
    int i;

    memset(&run, 0, sizeof run); /* so that run_close works after a failure */
    if (ws == NULL || run_init(&run, o) != 0) {
        fprintf(stderr, "broker-bench: out of memory\n");
        goto out;
    }
    if (o->mode == MODE_PRODUCE && o->partitions > 0 && topic_create(o) != 0) {
        goto out;
    }
    if (o->mode == MODE_CONSUME && consume_setup(&run) != 0) {
        goto out;
    }
    if (run_workers(&run, ws, n) != 0 || summary_merge(&s, &run, ws, n) != 0) {
        goto out;
    }
    summary_print(o->json ? stderr : stdout, o, &s);
    if (o->json && summary_json(stdout, o, &s) != 0) {
        goto out;
    }
    rc = s.failed || ((s.meas.errors + s.warm.errors > 0 || s.skipped > 0) &&
                      !o->allow_errors);

out:
    for (i = 0; ws != NULL && i < n; i++) {
        worker_close(&ws[i]);
    }
    free(ws);
    free(s.hist);
    run_close(&run);
    return rc;
}

int main(int argc, char **argv)
{
    struct bench_opts opts;
    int rc = opts_parse(argc, argv, &opts);

    if (rc != 0) {
        opts_free(&opts);
        return rc > 0 ? 0 : 2;
    }
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        fprintf(stderr, "broker-bench: curl_global_init failed\n");
        opts_free(&opts);
        return 1;
    }
    signals_install();
    rc = bench_run_all(&opts);
    curl_global_cleanup();
    opts_free(&opts);
    return rc;
}
