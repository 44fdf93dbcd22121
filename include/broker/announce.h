/* Cluster members tell the leader their HTTP address (so that followers
 * can forward writes and the status shows every member's address). A
 * small thread of its own, since it makes blocking HTTP calls. */
#ifndef BROKER_ANNOUNCE_H
#define BROKER_ANNOUNCE_H

#include "broker/config.h"
#include "broker/node.h"

struct announcer;

/* Start announcing @cfg->server.advertise for this node (cluster only). */
int announcer_start(struct node *n, const struct config *cfg,
                    struct announcer **out, char *errmsg);
void announcer_stop(struct announcer *a);

#endif
