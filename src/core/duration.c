/* Go-style durations ("168h", "1h30m", "90s", "1.5h") for the config
 * (config_parse_duration, declared in config.h). Same rules as Go's
 * time.ParseDuration, including its overflow limits; no negatives. One
 * addition: "d" for days of 24 hours ("7d", "1d12h"). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "broker/config.h"

#define DUR_LIMIT (1ULL << 63) /* Go's bound, in nanoseconds */

struct dur_unit {
    const char *name;
    uint64_t ns;
};

static const struct dur_unit dur_units[] = {
    {"ns", 1ULL},
    {"us", 1000ULL},
    {"\xC2\xB5s", 1000ULL}, /* U+00B5 micro sign */
    {"\xCE\xBCs", 1000ULL}, /* U+03BC Greek small letter mu */
    {"ms", 1000000ULL},
    {"s", 1000000000ULL},
    {"m", 60ULL * 1000000000ULL},
    {"h", 3600ULL * 1000000000ULL},
    {"d", 86400ULL * 1000000000ULL}, /* not in Go: a day is 24h (v2) */
};

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Integer part of one "<number><unit>" element; -1 on overflow. */
static int dur_leading_int(const char **s, uint64_t *out)
{
    uint64_t x = 0;
    const char *p = *s;

    for (; is_digit(*p); p++) {
        if (x > DUR_LIMIT / 10) {
            return -1;
        }
        x = x * 10 + (uint64_t)(*p - '0');
        if (x > DUR_LIMIT) {
            return -1;
        }
    }
    *s = p;
    *out = x;
    return 0;
}

/* Fraction digits after '.'; digits past uint64 precision are dropped,
 * as Go does, rather than treated as an error. */
static void dur_leading_fraction(const char **s, uint64_t *f, double *scale)
{
    const char *p = *s;
    uint64_t x = 0;
    double sc = 1;
    int overflow = 0;

    for (; is_digit(*p); p++) {
        if (overflow) {
            continue;
        }
        if (x > (DUR_LIMIT - 1) / 10) {
            overflow = 1;
            continue;
        }
        if (x * 10 + (uint64_t)(*p - '0') > DUR_LIMIT) {
            overflow = 1;
            continue;
        }
        x = x * 10 + (uint64_t)(*p - '0');
        sc *= 10;
    }
    *s = p;
    *f = x;
    *scale = sc;
}

/* The unit that spans all of [p, end), or 0 when there is none. */
static uint64_t dur_unit_ns(const char *p, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof dur_units / sizeof dur_units[0]; i++) {
        if (strlen(dur_units[i].name) == len &&
            memcmp(dur_units[i].name, p, len) == 0) {
            return dur_units[i].ns;
        }
    }
    return 0;
}

/* One "<digits>[.<digits>]<unit>" element into nanoseconds. */
static int dur_element(const char **s, uint64_t *ns)
{
    const char *p = *s;
    const char *start;
    uint64_t v;
    uint64_t f = 0;
    uint64_t unit;
    double scale = 1;
    int has_int;
    int has_frac = 0;

    if (!(*p == '.' || is_digit(*p))) {
        return -1;
    }
    start = p;
    if (dur_leading_int(&p, &v) != 0) {
        return -1;
    }
    has_int = p != start;
    if (*p == '.') {
        p++;
        start = p;
        dur_leading_fraction(&p, &f, &scale);
        has_frac = p != start;
    }
    if (!has_int && !has_frac) {
        return -1;
    }
    /* The unit runs until the next number starts (Go consumes the same). */
    start = p;
    while (*p != '\0' && *p != '.' && !is_digit(*p)) {
        p++;
    }
    unit = dur_unit_ns(start, (size_t)(p - start));
    if (unit == 0 || v > DUR_LIMIT / unit) {
        return -1;
    }
    v *= unit;
    if (f > 0) {
        /* A double keeps fractions of an hour nanosecond-accurate. */
        v += (uint64_t)((double)f * ((double)unit / scale));
        if (v > DUR_LIMIT) {
            return -1;
        }
    }
    *s = p;
    *ns = v;
    return 0;
}

int config_parse_duration(const char *s, int64_t *ms)
{
    uint64_t total = 0;
    uint64_t ns;

    if (s == NULL || s[0] == '\0') {
        return -1;
    }
    /* Go accepts a bare "0" as the only unitless duration. */
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    while (*s != '\0') {
        if (dur_element(&s, &ns) != 0) {
            return -1;
        }
        total += ns;
        if (total > DUR_LIMIT - 1) {
            return -1;
        }
    }
    *ms = (int64_t)(total / 1000000ULL);
    return 0;
}

