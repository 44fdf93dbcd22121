/* The cluster secret (cluster.secret_file): loading it and comparing a
 * presented value with it in constant time. Never logged. */
#ifndef BROKER_SECRET_H
#define BROKER_SECRET_H
#include <stdbool.h>
#include <stddef.h>

#define SECRET_MIN_LEN 16
#define SECRET_MAX_LEN 255

/* Read the secret from @path into @out (@cap bytes): the file's content
 * without trailing newlines or blanks. It must be SECRET_MIN_LEN to
 * SECRET_MAX_LEN visible ASCII characters (it travels in an HTTP header).
 * Returns 0, or BRK_EINVAL with the reason in @errmsg (never the secret). */
int secret_load(const char *path, char *out, size_t cap, char *errmsg);

/* True when @presented equals @secret. The time taken depends only on
 * the length of @secret, not on where the two differ. NULL @presented is
 * never equal. */
bool secret_equal(const char *secret, const char *presented);

#endif
