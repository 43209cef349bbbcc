#include "featviz/progress.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
    int tty;
    char label[96], prefix[32];
    size_t total, done;
    double start, last;
} bar;

static volatile sig_atomic_t stop_requested;
static int silenced;                        /* ranks other than 0 of an MPI job */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* rank 0 also counts other ranks' items */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void fv_progress_prefix(const char *prefix) { snprintf(bar.prefix, sizeof bar.prefix, "%s", prefix ? prefix : ""); }

void fv_progress_silence(void) { silenced = 1; }

void fv_progress_start(const char *label, size_t total) {
    bar.tty = !silenced && isatty(2);
    snprintf(bar.label, sizeof bar.label, "%s", label);
    bar.total = total ? total : 1;
    bar.done = 0;
    bar.start = bar.last = now();
    fv_progress_add(0);
}

void fv_progress_add(size_t n) {
    pthread_mutex_lock(&lock);
    bar.done += n;
    double t = now();
    if (!bar.tty || (n && t - bar.last < 0.1 && bar.done < bar.total)) {
        pthread_mutex_unlock(&lock);
        return;
    }
    bar.last = t;
    double frac = (double)bar.done / (double)bar.total;
    if (frac > 1) frac = 1;
    char cells[31];
    int full = (int)(frac * 30);
    for (int i = 0; i < 30; i++) cells[i] = i < full ? '#' : '.';
    cells[30] = 0;
    double eta = frac > 0 ? (t - bar.start) * (1 - frac) / frac : 0;
    fprintf(stderr, "\r%s%-28.28s [%s] %3d%%  ETA %3d:%02d ", bar.prefix, bar.label, cells, (int)(frac * 100),
            (int)eta / 60, (int)eta % 60);
    fflush(stderr);
    pthread_mutex_unlock(&lock);
}

void fv_progress_end(void) {
    if (!bar.tty) return;
    fprintf(stderr, "\r%*s\r", 90, "");
    fflush(stderr);
}

static void on_sigint(int sig) {
    if (stop_requested) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_requested = 1;
}

void fv_interrupt_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL); /* what mpirun and Slurm send at a stop or time limit */
}

int fv_interrupted(void) { return stop_requested != 0; }
