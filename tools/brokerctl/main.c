/* brokerctl entry point: global options, then one command. */
#include "brokerctl.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct global_opt g_opt;
volatile int g_stop;

static const char HELP[] =
    "usage: brokerctl [--url URL[,URL...]] [--token T] [--json] COMMAND ...\n"
    "\n"
    "Commands (each has --help):\n"
    "  produce TOPIC [VALUE...]   write messages (args, stdin lines, --file)\n"
    "  consume TOPIC              read messages (-f follows like tail -f)\n"
    "  topics  list|create|describe|alter|delete\n"
    "  groups  list|describe|reset|delete\n"
    "  cluster status|members|add|remove|transfer|raft\n"
    "  queue   claim|run          competing consumers (at most once)\n"
    "\n"
    "Global options (before the command):\n"
    "  --url URL[,URL...]  nodes to try in order; the next one is used when a\n"
    "                      node is unreachable (default $BROKER_URL or\n"
    "                      http://127.0.0.1:9092)\n"
    "  --token T           sent as 'Authorization: Bearer T'\n"
    "  --json              print the server's JSON answers as they are\n"
    "  -v, --verbose       report every failed node\n"
    "\n"
    "Exit status: 0 ok, 1 the server answered an error (its error and code\n"
    "are printed to stderr), 2 usage error, 3 no node reachable (or a\n"
    "write's answer was lost: it may have been applied, and is not resent).\n";

int usage_error(const char *help, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("brokerctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (help)
        fputs(help, stderr);
    return EXIT_USAGE;
}

int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int want_help(int argc, char **argv, const char *help)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            return 1;
        }
    }
    return 0;
}

/* A string value as its text, anything else as compact JSON. */
void print_value(FILE *f, json_t *v)
{
    if (json_is_string(v)) {
        fwrite(json_string_value(v), 1, json_string_length(v), f);
        return;
    }
    char *s = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (s)
        fputs(s, f);
    free(s);
}

static int set_urls(char *list)
{
    g_opt.nurls = 0;
    for (char *save, *u = strtok_r(list, ",", &save); u;
         u = strtok_r(NULL, ",", &save)) {
        if (g_opt.nurls == MAX_URLS)
            return usage_error(NULL, "at most %d URLs", MAX_URLS);
        size_t n = strlen(u);
        while (n > 0 && u[n - 1] == '/')
            u[--n] = '\0'; /* paths start with '/' */
        if (n)
            g_opt.urls[g_opt.nurls++] = u;
    }
    return g_opt.nurls ? 0 : usage_error(NULL, "--url: no URL given");
}

static void on_signal(int sig)
{
    g_stop = 1;
}

static int parse_global(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, 0, 'u'}, {"token", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},      {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},      {0, 0, 0, 0}};
    static char url_buf[4096];
    const char *env = getenv("BROKER_URL");
    snprintf(url_buf, sizeof url_buf, "%s",
             env && *env ? env : "http://127.0.0.1:9092");
    int c;
    while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            snprintf(url_buf, sizeof url_buf, "%s", optarg);
            break;
        case 't': g_opt.token = optarg; break;
        case 'j': g_opt.json = 1; break;
        case 'v': g_opt.verbose = 1; break;
        case 'h': fputs(HELP, stdout); exit(0);
        default: return usage_error(HELP, "bad global option");
        }
    }
    return set_urls(url_buf);
}

int main(int argc, char **argv)
{
    int rc = parse_global(argc, argv);
    if (rc)
        return rc;
    if (optind >= argc)
        return usage_error(HELP, "no command given");
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"produce", cmd_produce}, {"consume", cmd_consume},
                {"topics", cmd_topics},   {"groups", cmd_groups},
                {"cluster", cmd_cluster}, {"queue", cmd_queue}};
    const char *name = argv[optind];
    if (!strcmp(name, "help")) {
        fputs(HELP, stdout);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (!strcmp(name, cmds[i].name)) {
            int sub_argc = argc - optind;
            optind = 0; /* reinitialise getopt: the command parses its own argv */
            rc = cmds[i].fn(sub_argc, argv + (argc - sub_argc));
            fflush(stdout);
            curl_global_cleanup();
            return rc;
        }
    }
    return usage_error(HELP, "unknown command '%s'", name);
}
