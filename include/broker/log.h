/* Process-wide logging: one line per event, to stderr or a file. Thread-safe. */
#ifndef BROKER_LOG_H
#define BROKER_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Lines operators grep for (API.md); each is followed by "(node N, term T)". */
#define LOG_LINE_RAFT_STARTED "Raft cluster started"
#define LOG_LINE_BECAME_LEADER "became leader"
#define LOG_LINE_LOST_LEADERSHIP "lost leadership"

/* Parse "debug"/"info"/"warn"/"error". Returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);

/* Send log lines to @path (created with its parent directories, appended)
 * or to stderr when @path is NULL or empty. Returns 0 or a brk_err code
 * with @errmsg filled. Call once from main before threads start. */
int log_open(const char *path, enum log_level level, char *errmsg);
void log_set_level(enum log_level level);
void log_close(void);

/* "2026-11-25T09:10:11.123Z INFO message\n", written in one write(). */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
