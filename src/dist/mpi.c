/* Every MPI call of featviz (see dist.h). Waits poll with short sleeps
 * instead of MPI's busy waiting, so a rank that waits (for rank 0 writing the
 * summaries, or for a one-rank job such as dream) leaves its core to the
 * ranks that work. */
#include "dist/mpi.h"

#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { TAG_REQUEST = 16001, TAG_REPLY = 16002 };

static int world_size = 1;

/* launched by mpirun (Open MPI), srun or another PMI/PMIx launcher */
static int launched(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static void nap(void) {
    struct timespec t = {0, 500000}; /* 0.5 ms */
    nanosleep(&t, NULL);
}

/* Completes a request without spinning. */
static void wait_for(MPI_Request *r) {
    int flag = 0;
    for (;;) {
        MPI_Test(r, &flag, MPI_STATUS_IGNORE);
        if (flag) return;
        nap();
    }
}

int fv_mpi_init(int *argc, char ***argv, int *rank, int *size) {
    if (!launched()) return 0;
    int provided = 0;
    /* rank 0's dealer thread calls MPI while the main thread computes (it
     * makes no MPI call then): SERIALIZED is enough */
    MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    world_size = *size;
    if (provided < MPI_THREAD_SERIALIZED && *size > 1) {
        if (*rank == 0) fprintf(stderr, "featviz: this MPI library gives no thread support (MPI_THREAD_SERIALIZED); featviz needs it to deal work\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return 1;
}

void fv_mpi_finalize(void) { MPI_Finalize(); }

void fv_mpi_barrier(void) {
    MPI_Request r;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    wait_for(&r);
}

long long fv_mpi_sum(long long v) {
    long long out = 0;
    MPI_Request r;
    MPI_Iallreduce(&v, &out, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD, &r);
    wait_for(&r);
    return out;
}

void fv_mpi_abort(int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* not reached */
}

/* ---- the dealer on rank 0 ---- */

static pthread_t dealer;
static int dealer_running;

static void *dealer_main(void *arg) {
    fv_mpi_grant_fn grant = *(fv_mpi_grant_fn *)arg;
    free(arg);
    int left = 0;
    while (left < world_size - 1) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQUEST, MPI_COMM_WORLD, &flag, &st);
        if (!flag) {
            nap();
            continue;
        }
        int req[3], rep[2] = {0, 0};
        MPI_Recv(req, 3, MPI_INT, st.MPI_SOURCE, TAG_REQUEST, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        rep[1] = grant(st.MPI_SOURCE, req[0], req[1], req[2], &rep[0]);
        MPI_Send(rep, 2, MPI_INT, st.MPI_SOURCE, TAG_REPLY, MPI_COMM_WORLD);
        if (req[0] == 0 || rep[1] == 0) left++; /* that rank has left the queue */
    }
    return NULL;
}

void fv_mpi_dealer_start(fv_mpi_grant_fn grant) {
    if (world_size < 2) return;
    fv_mpi_grant_fn *arg = malloc(sizeof *arg);
    if (!arg) fv_mpi_abort(1);
    *arg = grant;
    if (pthread_create(&dealer, NULL, dealer_main, arg)) {
        fprintf(stderr, "featviz: cannot start the thread that deals work to the other ranks\n");
        fv_mpi_abort(1);
    }
    dealer_running = 1;
}

void fv_mpi_dealer_join(void) {
    if (dealer_running) pthread_join(dealer, NULL);
    dealer_running = 0;
}

int fv_mpi_request(int max, int done_first, int done_count, int *first) {
    int req[3] = {max, done_first, done_count}, rep[2];
    MPI_Request r[2];
    MPI_Irecv(rep, 2, MPI_INT, 0, TAG_REPLY, MPI_COMM_WORLD, &r[1]);
    MPI_Isend(req, 3, MPI_INT, 0, TAG_REQUEST, MPI_COMM_WORLD, &r[0]);
    wait_for(&r[0]);
    wait_for(&r[1]);
    *first = rep[0];
    return rep[1];
}
