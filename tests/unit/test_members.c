/* Unit tests for the replicated member-address table
 * (cluster_set_member in src/cluster/raft_node.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/err.h"
#include "cluster/node_internal.h"

static int setup(void **state)
{
    struct node *n = calloc(1, sizeof(*n));

    assert_non_null(n);
    n->cl = calloc(1, sizeof(*n->cl));
    assert_non_null(n->cl);
    *state = n;
    return 0;
}

static int teardown(void **state)
{
    struct node *n = *state;

    free(n->cl);
    free(n);
    return 0;
}

/* A valid address is stored and replaced; "" forgets the member. */
static void test_set_replace_forget(void **state)
{
    struct node *n = *state;

    assert_int_equal(cluster_set_member(n, 2, "127.0.0.1:9093"), 0);
    assert_string_equal(cluster_member_http(n, 2), "127.0.0.1:9093");
    assert_int_equal(cluster_set_member(n, 2, "node2:9093"), 0);
    assert_string_equal(cluster_member_http(n, 2), "node2:9093");
    assert_int_equal(n->cl->n_members, 1);
    assert_int_equal(cluster_set_member(n, 2, ""), 0);
    assert_null(cluster_member_http(n, 2));
    assert_int_equal(n->cl->n_members, 0);
    assert_int_equal(cluster_set_member(n, 9, ""), 0); /* unknown: no-op */
}

/* What the probe wrote into every node's log is never stored, and the
 * address in place stays. */
static void test_invalid_refused(void **state)
{
    struct node *n = *state;

    assert_int_equal(cluster_set_member(n, 1, "127.0.0.1:9092"), 0);
    assert_int_equal(cluster_set_member(n, 1, "x y\r\nZ"), BRK_EINVAL);
    assert_int_equal(cluster_set_member(n, 1, "host"), BRK_EINVAL);
    assert_string_equal(cluster_member_http(n, 1), "127.0.0.1:9092");
}

/* Past NODE_MAX_MEMBERS entries: an error, not a silent drop; existing
 * entries can still change, and a forgotten one frees its slot. */
static void test_table_full(void **state)
{
    struct node *n = *state;
    char addr[32];
    uint64_t id;

    for (id = 1; id <= NODE_MAX_MEMBERS; id++) {
        snprintf(addr, sizeof(addr), "127.0.0.1:%llu",
                 (unsigned long long)(9000 + id));
        assert_int_equal(cluster_set_member(n, id, addr), 0);
    }
    assert_int_equal(cluster_set_member(n, 99, "127.0.0.1:1"), BRK_ECONFLICT);
    assert_null(cluster_member_http(n, 99));
    assert_int_equal(cluster_set_member(n, 3, "127.0.0.1:2"), 0);
    assert_int_equal(cluster_set_member(n, 5, ""), 0);
    assert_int_equal(cluster_set_member(n, 99, "127.0.0.1:1"), 0);
    assert_string_equal(cluster_member_http(n, 99), "127.0.0.1:1");
    assert_string_equal(cluster_member_http(n, 16), "127.0.0.1:9016");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_replace_forget, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_invalid_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
