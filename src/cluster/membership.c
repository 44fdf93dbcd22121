/* Membership changes and leadership transfer, run on the loop thread as
 * WORK_CALL items and finished from c-raft's callbacks. One change at a
 * time (c-raft answers RAFT_CANTCHANGE otherwise: 409). */
#include <stdlib.h>
#include <string.h>

#include "broker/log.h"
#include "node_internal.h"

struct change {
    struct raft_change req;
    struct raft_transfer treq;
    struct work *w;
    struct node *n;
};

static int map_raft_err(int rv)
{
    switch (rv) {
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST: return BRK_ENO_LEADER;
    case RAFT_CANTCHANGE:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS: return BRK_ECONFLICT;
    case RAFT_BADID: return BRK_EUNKNOWN_MEMBER;
    case RAFT_NOMEM: return BRK_ENOMEM;
    default: return BRK_EUNAVAILABLE;
    }
}

static bool fail(struct work *w, int code, const char *what, int rv)
{
    w->res.err = code;
    snprintf(w->res.errmsg, sizeof(w->res.errmsg), "%s: %s", what,
             rv ? raft_strerror(rv) : brk_err_str(code));
    return true;
}

static bool leader_check(struct work *w, struct node *n)
{
    if (n->cl == NULL)
        return !fail(w, BRK_EINVAL, "cluster mode is not enabled", 0);
    if (raft_state(&n->cl->raft) != RAFT_LEADER)
        return !fail(w, BRK_ENO_LEADER, "this node is not the leader", 0);
    return true;
}

static void finish(struct change *c, int rv, const char *what)
{
    if (rv != 0)
        fail(c->w, map_raft_err(rv), what, rv);
    cluster_publish_status(c->n);
    node_finish_work(c->n, c->w);
    free(c);
}

/* Record the new member's HTTP address in the replicated state ("":
 * forget a removed member, so that its table slot can be reused). */
static void propose_http(struct node *n, uint64_t id, const char *http)
{
    struct work *w;

    if ((w = calloc(1, sizeof(*w))) == NULL)
        return;
    w->type = WORK_CMD;
    w->cmd.type = CMD_SET_MEMBER;
    w->cmd.node_id = id;
    snprintf(w->cmd.address, sizeof(w->cmd.address), "%s", http);
    w->done = node_free_internal_work;
    node_requeue(n, w);
    uv_async_send(&n->async);
}

static void assign_cb(struct raft_change *req, int status)
{
    struct change *c = req->data;

    if (status == 0) {
        log_info("member %llu (%s) is now a voter",
                 (unsigned long long)c->w->arg_id, c->w->arg_addr);
        if (c->w->arg_addr2[0] != '\0')
            propose_http(c->n, c->w->arg_id, c->w->arg_addr2);
    }
    finish(c, status, "promote the new member to voter");
}

static void add_cb(struct raft_change *req, int status)
{
    struct change *c = req->data;
    int rv;

    if (status != 0) {
        finish(c, status, "add member");
        return;
    }
    /* Joined as spare: promote it, which first catches it up. */
    rv = raft_assign(&c->n->cl->raft, &c->req, c->w->arg_id, RAFT_VOTER,
                     assign_cb);
    if (rv != 0)
        finish(c, rv, "promote the new member to voter");
}

static struct change *change_new(struct work *w, struct node *n)
{
    struct change *c = calloc(1, sizeof(*c));

    if (c != NULL) {
        c->w = w;
        c->n = n;
        c->req.data = c;
        c->treq.data = c;
    }
    return c;
}

bool node_call_member_add(struct work *w, struct node *n)
{
    struct change *c;
    int rv;

    if (!leader_check(w, n))
        return true;
    if ((c = change_new(w, n)) == NULL)
        return fail(w, BRK_ENOMEM, "add member", 0);
    rv = raft_add(&n->cl->raft, &c->req, w->arg_id, w->arg_addr, add_cb);
    if (rv != 0) {
        free(c);
        return fail(w, map_raft_err(rv), "add member", rv);
    }
    log_info("adding member %llu at %s", (unsigned long long)w->arg_id,
             w->arg_addr);
    return false;
}

static void remove_cb(struct raft_change *req, int status)
{
    struct change *c = req->data;

    if (status == 0) {
        log_info("member %llu removed", (unsigned long long)c->w->arg_id);
        propose_http(c->n, c->w->arg_id, "");
    }
    finish(c, status, "remove member");
}

bool node_call_member_remove(struct work *w, struct node *n)
{
    struct change *c;
    int rv;

    if (!leader_check(w, n))
        return true;
    if ((c = change_new(w, n)) == NULL)
        return fail(w, BRK_ENOMEM, "remove member", 0);
    rv = raft_remove(&n->cl->raft, &c->req, w->arg_id, remove_cb);
    if (rv != 0) {
        free(c);
        return fail(w, map_raft_err(rv), "remove member", rv);
    }
    return false;
}

static void transfer_cb(struct raft_transfer *req)
{
    struct change *c = req->data;
    raft_id id = 0;
    const char *addr;

    /* 0.15 may give up silently (see docs/clustering.md): check. */
    raft_leader(&c->n->cl->raft, &id, &addr);
    if (id == 0 || id == c->n->cfg->cluster.node_id ||
        (c->w->arg_id != 0 && id != c->w->arg_id)) {
        fail(c->w, BRK_EUNAVAILABLE, "leadership transfer did not complete",
             0);
    }
    finish(c, 0, "transfer leadership");
}

bool node_call_transfer(struct work *w, struct node *n)
{
    struct change *c;
    int rv;

    if (!leader_check(w, n))
        return true;
    if (w->arg_id == n->cfg->cluster.node_id)
        return true; /* already the leader: nothing to do */
    if ((c = change_new(w, n)) == NULL)
        return fail(w, BRK_ENOMEM, "transfer leadership", 0);
    rv = raft_transfer(&n->cl->raft, &c->treq, (raft_id)w->arg_id,
                       transfer_cb);
    if (rv != 0) {
        free(c);
        return fail(w, map_raft_err(rv), "transfer leadership", rv);
    }
    return false;
}
