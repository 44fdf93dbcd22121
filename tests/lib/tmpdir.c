/* Temporary directories for tests. */
#include "tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/fsutil.h"

int tmpdir_make(char *path, const char *prefix)
{
    const char *base = getenv("TMPDIR");
    int n;

    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    n = snprintf(path, TMPDIR_PATH_MAX, "%s/%s.XXXXXX", base, prefix);
    if (n < 0 || n >= TMPDIR_PATH_MAX)
        return -1;
    return mkdtemp(path) == NULL ? -1 : 0;
}

void tmpdir_remove(const char *path)
{
    fsutil_remove_tree(path, NULL);
}

bool tmpdir_exists(const char *dir, const char *name)
{
    char path[2 * TMPDIR_PATH_MAX + 300];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

int tmpdir_write(const char *dir, const char *name, const char *text)
{
    char path[2 * TMPDIR_PATH_MAX + 300];
    FILE *f;
    size_t len = strlen(text);
    int rv = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    if (fwrite(text, 1, len, f) != len)
        rv = -1;
    if (fclose(f) != 0)
        rv = -1;
    return rv;
}
