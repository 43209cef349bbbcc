/* The MPI back end of dist.c (mpi.c, the only file that calls MPI). */
#ifndef FEATVIZ_DIST_MPI_H
#define FEATVIZ_DIST_MPI_H

/* Starts MPI if launched by mpirun/srun: returns 1 and sets rank and size. */
int fv_mpi_init(int *argc, char ***argv, int *rank, int *size);
void fv_mpi_finalize(void);
void fv_mpi_barrier(void);
long long fv_mpi_sum(long long v);
_Noreturn void fv_mpi_abort(int code);

/* Rank 0: answers the other ranks' requests on a thread, granting through
 * grant(max, done_first, done_count, stop, &first) (which locks) until every
 * other rank has left. */
typedef int (*fv_mpi_grant_fn)(int src, int max, int done_first, int done_count, int *first);
void fv_mpi_dealer_start(fv_mpi_grant_fn grant);
void fv_mpi_dealer_join(void);
/* Other ranks: asks rank 0 for up to max items, reporting the previous grant
 * (done_count = 0: nothing completed); returns the count granted. */
int fv_mpi_request(int max, int done_first, int done_count, int *first);

#endif
