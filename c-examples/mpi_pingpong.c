/*
 * mpi_pingpong: two MPI ranks exchange HyperFabric address blobs with MPI_Allgather
 * (hf_node_address / hf_insert_peer), then ping-pong through HyperFabric and through MPI
 * itself, and rank 0 prints both one-way latencies side by side (median of round trip / 2,
 * each round trip timed with MPI_Wtime over a batch).
 *
 * On one host the HyperFabric side takes a direct channel through shared memory. With
 * HF_TRANSPORT=tcp in the environment (or ranks on different hosts) it connects the ranks
 * over TCP and ping-pongs with hf_post / hf_recv_into; give MPI the same path to compare:
 *
 *   mpirun -np 2 --bind-to core ./mpi_pingpong [--sizes 8,64,4096] [--iters N]
 *   HF_TRANSPORT=tcp mpirun -np 2 -x HF_TRANSPORT --mca pml ob1 --mca btl tcp,self ./mpi_pingpong
 */
#include <hyperfabric.h>
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SIZES 16
#define BATCH 100

static void fail(const char *what, hf_status s) {
    fprintf(stderr, "mpi_pingpong: %s: %s (%s)\n", what, hf_status_str(s), hf_last_error_message());
    MPI_Abort(MPI_COMM_WORLD, 1);
}

#define TRY(call)                 \
    do {                          \
        hf_status s_ = (call);    \
        if (s_ != HF_OK) {        \
            fail(#call, s_);      \
        }                         \
    } while (0)

static size_t got_len;
static void on_message(void *user, uint32_t source, const uint8_t *data, size_t len) {
    (void)user;
    (void)source;
    (void)data;
    got_len = len;
}

static size_t receive(hf_receiver *rx) {
    bool got = false;
    while (!got) {
        TRY(hf_receiver_poll(rx, on_message, NULL, &got));
    }
    return got_len;
}

static void send_msg(hf_sender *tx, const uint8_t *data, size_t len) {
    bool sent = false;
    while (!sent) {
        TRY(hf_sender_try_send(tx, data, len, &sent));
    }
}

/* The TCP path: hf_post to the peer, hf_recv_into from it. */
static void post_msg(hf_protocol *p, const char *me, const char *peer, const uint8_t *data,
                     size_t len) {
    TRY(hf_post(p, me, peer, data, len, NULL));
}

static size_t recv_msg(hf_protocol *p, const char *me, uint8_t *buf, size_t cap) {
    hf_recv_info info;
    TRY(hf_recv_into(p, me, 10000, buf, cap, &info));
    return info.len;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    size_t sizes[MAX_SIZES] = {8, 64, 512, 4096};
    int nsizes = 4, iters = 10000, rank, nranks, peer;
    char fabric[64], me[32];
    uint8_t blob[HF_ADDRESS_MAX], blobs[2][HF_ADDRESS_MAX];
    size_t blob_len = 0;
    char *peer_id = NULL;
    hf_protocol_options o;
    uint8_t key[32];
    const char *transport = getenv("HF_TRANSPORT");
    int tcp = transport != NULL && strcmp(transport, "tcp") == 0;
    size_t cap = 1 << 20;
    hf_node_signature n;
    hf_protocol *p = NULL;
    hf_sender *tx = NULL;
    hf_receiver *rx = NULL;
    uint8_t *buf;
    double *hf_ns, *mpi_ns;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (nranks != 2) {
        if (rank == 0) {
            fprintf(stderr, "mpi_pingpong: run with exactly 2 ranks\n");
        }
        MPI_Finalize();
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--sizes") == 0) {
            char *s = argv[i + 1], *end;
            nsizes = 0;
            while (*s && nsizes < MAX_SIZES) {
                sizes[nsizes++] = strtoull(s, &end, 10);
                if (*end && *end != ',') {
                    break;
                }
                s = *end ? end + 1 : end;
            }
        } else if (strcmp(argv[i], "--iters") == 0) {
            iters = atoi(argv[i + 1]);
        }
    }
    if (iters < BATCH) {
        iters = BATCH;
    }
    peer = 1 - rank;

    /* One fabric for the job: rank 0 names it. */
    if (rank == 0) {
        snprintf(fabric, sizeof fabric, "mpi-%d", (int)getpid());
    }
    MPI_Bcast(fabric, sizeof fabric, MPI_CHAR, 0, MPI_COMM_WORLD);
    /* And its key: ranks on other hosts prove it to each other when they connect. */
    if (rank == 0) {
        FILE *r = fopen("/dev/urandom", "rb");
        if (r == NULL || fread(key, 1, sizeof key, r) != sizeof key) {
            fprintf(stderr, "mpi_pingpong: cannot read /dev/urandom\n");
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        fclose(r);
    }
    MPI_Bcast(key, sizeof key, MPI_BYTE, 0, MPI_COMM_WORLD);
    snprintf(me, sizeof me, "rank-%d", rank);
    TRY(hf_protocol_options_init(&o));
    o.fabric_name = fabric;
    o.key = key;
    TRY(hf_protocol_new(&o, &p));
    TRY(hf_node_signature_init(&n));
    n.node_id = me;
    n.hardware_type = HF_HARDWARE_CPU_SERVER;
    n.bandwidth_gbps = 100.0;
    n.latency_ns = 100;
    TRY(hf_register_node(p, &n));
    if (!tcp) {
        TRY(hf_open_receiver(p, me, &rx));
    }

    /* The address exchange: the same pattern as UCX or libfabric endpoints under MPI. */
    memset(blob, 0, sizeof blob);
    TRY(hf_node_address(p, me, blob, sizeof blob, &blob_len));
    MPI_Allgather(blob, HF_ADDRESS_MAX, MPI_BYTE, blobs, HF_ADDRESS_MAX, MPI_BYTE, MPI_COMM_WORLD);
    TRY(hf_insert_peer(p, blobs[peer], HF_ADDRESS_MAX, &peer_id));
    if (!tcp) {
        TRY(hf_open_sender(p, me, peer_id, &tx));
    }
    MPI_Barrier(MPI_COMM_WORLD);

    if (!tcp) {
        cap = hf_direct_max_inline();
    }
    buf = calloc(1, cap);
    hf_ns = malloc(sizeof(double) * (size_t)(iters / BATCH));
    mpi_ns = malloc(sizeof(double) * (size_t)(iters / BATCH));
    if (rank == 0) {
        printf("# mpi_pingpong: HyperFabric %s vs MPI, one-way ns (median of batches of %d)\n",
               tcp ? "over TCP (post/recv)" : "direct channel", BATCH);
        printf("%-10s %14s %10s\n", "size", "hyperfabric", "mpi");
    }
    for (int k = 0; k < nsizes; k++) {
        size_t len = sizes[k];
        int batches = iters / BATCH;
        if (len > cap) {
            if (rank == 0) {
                printf("%-10zu %14s %10s\n", len, "-", "-");
            }
            continue;
        }
        /* HyperFabric: rank 0 sends, rank 1 echoes. */
        for (int b = -1; b < batches; b++) {
            double t0 = MPI_Wtime();
            for (int i = 0; i < BATCH; i++) {
                if (tcp && rank == 0) {
                    post_msg(p, me, peer_id, buf, len);
                    recv_msg(p, me, buf, cap);
                } else if (tcp) {
                    recv_msg(p, me, buf, cap);
                    post_msg(p, me, peer_id, buf, len);
                } else if (rank == 0) {
                    send_msg(tx, buf, len);
                    receive(rx);
                } else {
                    receive(rx);
                    send_msg(tx, buf, len);
                }
            }
            if (b >= 0) {
                hf_ns[b] = (MPI_Wtime() - t0) * 1e9 / BATCH / 2.0;
            }
        }
        MPI_Barrier(MPI_COMM_WORLD);
        /* MPI. */
        for (int b = -1; b < batches; b++) {
            double t0 = MPI_Wtime();
            for (int i = 0; i < BATCH; i++) {
                if (rank == 0) {
                    MPI_Send(buf, (int)len, MPI_BYTE, peer, 1, MPI_COMM_WORLD);
                    MPI_Recv(buf, (int)len, MPI_BYTE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                } else {
                    MPI_Recv(buf, (int)len, MPI_BYTE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    MPI_Send(buf, (int)len, MPI_BYTE, peer, 1, MPI_COMM_WORLD);
                }
            }
            if (b >= 0) {
                mpi_ns[b] = (MPI_Wtime() - t0) * 1e9 / BATCH / 2.0;
            }
        }
        if (rank == 0) {
            qsort(hf_ns, (size_t)batches, sizeof(double), cmp_double);
            qsort(mpi_ns, (size_t)batches, sizeof(double), cmp_double);
            printf("%-10zu %14.0f %10.0f\n", len, hf_ns[batches / 2], mpi_ns[batches / 2]);
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }

    hf_sender_free(tx);
    hf_receiver_free(rx);
    hf_string_free(peer_id);
    hf_protocol_free(p);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        TRY(hf_fabric_remove(fabric, NULL));
    }
    free(buf);
    free(hf_ns);
    free(mpi_ns);
    MPI_Finalize();
    return 0;
}
