/* The cluster secret: file loading and constant-time comparison. */
#include "broker/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker/err.h"

int secret_load(const char *path, char *out, size_t cap, char *errmsg)
{
    char buf[SECRET_MAX_LEN + 64];
    ssize_t n;
    size_t len, i;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return brk_errf(errmsg, BRK_EINVAL, "cannot open %s: %s", path,
                        strerror(errno));
    do
        n = read(fd, buf, sizeof(buf));
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return brk_errf(errmsg, BRK_EINVAL, "cannot read %s: %s", path,
                        strerror(errno));
    len = (size_t)n;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
                       buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    if (len == 0)
        return brk_errf(errmsg, BRK_EINVAL, "%s is empty", path);
    if (len > SECRET_MAX_LEN || len >= cap)
        return brk_errf(errmsg, BRK_EINVAL, "%s: the secret is longer than "
                        "%d characters", path, SECRET_MAX_LEN);
    if (len < SECRET_MIN_LEN)
        return brk_errf(errmsg, BRK_EINVAL, "%s: the secret must have at "
                        "least %d characters", path, SECRET_MIN_LEN);
    for (i = 0; i < len; i++)
        if (buf[i] < 0x21 || buf[i] > 0x7e)
            return brk_errf(errmsg, BRK_EINVAL, "%s: the secret must be "
                            "visible ASCII characters only (no spaces or "
                            "control characters; one line)", path);
    memcpy(out, buf, len);
    out[len] = '\0';
    memset(buf, 0, sizeof(buf));
    return 0;
}

bool secret_equal(const char *secret, const char *presented)
{
    size_t slen = strlen(secret), plen, i;
    unsigned char diff;

    if (presented == NULL)
        return false;
    plen = strnlen(presented, slen + 1);
    diff = (unsigned char)(plen != slen);
    /* Walk the whole secret whatever was presented: a shorter value is
     * read from its start again instead of stopping early. */
    for (i = 0; i < slen; i++)
        diff |= (unsigned char)(secret[i] ^ presented[plen ? i % plen : 0]);
    return diff == 0 && slen > 0;
}
