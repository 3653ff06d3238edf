/*
 * bandwidth: osu_bw-style streaming through the C API. The program forks: the parent posts
 * ITERS messages of each size to the child's node ("bw-b"), the child takes them with
 * hf_recv (messages over 2 KiB are read in place from the sender's shared segment) and
 * answers the last one; GB/s = bytes / time.
 *
 *   bandwidth [--sizes 4096,65536,1048576] [--iters N]
 */
#define _GNU_SOURCE
#include <hyperfabric.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TRY(call)                                                                            \
    do {                                                                                     \
        hf_status s_ = (call);                                                               \
        if (s_ != HF_OK) {                                                                   \
            fprintf(stderr, "bandwidth: %s: %s (%s)\n", #call, hf_status_str(s_),            \
                    hf_last_error_message());                                                \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static hf_protocol *open_node(const char *fabric, const char *id) {
    hf_protocol_options o;
    hf_node_signature n;
    hf_protocol *p = NULL;
    TRY(hf_protocol_options_init(&o));
    o.fabric_name = fabric;
    TRY(hf_protocol_new(&o, &p));
    TRY(hf_node_signature_init(&n));
    n.node_id = id;
    n.hardware_type = HF_HARDWARE_CPU_SERVER;
    n.bandwidth_gbps = 100.0;
    n.latency_ns = 100;
    TRY(hf_register_node(p, &n));
    return p;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t sizes[16] = {4096, 65536, 1048576};
    int nsizes = 3, iters = 2000;
    char fabric[64];
    pid_t child;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--sizes") == 0) {
            char *s = argv[i + 1];
            nsizes = 0;
            while (*s && nsizes < 16) {
                char *end;
                sizes[nsizes++] = strtoull(s, &end, 10);
                s = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') {
                    break;
                }
            }
        } else if (strcmp(argv[i], "--iters") == 0) {
            iters = atoi(argv[i + 1]);
        }
    }
    if (iters <= 0 || nsizes == 0) {
        fprintf(stderr, "usage: bandwidth [--sizes LIST] [--iters N]\n");
        return 2;
    }
    snprintf(fabric, sizeof fabric, "bandwidth-%d", (int)getpid());
    child = fork();
    if (child == 0) {
        hf_protocol *p = open_node(fabric, "bw-b");
        for (int k = 0; k < nsizes; k++) {
            for (int i = 0; i < iters; i++) {
                hf_message *m = NULL;
                TRY(hf_recv(p, "bw-b", 10000, &m));
                hf_message_free(m);
            }
            TRY(hf_post(p, "bw-b", "bw-a", (const uint8_t *)"k", 1, NULL));
        }
        hf_protocol_free(p);
        return 0;
    }
    hf_protocol *p = open_node(fabric, "bw-a");
    uint8_t *data = calloc(1, sizes[0] > 1 ? 1 << 24 : 1 << 24);
    printf("%-10s %12s\n", "size", "gbytes_s");
    for (int k = 0; k < nsizes; k++) {
        hf_message *ack = NULL;
        hf_status s;
        double t0;
        if (sizes[k] > (1u << 24)) {
            fprintf(stderr, "bandwidth: sizes up to 16 MiB\n");
            return 2;
        }
        t0 = now_s();
        for (int i = 0; i < iters; i++) {
            /* The child may not have registered yet: retry while it is unknown. */
            while ((s = hf_post(p, "bw-a", "bw-b", data, sizes[k], NULL)) == HF_ERR_NODE_NOT_FOUND) {
                usleep(1000);
                t0 = now_s();
            }
            TRY(s);
        }
        TRY(hf_recv(p, "bw-a", 10000, &ack));
        hf_message_free(ack);
        printf("%-10zu %12.2f\n", sizes[k], (double)sizes[k] * iters / (now_s() - t0) / 1e9);
    }
    waitpid(child, NULL, 0);
    hf_protocol_free(p);
    TRY(hf_fabric_remove(fabric, NULL));
    free(data);
    return 0;
}
