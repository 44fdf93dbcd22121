/* brokerctl queue: competing consumers over the claim route, and a loop
 * that runs a command once per claimed message. */
#include "brokerctl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char HELP[] =
    "usage: brokerctl queue claim GROUP TOPIC [-n N] [--wait-ms T]\n"
    "       brokerctl queue run GROUP TOPIC [-n N] [--wait-ms T] [--exit-empty] -- CMD...\n"
    "claim prints up to N claimed messages (JSON lines). run claims in a loop\n"
    "and runs CMD once per message, the value on its stdin and BROKER_OFFSET,\n"
    "BROKER_PARTITION, BROKER_KEY, BROKER_TOPIC in its environment; with -n it\n"
    "stops after N messages, with --exit-empty at the first empty claim.\n"
    "Claims are AT MOST ONCE: the group's offsets advance when a message is\n"
    "handed out, before CMD runs, so a message whose CMD fails or whose\n"
    "claimer dies is not handed out again (no ack/nack on this server yet).\n";

struct qopt {
    const char *group, *topic;
    long n, wait_ms, done;
    int exit_empty;
    char **cmd;
};

static int claim(const struct qopt *o, long limit, json_t **msgs)
{
    char path[1024];
    char *g = esc(o->group), *t = esc(o->topic);
    snprintf(path, sizeof path, "/groups/%s/topics/%s/claim", g, t);
    free(g);
    free(t);
    json_t *body = json_pack("{s:I,s:I}", "limit", (json_int_t)limit, "wait_ms",
                             (json_int_t)o->wait_ms);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct req q = {.method = "POST", .path = path, .body = text, .body_len = strlen(text),
                    .content_type = "application/json", .timeout_ms = o->wait_ms,
                    .quiet = 1};
    json_t *ans;
    int rc = call_json(&q, &ans);
    free(text);
    *msgs = rc ? NULL : json_incref(json_object_get(ans, "messages"));
    json_decref(ans);
    return rc;
}

static void set_env(const struct qopt *o, json_t *m)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)json_integer_value(json_object_get(m, "offset")));
    setenv("BROKER_OFFSET", num, 1);
    snprintf(num, sizeof num, "%lld",
             (long long)json_integer_value(json_object_get(m, "partition")));
    setenv("BROKER_PARTITION", num, 1);
    setenv("BROKER_TOPIC", o->topic, 1);
    const char *k = json_string_value(json_object_get(m, "key"));
    if (k)
        setenv("BROKER_KEY", k, 1);
    else
        unsetenv("BROKER_KEY");
}

/* Runs CMD with the value on stdin; returns its exit status. */
static int run_cmd(const struct qopt *o, json_t *m)
{
    int fds[2];
    if (pipe(fds))
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        dup2(fds[0], 0);
        close(fds[0]);
        set_env(o, m);
        execvp(o->cmd[0], o->cmd);
        perror(o->cmd[0]);
        _exit(127);
    }
    close(fds[0]);
    if (pid > 0) {
        FILE *w = fdopen(fds[1], "w");
        if (w) {
            print_value(w, json_object_get(m, "value"));
            fclose(w);
        } else {
            close(fds[1]);
        }
    } else {
        close(fds[1]);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void print_msgs(json_t *msgs)
{
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        char *s = json_dumps(m, JSON_COMPACT);
        puts(s ? s : "");
        free(s);
    }
}

static int run_loop(struct qopt *o)
{
    while (!g_stop && (o->n <= 0 || o->done < o->n)) {
        long limit = o->n > 0 && o->n - o->done < 100 ? o->n - o->done : 100;
        json_t *msgs;
        int rc = claim(o, limit, &msgs);
        if (rc)
            return rc;
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m) {
            int st = run_cmd(o, m);
            if (st)
                fprintf(stderr, "brokerctl: %s exited %d for %s/%lld offset %lld\n",
                        o->cmd[0], st, o->topic,
                        (long long)json_integer_value(json_object_get(m, "partition")),
                        (long long)json_integer_value(json_object_get(m, "offset")));
            o->done++;
        }
        int empty = json_array_size(msgs) == 0;
        json_decref(msgs);
        if (empty && o->exit_empty)
            break;
    }
    return 0;
}

static int parse(struct qopt *o, int argc, char **argv, int is_run)
{
    int i = 4;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            if (parse_long(argv[++i], 1, 10000000, &o->n))
                return usage_error(HELP, "bad -n");
        } else if (!strcmp(argv[i], "--wait-ms") && i + 1 < argc) {
            if (parse_long(argv[++i], 0, 30000, &o->wait_ms))
                return usage_error(HELP, "--wait-ms must be 0..30000");
        } else if (!strcmp(argv[i], "--exit-empty") && is_run) {
            o->exit_empty = 1;
        } else {
            return usage_error(HELP, "bad argument '%s'", argv[i]);
        }
    }
    if (is_run && (i + 1 >= argc))
        return usage_error(HELP, "queue run: '-- CMD...' is required");
    if (!is_run && i < argc)
        return usage_error(HELP, "queue claim takes no command");
    o->cmd = argv + i + 1;
    return 0;
}

int cmd_queue(int argc, char **argv)
{
    if (want_help(argc, argv, HELP))
        return 0;
    if (argc < 4)
        return usage_error(HELP, "queue: SUBCOMMAND GROUP TOPIC required");
    int is_run = !strcmp(argv[1], "run");
    if (!is_run && strcmp(argv[1], "claim"))
        return usage_error(HELP, "queue: unknown subcommand '%s'", argv[1]);
    struct qopt o = {.group = argv[2], .topic = argv[3], .wait_ms = is_run ? 1000 : 0};
    int rc = parse(&o, argc, argv, is_run);
    if (rc)
        return rc;
    if (is_run)
        return run_loop(&o);
    json_t *msgs;
    rc = claim(&o, o.n > 0 ? (o.n > 10000 ? 10000 : o.n) : 100, &msgs);
    if (!rc)
        print_msgs(msgs);
    json_decref(msgs);
    return rc;
}
