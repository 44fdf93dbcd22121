/* Exclusive ownership of a data directory by one broker process: an
 * flock(2) on "<dir>/.lock", held for the life of the process, with the
 * holder's pid written into the file for the message a second process
 * prints. The kernel drops the lock when the holder dies (kill -9
 * included), so a stale file never blocks a restart.
 *
 * Threads: main thread, at start-up and exit. */
#ifndef BROKER_DIRLOCK_H
#define BROKER_DIRLOCK_H

#define DIRLOCK_FILE ".lock"
#define DIRLOCK_MAX 2

/* The locks one process holds (data_dir, cluster.data_dir). */
struct dirlock {
    int fds[DIRLOCK_MAX];       /* open, flock'ed .lock files */
    char paths[DIRLOCK_MAX][4096]; /* their directories, resolved */
    int n;
};

void dirlock_init(struct dirlock *l);

/* Create @dir if needed and lock it. A directory this process already
 * locked (the same directory under another spelling) is accepted as is.
 * BRK_ECONFLICT when another process holds it: @errmsg names @dir and the
 * holder's pid. BRK_EIO when the lock file cannot be created or locked. */
int dirlock_acquire(struct dirlock *l, const char *dir, char *errmsg);

/* Unlock and close everything (the files stay: removing them would race
 * with a new holder). */
void dirlock_release(struct dirlock *l);

#endif
