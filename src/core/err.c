/* Error codes: the BRK_ERR_MAP table and errmsg buffer helpers. */
#include "broker/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_info {
    const char *word;
    int status;
    const char *str;
};

#define ERR_INFO_ROW(name, word, status, str) [name] = {word, status, str},
static const struct err_info err_table[BRK_ERR_COUNT] = {
    BRK_ERR_MAP(ERR_INFO_ROW)};
#undef ERR_INFO_ROW

static const struct err_info *err_lookup(int code)
{
    if (code < 0 || code >= BRK_ERR_COUNT) {
        return NULL;
    }
    return &err_table[code];
}

const char *brk_err_word(int code)
{
    const struct err_info *e = err_lookup(code);
    return e != NULL ? e->word : "internal";
}

int brk_err_http_status(int code)
{
    const struct err_info *e = err_lookup(code);
    return e != NULL ? e->status : 500;
}

const char *brk_err_str(int code)
{
    const struct err_info *e = err_lookup(code);
    return e != NULL ? e->str : "unknown error";
}

int brk_errf(char *errmsg, int code, const char *fmt, ...)
{
    char text[BRK_ERRMSG_LEN];
    va_list ap;

    if (errmsg == NULL) {
        return code;
    }
    /* Format into a scratch buffer first so that an argument pointing into
     * @errmsg itself (brk_errf(m, c, "x: %s", m)) is still read intact. */
    va_start(ap, fmt);
    if (vsnprintf(text, sizeof text, fmt, ap) < 0) {
        text[0] = '\0';
    }
    va_end(ap);
    memcpy(errmsg, text, strlen(text) + 1);
    return code;
}

int brk_errwrap(char *errmsg, int code, const char *fmt, ...)
{
    char prefix[BRK_ERRMSG_LEN];
    char old[BRK_ERRMSG_LEN];
    size_t old_len;
    va_list ap;

    if (errmsg == NULL) {
        return code;
    }
    /* The old text is bounded by strnlen, so a buffer that was never
     * terminated cannot make us read past its end. */
    old_len = strnlen(errmsg, BRK_ERRMSG_LEN - 1);
    memcpy(old, errmsg, old_len);
    old[old_len] = '\0';

    va_start(ap, fmt);
    if (vsnprintf(prefix, sizeof prefix, fmt, ap) < 0) {
        prefix[0] = '\0';
    }
    va_end(ap);

    /* When prefix and old text together do not fit, snprintf cuts the
     * innermost detail at the end; the buffer size is fixed by contract. */
    if (old_len == 0) {
        memcpy(errmsg, prefix, strlen(prefix) + 1);
    } else if (snprintf(errmsg, BRK_ERRMSG_LEN, "%s: %s", prefix, old) < 0) {
        errmsg[0] = '\0';
    }
    return code;
}

int brk_err_from_errno(int e)
{
    return e == ENOSPC || e == EDQUOT ? BRK_ESTORAGE_FULL : BRK_EIO;
}
