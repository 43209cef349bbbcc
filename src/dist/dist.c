/* dist.h for one process, and the queue's dealing rule for any number; the
 * MPI back end (mpi.c) carries requests and collectives when there are
 * several processes. */
#include "dist/dist.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef FV_HAVE_MPI
#include "dist/mpi.h"
#endif

static int active;             /* MPI started */
static int rank, size = 1;
static char host[256];

void fv_dist_init(int *argc, char ***argv) {
    if (gethostname(host, sizeof host - 1)) snprintf(host, sizeof host, "unknown");
#ifdef FV_HAVE_MPI
    active = fv_mpi_init(argc, argv, &rank, &size);
#else
    (void)argc, (void)argv;
#endif
}

void fv_dist_finalize(void) {
#ifdef FV_HAVE_MPI
    if (active) fv_mpi_finalize();
#endif
    active = 0;
}

int fv_dist_rank(void) { return rank; }
int fv_dist_size(void) { return size; }
const char *fv_dist_host(void) { return host; }

/* ---- the queue (its state lives on rank 0) ---- */

static struct {
    pthread_mutex_t lock;
    struct fv_queue_spec spec;
    int next, stop;
    int last_first, last_count; /* this rank's previous grant */
} q = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Deals up to max items to rank src, after recording its completed grant. */
static int grant(int src, int max, int done_first, int done_count, int *first) {
    pthread_mutex_lock(&q.lock);
    if (done_count > 0 && q.spec.on_done) q.spec.on_done(q.spec.ctx, done_first, done_count, src != 0);
    if (max <= 0) q.stop = 1; /* a rank stopped early: the job stops */
    int cnt = 0, n = q.spec.n;
    while (q.next < n && q.spec.skip && q.spec.skip[q.next]) q.next++;
    if (!q.stop && q.next < n) {
        /* guided: half of an even share of what is left, at most max (one
         * process: max, as it would run without the queue) */
        int want = size > 1 ? (n - q.next) / (2 * size) : max;
        want = want < 1 ? 1 : want > max ? max : want;
        int g = q.spec.group ? q.spec.group[q.next] : 0;
        cnt = 1;
        while (cnt < want && q.next + cnt < n && !(q.spec.skip && q.spec.skip[q.next + cnt]) &&
               (!q.spec.group || q.spec.group[q.next + cnt] == g))
            cnt++;
        *first = q.next;
        q.next += cnt;
    }
    pthread_mutex_unlock(&q.lock);
    return cnt;
}

void fv_dist_queue_open(const struct fv_queue_spec *spec) {
    pthread_mutex_lock(&q.lock);
    q.spec = *spec;
    q.next = q.stop = 0;
    q.last_first = q.last_count = 0;
    pthread_mutex_unlock(&q.lock);
#ifdef FV_HAVE_MPI
    if (active && size > 1) {
        if (rank == 0) fv_mpi_dealer_start(grant);
        fv_mpi_barrier(); /* nobody asks before the dealer is there */
    }
#endif
}

int fv_dist_queue_take(int max, int done, int *first) {
    int df = q.last_first, dc = done ? q.last_count : 0, cnt;
    *first = 0;
#ifdef FV_HAVE_MPI
    if (active && size > 1 && rank != 0) cnt = fv_mpi_request(max, df, dc, first);
    else
#endif
        cnt = grant(0, max, df, dc, first);
    q.last_first = *first, q.last_count = cnt;
    return cnt;
}

void fv_dist_queue_close(void) {
#ifdef FV_HAVE_MPI
    if (active && size > 1) {
        if (rank == 0) fv_mpi_dealer_join();
        fv_mpi_barrier();
    }
#endif
}

long long fv_dist_sum(long long v) {
#ifdef FV_HAVE_MPI
    if (active && size > 1) return fv_mpi_sum(v);
#endif
    return v;
}

int fv_dist_any(int flag) { return fv_dist_sum(flag != 0) > 0; }

void fv_dist_barrier(void) {
#ifdef FV_HAVE_MPI
    if (active && size > 1) fv_mpi_barrier();
#endif
}

_Noreturn void fv_dist_fail(int code, const char *msg) {
    fflush(stdout);
    if (size > 1) fprintf(stderr, "featviz: rank %d on %s: %s\n", rank, host, msg);
    else fprintf(stderr, "featviz: %s\n", msg);
    fflush(stderr);
#ifdef FV_HAVE_MPI
    if (active) fv_mpi_abort(code);
#endif
    exit(code);
}
