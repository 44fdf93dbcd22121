/* Unit tests for the line logger (src/core/log.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strptime, timegm, nftw */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/err.h"
#include "broker/log.h"

struct fixture {
    char dir[64];   /* mkdtemp directory, removed in teardown */
    char path[256]; /* log file two directories below dir */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_log_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/a/b/broker.log", f->dir);
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    log_close();
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* The whole file as a NUL-terminated string (caller frees). */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t re;
    int rv;

    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
    rv = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    if (rv != 0) {
        fail_msg("\"%s\" does not match /%s/", text, pattern);
    }
}

#define TS_RE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

/* Level names parse; anything else is refused. */
static void test_level_parse(void **state)
{
    enum log_level l;

    (void)state;
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("info", &l), 0);
    assert_int_equal(l, LOG_LEVEL_INFO);
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("error", &l), 0);
    assert_int_equal(l, LOG_LEVEL_ERROR);
    assert_int_equal(log_level_parse("warning", &l), -1);
    assert_int_equal(log_level_parse("", &l), -1);
    assert_int_equal(log_level_parse(NULL, &l), -1);
}

/* log_open creates missing parent directories and writes formatted lines. */
static void test_open_creates_dirs_and_formats(void **state)
{
    struct fixture *f = *state;
    char errmsg[BRK_ERRMSG_LEN];
    char *text;

    assert_int_equal(log_open(f->path, LOG_LEVEL_INFO, errmsg), 0);
    log_info("hello %d", 42);
    log_error("disk %s", "full");
    text = slurp(f->path);
    assert_int_equal(count_lines(text), 2);
    assert_matches(text, "^" TS_RE " INFO hello 42\n" TS_RE
                         " ERROR disk full\n$");
    free(text);
}

/* Timestamps are UTC wall-clock time. */
static void test_timestamp_is_utc_now(void **state)
{
    struct fixture *f = *state;
    char errmsg[BRK_ERRMSG_LEN];
    struct tm tm;
    time_t before;
    time_t logged;
    char *text;

    assert_int_equal(log_open(f->path, LOG_LEVEL_INFO, errmsg), 0);
    before = time(NULL);
    log_info("tick");
    text = slurp(f->path);
    memset(&tm, 0, sizeof tm);
    assert_non_null(strptime(text, "%Y-%m-%dT%H:%M:%S", &tm));
    logged = timegm(&tm);
    assert_true(logged >= before - 1 && logged <= time(NULL) + 1);
    free(text);
}

/* Lines below the level are dropped; log_set_level changes it later. */
static void test_level_filter(void **state)
{
    struct fixture *f = *state;
    char errmsg[BRK_ERRMSG_LEN];
    char *text;

    assert_int_equal(log_open(f->path, LOG_LEVEL_WARN, errmsg), 0);
    log_debug("d1");
    log_info("i1");
    log_warn("w1");
    log_error("e1");
    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("d2");
    text = slurp(f->path);
    assert_int_equal(count_lines(text), 3);
    assert_null(strstr(text, "d1"));
    assert_null(strstr(text, "i1"));
    assert_matches(text, " WARN w1$");
    assert_matches(text, " ERROR e1$");
    assert_matches(text, " DEBUG d2$");
    free(text);
}

/* Reopening appends to the existing file instead of truncating it. */
static void test_appends(void **state)
{
    struct fixture *f = *state;
    char errmsg[BRK_ERRMSG_LEN];
    char *text;

    assert_int_equal(log_open(f->path, LOG_LEVEL_INFO, errmsg), 0);
    log_info("first");
    log_close();
    assert_int_equal(log_open(f->path, LOG_LEVEL_INFO, errmsg), 0);
    log_info("second");
    text = slurp(f->path);
    assert_int_equal(count_lines(text), 2);
    assert_non_null(strstr(text, "first"));
    assert_non_null(strstr(text, "second"));
    free(text);
}

/* A trailing newline in the message does not produce an empty line. */
static void test_trailing_newline(void **state)
{
    struct fixture *f = *state;
    char errmsg[BRK_ERRMSG_LEN];
    char *text;

    assert_int_equal(log_open(f->path, LOG_LEVEL_INFO, errmsg), 0);
    log_info("with newline\n");
    text = slurp(f->path);
    assert_int_equal(count_lines(text), 1);
    assert_matches(text, " INFO with newline\n$");
    free(text);
}

/* A message longer than the stack buffer is written whole. */
static void test_long_message(void **state)
{
    struct fixture *f = *state;
    char errmsg[BRK_ERRMSG_LEN];
    char *big = malloc(20001);
    char *text;

    assert_non_null(big);
    memset(big, 'q', 20000);
    big[20000] = '\0';
    assert_int_equal(log_open(f->path, LOG_LEVEL_INFO, errmsg), 0);
    log_info("%s", big);
    text = slurp(f->path);
    assert_int_equal(count_lines(text), 1);
    assert_non_null(strstr(text, big));
    free(text);
    free(big);
}

/* Logging leaves errno as the caller had it. */
static void test_preserves_errno(void **state)
{
    struct fixture *f = *state;
    char errmsg[BRK_ERRMSG_LEN];

    assert_int_equal(log_open(f->path, LOG_LEVEL_INFO, errmsg), 0);
    errno = ENOSPC;
    log_info("x");
    assert_int_equal(errno, ENOSPC);
}

/* A path that cannot be created fails with BRK_EIO and names the path. */
static void test_open_fails(void **state)
{
    struct fixture *f = *state;
    char errmsg[BRK_ERRMSG_LEN];
    char file[300];
    char bad[320];
    FILE *fp;

    snprintf(file, sizeof file, "%s/plainfile", f->dir);
    fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(bad, sizeof bad, "%s/sub/x.log", file);
    assert_int_equal(log_open(bad, LOG_LEVEL_INFO, errmsg), BRK_EIO);
    assert_non_null(strstr(errmsg, bad));
}

#define N_THREADS 8
#define N_LINES 500

static void *log_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[200];
    int i;

    memset(pad, 'a' + id, sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (i = 0; i < N_LINES; i++) {
        log_info("t%d n%d %s end", id, i, pad);
    }
    return NULL;
}

/* Lines from concurrent threads never interleave. */
static void test_concurrent_lines_whole(void **state)
{
    struct fixture *f = *state;
    char errmsg[BRK_ERRMSG_LEN];
    pthread_t th[N_THREADS];
    regex_t re;
    char *text;
    char *line;
    char *save = NULL;
    int i;
    int n = 0;

    assert_int_equal(log_open(f->path, LOG_LEVEL_INFO, errmsg), 0);
    for (i = 0; i < N_THREADS; i++) {
        assert_int_equal(
            pthread_create(&th[i], NULL, log_worker, (void *)(intptr_t)i), 0);
    }
    for (i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    /* Compiled once: 4000 regcomp calls are slow under sanitizers. */
    assert_int_equal(regcomp(&re,
                             "^" TS_RE " INFO t[0-7] n[0-9]+ "
                             "(a{199}|b{199}|c{199}|d{199}|e{199}|f{199}|"
                             "g{199}|h{199}) end$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    text = slurp(f->path);
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (regexec(&re, line, 0, NULL, 0) != 0) {
            fail_msg("mangled line: %s", line);
        }
        n++;
    }
    regfree(&re);
    assert_int_equal(n, N_THREADS * N_LINES);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test_setup_teardown(test_open_creates_dirs_and_formats,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamp_is_utc_now, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trailing_newline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preserves_errno, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_open_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_lines_whole, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
