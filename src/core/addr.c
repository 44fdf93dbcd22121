/* "host:port" validation, shared by the config loader, the HTTP layer,
 * the state machine (at apply time) and the node-to-node client. */
#include "broker/addr.h"

#include <arpa/inet.h>
#include <string.h>

static bool port_valid(const char *p)
{
    long v = 0;

    if (*p == '\0')
        return false;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
        if (v > 65535)
            return false;
    }
    return v >= 1;
}

static bool label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* A DNS name; an all-numeric one must be a real IPv4 literal, so that
 * "999.1.1.1" is not taken for a name. */
static bool name_valid(const char *h, size_t len)
{
    char buf[64];
    struct in_addr a;
    size_t i, label = 0;
    bool numeric = true;

    if (len == 0 || len > 253)
        return false;
    for (i = 0; i < len; i++) {
        if (h[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!label_char(h[i]) || ++label > 63)
            return false;
        if (h[i] < '0' || h[i] > '9')
            numeric = false;
    }
    if (label == 0)
        return false; /* empty last label ("a.") */
    if (!numeric)
        return true;
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, h, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, &a) == 1;
}

static bool ipv6_valid(const char *h, size_t len)
{
    char buf[64];
    struct in6_addr a;

    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, h, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, &a) == 1;
}

/* Host part of @s: [*start, *start + *len), or false. */
static bool split(const char *s, const char **start, size_t *len)
{
    const char *colon;
    size_t n;

    if (s == NULL || (n = strnlen(s, ADDR_MAX_LEN + 1)) > ADDR_MAX_LEN)
        return false;
    colon = strrchr(s, ':');
    if (colon == NULL || !port_valid(colon + 1))
        return false;
    if (s[0] == '[') {
        if (colon < s + 2 || colon[-1] != ']')
            return false;
        *start = s + 1;
        *len = (size_t)(colon - 1 - (s + 1));
        return ipv6_valid(*start, *len);
    }
    *start = s;
    *len = (size_t)(colon - s);
    return name_valid(*start, *len);
}

bool addr_http_valid(const char *s)
{
    const char *h;
    size_t len;

    return split(s, &h, &len);
}

bool addr_host(const char *s, char *host, size_t cap)
{
    const char *h;
    size_t len;

    if (!split(s, &h, &len) || len >= cap)
        return false;
    memcpy(host, h, len);
    host[len] = '\0';
    return true;
}
