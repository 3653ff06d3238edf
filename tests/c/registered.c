/*
 * Registered memory from C as an MPI programmer uses it: a region over the program's own
 * buffer, hf_endpoint_post_mem of parts of it, received with hf_recv_into (one copy, straight
 * from the sender's memory), the requests completed with hf_request_wait_all; a request
 * cancelled before the receiver looked takes its send back; bad arguments get their status.
 * Both protocols single-copy from 0 bytes (the zero-copy path) unless argv[2] is "posted"
 * (-1: measured, which may post through shared memory: the same results, requests complete
 * at once). Run under AddressSanitizer/UBSan by tests/c_api.rs. argv[1]: the fabric name.
 */
#define _DEFAULT_SOURCE
#include "hyperfabric.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: registered FABRIC [posted]\n");
        return 2;
    }
    int posted = argc > 2 && strcmp(argv[2], "posted") == 0;
    hf_protocol_options o;
    hf_protocol_options_init(&o);
    CHECK(o.single_copy_from == -1);
    o.fabric_name = argv[1];
    hf_protocol *tx = NULL, *rx = NULL, *none = NULL;
    o.single_copy_from = -2;
    CHECK_STATUS(hf_protocol_new(&o, &none), HF_ERR_INVALID_ARGUMENT);
    o.single_copy_from = posted ? -1 : 0;
    CHECK_STATUS(hf_protocol_new(&o, &tx), HF_OK);
    CHECK_STATUS(hf_protocol_new(&o, &rx), HF_OK);
    hf_node_signature a = cpu_node("a"), b = cpu_node("b");
    CHECK_STATUS(hf_register_node(tx, &a), HF_OK);
    CHECK_STATUS(hf_register_node(rx, &b), HF_OK);
    hf_endpoint *ep = NULL;
    CHECK_STATUS(hf_endpoint_create(tx, "a", "b", &ep), HF_OK);

    /* The program's own buffer, registered once. */
    size_t size = 4u << 20;
    uint8_t *buf = malloc(size);
    uint8_t *inbox = malloc(size);
    for (size_t i = 0; i < size; i++) {
        buf[i] = (uint8_t)(i * 7 + 3);
    }
    hf_mem *mem = NULL;
    CHECK_STATUS(hf_mem_register(NULL, buf, size, &mem), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_mem_register(tx, buf, size, NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_mem_register(tx, NULL, size, &mem), HF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(hf_mem_register(tx, buf, 0, &mem), HF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(hf_mem_register(tx, (const void *)8, 100, &mem), HF_ERR_INVALID_ARGUMENT);
    CHECK(mem == NULL);
    CHECK_STATUS(hf_mem_register(tx, buf, size, &mem), HF_OK);

    /* Four parts of it in flight at once, received in order, completed together. */
    size_t offsets[4] = {0, 1, 65536, 1u << 20};
    size_t lens[4] = {100, 65536, 1u << 20, 3u << 20};
    hf_request *reqs[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        CHECK_STATUS(hf_endpoint_post_mem(ep, mem, offsets[i], lens[i], NULL, &reqs[i]), HF_OK);
    }
    for (int i = 0; i < 4; i++) {
        hf_recv_info info;
        CHECK_STATUS(hf_recv_into(rx, "b", 5000, inbox, size, &info), HF_OK);
        CHECK(info.len == lens[i] && info.one_way && strcmp(info.source, "a") == 0);
        CHECK(memcmp(inbox, buf + offsets[i], lens[i]) == 0);
    }
    hf_status statuses[4];
    hf_bytes responses[4];
    CHECK_STATUS(hf_request_wait_all(reqs, 4, 5000, statuses, responses), HF_OK);
    for (int i = 0; i < 4; i++) {
        CHECK(statuses[i] == HF_OK && responses[i].len == 0);
        hf_bytes_free(&responses[i]);
        hf_request_free(reqs[i]);
    }

    /* Cancelled before the receiver looked: the buffer is the program's again at once. */
    hf_request *req = NULL;
    CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 1000, NULL, &req), HF_OK);
    CHECK_STATUS(hf_request_cancel(req), HF_OK);
    hf_request_free(req);
    memset(buf, 0xab, 1000);
    hf_recv_info info;
    hf_status want_cancelled = posted ? HF_OK : HF_ERR_TIMEOUT;
    CHECK_STATUS(hf_recv_into(rx, "b", 200, inbox, size, &info), want_cancelled);

    /* Bad ranges and arguments. */
    CHECK_STATUS(hf_endpoint_post_mem(ep, mem, size, 1, NULL, &req), HF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 1, size, NULL, &req), HF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(hf_endpoint_post_mem(ep, mem, SIZE_MAX, 2, NULL, &req),
                 HF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(hf_endpoint_post_mem(NULL, mem, 0, 1, NULL, &req), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_endpoint_post_mem(ep, NULL, 0, 1, NULL, &req), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 1, NULL, NULL), HF_ERR_NULL_ARGUMENT);
    hf_send_options so;
    hf_send_options_init(&so);
    so.priority = 99;
    CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 1, &so, &req), HF_ERR_INVALID_ENUM);

    /* With metadata the bytes are posted: complete at once, delivered with it. */
    hf_send_options_init(&so);
    so.metadata_json = "{\"k\":1}";
    CHECK_STATUS(hf_endpoint_post_mem(ep, mem, 0, 64, &so, &req), HF_OK);
    bool done = false;
    hf_bytes resp;
    CHECK_STATUS(hf_request_test(req, &done, &resp), HF_OK);
    CHECK(done);
    hf_bytes_free(&resp);
    hf_request_free(req);
    hf_message *msg = NULL;
    CHECK_STATUS(hf_recv(rx, "b", 5000, &msg), HF_OK);
    hf_message_view v;
    CHECK_STATUS(hf_message_get_view(msg, &v), HF_OK);
    CHECK(v.len == 64 && memcmp(v.data, buf, 64) == 0 && v.metadata != NULL && v.metadata_len > 0);
    hf_message_free(msg);

    hf_mem_deregister(mem);
    hf_mem_deregister(NULL);
    hf_endpoint_free(ep);
    hf_protocol_free(tx);
    hf_protocol_free(rx);
    free(buf);
    free(inbox);
    if (failures == 0) {
        printf("all checks passed\n");
        return 0;
    }
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
}
