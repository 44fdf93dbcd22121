/* Temporary directories for tests: one fresh directory under $TMPDIR (or
 * /tmp) per fixture, removed with everything in it at teardown. */
#ifndef TEST_TMPDIR_H
#define TEST_TMPDIR_H
#include <stdbool.h>
#include <stddef.h>

#define TMPDIR_PATH_MAX 256

/* Create "<tmp>/<@prefix>.XXXXXX" into @path (TMPDIR_PATH_MAX bytes).
 * Returns 0, or -1 with nothing created. */
int tmpdir_make(char *path, const char *prefix);

/* rm -rf @path. */
void tmpdir_remove(const char *path);

/* True when "<@dir>/<@name>" exists (file or directory). */
bool tmpdir_exists(const char *dir, const char *name);

/* Write @text to "<@dir>/<@name>" (not durably: test set-up only).
 * Returns 0 or -1. */
int tmpdir_write(const char *dir, const char *name, const char *text);

#endif
