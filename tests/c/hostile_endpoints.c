/*
 * Endpoints from C as a careless program uses them: one hf_endpoint posted through from two
 * threads at once (the loser of each race gets HF_ERR_INVALID_ARGUMENT, nothing is damaged,
 * each thread's accepted messages arrive in its order), impossible lengths in
 * hf_endpoint_post_batch and hf_endpoint_post (refused before anything is sent or read), and
 * hf_recv_into with no buffer at all. Run under AddressSanitizer/UBSan by tests/c_api.rs;
 * exits 0 when every check holds. argv[1]: the fabric name (the caller removes its directory).
 */
#define _DEFAULT_SOURCE
#include "hyperfabric.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define PER_THREAD 20000

struct poster {
    hf_endpoint *ep;
    uint32_t thread;
    uint32_t accepted;
    uint32_t refused;
    uint32_t other;
};

static void *post_loop(void *arg) {
    struct poster *p = (struct poster *)arg;
    uint8_t msg[16];
    for (uint32_t i = 0; i < PER_THREAD; i++) {
        memset(msg, (int)(p->thread + 1), sizeof msg);
        memcpy(msg, &p->thread, 4);
        memcpy(msg + 4, &p->accepted, 4);
        hf_status s = hf_endpoint_post(p->ep, msg, sizeof msg, NULL);
        if (s == HF_OK) {
            p->accepted++;
        } else if (s == HF_ERR_INVALID_ARGUMENT) {
            p->refused++;
        } else {
            fprintf(stderr, "post: %s (%s)\n", hf_status_str(s), hf_last_error_message());
            p->other++;
        }
    }
    return NULL;
}

static atomic_int posting = 1;

struct receiver {
    hf_protocol *p;
    uint32_t next[2];
    uint32_t got;
    uint32_t bad;
};

static void *recv_loop(void *arg) {
    struct receiver *r = (struct receiver *)arg;
    uint8_t buf[64];
    hf_recv_info info;
    for (;;) {
        hf_status s = hf_recv_into(r->p, "b", 200, buf, sizeof buf, &info);
        if (s == HF_ERR_TIMEOUT) {
            if (!atomic_load(&posting)) {
                return NULL;
            }
            continue;
        }
        if (s != HF_OK || info.len != 16) {
            r->bad++;
            continue;
        }
        uint32_t t, seq;
        memcpy(&t, buf, 4);
        memcpy(&seq, buf + 4, 4);
        int intact = 1;
        for (int i = 8; i < 16; i++) {
            intact &= buf[i] == (uint8_t)(t + 1);
        }
        if (t > 1 || seq != r->next[t] || !intact) {
            r->bad++;
        } else {
            r->next[t]++;
        }
        r->got++;
    }
}

int main(int argc, char **argv) {
    char fabric[64];
    hf_protocol_options o;
    hf_protocol *a = NULL, *b = NULL;
    hf_node_signature n;
    hf_endpoint *ep = NULL;
    hf_recv_info info;
    uint8_t buf[16];

    if (argc > 1) {
        snprintf(fabric, sizeof fabric, "%s", argv[1]);
    } else {
        snprintf(fabric, sizeof fabric, "c-hostile-ep-%d", (int)getpid());
    }
    CHECK_STATUS(hf_protocol_options_init(&o), HF_OK);
    o.fabric_name = fabric;
    CHECK_STATUS(hf_protocol_new(&o, &a), HF_OK);
    CHECK_STATUS(hf_protocol_new(&o, &b), HF_OK);
    n = cpu_node("a");
    CHECK_STATUS(hf_register_node(a, &n), HF_OK);
    n = cpu_node("b");
    CHECK_STATUS(hf_register_node(b, &n), HF_OK);
    CHECK_STATUS(hf_endpoint_create(a, "a", "b", &ep), HF_OK);

    /* One endpoint, two posting threads, one receiving thread. */
    {
        struct poster p[2] = {{ep, 0, 0, 0, 0}, {ep, 1, 0, 0, 0}};
        struct receiver r = {b, {0, 0}, 0, 0};
        pthread_t tp[2], tr;
        CHECK(pthread_create(&tr, NULL, recv_loop, &r) == 0);
        CHECK(pthread_create(&tp[0], NULL, post_loop, &p[0]) == 0);
        CHECK(pthread_create(&tp[1], NULL, post_loop, &p[1]) == 0);
        pthread_join(tp[0], NULL);
        pthread_join(tp[1], NULL);
        atomic_store(&posting, 0);
        pthread_join(tr, NULL);
        CHECK(p[0].other == 0 && p[1].other == 0);
        CHECK(p[0].accepted + p[0].refused == PER_THREAD);
        CHECK(p[1].accepted + p[1].refused == PER_THREAD);
        CHECK(r.bad == 0);
        CHECK(r.got == p[0].accepted + p[1].accepted);
        CHECK(r.next[0] == p[0].accepted && r.next[1] == p[1].accepted);
        printf("accepted %u + %u, refused %u + %u\n", p[0].accepted, p[1].accepted,
               p[0].refused, p[1].refused);
    }

    /* Lengths no message can have: refused, nothing sent, nothing read past the buffers. */
    {
        const uint8_t *parts[3] = {(const uint8_t *)"x", (const uint8_t *)"y",
                                   (const uint8_t *)"z"};
        size_t lens[3] = {1, SIZE_MAX, 1};
        CHECK_STATUS(hf_endpoint_post_batch(ep, parts, lens, 3), HF_ERR_INVALID_ARGUMENT);
        lens[1] = ((size_t)1 << 30) + 1;
        CHECK_STATUS(hf_endpoint_post_batch(ep, parts, lens, 3), HF_ERR_INVALID_ARGUMENT);
        lens[1] = (size_t)PTRDIFF_MAX + 1;
        CHECK_STATUS(hf_endpoint_post_batch(ep, parts, lens, 3), HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_endpoint_post_batch(ep, parts, lens, SIZE_MAX / 2),
                     HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_endpoint_post(ep, (const uint8_t *)"x", SIZE_MAX, NULL),
                     HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_recv_into(b, "b", 200, buf, sizeof buf, &info), HF_ERR_TIMEOUT);
    }

    /* hf_recv_into with no buffer: an empty message fits, a longer one stays queued. */
    {
        CHECK_STATUS(hf_endpoint_post(ep, NULL, 0, NULL), HF_OK);
        CHECK_STATUS(hf_recv_into(b, "b", 5000, NULL, 0, &info), HF_OK);
        CHECK(info.len == 0 && strcmp(info.source, "a") == 0);
        CHECK_STATUS(hf_endpoint_post(ep, (const uint8_t *)"hello", 5, NULL), HF_OK);
        CHECK_STATUS(hf_recv_into(b, "b", 5000, NULL, 0, &info), HF_ERR_BUFFER_OVERFLOW);
        CHECK(info.len == 5);
        CHECK_STATUS(hf_recv_into(b, "b", 0, NULL, 0, &info), HF_ERR_BUFFER_OVERFLOW);
        CHECK_STATUS(hf_recv_into(b, "b", 5000, buf, sizeof buf, &info), HF_OK);
        CHECK(info.len == 5 && memcmp(buf, "hello", 5) == 0);
        CHECK_STATUS(hf_recv_into(b, "b", 0, NULL, 0, &info), HF_ERR_TIMEOUT);
    }

    hf_endpoint_free(ep);
    hf_endpoint_free(NULL);
    hf_protocol_free(a);
    hf_protocol_free(b);
    if (failures == 0) {
        printf("all checks passed\n");
    }
    return failures == 0 ? 0 : 1;
}
