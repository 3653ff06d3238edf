/*
 * The C API from C: two protocol instances on one fabric (they reach each other through
 * shared memory as two processes would), every call of the protocol API, and the documented
 * status for each bad input: NULL for every pointer argument, invalid enums, strings that are
 * not UTF-8, unknown and duplicate nodes, a struct_size that is too small. Built with
 * -Wall -Wextra -Werror -pedantic and run under AddressSanitizer/UBSan by tests/c_api.rs;
 * exits 0 when every check holds. argv[1]: the fabric name (the caller removes its directory).
 */
#define _DEFAULT_SOURCE /* usleep */
#include "hyperfabric.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* While set, the handler holds requests "hold" (the request stays pending). */
static atomic_int holding = 0;

/* The handler of node "b": answers with the request reversed; "fail" makes it fail;
   "hold" waits while `holding` is set. */
/* The protocol whose handler `reverse` is: a send by node names from it is refused. */
static const hf_protocol *handler_protocol = NULL;

static hf_status reverse(void *user_data, const hf_message_view *m, hf_response *response) {
    int *calls = (int *)user_data;
    unsigned char *out = NULL;
    size_t i;
    hf_status st;
    (*calls)++;
    if (m->len == 4 && memcmp(m->data, "fail", 4) == 0) {
        return HF_ERR_INVALID_NODE;
    }
    if (m->len == 4 && memcmp(m->data, "nest", 4) == 0) {
        /* The requester gets this status as its error. */
        return hf_post(handler_protocol, "b", "a", (const uint8_t *)"x", 1, NULL);
    }
    if (m->len == 4 && memcmp(m->data, "hold", 4) == 0) {
        while (atomic_load(&holding)) {
            usleep(100);
        }
    }
    /* NULL bytes with a length are refused; the handler reports what it got. */
    if (hf_response_set(response, NULL, 3) != HF_ERR_NULL_ARGUMENT) {
        return HF_ERR_PANIC;
    }
    if (hf_response_buffer(response, 3, NULL) != HF_ERR_NULL_ARGUMENT) {
        return HF_ERR_PANIC;
    }
    if (m->len > 256) {
        return HF_ERR_BUFFER_OVERFLOW;
    }
    /* A first answer, replaced by the one written in place. */
    st = hf_response_set(response, (const uint8_t *)"first answer", 12);
    if (st != HF_OK) {
        return st;
    }
    st = hf_response_buffer(response, m->len, &out);
    if (st != HF_OK || out == NULL) {
        return HF_ERR_PANIC;
    }
    for (i = 0; i < m->len; i++) {
        out[i] = m->data[m->len - 1 - i];
    }
    return HF_OK;
}

/* Counts what hf_recv_batch lends and checks it is the stream "s0", "s1", ... in order. */
struct batch_seen {
    int count;
    int in_order;
};

static void on_batch(void *user_data, const hf_message_view *m) {
    struct batch_seen *b = (struct batch_seen *)user_data;
    char want[8];
    snprintf(want, sizeof want, "s%d", b->count);
    if (m->len != strlen(want) || memcmp(m->data, want, m->len) != 0 ||
        strcmp(m->source, "a") != 0) {
        b->in_order = 0;
    }
    b->count++;
}

/* Collects what hf_receiver_poll hands over. */
struct got_message {
    uint32_t source;
    size_t len;
    unsigned char first;
    int count;
};

static void on_message(void *user_data, uint32_t source, const uint8_t *data, size_t len) {
    struct got_message *g = (struct got_message *)user_data;
    g->source = source;
    g->len = len;
    g->first = len > 0 ? data[0] : 0;
    g->count++;
}

/* Whether `status` and the last error are the fork rule's refusal naming process `parent`. */
static bool refused(hf_status status, int parent) {
    char want[32];
    const char *msg = hf_last_error_message();
    snprintf(want, sizeof want, "process %d;", parent);
    return status == HF_ERR_INVALID_ARGUMENT && strstr(msg, want) != NULL &&
           strstr(msg, "after fork() create a new one") != NULL;
}

/* The child side of the fork test: every call on the parent's handles must be refused, and
   freeing them must leave the parent's state alone; a protocol of the child's own works.
   Returns a bit per failed group (the child's exit code). */
static int in_forked_child(const hf_protocol_options *o, hf_protocol *a, hf_protocol *b,
                           hf_request *pre, hf_endpoint *ep, hf_sender *tx, hf_receiver *rx,
                           hf_buffer_manager *shared, hf_buffer *held, int parent) {
    int bad = 0;
    hf_bytes r = {NULL, 0, 0};
    hf_request *req = NULL, *reqs[1];
    hf_status st[1];
    hf_message *m = NULL;
    hf_buffer *other = NULL;
    hf_protocol *own = NULL;
    hf_node_signature n = cpu_node("kid");
    struct got_message g = {0, 0, 0, 0};
    size_t idx = 0, count = 0;
    bool flag = false;
    const uint8_t *x = (const uint8_t *)"x";
    if (!refused(hf_send_data(a, "a", "b", x, 1, NULL, &r), parent) ||
        !refused(hf_send_data_nb(a, "a", "b", x, 1, NULL, &req), parent) ||
        !refused(hf_post(a, "a", "b", x, 1, NULL), parent) ||
        !refused(hf_recv(b, "b", 0, &m), parent) ||
        !refused(hf_progress(a, NULL), parent) ||
        !refused(hf_register_node(a, &n), parent) ||
        !refused(hf_start_background_services(a), parent) ||
        !refused(hf_stop_background_services(b), parent) ||
        !refused(hf_endpoint_create(a, "a", "b", &ep), parent)) {
        bad |= 1;
    }
    reqs[0] = pre;
    if (!refused(hf_request_test(pre, &flag, &r), parent) ||
        !refused(hf_request_wait(pre, &r), parent) || !refused(hf_request_cancel(pre), parent) ||
        !refused(hf_request_wait_any(reqs, 1, 0, &idx, &r), parent) ||
        !refused(hf_request_wait_all(reqs, 1, 0, st, &r), parent)) {
        bad |= 2;
    }
    if (!refused(hf_endpoint_post(ep, x, 1, NULL), parent) ||
        !refused(hf_endpoint_send_data(ep, x, 1, NULL, &r), parent)) {
        bad |= 4;
    }
    if (!refused(hf_sender_try_send(tx, x, 1, &flag), parent) ||
        !refused(hf_receiver_poll(rx, on_message, &g, &flag), parent)) {
        bad |= 8;
    }
    if (!refused(hf_buffer_write(held, x, 1, 0, false, NULL), parent) ||
        !refused(hf_buffer_manager_acquire(shared, &other), parent) ||
        !refused(hf_buffer_manager_available(shared, &count), parent)) {
        bad |= 16;
    }
    /* Freed here: nothing of the parent's is released. */
    hf_buffer_free(held);
    hf_buffer_manager_free(shared);
    hf_receiver_free(rx);
    hf_sender_free(tx);
    hf_endpoint_free(ep);
    hf_request_free(pre);
    hf_protocol_free(a);
    hf_protocol_free(b);
    /* A protocol of the child's own reaches the parent's nodes. */
    if (hf_protocol_new(o, &own) != HF_OK || hf_register_node(own, &n) != HF_OK ||
        hf_send_data(own, "kid", "b", x, 1, NULL, &r) != HF_OK) {
        bad |= 32;
    }
    hf_bytes_free(&r);
    hf_protocol_free(own);
    return bad;
}

int main(int argc, char **argv) {
    char fabric[64];
    hf_protocol_options o;
    hf_protocol *a = NULL, *b = NULL, *none = NULL;
    hf_node_signature n;
    hf_send_options so;
    hf_bytes resp = {NULL, 0, 0};
    hf_request *req = NULL;
    hf_message *msg = NULL;
    hf_message_view v;
    hf_ping_result *ping = NULL;
    hf_fabric_zone z;
    char *json = NULL;
    int calls = 0;
    bool done = false;
    size_t handled = 0;
    const char bad_utf8[] = {(char)0xff, (char)0xfe, 0};

    /* Version and status names. */
    CHECK(hf_version() == 0x000100);
    CHECK(strcmp(hf_version_string(), "0.1.0") == 0);
    CHECK(strcmp(hf_status_str(HF_OK), "OK") == 0);
    CHECK(strcmp(hf_status_str(HF_ERR_NODE_NOT_FOUND), "NodeNotFoundError") == 0);
    CHECK(strcmp(hf_status_str(12345), "UnknownStatus") == 0);
    CHECK(hf_status_category(HF_ERR_DUPLICATE_NODE) == -100);
    CHECK(hf_status_category(HF_ERR_ZONE_ISOLATION_VIOLATION) == -500);
    CHECK(hf_status_category(HF_ERR_NULL_ARGUMENT) == -900);

    /* Options and protocol handles. */
    CHECK_STATUS(hf_protocol_options_init(NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_protocol_options_init(&o), HF_OK);
    CHECK(o.struct_size == sizeof o && o.enable_fault_tolerance && o.engine_core == -1);
    CHECK(o.endpoints_by_name);
    CHECK(o.tcp_listen == NULL && !o.tcp_sqpoll && o.tcp_zerocopy_min == 0);
    if (argc > 1) {
        snprintf(fabric, sizeof fabric, "%s", argv[1]);
    } else {
        snprintf(fabric, sizeof fabric, "c-api-test-%d", (int)getpid());
    }
    o.fabric_name = fabric;
    CHECK_STATUS(hf_protocol_new(&o, NULL), HF_ERR_NULL_ARGUMENT);
    o.idle_strategy = 7;
    CHECK_STATUS(hf_protocol_new(&o, &none), HF_ERR_INVALID_ENUM);
    CHECK(none == NULL);
    o.idle_strategy = HF_IDLE_ADAPTIVE;
    o.struct_size = 8;
    CHECK_STATUS(hf_protocol_new(&o, &none), HF_ERR_INVALID_ARGUMENT);
    /* A program built against the header before tcp_zerocopy_min: its smaller struct is
       filled and nothing past it (the field stands for the bytes after that struct), and
       hf_protocol_new takes it. A size inside a field is refused. */
    {
        const size_t old = offsetof(hf_protocol_options, tcp_zerocopy_min);
        hf_protocol_options older;
        memset(&older, 0x5a, sizeof older);
        CHECK_STATUS(hf_protocol_options_init_size(&older, old), HF_OK);
        CHECK(older.struct_size == old && older.engine_core == -1);
        CHECK(older.tcp_zerocopy_min == 0x5a5a5a5a5a5a5a5a);
        older.fabric_name = fabric;
        CHECK_STATUS(hf_protocol_new(&older, &a), HF_OK);
        hf_protocol_free(a);
        a = NULL;
        CHECK_STATUS(hf_protocol_options_init_size(&older, old + 3), HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_protocol_options_init_size(&older, 8), HF_ERR_INVALID_ARGUMENT);
        older.struct_size = old + 3;
        CHECK_STATUS(hf_protocol_new(&older, &none), HF_ERR_INVALID_ARGUMENT);
    }
    /* The other _init functions refuse a struct smaller than the library's. */
    {
        hf_node_signature sig;
        hf_send_options so0;
        CHECK_STATUS(hf_node_signature_init_size(&sig, sizeof sig - 1), HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_node_signature_init_size(NULL, sizeof sig), HF_ERR_NULL_ARGUMENT);
        CHECK_STATUS(hf_node_signature_init(&sig), HF_OK);
        CHECK(sig.struct_size == sizeof sig && sig.memory_gb < 0);
        CHECK_STATUS(hf_send_options_init_size(&so0, 8), HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_send_options_init(&so0), HF_OK);
        CHECK(so0.struct_size == sizeof so0 && so0.timeout_ms == 5000);
    }
    o.struct_size = sizeof o;
    o.fabric_name = bad_utf8;
    CHECK_STATUS(hf_protocol_new(&o, &none), HF_ERR_INVALID_UTF8);
    o.fabric_name = fabric;
    CHECK_STATUS(hf_protocol_new(&o, &a), HF_OK);
    CHECK_STATUS(hf_protocol_new(&o, &b), HF_OK);
    hf_protocol_free(NULL);

    /* Nodes. */
    CHECK_STATUS(hf_node_signature_init(NULL), HF_ERR_NULL_ARGUMENT);
    n = cpu_node("a");
    CHECK_STATUS(hf_register_node(NULL, &n), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_register_node(a, NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_register_node(a, &n), HF_OK);
    CHECK_STATUS(hf_register_node(b, &n), HF_ERR_DUPLICATE_NODE);
    n = cpu_node("b");
    n.hardware_type = 99;
    CHECK_STATUS(hf_register_node(b, &n), HF_ERR_INVALID_ENUM);
    n.hardware_type = HF_HARDWARE_CPU_SERVER;
    n.bandwidth_gbps = -1.0;
    CHECK_STATUS(hf_register_node(b, &n), HF_ERR_INVALID_NODE);
    n.bandwidth_gbps = 100.0;
    n.node_id = NULL;
    CHECK_STATUS(hf_register_node(b, &n), HF_ERR_NULL_ARGUMENT);
    n.node_id = bad_utf8;
    CHECK_STATUS(hf_register_node(b, &n), HF_ERR_INVALID_UTF8);
    n.node_id = "b";
    n.metadata_json = "[1, 2]";
    CHECK_STATUS(hf_register_node(b, &n), HF_ERR_INVALID_ARGUMENT);
    n.metadata_json = "{\"rack\": 7}";
    CHECK_STATUS(hf_register_node(b, &n), HF_OK);
    n = cpu_node("c");
    CHECK_STATUS(hf_register_node(a, &n), HF_OK);
    CHECK_STATUS(hf_unregister_node(a, "c"), HF_OK);
    CHECK_STATUS(hf_unregister_node(a, "c"), HF_ERR_NODE_NOT_FOUND);
    CHECK_STATUS(hf_unregister_node(a, NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_unregister_node(NULL, "c"), HF_ERR_NULL_ARGUMENT);

    /* Handlers and requests: b answers on its engine thread. */
    CHECK_STATUS(hf_on_receive(NULL, "b", reverse, &calls), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_on_receive(b, NULL, reverse, &calls), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_on_receive(b, "nobody", reverse, &calls), HF_ERR_NODE_NOT_FOUND);
    CHECK_STATUS(hf_on_receive(b, "b", reverse, &calls), HF_OK);
    CHECK_STATUS(hf_start_background_services(b), HF_OK);
    CHECK_STATUS(hf_start_background_services(NULL), HF_ERR_NULL_ARGUMENT);

    CHECK_STATUS(hf_send_options_init(NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_send_options_init(&so), HF_OK);
    CHECK(so.timeout_ms == 5000 && so.priority == HF_PRIORITY_MEDIUM);
    CHECK_STATUS(hf_send_data(a, "a", "b", (const uint8_t *)"hello", 5, &so, &resp), HF_OK);
    CHECK(resp.len == 5 && memcmp(resp.data, "olleh", 5) == 0);
    hf_bytes_free(&resp);
    CHECK(resp.data == NULL && resp.len == 0);
    hf_bytes_free(&resp); /* released twice: ignored */
    hf_bytes_free(NULL);
    CHECK_STATUS(hf_send_data(a, "a", "b", NULL, 0, NULL, &resp), HF_OK);
    CHECK(resp.len == 0);
    hf_bytes_free(&resp);
    CHECK_STATUS(hf_send_data(a, "a", "b", (const uint8_t *)"fail", 4, NULL, &resp),
                 HF_ERR_INVALID_NODE);
    /* A handler sending by node names through its own protocol is refused, not stuck. */
    handler_protocol = b;
    CHECK_STATUS(hf_send_data(a, "a", "b", (const uint8_t *)"nest", 4, NULL, &resp),
                 HF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(hf_send_data(NULL, "a", "b", (const uint8_t *)"x", 1, NULL, &resp),
                 HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_send_data(a, NULL, "b", (const uint8_t *)"x", 1, NULL, &resp),
                 HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_send_data(a, "a", NULL, (const uint8_t *)"x", 1, NULL, &resp),
                 HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_send_data(a, "a", "b", NULL, 1, NULL, &resp), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_send_data(a, "a", "b", (const uint8_t *)"x", 1, NULL, NULL),
                 HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_send_data(a, "a", "nobody", (const uint8_t *)"x", 1, NULL, &resp),
                 HF_ERR_NODE_NOT_FOUND);
    CHECK_STATUS(hf_send_data(a, bad_utf8, "b", (const uint8_t *)"x", 1, NULL, &resp),
                 HF_ERR_INVALID_UTF8);
    so.priority = 9;
    CHECK_STATUS(hf_send_data(a, "a", "b", (const uint8_t *)"x", 1, &so, &resp),
                 HF_ERR_INVALID_ENUM);
    hf_send_options_init(&so);
    so.data_type = 99;
    CHECK_STATUS(hf_post(a, "a", "b", (const uint8_t *)"x", 1, &so), HF_ERR_INVALID_ENUM);
    hf_send_options_init(&so);
    so.latency_constraint_ns = 1;
    CHECK_STATUS(hf_send_data(a, "a", "b", (const uint8_t *)"x", 1, &so, &resp),
                 HF_ERR_LATENCY_CONSTRAINT_VIOLATION);
    hf_send_options_init(&so);
    so.compression_enabled = true;
    so.metadata_json = "{\"layer\": 3}";
    CHECK_STATUS(hf_send_data(a, "a", "b", (const uint8_t *)"abc", 3, &so, &resp), HF_OK);
    CHECK(resp.len == 3 && memcmp(resp.data, "cba", 3) == 0);
    hf_bytes_free(&resp);
    CHECK(calls >= 4);

    /* Non-blocking requests. */
    CHECK_STATUS(hf_send_data_nb(a, "a", "b", (const uint8_t *)"xyz", 3, NULL, NULL),
                 HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_send_data_nb(a, "a", "b", (const uint8_t *)"xyz", 3, NULL, &req), HF_OK);
    while (!done) {
        CHECK_STATUS(hf_request_test(req, &done, &resp), HF_OK);
    }
    CHECK(resp.len == 3 && memcmp(resp.data, "zyx", 3) == 0);
    hf_bytes_free(&resp);
    CHECK_STATUS(hf_request_test(req, &done, &resp), HF_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(hf_request_wait(req, &resp), HF_ERR_INVALID_ARGUMENT);
    hf_request_free(req);
    req = NULL;
    CHECK_STATUS(hf_send_data_nb(a, "a", "b", (const uint8_t *)"12", 2, NULL, &req), HF_OK);
    CHECK_STATUS(hf_request_wait(req, &resp), HF_OK);
    CHECK(resp.len == 2 && memcmp(resp.data, "21", 2) == 0);
    hf_bytes_free(&resp);
    CHECK_STATUS(hf_request_test(NULL, &done, &resp), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_request_test(req, NULL, &resp), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_request_wait(NULL, &resp), HF_ERR_NULL_ARGUMENT);
    hf_request_free(req);
    hf_request_free(NULL);
    /* An unfinished request freed: abandoned (its late response is dropped). Wait until the
       handler took it, so it does not reach the inbox tested below. */
    {
        int before = calls;
        CHECK_STATUS(hf_send_data_nb(a, "a", "b", (const uint8_t *)"ab", 2, NULL, &req), HF_OK);
        hf_request_free(req);
        for (int i = 0; i < 5000 && calls == before; i++) {
            usleep(1000);
        }
        CHECK(calls == before + 1);
    }

    /* Several requests at once. b (its own engine thread) holds "hold" requests while
       `holding` is set; node w of a is served by whoever drives a's engine: here the
       waiting calls themselves. */
    {
        hf_request *rs[4] = {NULL, NULL, NULL, NULL};
        hf_status st[4] = {0, 0, 0, 0};
        hf_bytes rb[4] = {{NULL, 0, 0}, {NULL, 0, 0}, {NULL, 0, 0}, {NULL, 0, 0}};
        size_t idx = 0;
        int wcalls = 0;
        n = cpu_node("w");
        CHECK_STATUS(hf_register_node(a, &n), HF_OK);
        CHECK_STATUS(hf_on_receive(a, "w", reverse, &wcalls), HF_OK);
        atomic_store(&holding, 1);
        CHECK_STATUS(hf_send_data_nb(a, "a", "b", (const uint8_t *)"hold", 4, NULL, &rs[0]),
                     HF_OK);
        CHECK_STATUS(hf_send_data_nb(a, "a", "w", (const uint8_t *)"fast", 4, NULL, &rs[2]),
                     HF_OK);
        /* rs[1] and rs[3] are NULL: skipped. The first to complete is the one w answers. */
        CHECK_STATUS(hf_request_wait_any(rs, 4, 5000, &idx, &resp), HF_OK);
        CHECK(idx == 2 && resp.len == 4 && memcmp(resp.data, "tsaf", 4) == 0);
        CHECK(wcalls == 1);
        hf_bytes_free(&resp);
        /* The held one cannot complete: the call times out without an index, and the
           request stays pending. */
        CHECK_STATUS(hf_request_wait_any(rs, 4, 20, &idx, &resp), HF_ERR_TIMEOUT);
        CHECK(idx == HF_INDEX_NONE && resp.data == NULL);
        CHECK_STATUS(hf_request_wait_any(rs, 4, 0, &idx, &resp), HF_ERR_TIMEOUT); /* a look */
        CHECK_STATUS(hf_request_test(rs[0], &done, &resp), HF_OK);
        CHECK(!done);
        /* wait_all: the held one is reported pending; the completed one is skipped and its
           status left as it was. */
        st[2] = 12345;
        CHECK_STATUS(hf_request_wait_all(rs, 4, 20, st, rb), HF_ERR_TIMEOUT);
        CHECK(st[0] == HF_ERR_TIMEOUT && rb[0].data == NULL && st[2] == 12345);
        CHECK(strstr(hf_last_error_message(), "requests[0]") != NULL);
        /* Released: waiting again completes it (no bound of the call's own: the requests'
           send timeouts bound it). */
        atomic_store(&holding, 0);
        CHECK_STATUS(hf_request_wait_all(rs, 4, UINT64_MAX, st, rb), HF_OK);
        CHECK(st[0] == HF_OK && rb[0].len == 4 && memcmp(rb[0].data, "dloh", 4) == 0);
        CHECK(st[2] == 12345);
        hf_bytes_free(&rb[0]);
        /* Nothing pending: wait_any refuses, wait_all succeeds at once. */
        CHECK_STATUS(hf_request_wait_any(rs, 4, 5000, &idx, &resp), HF_ERR_INVALID_ARGUMENT);
        CHECK(idx == HF_INDEX_NONE);
        CHECK_STATUS(hf_request_wait_all(rs, 4, 5000, st, rb), HF_OK);
        CHECK_STATUS(hf_request_wait_any(NULL, 0, 0, &idx, &resp), HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_request_wait_all(NULL, 0, 0, NULL, NULL), HF_OK);
        CHECK_STATUS(hf_request_wait(rs[2], &resp), HF_ERR_INVALID_ARGUMENT);
        hf_request_free(rs[0]);
        hf_request_free(rs[2]);
        rs[0] = rs[2] = NULL;

        /* Each outcome at its position; the call returns the first failure. */
        CHECK_STATUS(hf_send_data_nb(a, "a", "w", (const uint8_t *)"ok", 2, NULL, &rs[0]),
                     HF_OK);
        CHECK_STATUS(hf_send_data_nb(a, "a", "w", (const uint8_t *)"fail", 4, NULL, &rs[1]),
                     HF_OK);
        CHECK_STATUS(hf_send_data_nb(a, "a", "b", (const uint8_t *)"yes", 3, NULL, &rs[3]),
                     HF_OK);
        CHECK_STATUS(hf_request_wait_all(rs, 4, 5000, st, rb), HF_ERR_INVALID_NODE);
        CHECK(st[0] == HF_OK && rb[0].len == 2 && memcmp(rb[0].data, "ko", 2) == 0);
        CHECK(st[1] == HF_ERR_INVALID_NODE && rb[1].data == NULL);
        CHECK(st[3] == HF_OK && rb[3].len == 3 && memcmp(rb[3].data, "sey", 3) == 0);
        for (int i = 0; i < 4; i++) {
            hf_bytes_free(&rb[i]);
            hf_request_free(rs[i]);
            rs[i] = NULL;
        }

        /* The same request twice is refused. */
        CHECK_STATUS(hf_send_data_nb(a, "a", "w", (const uint8_t *)"d", 1, NULL, &rs[0]), HF_OK);
        rs[1] = rs[0];
        CHECK_STATUS(hf_request_wait_any(rs, 2, 0, &idx, &resp), HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_request_wait_all(rs, 2, 0, st, rb), HF_ERR_INVALID_ARGUMENT);
        rs[1] = NULL;

        /* Cancel: the request is abandoned, test and wait say so, and waits skip it. */
        atomic_store(&holding, 1);
        CHECK_STATUS(hf_send_data_nb(a, "a", "b", (const uint8_t *)"hold", 4, NULL, &rs[1]),
                     HF_OK);
        CHECK_STATUS(hf_request_cancel(rs[1]), HF_OK);
        CHECK_STATUS(hf_request_cancel(rs[1]), HF_OK); /* again: nothing to do */
        CHECK_STATUS(hf_request_test(rs[1], &done, &resp), HF_ERR_INVALID_ARGUMENT);
        CHECK(strstr(hf_last_error_message(), "cancelled") != NULL);
        CHECK_STATUS(hf_request_wait(rs[1], &resp), HF_ERR_INVALID_ARGUMENT);
        CHECK(strstr(hf_last_error_message(), "cancelled") != NULL);
        CHECK_STATUS(hf_request_wait_any(rs, 2, 5000, &idx, &resp), HF_OK);
        CHECK(idx == 0 && resp.len == 1 && resp.data[0] == 'd');
        hf_bytes_free(&resp);
        CHECK_STATUS(hf_request_wait_any(rs, 2, 0, &idx, &resp), HF_ERR_INVALID_ARGUMENT);
        atomic_store(&holding, 0);
        CHECK_STATUS(hf_request_cancel(rs[0]), HF_OK); /* completed: nothing to do */
        CHECK_STATUS(hf_request_test(rs[0], &done, &resp), HF_ERR_INVALID_ARGUMENT);
        CHECK(strstr(hf_last_error_message(), "already completed") != NULL);
        hf_request_free(rs[0]);
        hf_request_free(rs[1]);
        /* The cancelled request's late answer does not reach the next one. */
        CHECK_STATUS(hf_send_data(a, "a", "b", (const uint8_t *)"xy", 2, NULL, &resp), HF_OK);
        CHECK(resp.len == 2 && memcmp(resp.data, "yx", 2) == 0);
        hf_bytes_free(&resp);
        CHECK_STATUS(hf_unregister_node(a, "w"), HF_OK);
    }

    /* One-way messages to a node without handler, taken with hf_recv. */
    CHECK_STATUS(hf_on_receive(b, "b", NULL, NULL), HF_OK);
    CHECK_STATUS(hf_post(a, "a", "b", (const uint8_t *)"one", 3, NULL), HF_OK);
    CHECK_STATUS(hf_post(NULL, "a", "b", (const uint8_t *)"one", 3, NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_recv(b, "b", 5000, &msg), HF_OK);
    CHECK_STATUS(hf_message_get_view(msg, &v), HF_OK);
    CHECK(v.len == 3 && memcmp(v.data, "one", 3) == 0 && v.one_way);
    CHECK(strcmp(v.source, "a") == 0 && strcmp(v.destination, "b") == 0);
    CHECK(v.data_type == HF_DATA_GENERIC && v.priority == HF_PRIORITY_MEDIUM);
    CHECK(v.metadata == NULL && v.metadata_len == 0);
    CHECK_STATUS(hf_message_get_view(NULL, &v), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_message_get_view(msg, NULL), HF_ERR_NULL_ARGUMENT);
    hf_message_free(msg);
    hf_message_free(NULL);
    CHECK_STATUS(hf_recv(b, "b", 0, &msg), HF_ERR_TIMEOUT);
    CHECK_STATUS(hf_recv(b, "a", 0, &msg), HF_ERR_NODE_NOT_FOUND);
    CHECK_STATUS(hf_recv(b, "b", 0, NULL), HF_ERR_NULL_ARGUMENT);
    /* A request to a node without handler gets a delivery receipt. */
    hf_send_options_init(&so);
    so.metadata_json = "{\"k\": \"v\"}";
    CHECK_STATUS(hf_send_data(a, "a", "b", (const uint8_t *)"req", 3, &so, &resp), HF_OK);
    CHECK(resp.len == 0);
    CHECK_STATUS(hf_recv(b, "b", 5000, &msg), HF_OK);
    CHECK_STATUS(hf_message_get_view(msg, &v), HF_OK);
    CHECK(!v.one_way && v.metadata_len > 0 && memchr(v.metadata, 'k', v.metadata_len) != NULL);
    hf_message_free(msg);

    /* Endpoints: one resolved pair with a ring of its own; messages arrive in order. */
    {
        hf_endpoint *ep = NULL;
        hf_request *ereq = NULL;
        char text[8];
        CHECK_STATUS(hf_endpoint_create(a, "a", "nobody", &ep), HF_ERR_NODE_NOT_FOUND);
        CHECK_STATUS(hf_endpoint_create(a, "b", "a", &ep), HF_ERR_NODE_NOT_FOUND);
        CHECK_STATUS(hf_endpoint_create(a, "a", "b", &ep), HF_OK);
        for (int i = 0; i < 100; i++) {
            snprintf(text, sizeof text, "m%d", i);
            CHECK_STATUS(hf_endpoint_post(ep, (const uint8_t *)text, strlen(text), NULL), HF_OK);
        }
        for (int i = 0; i < 100; i++) {
            snprintf(text, sizeof text, "m%d", i);
            CHECK_STATUS(hf_recv(b, "b", 5000, &msg), HF_OK);
            CHECK_STATUS(hf_message_get_view(msg, &v), HF_OK);
            CHECK(v.len == strlen(text) && memcmp(v.data, text, v.len) == 0 && v.one_way);
            CHECK(strcmp(v.source, "a") == 0);
            hf_message_free(msg);
        }
        /* hf_recv_into: the data in the caller's buffer; too small a buffer keeps it queued. */
        {
            uint8_t small[4], big[64];
            hf_recv_info info;
            CHECK_STATUS(hf_endpoint_post(ep, (const uint8_t *)"0123456789", 10, NULL), HF_OK);
            CHECK_STATUS(hf_recv_into(b, "b", 5000, small, sizeof small, &info),
                         HF_ERR_BUFFER_OVERFLOW);
            CHECK(info.len == 10);
            CHECK_STATUS(hf_recv_into(b, "b", 5000, NULL, 8, &info), HF_ERR_NULL_ARGUMENT);
            CHECK_STATUS(hf_recv_into(b, "b", 5000, big, sizeof big, &info), HF_OK);
            CHECK(info.len == 10 && memcmp(big, "0123456789", 10) == 0);
            CHECK(strcmp(info.source, "a") == 0 && info.one_way && info.metadata.data == NULL);
            CHECK_STATUS(hf_recv_into(b, "b", 0, big, sizeof big, &info), HF_ERR_TIMEOUT);
        }
        /* A batch: in order, one doorbell. */
        {
            const uint8_t *parts[3] = {(const uint8_t *)"b0", (const uint8_t *)"b1", NULL};
            size_t lens[3] = {2, 2, 0};
            CHECK_STATUS(hf_endpoint_post_batch(ep, parts, lens, 3), HF_OK);
            for (int i = 0; i < 3; i++) {
                CHECK_STATUS(hf_recv(b, "b", 5000, &msg), HF_OK);
                CHECK_STATUS(hf_message_get_view(msg, &v), HF_OK);
                CHECK(v.len == lens[i] && (i == 2 || memcmp(v.data, parts[i], 2) == 0));
                hf_message_free(msg);
            }
            CHECK_STATUS(hf_endpoint_post_batch(ep, NULL, lens, 3), HF_ERR_NULL_ARGUMENT);
            CHECK_STATUS(hf_endpoint_post_batch(ep, parts, NULL, 3), HF_ERR_NULL_ARGUMENT);
            lens[2] = 5;
            CHECK_STATUS(hf_endpoint_post_batch(ep, parts, lens, 3), HF_ERR_NULL_ARGUMENT);
            CHECK_STATUS(hf_endpoint_post_batch(ep, NULL, NULL, 0), HF_OK);
            /* Every entry is checked before any is sent. */
            CHECK_STATUS(hf_recv(b, "b", 0, &msg), HF_ERR_TIMEOUT);
        }
        /* hf_recv_batch: each message lent in place, in order, up to the limit. */
        {
            struct batch_seen seen = {0, 1};
            size_t got = 0;
            for (int i = 0; i < 10; i++) {
                snprintf(text, sizeof text, "s%d", i);
                CHECK_STATUS(hf_endpoint_post(ep, (const uint8_t *)text, strlen(text), NULL),
                             HF_OK);
            }
            CHECK_STATUS(hf_recv_batch(b, "b", 5000, 4, on_batch, &seen, &got), HF_OK);
            CHECK(got == 4 && seen.count == 4);
            CHECK_STATUS(hf_recv_batch(b, "b", 5000, 100, on_batch, &seen, &got), HF_OK);
            CHECK(got == 6 && seen.count == 10 && seen.in_order);
            CHECK_STATUS(hf_recv_batch(b, "b", 0, 100, on_batch, &seen, &got), HF_ERR_TIMEOUT);
            CHECK_STATUS(hf_recv_batch(b, "b", 0, 0, on_batch, &seen, &got),
                         HF_ERR_INVALID_ARGUMENT);
        }
        hf_send_options_init(&so);
        so.priority = 99;
        CHECK_STATUS(hf_endpoint_post(ep, (const uint8_t *)"x", 1, &so), HF_ERR_INVALID_ENUM);
        CHECK_STATUS(hf_endpoint_send_data(ep, (const uint8_t *)"req", 3, NULL, &resp), HF_OK);
        CHECK(resp.len == 0);
        CHECK_STATUS(hf_recv(b, "b", 5000, &msg), HF_OK);
        CHECK_STATUS(hf_message_get_view(msg, &v), HF_OK);
        CHECK(!v.one_way && v.len == 3);
        hf_message_free(msg);
        CHECK_STATUS(hf_endpoint_send_data_nb(ep, (const uint8_t *)"r2", 2, NULL, &ereq), HF_OK);
        CHECK_STATUS(hf_recv(b, "b", 5000, &msg), HF_OK);
        hf_message_free(msg);
        CHECK_STATUS(hf_request_wait(ereq, &resp), HF_OK);
        hf_request_free(ereq);
        hf_endpoint_free(ep);
        hf_endpoint_free(NULL);
    }

    /* Buffers: a private pool, a standalone buffer, their errors. */
    {
        hf_buffer_manager *pool = NULL, *shared = NULL;
        hf_buffer *b1 = NULL, *b2 = NULL, *b3 = NULL;
        hf_bytes rd = {NULL, 0, 0};
        size_t n = 0, cap = 0;
        uint8_t *mem = NULL;
        CHECK_STATUS(hf_buffer_manager_new(0, 64, &pool), HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_buffer_manager_new(2, 64, NULL), HF_ERR_NULL_ARGUMENT);
        CHECK_STATUS(hf_buffer_manager_new(2, 64, &pool), HF_OK);
        CHECK_STATUS(hf_buffer_manager_acquire(pool, &b1), HF_OK);
        CHECK_STATUS(hf_buffer_manager_acquire(pool, &b2), HF_OK);
        CHECK_STATUS(hf_buffer_manager_acquire(pool, &b3), HF_ERR_BUFFER_EXHAUSTED);
        CHECK_STATUS(hf_buffer_manager_available(pool, &n), HF_OK);
        CHECK(n == 0);
        CHECK_STATUS(hf_buffer_write(b1, (const uint8_t *)"weights", 7, 0, false, &n), HF_OK);
        CHECK(n == 7);
        CHECK_STATUS(hf_buffer_read(b1, 7, 0, false, &rd), HF_OK);
        CHECK(rd.len == 7 && memcmp(rd.data, "weights", 7) == 0);
        hf_bytes_free(&rd);
        CHECK_STATUS(hf_buffer_read(b1, 8, 0, false, &rd), HF_ERR_BUFFER_UNDERFLOW);
        CHECK_STATUS(hf_buffer_write(b1, (const uint8_t *)"x", 1, 64, false, &n),
                     HF_ERR_BUFFER_OVERFLOW);
        CHECK_STATUS(hf_buffer_write(NULL, (const uint8_t *)"x", 1, 0, false, &n),
                     HF_ERR_NULL_ARGUMENT);
        CHECK_STATUS(hf_buffer_data(b2, &mem, &cap), HF_OK);
        CHECK(cap == 64 && mem != NULL);
        memset(mem, 'z', 10);
        CHECK_STATUS(hf_buffer_set_len(b2, 10), HF_OK);
        CHECK_STATUS(hf_buffer_set_len(b2, 65), HF_ERR_BUFFER_OVERFLOW);
        CHECK_STATUS(hf_buffer_len(b2, &n), HF_OK);
        CHECK(n == 10);
        hf_buffer_free(b1);
        hf_buffer_free(b2);
        hf_buffer_free(NULL);
        CHECK_STATUS(hf_buffer_manager_available(pool, &n), HF_OK);
        CHECK(n == 2);
        hf_buffer_manager_free(pool);
        hf_buffer_manager_free(NULL);
        CHECK_STATUS(hf_zero_copy_buffer_new(1024, true, false, &b1), HF_OK);
        CHECK_STATUS(hf_buffer_write(b1, (const uint8_t *)"aaaaaaaaaaaaaaaa", 16, 0, false, &n),
                     HF_OK);
        CHECK(n < 16); /* compressed by default */
        /* Read back by the length written, not the compressed length stored. */
        CHECK_STATUS(hf_buffer_read(b1, 16, 0, false, &rd), HF_OK);
        CHECK(rd.len == 16 && memcmp(rd.data, "aaaaaaaaaaaaaaaa", 16) == 0);
        hf_bytes_free(&rd);
        CHECK_STATUS(hf_buffer_read(b1, 17, 0, false, &rd), HF_ERR_BUFFER_UNDERFLOW);
        CHECK(rd.data == NULL);
        {
            /* Data after the compressed block leaves it readable; the next block starts
               at offset + written. */
            size_t m = 0;
            CHECK_STATUS(hf_buffer_write(b1, (const uint8_t *)"bbbbbbbbbbbbbbbbbbbbbbbb", 24, n,
                                         true, &m),
                         HF_OK);
            CHECK_STATUS(hf_buffer_read(b1, 16, 0, true, &rd), HF_OK);
            CHECK(rd.len == 16 && rd.data[0] == 'a' && rd.data[15] == 'a');
            hf_bytes_free(&rd);
            CHECK_STATUS(hf_buffer_read(b1, 24, n, true, &rd), HF_OK);
            CHECK(rd.len == 24 && rd.data[0] == 'b' && rd.data[23] == 'b');
            hf_bytes_free(&rd);
        }
        hf_buffer_free(b1);
        CHECK_STATUS(hf_zero_copy_buffer_new(0, false, false, &b1), HF_ERR_INVALID_ARGUMENT);

        /* A shared pool: its buffer reaches b by descriptor, and comes back when b frees
           the message. */
        CHECK_STATUS(hf_protocol_create_buffer_manager(a, 2, 1 << 20, &shared), HF_OK);
        CHECK_STATUS(hf_buffer_manager_acquire(shared, &b1), HF_OK);
        CHECK_STATUS(hf_buffer_data(b1, &mem, &cap), HF_OK);
        memset(mem, 7, 1 << 20);
        CHECK_STATUS(hf_buffer_set_len(b1, 1 << 20), HF_OK);
        CHECK_STATUS(hf_post_buffer(a, "a", "b", b1, NULL), HF_OK);
        CHECK_STATUS(hf_recv(b, "b", 5000, &msg), HF_OK);
        CHECK_STATUS(hf_message_get_view(msg, &v), HF_OK);
        CHECK(v.len == (1 << 20) && v.data[12345] == 7);
        CHECK_STATUS(hf_buffer_manager_available(shared, &n), HF_OK);
        CHECK(n == 1);
        hf_message_free(msg);
        CHECK_STATUS(hf_buffer_manager_available(shared, &n), HF_OK);
        CHECK(n == 2);
        CHECK_STATUS(hf_post_buffer(a, "a", "b", NULL, NULL), HF_ERR_NULL_ARGUMENT);
        CHECK_STATUS(hf_buffer_manager_acquire(shared, &b1), HF_OK);
        CHECK_STATUS(hf_buffer_write(b1, (const uint8_t *)"sb", 2, 0, false, &n), HF_OK);
        CHECK_STATUS(hf_send_buffer(a, "a", "b", b1, NULL, &resp), HF_OK); /* receipt */
        CHECK(resp.len == 0);
        CHECK_STATUS(hf_recv(b, "b", 5000, &msg), HF_OK);
        hf_message_free(msg);

        /* Direct channels: inline messages, a buffer, the receiver's rules. */
        {
            hf_sender *tx = NULL;
            hf_receiver *rx = NULL, *rx2 = NULL;
            struct got_message g = {0, 0, 0, 0};
            unsigned char small[8];
            size_t len = 0;
            uint32_t src = 0;
            bool ok = false, got = false;
            const char *name = NULL;
            CHECK(hf_direct_max_inline() > 4096);
            CHECK_STATUS(hf_open_sender(a, "a", "nobody", &tx), HF_ERR_NODE_NOT_FOUND);
            CHECK_STATUS(hf_open_sender(a, "a", "b", NULL), HF_ERR_NULL_ARGUMENT);
            CHECK_STATUS(hf_open_sender(a, "a", "b", &tx), HF_OK);
            CHECK_STATUS(hf_open_receiver(b, "b", &rx), HF_OK);
            CHECK_STATUS(hf_open_receiver(b, "b", &rx2), HF_ERR_INVALID_ARGUMENT);
            CHECK_STATUS(hf_open_receiver(b, "a", &rx2), HF_ERR_NODE_NOT_FOUND);
            CHECK_STATUS(hf_receiver_poll(rx, on_message, &g, &got), HF_OK);
            CHECK(!got && g.count == 0);
            CHECK_STATUS(hf_sender_try_send(tx, (const uint8_t *)"ping", 4, &ok), HF_OK);
            CHECK(ok);
            CHECK_STATUS(hf_receiver_poll(rx, on_message, &g, &got), HF_OK);
            CHECK(got && g.count == 1 && g.len == 4 && g.first == 'p');
            CHECK_STATUS(hf_receiver_node_name(rx, g.source, &name), HF_OK);
            CHECK(name != NULL && strcmp(name, "a") == 0);
            CHECK_STATUS(hf_receiver_node_name(rx, 1000, &name), HF_ERR_NODE_NOT_FOUND);
            CHECK_STATUS(hf_sender_send(tx, (const uint8_t *)"0123456789", 10, 1000), HF_OK);
            CHECK_STATUS(hf_receiver_try_recv(rx, small, sizeof small, &len, &src, &got),
                         HF_ERR_BUFFER_OVERFLOW);
            CHECK(got && len == 10);
            CHECK_STATUS(hf_sender_send(tx, (const uint8_t *)"hi", 2, 1000), HF_OK);
            CHECK_STATUS(hf_receiver_try_recv(rx, small, sizeof small, &len, &src, &got), HF_OK);
            CHECK(got && len == 2 && memcmp(small, "hi", 2) == 0 && src == g.source);
            CHECK_STATUS(hf_receiver_poll(rx, NULL, NULL, &got), HF_ERR_NULL_ARGUMENT);
            CHECK_STATUS(hf_receiver_poll(rx, on_message, &g, NULL), HF_OK); /* got optional */
            CHECK_STATUS(hf_sender_try_send(tx, NULL, 1, &ok), HF_ERR_NULL_ARGUMENT);
            CHECK_STATUS(hf_buffer_manager_acquire(shared, &b1), HF_OK);
            CHECK_STATUS(hf_buffer_data(b1, &mem, &cap), HF_OK);
            memset(mem, 7, 100000);
            CHECK_STATUS(hf_buffer_set_len(b1, 100000), HF_OK);
            CHECK_STATUS(hf_sender_try_send_buffer(tx, &b1, &ok), HF_OK);
            CHECK(ok && b1 == NULL);
            g.count = 0;
            CHECK_STATUS(hf_receiver_poll(rx, on_message, &g, &got), HF_OK);
            CHECK(got && g.len == 100000 && g.first == 7);
            CHECK_STATUS(hf_zero_copy_buffer_new(8, false, false, &b2), HF_OK);
            CHECK_STATUS(hf_sender_try_send_buffer(tx, &b2, &ok), HF_ERR_INVALID_ARGUMENT);
            CHECK(b2 != NULL);
            hf_buffer_free(b2);
            hf_sender_free(tx);
            hf_sender_free(NULL);
            hf_receiver_free(rx);
            hf_receiver_free(NULL);
            CHECK_STATUS(hf_open_receiver(b, "b", &rx), HF_OK);
            hf_receiver_free(rx);
        }
        CHECK_STATUS(hf_buffer_manager_available(shared, &n), HF_OK);
        CHECK(n == 2);
        hf_buffer_manager_free(shared);
    }

    /* Address blobs. */
    {
        uint8_t blob[HF_ADDRESS_MAX];
        size_t blob_len = 0;
        char *peer = NULL;
        CHECK_STATUS(hf_node_address(b, "b", blob, sizeof blob, &blob_len), HF_OK);
        CHECK(blob_len > 4 && blob_len <= HF_ADDRESS_MAX);
        CHECK_STATUS(hf_insert_peer(a, blob, blob_len, &peer), HF_OK);
        CHECK(peer != NULL && strcmp(peer, "b") == 0);
        hf_string_free(peer);
        CHECK_STATUS(hf_node_address(b, "b", blob, 4, &blob_len), HF_ERR_BUFFER_OVERFLOW);
        CHECK_STATUS(hf_node_address(b, "a", blob, sizeof blob, &blob_len), HF_ERR_NODE_NOT_FOUND);
        CHECK_STATUS(hf_node_address(b, "b", NULL, sizeof blob, &blob_len), HF_ERR_NULL_ARGUMENT);
        CHECK_STATUS(hf_node_address(b, "b", blob, sizeof blob, NULL), HF_ERR_NULL_ARGUMENT);
        CHECK_STATUS(hf_insert_peer(a, (const uint8_t *)"garbage", 7, &peer),
                     HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_insert_peer(a, blob, 6, &peer), HF_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(hf_insert_peer(a, NULL, 8, &peer), HF_ERR_NULL_ARGUMENT);
        CHECK_STATUS(hf_insert_peer(a, blob, blob_len, NULL), HF_ERR_NULL_ARGUMENT);
    }

    /* Ping. */
    CHECK_STATUS(hf_ping(a, "a", "b", 64, 1000, &ping), HF_OK);
    CHECK(ping->success && ping->path_len == 2);
    CHECK(strcmp(ping->path[0], "a") == 0 && strcmp(ping->path[1], "b") == 0);
    CHECK(strcmp(ping->source, "a") == 0 && ping->latency_ns > 0);
    hf_ping_result_free(ping);
    hf_ping_result_free(NULL);
    CHECK_STATUS(hf_ping(a, "a", "nobody", 64, 100, &ping), HF_ERR_NODE_NOT_FOUND);
    CHECK_STATUS(hf_ping(a, "a", "b", 64, 100, NULL), HF_ERR_NULL_ARGUMENT);

    /* The fork rule: in a fork() child, calls on the parent's protocol and on everything
       made with it are refused, freeing them releases nothing of the parent's, and the
       parent carries on. b serves its node on its engine thread (no handler: receipts). */
    {
        hf_request *pre = NULL;
        hf_endpoint *ep = NULL;
        hf_sender *tx = NULL;
        hf_receiver *rx = NULL;
        hf_buffer_manager *shared = NULL;
        hf_buffer *held = NULL;
        struct got_message g = {0, 0, 0, 0};
        int parent = (int)getpid(), status = -1, got_msgs = 0;
        size_t n = 0;
        bool ok = false, got = false;
        pid_t child;
        CHECK_STATUS(hf_send_data_nb(a, "a", "b", (const uint8_t *)"pre", 3, NULL, &pre), HF_OK);
        CHECK_STATUS(hf_endpoint_create(a, "a", "b", &ep), HF_OK);
        CHECK_STATUS(hf_open_sender(a, "a", "b", &tx), HF_OK);
        CHECK_STATUS(hf_open_receiver(b, "b", &rx), HF_OK);
        CHECK_STATUS(hf_protocol_create_buffer_manager(a, 2, 4096, &shared), HF_OK);
        CHECK_STATUS(hf_buffer_manager_acquire(shared, &held), HF_OK);
        CHECK_STATUS(hf_buffer_write(held, (const uint8_t *)"kept", 4, 0, false, NULL), HF_OK);
        fflush(NULL);
        child = fork();
        CHECK(child >= 0);
        if (child == 0) {
            _exit(in_forked_child(&o, a, b, pre, ep, tx, rx, shared, held, parent));
        }
        CHECK(waitpid(child, &status, 0) == child);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fork child: status %d (exit bits %#x)\n", status,
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            failures++;
        }
        /* The parent's request, endpoint, direct channel and pool are as they were. */
        CHECK_STATUS(hf_request_wait(pre, &resp), HF_OK);
        CHECK(resp.len == 0);
        hf_bytes_free(&resp);
        hf_request_free(pre);
        CHECK_STATUS(hf_buffer_manager_available(shared, &n), HF_OK);
        CHECK(n == 1);
        CHECK_STATUS(hf_endpoint_post(ep, (const uint8_t *)"via ep", 6, NULL), HF_OK);
        CHECK_STATUS(hf_post_buffer(a, "a", "b", held, NULL), HF_OK);
        /* And the request the child's own protocol sent. */
        for (int i = 0; i < 4; i++) {
            CHECK_STATUS(hf_recv(b, "b", 5000, &msg), HF_OK);
            CHECK_STATUS(hf_message_get_view(msg, &v), HF_OK);
            got_msgs |= (v.len == 3 && memcmp(v.data, "pre", 3) == 0)      ? 1
                        : (v.len == 6 && memcmp(v.data, "via ep", 6) == 0) ? 2
                        : (v.len == 4 && memcmp(v.data, "kept", 4) == 0)   ? 4
                        : (v.len == 1 && strcmp(v.source, "kid") == 0)     ? 8
                                                                           : 16;
            hf_message_free(msg);
        }
        CHECK(got_msgs == 15);
        CHECK_STATUS(hf_buffer_manager_available(shared, &n), HF_OK);
        CHECK(n == 2);
        CHECK_STATUS(hf_sender_try_send(tx, (const uint8_t *)"direct", 6, &ok), HF_OK);
        CHECK(ok);
        CHECK_STATUS(hf_receiver_poll(rx, on_message, &g, &got), HF_OK);
        CHECK(got && g.len == 6 && g.first == 'd');
        hf_receiver_free(rx);
        hf_sender_free(tx);
        hf_endpoint_free(ep);
        hf_buffer_manager_free(shared);
    }

    /* Zones. */
    CHECK_STATUS(hf_fabric_zone_init(NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_fabric_zone_init(&z), HF_OK);
    z.zone_id = "training";
    z.zone_type = HF_ZONE_COMPUTE_CLUSTER;
    z.isolation_level = HF_ISOLATION_MEDIUM;
    z.max_nodes = 4;
    z.required_bandwidth_gbps = 50.0;
    CHECK_STATUS(hf_create_zone(a, &z), HF_OK);
    CHECK_STATUS(hf_create_zone(a, &z), HF_ERR_DUPLICATE_ZONE);
    z.zone_id = "huge";
    z.required_bandwidth_gbps = 1e6;
    CHECK_STATUS(hf_create_zone(a, &z), HF_ERR_INSUFFICIENT_RESOURCES);
    z.isolation_level = 17;
    CHECK_STATUS(hf_create_zone(a, &z), HF_ERR_INVALID_ENUM);
    z.isolation_level = HF_ISOLATION_LOW;
    z.max_nodes = 0;
    CHECK_STATUS(hf_create_zone(a, &z), HF_ERR_INVALID_ZONE);
    CHECK_STATUS(hf_create_zone(a, NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_assign_to_zone(a, "training", "a"), HF_OK);
    CHECK_STATUS(hf_assign_to_zone(a, "nowhere", "a"), HF_ERR_ZONE_NOT_FOUND);
    CHECK_STATUS(hf_assign_to_zone(a, "training", NULL), HF_ERR_NULL_ARGUMENT);
    /* "b" is outside the MEDIUM zone of "a": refused before sending. */
    CHECK_STATUS(hf_send_data(a, "a", "b", (const uint8_t *)"x", 1, NULL, &resp),
                 HF_ERR_ZONE_ISOLATION_VIOLATION);

    /* Topology info and the engine driven by the caller. */
    CHECK_STATUS(hf_get_topology_info(a, &json), HF_OK);
    CHECK(strstr(json, "\"total_nodes\":2") != NULL && strstr(json, "training") != NULL);
    hf_string_free(json);
    hf_string_free(NULL);
    CHECK_STATUS(hf_get_topology_info(a, NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_progress(a, &handled), HF_OK);
    CHECK_STATUS(hf_progress(a, NULL), HF_OK);
    CHECK_STATUS(hf_progress(NULL, NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_stop_background_services(b), HF_OK);
    CHECK_STATUS(hf_stop_background_services(NULL), HF_ERR_NULL_ARGUMENT);

    {
        bool removed = true;
        CHECK_STATUS(hf_fabric_remove(fabric, &removed), HF_OK);
        CHECK(!removed); /* nodes are still registered */
        hf_protocol_free(a);
        hf_protocol_free(b);
        CHECK_STATUS(hf_fabric_remove(fabric, &removed), HF_OK);
        CHECK(removed);
        CHECK_STATUS(hf_fabric_remove(NULL, &removed), HF_ERR_NULL_ARGUMENT);
        CHECK_STATUS(hf_fabric_remove("../x", &removed), HF_ERR_INVALID_ARGUMENT);
    }
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("c api: all checks passed\n");
    return 0;
}
