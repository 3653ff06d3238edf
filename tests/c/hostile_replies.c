/*
 * hf_response_buffer as a careless C handler uses it: called twice with different sizes
 * (shrinking and growing), with 0, with lengths past the largest message, after
 * hf_response_set and before an error status, at the reply ring's 16 KiB bound, and once
 * with 256 MiB (after which the engine's reply buffer should not keep a quarter gigabyte for
 * the rest of the process). Requests go through an endpoint (reply ring) between two
 * protocols of this process. Run under AddressSanitizer/UBSan by tests/c_api.rs; exits 0 when
 * every check holds. argv[1]: the fabric name (the caller removes its directory).
 */
#define _DEFAULT_SOURCE
#include "hyperfabric.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static int handler_failures = 0;

#define HCHECK(cond)                                                                       \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "handler %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            handler_failures++;                                                            \
        }                                                                                  \
    } while (0)

/* Bytes of this process's resident memory. */
static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f == NULL) {
        return -1;
    }
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) {
        resident = -1;
    }
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* The request's first byte says what the handler does; bytes 1..5 a length (little-endian). */
static hf_status handler(void *user, const hf_message_view *m, hf_response *r) {
    (void)user;
    uint8_t *p = NULL, *q = NULL;
    uint32_t len = 0;
    if (m->len >= 5) {
        memcpy(&len, m->data + 1, 4);
    }
    switch (m->len ? m->data[0] : 'Z') {
    case 'A': /* shrink: 100 bytes, then 10 */
        HCHECK(hf_response_buffer(r, 100, &p) == HF_OK && p != NULL);
        memset(p, 'a', 100);
        HCHECK(hf_response_buffer(r, 10, &q) == HF_OK && q != NULL);
        for (int i = 0; i < 10; i++) {
            HCHECK(q[i] == 'a'); /* the first 10 bytes are kept */
        }
        memset(q, 'b', 10);
        return HF_OK;
    case 'B': /* grow: 10 bytes, then len, the full length written through the new pointer */
        HCHECK(hf_response_buffer(r, 10, &p) == HF_OK);
        memset(p, 'x', 10);
        HCHECK(hf_response_buffer(r, len, &q) == HF_OK && q != NULL);
        for (uint32_t i = 10; i < len; i++) {
            HCHECK(q[i] == 0); /* new bytes are zero */
            if (q[i] != 0) {
                break;
            }
        }
        memset(q, 'c', len);
        return HF_OK;
    case 'C': /* zero bytes */
        HCHECK(hf_response_buffer(r, 0, &p) == HF_OK && p != NULL);
        return HF_OK;
    case 'D': /* past the largest message: refused, the answer stays what was set */
        HCHECK(hf_response_set(r, (const uint8_t *)"kept", 4) == HF_OK);
        HCHECK(hf_response_buffer(r, SIZE_MAX, &p) == HF_ERR_INVALID_ARGUMENT);
        HCHECK(hf_response_buffer(r, (size_t)(1u << 30) + 1, &p) == HF_ERR_INVALID_ARGUMENT);
        HCHECK(hf_response_buffer(r, 4, NULL) == HF_ERR_NULL_ARGUMENT);
        HCHECK(hf_response_buffer(NULL, 4, &p) == HF_ERR_NULL_ARGUMENT);
        return HF_OK;
    case 'E': /* a buffer, then an error: the requester gets the error */
        HCHECK(hf_response_buffer(r, 64, &p) == HF_OK);
        memset(p, 'e', 64);
        return HF_ERR_INSUFFICIENT_RESOURCES;
    case 'F': /* set, then a larger buffer over it */
        HCHECK(hf_response_set(r, (const uint8_t *)"abc", 3) == HF_OK);
        HCHECK(hf_response_buffer(r, 6, &p) == HF_OK);
        HCHECK(memcmp(p, "abc\0\0\0", 6) == 0);
        memcpy(p + 3, "def", 3);
        return HF_OK;
    case 'G': /* a huge answer buffer, then a short answer */
        HCHECK(hf_response_buffer(r, len, &p) == HF_OK);
        memset(p, 'g', len);
        HCHECK(hf_response_set(r, (const uint8_t *)"short", 5) == HF_OK);
        return HF_OK;
    default: /* nothing written: an empty answer */
        return HF_OK;
    }
}

static hf_status ask(hf_endpoint *ep, char what, uint32_t len, hf_bytes *out) {
    uint8_t req[5];
    req[0] = (uint8_t)what;
    memcpy(req + 1, &len, 4);
    hf_send_options o;
    hf_send_options_init(&o);
    o.timeout_ms = 20000;
    memset(out, 0, sizeof *out);
    return hf_endpoint_send_data(ep, req, sizeof req, &o, out);
}

static int all(const hf_bytes *b, size_t len, uint8_t c) {
    if (b->len != len) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (b->data[i] != c) {
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FABRIC\n", argv[0]);
        return 2;
    }
    hf_protocol_options po;
    hf_protocol_options_init(&po);
    po.fabric_name = argv[1];
    hf_protocol *srv = NULL, *cli = NULL;
    CHECK_STATUS(hf_protocol_new(&po, &srv), HF_OK);
    CHECK_STATUS(hf_protocol_new(&po, &cli), HF_OK);
    hf_node_signature s = cpu_node("srv"), c = cpu_node("cli");
    CHECK_STATUS(hf_register_node(srv, &s), HF_OK);
    CHECK_STATUS(hf_register_node(cli, &c), HF_OK);
    CHECK_STATUS(hf_on_receive(srv, "srv", handler, NULL), HF_OK);
    CHECK_STATUS(hf_start_background_services(srv), HF_OK);
    hf_endpoint *ep = NULL;
    CHECK_STATUS(hf_endpoint_create(cli, "cli", "srv", &ep), HF_OK);

    hf_bytes b;
    CHECK_STATUS(ask(ep, 'A', 0, &b), HF_OK);
    CHECK(all(&b, 10, 'b'));
    hf_bytes_free(&b);
    uint32_t sizes[] = {11, 16360, 16376, 16383, 16384, 16385, 65536, 1u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        CHECK_STATUS(ask(ep, 'B', sizes[i], &b), HF_OK);
        CHECK(all(&b, sizes[i], 'c'));
        hf_bytes_free(&b);
        /* The next answer starts empty. */
        CHECK_STATUS(ask(ep, 'Z', 0, &b), HF_OK);
        CHECK(b.len == 0);
        hf_bytes_free(&b);
    }
    CHECK_STATUS(ask(ep, 'C', 0, &b), HF_OK);
    CHECK(b.len == 0);
    hf_bytes_free(&b);
    CHECK_STATUS(ask(ep, 'D', 0, &b), HF_OK);
    CHECK(b.len == 4 && memcmp(b.data, "kept", 4) == 0);
    hf_bytes_free(&b);
    CHECK_STATUS(ask(ep, 'E', 0, &b), HF_ERR_INSUFFICIENT_RESOURCES);
    hf_bytes_free(&b);
    CHECK_STATUS(ask(ep, 'F', 0, &b), HF_OK);
    CHECK(b.len == 6 && memcmp(b.data, "abcdef", 6) == 0);
    hf_bytes_free(&b);

    /* One answer buffer of 256 MiB, then short answers: the memory should go back. */
    long before = rss_bytes();
    CHECK_STATUS(ask(ep, 'G', 256u << 20, &b), HF_OK);
    CHECK(b.len == 5 && memcmp(b.data, "short", 5) == 0);
    hf_bytes_free(&b);
    for (int i = 0; i < 10; i++) {
        CHECK_STATUS(ask(ep, 'A', 0, &b), HF_OK);
        hf_bytes_free(&b);
    }
    long after = rss_bytes();
    printf("resident memory: %ld MiB before the 256 MiB answer buffer, %ld MiB after\n",
           before >> 20, after >> 20);
    CHECK(after - before < (64l << 20));

    hf_endpoint_free(ep);
    hf_protocol_free(cli);
    hf_protocol_free(srv);
    failures += handler_failures;
    if (failures == 0) {
        printf("all checks passed\n");
        return 0;
    }
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
}
