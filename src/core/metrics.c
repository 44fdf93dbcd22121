/* Counters and histograms behind GET /metrics. */
#include "broker/metrics.h"

#include <stdatomic.h>

#define METRICS__NAME(id, name, help) name,
#define METRICS__HELP(id, name, help) help,
static const char *const metric_names[] = {METRICS_MAP(METRICS__NAME)};
static const char *const metric_help[] = {METRICS_MAP(METRICS__HELP)};

static const int statuses[] = {200, 201, 204, 400, 404, 405, 409, 411,
                               413, 416, 422, 500, 502, 503, 504, 507};
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1,    2.5, 5};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static atomic_uint_fast64_t counters[MET_COUNT];
static atomic_uint_fast64_t http_counts[METRICS_MAX_ROUTES][N_STATUSES + 1];
static atomic_uint_fast64_t lat_buckets[N_BUCKETS + 1];
static atomic_uint_fast64_t lat_sum_us;

void metrics_add(enum metric_id id, uint64_t n)
{
    atomic_fetch_add_explicit(&counters[id], n, memory_order_relaxed);
}

uint64_t metrics_get(enum metric_id id)
{
    return atomic_load_explicit(&counters[id], memory_order_relaxed);
}

void metrics_http(int route, int status)
{
    size_t i;

    if (route < 0 || route >= METRICS_MAX_ROUTES)
        return;
    for (i = 0; i < N_STATUSES && statuses[i] != status; i++)
        ;
    atomic_fetch_add_explicit(&http_counts[route][i], 1, memory_order_relaxed);
}

void metrics_produce_latency(double seconds)
{
    size_t i;

    for (i = 0; i < N_BUCKETS && seconds > buckets[i]; i++)
        ;
    atomic_fetch_add_explicit(&lat_buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&lat_sum_us, (uint64_t)(seconds * 1e6),
                              memory_order_relaxed);
}

static void render_http(struct buf *b, const char *const *routes, size_t n)
{
    size_t r, i;
    uint64_t v;

    buf_puts(b, "# HELP broker_http_requests_total HTTP requests answered, "
                "by route and status.\n"
                "# TYPE broker_http_requests_total counter\n");
    for (r = 0; r < n && r < METRICS_MAX_ROUTES; r++)
        for (i = 0; i <= N_STATUSES; i++) {
            v = atomic_load_explicit(&http_counts[r][i], memory_order_relaxed);
            if (v == 0)
                continue;
            if (i < N_STATUSES)
                buf_printf(b, "broker_http_requests_total{route=\"%s\","
                              "status=\"%d\"} %llu\n",
                           routes[r], statuses[i], (unsigned long long)v);
            else
                buf_printf(b, "broker_http_requests_total{route=\"%s\","
                              "status=\"other\"} %llu\n",
                           routes[r], (unsigned long long)v);
        }
}

static void render_latency(struct buf *b)
{
    uint64_t cum = 0;
    size_t i;

    buf_puts(b, "# HELP broker_produce_latency_seconds Time from a produce "
                "request's arrival to its acknowledgement.\n"
                "# TYPE broker_produce_latency_seconds histogram\n");
    for (i = 0; i < N_BUCKETS; i++) {
        cum += atomic_load_explicit(&lat_buckets[i], memory_order_relaxed);
        buf_printf(b, "broker_produce_latency_seconds_bucket{le=\"%g\"} "
                      "%llu\n", buckets[i], (unsigned long long)cum);
    }
    cum += atomic_load_explicit(&lat_buckets[N_BUCKETS], memory_order_relaxed);
    buf_printf(b, "broker_produce_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
                  "broker_produce_latency_seconds_sum %.6f\n"
                  "broker_produce_latency_seconds_count %llu\n",
               (unsigned long long)cum,
               (double)atomic_load(&lat_sum_us) / 1e6,
               (unsigned long long)cum);
}

void metrics_render(struct buf *b, const char *const *routes, size_t n_routes)
{
    size_t i;

    for (i = 0; i < MET_COUNT; i++)
        buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n",
                   metric_names[i], metric_help[i], metric_names[i],
                   metric_names[i], (unsigned long long)metrics_get(i));
    render_http(b, routes, n_routes);
    render_latency(b);
}
