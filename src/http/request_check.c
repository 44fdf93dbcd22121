/* Request smuggling guards: libmicrohttpd 0.9.75 accepts requests that a
 * proxy in front of the broker may parse differently (the first of two
 * Content-Length headers wins, chunked wins over Content-Length, "Host :"
 * is a header, a NUL byte ends the path). Such requests are refused with
 * 400 before routing. See docs/security.md. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"

struct header_scan {
    int content_length;         /* Content-Length headers seen */
    int transfer_encoding;
    int host;
    const char *bad;            /* first problem found, or NULL */
    char name[64];              /* the header it is about */
};

/* RFC 9110 token characters (header names). */
static bool token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool token_valid(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!token_char((unsigned char)*s))
            return false;
    return true;
}

static bool digits_only(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static void flag(struct header_scan *h, const char *why, const char *key)
{
    if (h->bad != NULL)
        return;
    h->bad = why;
    /* Only token bytes of the name are shown: it may hold anything. */
    snprintf(h->name, sizeof(h->name), "%.*s", (int)strcspn(key, " \t\r\n"),
             key);
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
    struct header_scan *h = cls;

    (void)kind;
    if (!token_valid(key)) {
        flag(h, "a header name holds a space or another byte that is not "
             "allowed", key);
    } else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (++h->content_length > 1)
            flag(h, "more than one Content-Length header", key);
        else if (!digits_only(value))
            flag(h, "Content-Length is not a decimal number", key);
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        if (++h->transfer_encoding > 1)
            flag(h, "more than one Transfer-Encoding header", key);
        else if (value == NULL || strcasecmp(value, "chunked") != 0)
            flag(h, "Transfer-Encoding other than \"chunked\"", key);
    } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        if (++h->host > 1)
            flag(h, "more than one Host header", key);
    }
    return MHD_YES;
}

/* MHD hands us the target as a C string; @version points just past the
 * target in the same request line ("<target> HTTP/1.1"), so the bytes in
 * between tell the target's real length. on_uri saw the target before
 * MHD cut the query off: a NUL byte in it makes the two disagree. */
static bool target_has_nul(const struct http_req *r, const char *version)
{
    size_t span;

    if (!r->uri_len_known || version == NULL || version <= r->url)
        return false;
    span = (size_t)(version - r->url);
    if (span > 1u << 20)
        return false; /* not the same line: MHD's static "" for HTTP/0.9 */
    return span - 1 != r->uri_len;
}

bool http_request_check(struct http_req *r, const char *version, char *why,
                        size_t cap)
{
    struct header_scan h = {0};

    if (target_has_nul(r, version)) {
        snprintf(why, cap, "the request target holds a NUL byte");
        return false;
    }
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, scan_header, &h);
    if (h.bad == NULL && h.content_length > 0 && h.transfer_encoding > 0)
        flag(&h, "both Content-Length and Transfer-Encoding", "");
    if (h.bad != NULL) {
        snprintf(why, cap, "malformed request: %s%s%s", h.bad,
                 h.name[0] ? ": " : "", h.name);
        return false;
    }
    return true;
}
