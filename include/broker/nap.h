/* A background thread's interruptible sleep: the scrubber, the repairer
 * and the announcer wait between rounds and must wake at once on stop. */
#ifndef BROKER_NAP_H
#define BROKER_NAP_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Wait on @cond (taking @lock) for up to @ns nanoseconds, or until *@stop
 * is set under @lock and @cond signalled. Returns *@stop. */
bool nap_until_stopped(pthread_mutex_t *lock, pthread_cond_t *cond,
                       const bool *stop, uint64_t ns);

#endif
