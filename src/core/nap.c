#include "broker/nap.h"

#include <errno.h>
#include <time.h>

bool nap_until_stopped(pthread_mutex_t *lock, pthread_cond_t *cond,
                       const bool *stop, uint64_t ns)
{
    struct timespec ts;
    bool stopped;

    /* pthread_cond_timedwait takes an absolute CLOCK_REALTIME time. */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec += (long)(ns % 1000000000u);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(lock);
    while (!*stop && pthread_cond_timedwait(cond, lock, &ts) != ETIMEDOUT)
        ;
    stopped = *stop;
    pthread_mutex_unlock(lock);
    return stopped;
}
