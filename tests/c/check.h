/*
 * The checks the C API tests share: CHECK(cond) and CHECK_STATUS(call, want) print the file,
 * line, the last error message, and count failures; each test program returns non-zero
 * when `failures` is not 0; cpu_node(id) is the node signature most of them register.
 */
#ifndef HF_TEST_CHECK_H
#define HF_TEST_CHECK_H

#include <stdio.h>

#include "hyperfabric.h"

static int failures = 0;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, hf_last_error_message());                                        \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

#define CHECK_STATUS(call, want)                                                            \
    do {                                                                                    \
        hf_status got_ = (call);                                                            \
        if (got_ != (want)) {                                                               \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s); last error: %s\n",   \
                    __FILE__, __LINE__, #call, got_, hf_status_str(got_), (int)(want),      \
                    hf_status_str(want), hf_last_error_message());                          \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

/* A CPU server node of 100 Gbit/s and 10 ns. */
static inline hf_node_signature cpu_node(const char *id) {
    hf_node_signature n;
    hf_node_signature_init(&n);
    n.node_id = id;
    n.hardware_type = HF_HARDWARE_CPU_SERVER;
    n.bandwidth_gbps = 100.0;
    n.latency_ns = 10;
    return n;
}

#endif
