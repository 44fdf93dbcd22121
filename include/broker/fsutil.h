/* Small file-system helpers with durable semantics. Any thread. */
#ifndef BROKER_FSUTIL_H
#define BROKER_FSUTIL_H
#include <stdbool.h>
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

/* write() all @len bytes of @buf, retrying short writes and EINTR: 0, or
 * -1 with errno set. */
int fsutil_write_all(int fd, const void *buf, size_t len);

/* 0 when @dir exists (created if needed) and a file can be created in it. */
int fsutil_check_writable(const char *dir, char *errmsg);

/* fsync (fdatasync when @data_only) @fd, the file @dir/@name (@dir may be
 * NULL). 0, or -1 with errno set. Every fsync of a data file goes through
 * here (or fsutil_note_synced) so that the fsync log below is complete. */
int fsutil_fsync_fd(int fd, const char *dir, const char *name,
                    bool data_only);

/* Test hook, off by default: with BROKER_FSYNC_LOG=<file> in the
 * environment, append "<size> <path>" to that file: @size bytes of
 * @dir/@name are durable now. tests/chaos/powerloss.py truncates each file
 * to its last logged size to simulate a power loss. */
void fsutil_note_synced(const char *dir, const char *name, long long size);

#endif
