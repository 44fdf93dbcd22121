/* Growable byte buffer for building response bodies, with JSON string
 * escaping and base64. An allocation failure sets @oom and later appends
 * do nothing, so callers check once at the end. */
#ifndef BROKER_BUF_H
#define BROKER_BUF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data;  /* NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
    bool oom;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Hand the bytes over: returns data (caller frees) and resets @b. */
char *buf_steal(struct buf *b, size_t *len);

void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append @len bytes of UTF-8 text as a quoted JSON string. */
void buf_append_json_string(struct buf *b, const uint8_t *s, size_t len);
/* Append the base64 (RFC 4648, padded) encoding of @len bytes. */
void buf_append_base64(struct buf *b, const uint8_t *s, size_t len);

/* True when @len bytes are valid UTF-8 (no overlongs, no surrogates). */
bool utf8_valid(const uint8_t *s, size_t len);

#endif
