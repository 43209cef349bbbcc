/* Distribution of one run over processes: which rank this is, a dynamic work
 * queue, exact reductions, a barrier and a job-wide failure. Under mpirun or
 * srun (and a build with MPI) the processes of the job share the work; run
 * plainly, the same calls serve one process (rank 0 of 1). All MPI calls live
 * in mpi.c behind this interface. */
#ifndef FEATVIZ_DIST_H
#define FEATVIZ_DIST_H

#include <stddef.h>

/* Starts MPI when launched by mpirun/srun (nothing otherwise). Call first. */
void fv_dist_init(int *argc, char ***argv);
/* Ends MPI (a no-op for one process). */
void fv_dist_finalize(void);
int fv_dist_rank(void);
int fv_dist_size(void);
/* This process's host name (for messages). */
const char *fv_dist_host(void);

/* The work queue: items 0..n-1, dealt by rank 0 on request in index order,
 * consecutive items of the same group (group[i], NULL: all one group) a few at
 * a time, fewer as the queue empties (guided), so ranks that draw cheap items
 * come back for more. skip (n, may be NULL, read on rank 0 only): items done
 * already. on_done runs on rank 0 (serialized) for every grant a rank has
 * completed: remote = done by another rank. Collective. */
struct fv_queue_spec {
    int n;
    const int *group;
    const unsigned char *skip;
    void (*on_done)(void *ctx, int first, int count, int remote);
    void *ctx;
};
void fv_dist_queue_open(const struct fv_queue_spec *spec);
/* Takes up to max items for this rank: returns how many (0: none left, or
 * the job is stopping) with the first at *first. done: whether the previous
 * grant was completed (it is then reported to on_done). max = 0 leaves the
 * queue early (Ctrl-C): rank 0 then deals no more items to anyone. */
int fv_dist_queue_take(int max, int done, int *first);
/* After the last take: waits for every rank. Collective. */
void fv_dist_queue_close(void);

/* Exact reductions over all ranks (integers: the order cannot matter). */
long long fv_dist_sum(long long v);
int fv_dist_any(int flag);
/* Waits for every rank without spinning a core. */
void fv_dist_barrier(void);

/* Prints "featviz: rank R on HOST: msg" on stderr and ends the whole job
 * with status code (MPI_Abort): no rank is left waiting. One process: prints
 * "featviz: msg" and exits. */
_Noreturn void fv_dist_fail(int code, const char *msg);

#endif
