/*
 * Registered memory from C as a careless program uses it: NULL for every pointer argument of
 * hf_mem_register, hf_mem_deregister and hf_endpoint_post_mem; a region registered through
 * one protocol sent through an endpoint of another (and outliving the protocol it was
 * registered with); requests of sends from registered memory mixed with complete ones,
 * cancelled ones and NULL entries in hf_request_wait_any and hf_request_wait_all; a request
 * freed and a region deregistered while their send is in flight, the memory then rewritten
 * and freed; 64 sends in flight, then the 65th. Run under AddressSanitizer/UBSan by
 * tests/c_api.rs; exits 0 when every check holds. argv[1]: the fabric name (the caller
 * removes its directory).
 */
#include "hyperfabric.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define NUL HF_ERR_NULL_ARGUMENT
#define LEN (1 << 20)

/* Whether `len` bytes at `p` all hold `v`. */
static int all(const uint8_t *p, size_t len, uint8_t v) {
    for (size_t i = 0; i < len; i++) {
        if (p[i] != v) {
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv) {
    hf_protocol_options o;
    hf_protocol *a = NULL, *b = NULL, *c = NULL;
    hf_node_signature n;
    hf_endpoint *ep = NULL;
    hf_mem *mem = NULL, *other = NULL, *nomem = NULL;
    hf_request *req = NULL, *reqs[70];
    hf_recv_info info;
    hf_bytes resp = {NULL, 0, 0}, resps[70];
    hf_status st[70];
    size_t idx = 0;
    uint8_t *data = malloc(LEN), *buf = malloc(LEN);

    if (argc < 2 || data == NULL || buf == NULL) {
        fprintf(stderr, "usage: registered_memory FABRIC\n");
        return 2;
    }
    memset(data, 0x5a, LEN);
    CHECK_STATUS(hf_protocol_options_init(&o), HF_OK);
    o.fabric_name = argv[1];
    o.single_copy_from = 0;
    CHECK_STATUS(hf_protocol_new(&o, &a), HF_OK);
    CHECK_STATUS(hf_protocol_new(&o, &c), HF_OK);
    o.single_copy_from = -1;
    CHECK_STATUS(hf_protocol_new(&o, &b), HF_OK);
    n = cpu_node("a");
    CHECK_STATUS(hf_register_node(a, &n), HF_OK);
    n = cpu_node("b");
    CHECK_STATUS(hf_register_node(b, &n), HF_OK);
    CHECK_STATUS(hf_endpoint_create(a, "a", "b", &ep), HF_OK);

    /* NULL everywhere. */
    CHECK_STATUS(hf_mem_register(NULL, data, LEN, &mem), NUL);
    CHECK_STATUS(hf_mem_register(a, data, LEN, NULL), NUL);
    CHECK_STATUS(hf_mem_register(a, NULL, LEN, &nomem), HF_ERR_INVALID_ARGUMENT);
    CHECK(nomem == NULL);
    CHECK_STATUS(hf_mem_register(a, data, 0, &nomem), HF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(hf_mem_register(a, data, SIZE_MAX, &nomem), HF_ERR_INVALID_ARGUMENT);
    CHECK(nomem == NULL);
    hf_mem_deregister(NULL);
    CHECK_STATUS(hf_mem_register(a, data, LEN, &mem), HF_OK);
    CHECK_STATUS(hf_endpoint_post_mem(NULL, mem, 0, 1, NULL, &req), NUL);
    CHECK_STATUS(hf_endpoint_post_mem(ep, NULL, 0, 1, NULL, &req), NUL);
    CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 1, NULL, NULL), NUL);
    CHECK(req == NULL);
    CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 1, LEN, NULL, &req), HF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(hf_endpoint_post_mem(ep, mem, SIZE_MAX, 2, NULL, &req),
                 HF_ERR_INVALID_ARGUMENT);
    CHECK(req == NULL);
    CHECK_STATUS(hf_recv_into(b, "b", 100, buf, LEN, &info), HF_ERR_TIMEOUT);

    /* A region registered through another protocol, which is freed before the send. */
    CHECK_STATUS(hf_mem_register(c, data, LEN, &other), HF_OK);
    hf_protocol_free(c);
    CHECK_STATUS(hf_endpoint_post_mem(ep, other, 0, LEN, NULL, &req), HF_OK);
    CHECK_STATUS(hf_recv_into(b, "b", 5000, buf, LEN, &info), HF_OK);
    CHECK(info.len == LEN && all(buf, LEN, 0x5a) && info.one_way);
    CHECK_STATUS(hf_request_wait(req, &resp), HF_OK);
    CHECK(resp.len == 0);
    hf_bytes_free(&resp);
    hf_request_free(req);
    hf_mem_deregister(other);

    /* wait_any over: NULL, a complete (empty, posted) send, one in flight, a cancelled one. */
    {
        hf_request *mix[4] = {NULL, NULL, NULL, NULL};
        CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 0, NULL, &mix[1]), HF_OK);
        CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 1000, NULL, &mix[2]), HF_OK);
        CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 2000, NULL, &mix[3]), HF_OK);
        CHECK_STATUS(hf_request_cancel(mix[3]), HF_OK);
        CHECK_STATUS(hf_request_wait_any(mix, 4, 0, &idx, &resp), HF_OK);
        CHECK(idx == 1 && resp.len == 0);
        /* Nobody receives: the one in flight stays so. */
        CHECK_STATUS(hf_request_wait_any(mix, 4, 50, &idx, &resp), HF_ERR_TIMEOUT);
        CHECK(idx == HF_INDEX_NONE);
        CHECK_STATUS(hf_recv_into(b, "b", 5000, buf, LEN, &info), HF_OK);
        CHECK(info.len == 0);
        CHECK_STATUS(hf_recv_into(b, "b", 5000, buf, LEN, &info), HF_OK);
        CHECK(info.len == 1000 && all(buf, 1000, 0x5a));
        /* The cancelled one is dropped by its receiver. */
        CHECK_STATUS(hf_recv_into(b, "b", 200, buf, LEN, &info), HF_ERR_TIMEOUT);
        CHECK_STATUS(hf_request_wait_any(mix, 4, 5000, &idx, &resp), HF_OK);
        CHECK(idx == 2);
        CHECK_STATUS(hf_request_wait_any(mix, 4, 0, &idx, &resp), HF_ERR_INVALID_ARGUMENT);
        for (int i = 0; i < 4; i++) {
            hf_request_free(mix[i]);
        }
    }

    /* 64 in flight, the 65th refused; wait_all with one freed and one cancelled. */
    {
        memset(reqs, 0, sizeof reqs);
        for (int i = 0; i < 64; i++) {
            CHECK_STATUS(hf_endpoint_post_mem(ep, mem, (size_t)i, 4096, NULL, &reqs[i]), HF_OK);
        }
        CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 4096, NULL, &reqs[64]),
                     HF_ERR_BUFFER_EXHAUSTED);
        CHECK(reqs[64] == NULL);
        CHECK_STATUS(hf_request_wait_all(reqs, 64, 20, st, resps), HF_ERR_TIMEOUT);
        hf_request_free(reqs[10]);
        reqs[10] = NULL;
        CHECK_STATUS(hf_request_cancel(reqs[20]), HF_OK);
        /* Freed and cancelled: their words are free, so two more fit. */
        CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 4096, NULL, &reqs[64]), HF_OK);
        CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 4096, NULL, &reqs[65]), HF_OK);
        CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 4096, NULL, &reqs[66]),
                     HF_ERR_BUFFER_EXHAUSTED);
        int got = 0;
        while (hf_recv_into(b, "b", 300, buf, LEN, &info) == HF_OK) {
            CHECK(info.len == 4096 && all(buf, 4096, 0x5a));
            got++;
        }
        CHECK(got == 64);
        for (int i = 0; i < 66; i++) {
            st[i] = 1;
        }
        CHECK_STATUS(hf_request_wait_all(reqs, 66, 5000, st, resps), HF_OK);
        for (int i = 0; i < 66; i++) {
            CHECK(st[i] == (i == 10 || i == 20 ? 1 : HF_OK));
            if (st[i] == HF_OK) {
                hf_bytes_free(&resps[i]);
            }
            hf_request_free(reqs[i]);
        }
    }

    /* Freed request, deregistered region, memory rewritten and freed: nothing arrives. */
    {
        uint8_t *tmp = malloc(LEN);
        hf_mem *m = NULL;
        CHECK(tmp != NULL);
        memset(tmp, 0x11, LEN);
        CHECK_STATUS(hf_mem_register(a, tmp, LEN, &m), HF_OK);
        CHECK_STATUS(hf_endpoint_post_mem(ep, m, 0, LEN, NULL, &req), HF_OK);
        hf_request_free(req);
        hf_mem_deregister(m);
        memset(tmp, 0x22, LEN);
        free(tmp);
        CHECK_STATUS(hf_recv_into(b, "b", 300, buf, LEN, &info), HF_ERR_TIMEOUT);
        /* Deregistered with the send in flight: the send still completes. */
        tmp = malloc(LEN);
        CHECK(tmp != NULL);
        memset(tmp, 0x33, LEN);
        CHECK_STATUS(hf_mem_register(a, tmp, LEN, &m), HF_OK);
        CHECK_STATUS(hf_endpoint_post_mem(ep, m, 0, LEN, NULL, &req), HF_OK);
        hf_mem_deregister(m);
        CHECK_STATUS(hf_recv_into(b, "b", 5000, buf, LEN, &info), HF_OK);
        CHECK(info.len == LEN && all(buf, LEN, 0x33));
        CHECK_STATUS(hf_request_wait(req, &resp), HF_OK);
        hf_request_free(req);
        free(tmp);
    }

    hf_mem_deregister(mem);
    hf_endpoint_free(ep);
    hf_protocol_free(a);
    hf_protocol_free(b);
    free(data);
    free(buf);
    if (failures == 0) {
        printf("all checks passed\n");
    }
    return failures == 0 ? 0 : 1;
}
