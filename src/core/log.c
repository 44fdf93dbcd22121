/* Process-wide line logger: UTC timestamp, level word, message.
 *
 * DESIGN: each line is formatted completely in memory and then handed to
 * write() under a mutex, so lines from concurrent threads never interleave
 * and a file opened with O_APPEND always receives whole lines. The level is
 * an atomic so the filter check costs no lock. */
#include "broker/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/err.h"

#define LOG_STACK_LINE 1024 /* most lines fit; longer ones are malloc'd */
#define LOG_PREFIX_MAX 64   /* "2026-11-25T09:10:11.123Z ERROR " and more */

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = STDERR_FILENO; /* guarded by log_mutex */
static bool log_fd_owned;          /* log_fd is a file we opened */
static atomic_int log_min_level = LOG_LEVEL_INFO;

static const char *const log_level_words[] = {"DEBUG", "INFO", "WARN",
                                              "ERROR"};
static const char *const log_level_names[] = {"debug", "info", "warn",
                                              "error"};

int log_level_parse(const char *s, enum log_level *out)
{
    int i;

    if (s == NULL) {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        if (strcmp(s, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_set_level(enum log_level level)
{
    atomic_store(&log_min_level, (int)level);
}

/* mkdir -p of every directory above the last '/' of @path. */
static int make_parent_dirs(const char *path, char *errmsg)
{
    char buf[PATH_MAX];
    char *p;
    int n;

    n = snprintf(buf, sizeof buf, "%s", path);
    if (n < 0 || (size_t)n >= sizeof buf) {
        return brk_errf(errmsg, BRK_EINVAL, "log file %s: path too long",
                        path);
    }
    /* Start at buf + 1 so an absolute path does not try to create "". */
    for (p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            return brk_errf(errmsg, BRK_EIO, "log file %s: mkdir %s: %s",
                            path, buf, strerror(errno));
        }
        *p = '/';
    }
    return 0;
}

/* Swap the output descriptor; closes the previous one if we opened it. */
static void set_fd(int fd, bool owned)
{
    int old_fd;
    bool old_owned;

    pthread_mutex_lock(&log_mutex);
    old_fd = log_fd;
    old_owned = log_fd_owned;
    log_fd = fd;
    log_fd_owned = owned;
    pthread_mutex_unlock(&log_mutex);
    if (old_owned) {
        close(old_fd);
    }
}

int log_open(const char *path, enum log_level level, char *errmsg)
{
    int fd;
    int rv;

    log_set_level(level);
    if (path == NULL || path[0] == '\0') {
        set_fd(STDERR_FILENO, false);
        return 0;
    }
    rv = make_parent_dirs(path, errmsg);
    if (rv != 0) {
        return rv;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        return brk_errf(errmsg, BRK_EIO, "log file %s: open: %s", path,
                        strerror(errno));
    }
    set_fd(fd, true);
    return 0;
}

void log_close(void)
{
    set_fd(STDERR_FILENO, false);
}

/* "2026-11-25T09:10:11.123Z INFO " into @buf; returns its length. */
static int format_prefix(char *buf, size_t size, enum log_level level)
{
    struct timespec ts;
    struct tm tm;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                 log_level_words[level]);
    if (n < 0 || (size_t)n >= size) {
        return 0;
    }
    return n;
}

static void write_all(const char *buf, size_t len)
{
    ssize_t w;

    pthread_mutex_lock(&log_mutex);
    /* One write() normally takes the whole line; the loop only matters for
     * signals and pipes, and the mutex keeps even those lines whole. */
    while (len > 0) {
        w = write(log_fd, buf, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            break; /* nowhere left to report a logging failure */
        }
        buf += w;
        len -= (size_t)w;
    }
    pthread_mutex_unlock(&log_mutex);
}

/* Drop trailing newlines: the logger adds exactly one per line. */
static size_t trim_newlines(const char *buf, size_t len)
{
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }
    return len;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    char stack[LOG_STACK_LINE];
    char *line = stack;
    size_t cap = sizeof stack;
    int prefix_len;
    int n;
    va_list ap2;

    prefix_len = format_prefix(stack, LOG_PREFIX_MAX, level);
    va_copy(ap2, ap);
    n = vsnprintf(stack + prefix_len, cap - (size_t)prefix_len - 1, fmt, ap);
    if (n < 0) {
        n = 0;
    } else if ((size_t)n >= cap - (size_t)prefix_len - 1) {
        /* Too long for the stack buffer: format again into the heap. If
         * that allocation fails the truncated stack copy is still logged. */
        char *big = malloc((size_t)prefix_len + (size_t)n + 2);
        if (big != NULL) {
            memcpy(big, stack, (size_t)prefix_len);
            vsnprintf(big + prefix_len, (size_t)n + 1, fmt, ap2);
            line = big;
        } else {
            n = (int)(cap - (size_t)prefix_len - 2);
        }
    }
    va_end(ap2);
    n = (int)trim_newlines(line + prefix_len, (size_t)n);
    line[prefix_len + n] = '\n';
    write_all(line, (size_t)prefix_len + (size_t)n + 1);
    if (line != stack) {
        free(line);
    }
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    int saved_errno;

    if ((int)level < atomic_load(&log_min_level) || (int)level < 0 ||
        (int)level > LOG_LEVEL_ERROR) {
        return;
    }
    /* Callers often log and then inspect errno; keep it intact for them. */
    saved_errno = errno;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
    errno = saved_errno;
}
