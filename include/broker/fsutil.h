/* Small file-system helpers with durable semantics. Any thread. */
#ifndef BROKER_FSUTIL_H
#define BROKER_FSUTIL_H
#include <stddef.h>

/* mkdir -p @path (mode 0755). */
int fsutil_mkdirs(const char *path, char *errmsg);

/* Replace @path with @len bytes of @data durably: write "<path>.tmp",
 * fsync it, rename over @path, fsync the directory. */
int fsutil_write_atomic(const char *path, const void *data, size_t len,
                        char *errmsg);

/* fsync a directory, so that creates/renames/unlinks in it are durable. */
int fsutil_sync_dir(const char *path, char *errmsg);

/* rm -rf @path; a missing @path is not an error. */
int fsutil_remove_tree(const char *path, char *errmsg);

/* Read a whole file (at most @max bytes) into a NUL-terminated malloc'd
 * buffer. BRK_ENOT_FOUND when missing. */
int fsutil_read_file(const char *path, size_t max, char **out, size_t *len,
                     char *errmsg);

/* 0 when @dir exists (created if needed) and a file can be created in it. */
int fsutil_check_writable(const char *dir, char *errmsg);

#endif
