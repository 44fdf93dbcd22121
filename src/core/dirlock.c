/* Data directory locks: flock on "<dir>/.lock" with the holder's pid. */
#include "broker/dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/err.h"
#include "broker/fsutil.h"

void dirlock_init(struct dirlock *l)
{
    int i;

    memset(l, 0, sizeof(*l));
    for (i = 0; i < DIRLOCK_MAX; i++)
        l->fds[i] = -1;
}

/* The pid the holder wrote, or -1 when unreadable (it may be writing). */
static long holder_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    char *end;
    long pid;

    if (n <= 0)
        return -1;
    buf[n] = '\0';
    pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : -1;
}

static int write_pid(int fd, const char *path, char *errmsg)
{
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len)
        return brk_errf(errmsg, BRK_EIO, "write %s: %s", path,
                        strerror(errno));
    return 0;
}

static int lock_file(int fd, const char *dir, const char *path, char *errmsg)
{
    long pid;

    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    if (errno != EWOULDBLOCK)
        return brk_errf(errmsg, BRK_EIO, "lock %s: %s", path,
                        strerror(errno));
    pid = holder_pid(fd);
    if (pid > 0)
        return brk_errf(errmsg, BRK_ECONFLICT,
                        "directory %s is in use by another broker (pid %ld, "
                        "lock file %s)", dir, pid, path);
    return brk_errf(errmsg, BRK_ECONFLICT,
                    "directory %s is in use by another broker (lock file %s)",
                    dir, path);
}

static bool already_held(const struct dirlock *l, const char *real)
{
    int i;

    for (i = 0; i < l->n; i++)
        if (strcmp(l->paths[i], real) == 0)
            return true;
    return false;
}

int dirlock_acquire(struct dirlock *l, const char *dir, char *errmsg)
{
    char real[PATH_MAX], path[PATH_MAX + 16];
    int fd, rv;

    rv = fsutil_mkdirs(dir, errmsg);
    if (rv != 0)
        return rv;
    if (realpath(dir, real) == NULL)
        return brk_errf(errmsg, BRK_EIO, "resolve %s: %s", dir,
                        strerror(errno));
    /* flock locks belong to an open file: a second open of the same file
     * by this process would conflict with the first. */
    if (already_held(l, real))
        return 0;
    if (l->n == DIRLOCK_MAX)
        return brk_errf(errmsg, BRK_EINTERNAL, "too many directory locks");
    snprintf(path, sizeof(path), "%s/" DIRLOCK_FILE, real);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return brk_errf(errmsg, BRK_EIO, "create %s: %s", path,
                        strerror(errno));
    rv = lock_file(fd, dir, path, errmsg);
    if (rv == 0)
        rv = write_pid(fd, path, errmsg);
    if (rv != 0) {
        close(fd);
        return rv;
    }
    l->fds[l->n] = fd;
    snprintf(l->paths[l->n], sizeof(l->paths[l->n]), "%s", real);
    l->n++;
    return 0;
}

void dirlock_release(struct dirlock *l)
{
    int i;

    for (i = 0; i < l->n; i++)
        if (l->fds[i] >= 0)
            close(l->fds[i]);
    dirlock_init(l);
}
