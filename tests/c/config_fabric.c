/*
 * A fabric of three processes made from a configuration file from C: a - sw - b, where sw is
 * a switch node hosted by a process of its own. Each process makes its protocol with
 * hf_protocol_from_config and registers its node by id; a ping from a to b reports the path
 * through the switch. Learned routing is on in the configuration: once the background services
 * run, the report's figures count its samples and route changes. Also: the enums' names both
 * ways, and the errors of bad input.
 *
 *   config_fabric FABRIC CONFIG_FILE
 */
#define _POSIX_C_SOURCE 200809L
#include "hyperfabric.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* A child: hosts `node` until `go` reaches end of file; one byte on `ready` once it is
 * registered and its engine runs. The exit status says which step failed. */
static int host(const char *config, const char *fabric, const char *node, int ready, int go) {
    hf_protocol *p = NULL;
    if (hf_protocol_from_config(config, fabric, NULL, &p) != HF_OK) {
        return 2;
    }
    if (hf_register_configured_node(p, node) != HF_OK) {
        return 3;
    }
    if (hf_start_background_services(p) != HF_OK) {
        return 4;
    }
    if (write(ready, "r", 1) != 1) {
        return 5;
    }
    char c;
    while (read(go, &c, 1) > 0) {
    }
    hf_protocol_free(p);
    return 0;
}

static int path_is(const hf_ping_result *r, const char *const *want, size_t n) {
    if (r->path_len != n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r->path[i], want[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s FABRIC CONFIG_FILE\n", argv[0]);
        return 2;
    }
    const char *fabric = argv[1];
    const char *config = argv[2];
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0) {
        perror("pipe");
        return 2;
    }
    /* Children first, before this process has threads or a protocol. */
    const char *hosted[2] = {"sw", "b"};
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        if (kids[i] < 0) {
            perror("fork");
            return 2;
        }
        if (kids[i] == 0) {
            close(ready[0]);
            close(go[1]);
            _exit(host(config, fabric, hosted[i], ready[1], go[0]));
        }
    }
    close(ready[1]);
    close(go[0]);
    char buf[2];
    size_t got = 0;
    while (got < 2) {
        ssize_t n = read(ready[0], buf + got, 2 - got);
        if (n <= 0) {
            fprintf(stderr, "a child failed before it was ready\n");
            failures++;
            break;
        }
        got += (size_t)n;
    }

    hf_protocol *p = NULL;
    CHECK_STATUS(hf_protocol_from_config(config, fabric, NULL, &p), HF_OK);
    CHECK_STATUS(hf_register_configured_node(p, "a"), HF_OK);
    CHECK_STATUS(hf_register_configured_node(p, "ghost"), HF_ERR_NODE_NOT_FOUND);
    CHECK_STATUS(hf_register_configured_node(p, "a"), HF_ERR_DUPLICATE_NODE);
    if (failures == 0) {
        hf_ping_result *r = NULL;
        CHECK_STATUS(hf_ping(p, "a", "b", 64, 2000, &r), HF_OK);
        const char *through[] = {"a", "sw", "b"};
        CHECK(r != NULL && r->success && path_is(r, through, 3));
        if (r != NULL && !path_is(r, through, 3)) {
            fprintf(stderr, "path of %zu hops:", r->path_len);
            for (size_t i = 0; i < r->path_len; i++) {
                fprintf(stderr, " %s", r->path[i]);
            }
            fprintf(stderr, "\n");
        }
        hf_ping_result_free(r);
        r = NULL;
        CHECK_STATUS(hf_ping(p, "a", "sw", 64, 2000, &r), HF_OK);
        const char *direct[] = {"a", "sw"};
        CHECK(r != NULL && path_is(r, direct, 2));
        hf_ping_result_free(r);
    }

    /* Reports as structs. */
    hf_topology_report *rep = NULL;
    CHECK_STATUS(hf_protocol_topology_report(p, &rep), HF_OK);
    if (rep != NULL) {
        CHECK(rep->total_nodes == 3 && rep->total_links == 2);
        int epoch = 0;
        for (size_t i = 0; i < rep->metrics_len; i++) {
            if (strcmp(rep->metric_names[i], "route_epoch") == 0 && rep->metric_values[i] > 0) {
                epoch = 1;
            }
        }
        CHECK(epoch);
        for (size_t i = 0; i < rep->bottlenecks_len; i++) {
            CHECK(rep->bottlenecks[i].location != NULL);
        }
    }
    hf_topology_report_free(rep);

    /* Learned routing samples the links while the background services run. */
    CHECK_STATUS(hf_start_background_services(p), HF_OK);
    double samples = 0, changes = -1;
    for (int tries = 0; tries < 500 && samples < 2; tries++) {
        rep = NULL;
        CHECK_STATUS(hf_protocol_topology_report(p, &rep), HF_OK);
        for (size_t i = 0; rep != NULL && i < rep->metrics_len; i++) {
            if (strcmp(rep->metric_names[i], "learned_samples") == 0) {
                samples = rep->metric_values[i];
            }
            if (strcmp(rep->metric_names[i], "route_changes") == 0) {
                changes = rep->metric_values[i];
            }
        }
        hf_topology_report_free(rep);
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 10000000}, NULL);
    }
    CHECK(samples >= 2);
    /* One path from a to b: nothing to change. */
    CHECK(changes == 0);
    CHECK_STATUS(hf_stop_background_services(p), HF_OK);

    hf_node_list *hw = NULL;
    CHECK_STATUS(hf_detect_hardware(&hw), HF_OK);
    CHECK(hw != NULL && hw->len >= 1 && hw->items[0].node_id != NULL);
    CHECK(hw != NULL && hf_hardware_type_name(hw->items[0].hardware_type) != NULL);
    hf_node_list_free(hw);
    hf_node_stats st;
    memset(&st, 0, sizeof st);
    CHECK_STATUS(hf_get_node_stats(fabric, "b", &st), HF_OK);
    CHECK(st.up && st.pid == (uint32_t)kids[1] && st.since_unix > 1.7e9);
    CHECK(st.received_messages > 0 && st.sent_messages > 0);
    CHECK_STATUS(hf_get_node_stats(fabric, "ghost", &st), HF_ERR_NODE_NOT_FOUND);
    CHECK_STATUS(hf_get_node_stats("no-such-fabric-here", "b", &st), HF_ERR_NODE_NOT_FOUND);

    /* Bad input. */
    hf_protocol *q = NULL;
    CHECK(hf_protocol_from_config("/nonexistent/fabric.yaml", NULL, NULL, &q) != HF_OK);
    CHECK(q == NULL);
    CHECK(strstr(hf_last_error_message(), "/nonexistent/fabric.yaml") != NULL);
    CHECK_STATUS(hf_protocol_from_config(NULL, NULL, NULL, &q), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_protocol_from_config(config, NULL, "no-such-host", &q), HF_ERR_CONFIG);
    CHECK_STATUS(hf_protocol_new(NULL, &q), HF_OK);
    CHECK_STATUS(hf_register_configured_node(q, "a"), HF_ERR_INVALID_ARGUMENT);
    hf_protocol_free(q);

    /* The enums' names. */
    CHECK(strcmp(hf_hardware_type_name(HF_HARDWARE_NETWORK_SWITCH), "network_switch") == 0);
    CHECK(hf_hardware_type_name(999) == NULL);
    uint32_t v = 12345;
    CHECK_STATUS(hf_hardware_type_from_name("cpu_server", &v), HF_OK);
    CHECK(v == HF_HARDWARE_CPU_SERVER);
    CHECK_STATUS(hf_isolation_level_from_name("extreme", &v), HF_ERR_INVALID_ARGUMENT);
    CHECK(v == HF_HARDWARE_CPU_SERVER);
    CHECK(strstr(hf_last_error_message(), "quantum_secure") != NULL);
    CHECK_STATUS(hf_zone_type_from_name(NULL, &v), HF_ERR_NULL_ARGUMENT);
    CHECK(strcmp(hf_packet_priority_name(HF_PRIORITY_BULK), "bulk") == 0);

    close(go[1]);
    for (int i = 0; i < 2; i++) {
        int status = 0;
        CHECK(waitpid(kids[i], &status, 0) == kids[i]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    /* The children left: b is down, since then. */
    memset(&st, 0, sizeof st);
    CHECK_STATUS(hf_get_node_stats(fabric, "b", &st), HF_OK);
    CHECK(!st.up && st.pid == 0 && st.since_unix > 1.7e9);
    hf_protocol_free(p);
    bool removed = false;
    CHECK_STATUS(hf_fabric_remove(fabric, &removed), HF_OK);
    CHECK(removed);
    if (failures == 0) {
        printf("all checks passed\n");
    }
    return failures != 0;
}
