/*
 * pingpong: an osu_latency-style table through the HyperFabric C API.
 *
 * The program forks: the parent hosts node "pp-a" pinned to core A, the child "pp-b" pinned
 * to core B, on a fabric of their own. They exchange messages through direct channels (the
 * fast path): inline up to hf_direct_max_inline() bytes, larger sizes as zero-copy buffers of
 * a shared pool (filled once, not rewritten per message), as `hyperfabric bench latency`
 * does. Each round trip is timed with the TSC (calibrated against CLOCK_MONOTONIC); the table
 * gives the median and 99th percentile of round trip / 2, and, as `hyperfabric bench latency`
 * does, the floor (a cache line bounced between the two cores, measured right before and
 * after each size while the peer sleeps), the ratio to it and the placement it shows (on
 * 2-vCPU virtual machines the vCPUs drift between near and far placements).
 *
 *   pingpong [--sizes 8,64,4096,65536,1048576] [--iters N] [--cores A,B]
 */
#define _GNU_SOURCE
#include <hyperfabric.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define MAX_SIZES 32

static void die(const char *what, hf_status s) {
    fprintf(stderr, "pingpong: %s: %s (%s)\n", what, hf_status_str(s), hf_last_error_message());
    exit(1);
}

#define TRY(call)                 \
    do {                          \
        hf_status s_ = (call);    \
        if (s_ != HF_OK) {        \
            die(#call, s_);       \
        }                         \
    } while (0)

static void pin(int core) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("pingpong: sched_setaffinity");
        exit(1);
    }
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Nanoseconds per TSC tick, measured over 20 ms. */
static double calibrate(void) {
    double t0 = now_ns();
    unsigned long long c0 = __rdtsc();
    while (now_ns() - t0 < 20e6) {
    }
    return (now_ns() - t0) / (double)(__rdtsc() - c0);
}

/* The floor: a cache line bounced between this thread (core A) and a thread on core B. */
static _Alignas(128) _Atomic unsigned long long line;
/* On a line of its own: the echo thread reads it on every turn. */
static _Alignas(128) _Atomic int floor_stop;
static int floor_core;

static void *floor_echo(void *arg) {
    unsigned long long expect = 1;
    (void)arg;
    pin(floor_core);
    while (!atomic_load_explicit(&floor_stop, memory_order_relaxed)) {
        if (atomic_load_explicit(&line, memory_order_acquire) == expect) {
            atomic_store_explicit(&line, expect + 1, memory_order_release);
            expect += 2;
        }
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b);

/* Median one-way ns of a cache-line bounce over batches of 64 round trips. */
static double floor_ns(int core_b, double ns_per_tick) {
    pthread_t t;
    double batches[64];
    unsigned long long v = 0;
    atomic_store(&line, 0);
    atomic_store(&floor_stop, 0);
    floor_core = core_b;
    pthread_create(&t, NULL, floor_echo, NULL);
    for (int b = 0; b < 68; b++) {
        unsigned long long t0 = __rdtsc();
        for (int i = 0; i < 64; i++) {
            atomic_store_explicit(&line, v + 1, memory_order_release);
            while (atomic_load_explicit(&line, memory_order_acquire) != v + 2) {
            }
            v += 2;
        }
        if (b >= 4) {
            batches[b - 4] = (double)(__rdtsc() - t0) * ns_per_tick / 64.0 / 2.0;
        }
    }
    atomic_store(&floor_stop, 1);
    pthread_join(t, NULL);
    qsort(batches, 64, sizeof(double), cmp_double);
    return batches[32];
}

static const char *placement(double before, double after) {
    const double near = 100.0;
    if (before < near && after < near) {
        return "near";
    }
    if (before >= near && after >= near) {
        return "far";
    }
    return "mixed";
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static hf_protocol *open_protocol(const char *fabric, const char *node_id) {
    hf_protocol_options o;
    hf_node_signature n;
    hf_protocol *p = NULL;
    TRY(hf_protocol_options_init(&o));
    o.fabric_name = fabric;
    TRY(hf_protocol_new(&o, &p));
    TRY(hf_node_signature_init(&n));
    n.node_id = node_id;
    n.hardware_type = HF_HARDWARE_CPU_SERVER;
    n.bandwidth_gbps = 100.0;
    n.latency_ns = 100;
    TRY(hf_register_node(p, &n));
    return p;
}

/* Opens a sender, waiting for the peer to register (up to 10 s). */
static hf_sender *connect_to(hf_protocol *p, const char *from, const char *to) {
    hf_sender *tx = NULL;
    for (int i = 0; i < 10000; i++) {
        hf_status s = hf_open_sender(p, from, to, &tx);
        if (s == HF_OK) {
            return tx;
        }
        if (s != HF_ERR_NODE_NOT_FOUND) {
            die("hf_open_sender", s);
        }
        usleep(1000);
    }
    die("waiting for the peer", HF_ERR_TIMEOUT);
    return NULL;
}

static size_t received_len;
static void on_message(void *user, uint32_t source, const uint8_t *data, size_t len) {
    (void)user;
    (void)source;
    (void)data;
    received_len = len;
}

/* Blocks until one message arrives; returns its length. With `idle_sleep`, naps once nothing
   came for a while (the peer then leaves core B to the floor measurement). */
static size_t receive_idle(hf_receiver *rx, bool idle_sleep) {
    bool got = false;
    unsigned long spins = 0;
    while (!got) {
        TRY(hf_receiver_poll(rx, on_message, NULL, &got));
        if (!got && idle_sleep && ++spins > 200000) {
            usleep(100);
        }
    }
    return received_len;
}

static size_t receive(hf_receiver *rx) {
    return receive_idle(rx, false);
}

/* Sends `len` bytes: inline from `zeros`, or a buffer of `pool` when larger. */
static void send_size(hf_sender *tx, hf_buffer_manager *pool, const uint8_t *zeros, size_t len) {
    static size_t max_inline = 0;
    bool sent = false;
    if (max_inline == 0) {
        max_inline = hf_direct_max_inline();
    }
    if (len <= max_inline) {
        while (!sent) {
            TRY(hf_sender_try_send(tx, zeros, len, &sent));
        }
        return;
    }
    hf_buffer *b = NULL;
    TRY(hf_buffer_manager_acquire(pool, &b));
    TRY(hf_buffer_set_len(b, len));
    while (!sent) {
        TRY(hf_sender_try_send_buffer(tx, &b, &sent));
    }
}

/* The child: echoes every message at its size until an empty one arrives. */
static int echo(const char *fabric, int core, size_t max_size) {
    hf_protocol *p;
    hf_receiver *rx = NULL;
    hf_sender *tx;
    hf_buffer_manager *pool = NULL;
    uint8_t *zeros = calloc(1, hf_direct_max_inline());
    pin(core);
    p = open_protocol(fabric, "pp-b");
    TRY(hf_open_receiver(p, "pp-b", &rx));
    TRY(hf_protocol_create_buffer_manager(p, 16, max_size, &pool));
    tx = connect_to(p, "pp-b", "pp-a");
    for (;;) {
        size_t len = receive_idle(rx, true);
        if (len == 0) {
            break;
        }
        send_size(tx, pool, zeros, len);
    }
    hf_sender_free(tx);
    hf_receiver_free(rx);
    hf_buffer_manager_free(pool);
    hf_protocol_free(p);
    free(zeros);
    return 0;
}

int main(int argc, char **argv) {
    size_t sizes[MAX_SIZES] = {8, 64, 4096, 65536, 1048576};
    int nsizes = 5, iters = 10000, core_a = 0, core_b = 1;
    size_t max_size = 0;
    char fabric[64];
    pid_t child;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--sizes") == 0) {
            char *s = argv[i + 1], *end;
            nsizes = 0;
            while (*s && nsizes < MAX_SIZES) {
                sizes[nsizes++] = strtoull(s, &end, 10);
                s = *end == ',' ? end + 1 : end;
                if (end == s && *s) {
                    break;
                }
            }
        } else if (strcmp(argv[i], "--iters") == 0) {
            iters = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--cores") == 0) {
            if (sscanf(argv[i + 1], "%d,%d", &core_a, &core_b) != 2) {
                fprintf(stderr, "pingpong: --cores takes A,B\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: pingpong [--sizes LIST] [--iters N] [--cores A,B]\n");
            return 2;
        }
    }
    if (iters <= 0 || nsizes == 0) {
        fprintf(stderr, "pingpong: nothing to measure\n");
        return 2;
    }
    for (int i = 0; i < nsizes; i++) {
        if (sizes[i] == 0) {
            fprintf(stderr, "pingpong: sizes must be positive\n");
            return 2;
        }
        max_size = sizes[i] > max_size ? sizes[i] : max_size;
    }
    snprintf(fabric, sizeof fabric, "pingpong-%d", (int)getpid());
    child = fork();
    if (child < 0) {
        perror("pingpong: fork");
        return 1;
    }
    if (child == 0) {
        return echo(fabric, core_b, max_size);
    }

    pin(core_a);
    double ns_per_tick = calibrate();
    hf_protocol *p = open_protocol(fabric, "pp-a");
    hf_receiver *rx = NULL;
    hf_buffer_manager *pool = NULL;
    TRY(hf_open_receiver(p, "pp-a", &rx));
    TRY(hf_protocol_create_buffer_manager(p, 16, max_size, &pool));
    hf_sender *tx = connect_to(p, "pp-a", "pp-b");
    uint8_t *zeros = calloc(1, hf_direct_max_inline());
    double *one_way = malloc(sizeof(double) * (size_t)iters);

    printf("# HyperFabric %s pingpong, cores %d,%d, %d iterations\n", hf_version_string(), core_a,
           core_b, iters);
    printf("%-10s %10s %10s %10s %8s %10s\n", "size", "p50_ns", "p99_ns", "floor_ns", "ratio",
           "placement");
    for (int k = 0; k < nsizes; k++) {
        size_t len = sizes[k];
        double before, after, fl;
        usleep(5000); /* the peer naps after 200,000 empty polls */
        before = floor_ns(core_b, ns_per_tick);
        for (int i = 0; i < iters / 10 + 1; i++) {
            send_size(tx, pool, zeros, len);
            receive(rx);
        }
        for (int i = 0; i < iters; i++) {
            unsigned long long t0 = __rdtsc();
            send_size(tx, pool, zeros, len);
            if (receive(rx) != len) {
                fprintf(stderr, "pingpong: a reply of the wrong size\n");
                return 1;
            }
            one_way[i] = (double)(__rdtsc() - t0) * ns_per_tick / 2.0;
        }
        qsort(one_way, (size_t)iters, sizeof(double), cmp_double);
        usleep(5000);
        after = floor_ns(core_b, ns_per_tick);
        fl = (before + after) / 2.0;
        printf("%-10zu %10.0f %10.0f %10.0f %8.2f %10s\n", len, one_way[iters / 2],
               one_way[(size_t)((double)(iters - 1) * 0.99)], fl, one_way[iters / 2] / fl,
               placement(before, after));
    }
    send_size(tx, pool, zeros, 0); /* the empty message ends the child */
    waitpid(child, NULL, 0);
    hf_sender_free(tx);
    hf_receiver_free(rx);
    hf_buffer_manager_free(pool);
    hf_protocol_free(p);
    TRY(hf_fabric_remove(fabric, NULL));
    free(one_way);
    free(zeros);
    return 0;
}
