/* The dashboard: files under www/ served at / and /ui/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/fsutil.h"
#include "http_internal.h"

#define STATIC_MAX_FILE (8u << 20)

static const char *content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
    };
    const char *dot = strrchr(path, '.');
    size_t i;

    for (i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Only plain names below www/: no "..", no hidden files, no encoding. */
static bool safe_path(const char *rel)
{
    const char *p;

    if (rel[0] == '\0' || rel[0] == '/' || strlen(rel) > 200)
        return false;
    for (p = rel; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
              *p == '_' || *p == '/'))
            return false;
    return strstr(rel, "..") == NULL && strstr(rel, "/.") == NULL &&
           rel[0] != '.';
}

enum MHD_Result h_static(struct http_req *r)
{
    const char *rel = r->n_params > 0 ? r->params[0] : "index.html";
    char path[1400], *data;
    size_t len;
    char errmsg[BRK_ERRMSG_LEN];

    if (!safe_path(rel))
        return http_reply_error(r, BRK_ENOT_FOUND, "no such file");
    snprintf(path, sizeof(path), "%s/%s", r->srv->deps.www_dir, rel);
    if (fsutil_read_file(path, STATIC_MAX_FILE, &data, &len, errmsg) != 0)
        return http_reply_error(r, BRK_ENOT_FOUND, "no such file: %s", rel);
    return http_reply_raw(r, 200, content_type(rel), data, len);
}
