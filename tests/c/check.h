/*
 * The checks the C API tests share: CHECK(cond) and CHECK_STATUS(call, want) print the file,
 * line, the last error message, and count failures; each test program returns non-zero
 * when `failures` is not 0.
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

#endif
