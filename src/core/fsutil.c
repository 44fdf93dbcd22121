/* File-system helpers: mkdir -p, atomic replace, directory fsync, rm -rf. */
#define _XOPEN_SOURCE 700
#include "broker/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/err.h"

/* ==== fsync log (test hook) ==== */

static pthread_once_t sync_log_once = PTHREAD_ONCE_INIT;
static int sync_log_fd = -1;

static void sync_log_open(void)
{
    const char *path = getenv("BROKER_FSYNC_LOG");

    if (path != NULL && path[0] != '\0')
        sync_log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                           0644);
}

static bool sync_log_enabled(void)
{
    pthread_once(&sync_log_once, sync_log_open);
    return sync_log_fd >= 0;
}

void fsutil_note_synced(const char *dir, const char *name, long long size)
{
    char line[4400];
    int n;

    if (!sync_log_enabled())
        return;
    n = snprintf(line, sizeof(line), "%lld %s%s%s\n", size, dir ? dir : "",
                 dir ? "/" : "", name);
    /* One write() with O_APPEND: lines of concurrent syncs never mix. A
     * failed write only makes the test log incomplete. */
    if (n > 0 && (size_t)n < sizeof(line)) {
        ssize_t w = write(sync_log_fd, line, (size_t)n);
        (void)w;
    }
}

int fsutil_fsync_fd(int fd, const char *dir, const char *name,
                    bool data_only)
{
    struct stat st;
    /* The size before the sync: all of it is durable once the sync
     * returns (appends racing with it may not be). */
    long long size = sync_log_enabled() && fstat(fd, &st) == 0
                         ? (long long)st.st_size
                         : -1;

    if ((data_only ? fdatasync(fd) : fsync(fd)) != 0)
        return -1;
    if (size >= 0)
        fsutil_note_synced(dir, name, size);
    return 0;
}

int fsutil_mkdirs(const char *path, char *errmsg)
{
    char buf[4096];
    size_t len = strlen(path), i;

    if (len == 0 || len >= sizeof(buf))
        return brk_errf(errmsg, BRK_EINVAL, "bad directory path '%s'", path);
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return brk_errf(errmsg, brk_err_from_errno(errno),
                            "mkdir %s: %s", buf, strerror(errno));
        if (i < len)
            buf[i] = '/';
    }
    return 0;
}

int fsutil_sync_dir(const char *path, char *errmsg)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return brk_errf(errmsg, BRK_EIO, "open dir %s: %s", path,
                        strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return brk_errf(errmsg, BRK_EIO, "fsync dir %s: %s", path,
                        strerror(e));
    }
    close(fd);
    return 0;
}

int fsutil_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = EIO; /* no progress and no error: do not loop */
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fsutil_write_atomic(const char *path, const void *data, size_t len,
                        char *errmsg)
{
    char tmp[4200], dir[4200];
    int fd, rv;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return brk_errf(errmsg, BRK_EINVAL, "path too long: %s", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return brk_errf(errmsg, brk_err_from_errno(errno), "create %s: %s",
                        tmp, strerror(errno));
    if (fsutil_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return brk_errf(errmsg, brk_err_from_errno(e), "write %s: %s", tmp,
                        strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return brk_errf(errmsg, brk_err_from_errno(e), "rename %s: %s", tmp,
                        strerror(e));
    }
    snprintf(dir, sizeof(dir), "%s", path);
    rv = fsutil_sync_dir(dirname(dir), errmsg);
    if (rv != 0)
        return rv;
    fsutil_note_synced(NULL, path, (long long)len);
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag,
                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int fsutil_remove_tree(const char *path, char *errmsg)
{
    if (access(path, F_OK) != 0)
        return 0;
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return brk_errf(errmsg, BRK_EIO, "remove %s: %s", path,
                        strerror(errno));
    return 0;
}

int fsutil_read_file(const char *path, size_t max, char **out, size_t *len,
                     char *errmsg)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *buf;
    size_t n, limit = max;

    if (f == NULL)
        return brk_errf(errmsg, errno == ENOENT ? BRK_ENOT_FOUND : BRK_EIO,
                        "open %s: %s", path, strerror(errno));
    /* Size the buffer from the file, not from the limit: the limit can be
     * large (groups.json allows 256 MiB). */
    if (fstat(fileno(f), &st) == 0 && st.st_size >= 0 &&
        (size_t)st.st_size < max)
        max = (size_t)st.st_size + 1; /* +1 notices a file that grew */
    buf = malloc(max + 1);
    if (buf == NULL) {
        fclose(f);
        return brk_errf(errmsg, BRK_ENOMEM, "read %s", path);
    }
    n = fread(buf, 1, max + 1, f);
    if (ferror(f) || n > limit) {
        fclose(f);
        free(buf);
        return brk_errf(errmsg, BRK_EIO, "read %s: %s", path,
                        n > limit ? "file too large" : "read error");
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int fsutil_check_writable(const char *dir, char *errmsg)
{
    char probe[4200];
    int fd, rv = fsutil_mkdirs(dir, errmsg);

    if (rv != 0)
        return rv;
    snprintf(probe, sizeof(probe), "%s/.write-probe", dir);
    fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return brk_errf(errmsg, BRK_EIO, "data directory %s is not writable: "
                        "%s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}
