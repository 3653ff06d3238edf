/*
 * bandwidth: osu_bw-style streaming through the C API. The program forks: the parent posts
 * ITERS messages of each size to the child's node ("bw-b") through an endpoint (a resolved
 * pair with a ring of its own: no lookup or lock per message), the child drains them with
 * hf_recv_batch (each message lent in place, its bytes read) and answers the one-byte end
 * marker that follows them, through an endpoint of its own; GB/s = bytes / time. An untimed
 * round first sets up the channel (rings, segments) and waits for the child.
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

/* What the child's callback saw: end markers to answer, the stop message, and a sum of the
   bytes (every byte is read, as a receive into a buffer would). */
struct drained {
    int markers;
    int stop;
    unsigned long long sum;
    unsigned long long count;
};

static void on_message(void *user_data, const hf_message_view *m) {
    struct drained *d = (struct drained *)user_data;
    size_t i = 0;
    for (; i + 8 <= m->len; i += 8) { /* word by word: the read costs what memory costs */
        unsigned long long w;
        memcpy(&w, m->data + i, 8);
        d->sum ^= w;
    }
    for (; i < m->len; i++) {
        d->sum ^= m->data[i];
    }
    d->count++;
    if (m->len == 0) {
        d->stop = 1;
    } else if (m->len == 1) {
        d->markers++;
    }
}

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
        /* Drains messages in batches; answers each end marker (one byte); stops at a
           zero-length one. The callback only looks: it must not call the library. */
        hf_protocol *p = open_node(fabric, "bw-b");
        hf_endpoint *back = NULL;
        struct drained d = {0, 0, 0, 0};
        while (!d.stop) {
            size_t n = 0;
            TRY(hf_recv_batch(p, "bw-b", 10000, 256, on_message, &d, &n));
            if (d.markers > 0 && back == NULL) {
                TRY(hf_endpoint_create(p, "bw-b", "bw-a", &back));
            }
            for (; d.markers > 0; d.markers--) {
                TRY(hf_endpoint_post(back, (const uint8_t *)"k", 1, NULL));
            }
        }
        hf_endpoint_free(back);
        hf_protocol_free(p);
        return (int)(d.sum & 0); /* the sum is read so the bytes are */
    }
    hf_protocol *p = open_node(fabric, "bw-a");
    uint8_t *data = calloc(1, 1 << 24);
    hf_message *ack = NULL;
    hf_endpoint *ep = NULL;
    hf_status s;
    /* Untimed: wait for the child, then one round of each size and an end marker. */
    while ((s = hf_endpoint_create(p, "bw-a", "bw-b", &ep)) == HF_ERR_NODE_NOT_FOUND) {
        usleep(1000);
    }
    TRY(s);
    for (int k = 0; k < nsizes; k++) {
        if (sizes[k] < 2 || sizes[k] > (1u << 24)) {
            fprintf(stderr, "bandwidth: sizes from 2 bytes to 16 MiB\n");
            return 2;
        }
        for (int i = 0; i < 16; i++) {
            TRY(hf_endpoint_post(ep, data, sizes[k], NULL));
        }
    }
    TRY(hf_endpoint_post(ep, data, 1, NULL));
    TRY(hf_recv(p, "bw-a", 10000, &ack));
    hf_message_free(ack);
    printf("%-10s %12s\n", "size", "gbytes_s");
    for (int k = 0; k < nsizes; k++) {
        double t0 = now_s();
        for (int i = 0; i < iters; i++) {
            TRY(hf_endpoint_post(ep, data, sizes[k], NULL));
        }
        /* Behind the messages in the same ring: answered once all were taken. */
        TRY(hf_endpoint_post(ep, data, 1, NULL));
        TRY(hf_recv(p, "bw-a", 10000, &ack));
        hf_message_free(ack);
        printf("%-10zu %12.2f\n", sizes[k], (double)sizes[k] * iters / (now_s() - t0) / 1e9);
    }
    TRY(hf_endpoint_post(ep, data, 0, NULL));
    waitpid(child, NULL, 0);
    hf_endpoint_free(ep);
    hf_protocol_free(p);
    TRY(hf_fabric_remove(fabric, NULL));
    free(data);
    return 0;
}
