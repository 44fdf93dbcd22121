/* Unit tests for the data directory lock (src/core/dirlock.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/dirlock.h"
#include "broker/err.h"
#include "tmpdir.h"

static int setup(void **state)
{
    char *dir = malloc(TMPDIR_PATH_MAX);

    if (dir == NULL || tmpdir_make(dir, "test_dirlock") != 0)
        return -1;
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    tmpdir_remove(*state);
    free(*state);
    return 0;
}

/* Run dirlock_acquire on @dir in a child process; its result code. */
static int acquire_in_child(const char *dir, char *errmsg)
{
    int fds[2], status;
    pid_t pid;
    ssize_t n;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct dirlock l;
        char msg[BRK_ERRMSG_LEN] = "";
        int rv;

        dirlock_init(&l);
        rv = dirlock_acquire(&l, dir, msg);
        if (write(fds[1], msg, strlen(msg) + 1) < 0)
            _exit(100);
        _exit(rv);
    }
    close(fds[1]);
    n = read(fds[0], errmsg, BRK_ERRMSG_LEN - 1);
    errmsg[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WEXITSTATUS(status);
}

/* The holder's pid is in the file; another process is refused with a
 * message naming the directory and that pid; after release it may lock. */
static void test_exclusive(void **state)
{
    const char *dir = *state;
    char errmsg[BRK_ERRMSG_LEN], want[64], path[TMPDIR_PATH_MAX + 16];
    struct dirlock l;
    FILE *f;
    long pid = 0;

    dirlock_init(&l);
    assert_int_equal(dirlock_acquire(&l, dir, errmsg), 0);
    snprintf(path, sizeof(path), "%s/" DIRLOCK_FILE, dir);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    assert_int_equal(pid, (long)getpid());
    assert_int_equal(acquire_in_child(dir, errmsg), BRK_ECONFLICT);
    snprintf(want, sizeof(want), "pid %ld", (long)getpid());
    assert_non_null(strstr(errmsg, want));
    assert_non_null(strstr(errmsg, dir));
    dirlock_release(&l);
    assert_int_equal(acquire_in_child(dir, errmsg), 0);
}

/* The same directory under another spelling is one lock, not a conflict
 * with ourselves; a missing directory is created. */
static void test_same_dir_twice(void **state)
{
    const char *dir = *state;
    char errmsg[BRK_ERRMSG_LEN], other[TMPDIR_PATH_MAX + 32];
    struct dirlock l;

    dirlock_init(&l);
    assert_int_equal(dirlock_acquire(&l, dir, errmsg), 0);
    snprintf(other, sizeof(other), "%s/./", dir);
    assert_int_equal(dirlock_acquire(&l, other, errmsg), 0);
    assert_int_equal(l.n, 1);
    snprintf(other, sizeof(other), "%s/raft/inner", dir);
    assert_int_equal(dirlock_acquire(&l, other, errmsg), 0);
    assert_int_equal(l.n, 2);
    assert_true(tmpdir_exists(dir, "raft/inner/" DIRLOCK_FILE));
    dirlock_release(&l);
}

/* A lock whose holder died is free: the kernel dropped it. */
static void test_stale_file(void **state)
{
    const char *dir = *state;
    char errmsg[BRK_ERRMSG_LEN];

    assert_int_equal(acquire_in_child(dir, errmsg), 0); /* child exits */
    assert_true(tmpdir_exists(dir, DIRLOCK_FILE));
    assert_int_equal(acquire_in_child(dir, errmsg), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_exclusive),
        T(test_same_dir_twice),
        T(test_stale_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
