/*
 * The control-plane part of the C API from C: a topology manager built call by call (routes by
 * each metric, constrained routes, link metrics, bottlenecks and topology info as JSON), a
 * configuration file loaded, turned into a topology, saved and reloaded, a broken one refused
 * with its line, hardware detection and validation, and measure_network_performance between
 * two protocol instances. Every bad input gets its documented status.
 *
 *   control FABRIC EXAMPLES_DIR TMP_DIR
 */
#include "hyperfabric.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static hf_node_signature node(const char *id, uint32_t hw, double gbps, uint64_t ns) {
    hf_node_signature n;
    hf_node_signature_init(&n);
    n.node_id = id;
    n.hardware_type = hw;
    n.bandwidth_gbps = gbps;
    n.latency_ns = ns;
    return n;
}

static int path_is(const hf_route *r, const char *a, const char *b, const char *c) {
    const char *want[3] = {a, b, c};
    size_t n = c ? 3 : 2;
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
    hf_topology_manager *tm = NULL, *from_cfg = NULL;
    hf_route *r = NULL;
    hf_node_signature n;
    char *json = NULL;
    char path[512];
    if (argc < 4) {
        fprintf(stderr, "usage: control FABRIC EXAMPLES_DIR TMP_DIR\n");
        return 2;
    }

    /* A diamond: a -> b -> d is fast, a -> c -> d is wide. */
    CHECK_STATUS(hf_topology_manager_new(true, NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_topology_manager_new(true, &tm), HF_OK);
    n = node("a", HF_HARDWARE_NVIDIA_H100, 400.0, 10);
    CHECK_STATUS(hf_topology_add_node(tm, &n), HF_OK);
    CHECK_STATUS(hf_topology_add_node(tm, &n), HF_ERR_DUPLICATE_NODE);
    n = node("b", HF_HARDWARE_NETWORK_SWITCH, 400.0, 10);
    CHECK_STATUS(hf_topology_add_node(tm, &n), HF_OK);
    n = node("c", HF_HARDWARE_NETWORK_SWITCH, 400.0, 10);
    CHECK_STATUS(hf_topology_add_node(tm, &n), HF_OK);
    n = node("d", HF_HARDWARE_STORAGE_ARRAY, 400.0, 10);
    CHECK_STATUS(hf_topology_add_node(tm, &n), HF_OK);
    n = node("bad", 77, 1.0, 1);
    CHECK_STATUS(hf_topology_add_node(tm, &n), HF_ERR_INVALID_ENUM);
    CHECK_STATUS(hf_topology_add_node(tm, NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_topology_add_link(tm, "a", "b", 100, 10.0), HF_OK);
    CHECK_STATUS(hf_topology_add_link(tm, "b", "d", 100, 10.0), HF_OK);
    CHECK_STATUS(hf_topology_add_link(tm, "a", "c", 1000, 100.0), HF_OK);
    CHECK_STATUS(hf_topology_add_link(tm, "c", "d", 1000, 100.0), HF_OK);
    CHECK_STATUS(hf_topology_add_link(tm, "a", "zz", 0, 0.0), HF_ERR_NODE_NOT_FOUND);
    CHECK_STATUS(hf_topology_add_link(tm, NULL, "b", 0, 0.0), HF_ERR_NULL_ARGUMENT);

    CHECK_STATUS(hf_topology_find_shortest_path(tm, "a", "d", HF_METRIC_LATENCY, &r), HF_OK);
    CHECK(path_is(r, "a", "b", "d") && r->hops == 2 && r->latency_ns > 0);
    hf_route_free(r);
    CHECK_STATUS(hf_topology_find_shortest_path(tm, "a", "d", HF_METRIC_BANDWIDTH, &r), HF_OK);
    CHECK(path_is(r, "a", "c", "d") && r->bandwidth_gbps == 100.0);
    hf_route_free(r);
    CHECK_STATUS(hf_topology_find_shortest_path(tm, "a", "d", HF_METRIC_HOPS, &r), HF_OK);
    CHECK(r->hops == 2);
    hf_route_free(r);
    hf_route_free(NULL);
    CHECK_STATUS(hf_topology_find_shortest_path(tm, "a", "d", 9, &r), HF_ERR_INVALID_ENUM);
    CHECK_STATUS(hf_topology_find_shortest_path(tm, "a", "nowhere", 0, &r),
                 HF_ERR_NODE_NOT_FOUND);
    CHECK_STATUS(hf_topology_find_shortest_path(tm, "a", "d", 0, NULL), HF_ERR_NULL_ARGUMENT);

    /* Constrained routes: a bandwidth floor takes the wide path; a tight bound fails. */
    CHECK_STATUS(hf_find_optimal_path(tm, "a", "d", HF_DATA_TENSOR, 0, 50.0, &r), HF_OK);
    CHECK(path_is(r, "a", "c", "d"));
    hf_route_free(r);
    CHECK_STATUS(hf_find_optimal_path(tm, "a", "d", HF_DATA_TENSOR, 50, 0.0, &r),
                 HF_ERR_LATENCY_CONSTRAINT_VIOLATION);
    CHECK_STATUS(hf_find_optimal_path(tm, "a", "d", 99, 0, 0.0, &r), HF_ERR_INVALID_ENUM);

    CHECK_STATUS(hf_update_link_metrics(tm, "a", "b", 150, 5.0, 0.01), HF_OK);
    CHECK_STATUS(hf_update_link_metrics(tm, "a", "d", 150, 5.0, 0.0), HF_ERR_LINK_NOT_FOUND);
    CHECK_STATUS(hf_topology_analyze_bottlenecks(tm, &json), HF_OK);
    CHECK(json[0] == '[');
    hf_string_free(json);
    CHECK_STATUS(hf_topology_get_info(tm, &json), HF_OK);
    CHECK(strstr(json, "\"total_nodes\":4") != NULL && strstr(json, "\"total_links\":4") != NULL);
    hf_string_free(json);
    CHECK_STATUS(hf_topology_get_info(tm, NULL), HF_ERR_NULL_ARGUMENT);
    CHECK_STATUS(hf_topology_nodes(tm, &json), HF_OK);
    CHECK(strstr(json, "\"node_id\":\"a\"") != NULL && strstr(json, "\"node_id\":\"d\"") != NULL);
    hf_string_free(json);

    CHECK_STATUS(hf_topology_remove_link(tm, "a", "b"), HF_OK);
    CHECK_STATUS(hf_topology_remove_link(tm, "a", "b"), HF_ERR_LINK_NOT_FOUND);
    CHECK_STATUS(hf_topology_find_shortest_path(tm, "a", "d", HF_METRIC_LATENCY, &r), HF_OK);
    CHECK(path_is(r, "a", "c", "d"));
    hf_route_free(r);
    CHECK_STATUS(hf_topology_remove_node(tm, "c"), HF_OK);
    CHECK_STATUS(hf_topology_remove_node(tm, "c"), HF_ERR_NODE_NOT_FOUND);
    CHECK_STATUS(hf_topology_find_shortest_path(tm, "a", "d", HF_METRIC_LATENCY, &r),
                 HF_ERR_NO_ROUTE_FOUND);
    hf_topology_manager_free(tm);
    hf_topology_manager_free(NULL);

    /* Configuration files. */
    {
        hf_fabric_config *cfg = NULL, *again = NULL;
        FILE *f;
        snprintf(path, sizeof path, "%s/ai-cluster.yaml", argv[2]);
        CHECK_STATUS(hf_load_fabric_config(path, &cfg), HF_OK);
        CHECK_STATUS(hf_fabric_config_topology(cfg, &from_cfg), HF_OK);
        CHECK_STATUS(hf_topology_find_shortest_path(from_cfg, "gpu-01", "storage-01",
                                                    HF_METRIC_LATENCY, &r),
                     HF_OK);
        CHECK(r->path_len >= 2 && strcmp(r->path[0], "gpu-01") == 0);
        hf_route_free(r);
        hf_topology_manager_free(from_cfg);
        snprintf(path, sizeof path, "%s/saved.yaml", argv[3]);
        CHECK_STATUS(hf_save_fabric_config(cfg, path), HF_OK);
        CHECK_STATUS(hf_load_fabric_config(path, &again), HF_OK);
        hf_fabric_config_free(again);
        hf_fabric_config_free(cfg);
        hf_fabric_config_free(NULL);
        snprintf(path, sizeof path, "%s/broken.yaml", argv[3]);
        f = fopen(path, "w");
        CHECK(f != NULL);
        if (f) {
            fputs("fabric:\n  name: x\nnodes:\n  - node_id: n1\n    hardware_type: warp_drive\n"
                  "    bandwidth_gbps: 1\n    latency_ns: 1\n",
                  f);
            fclose(f);
        }
        CHECK_STATUS(hf_load_fabric_config(path, &cfg), HF_ERR_CONFIG);
        CHECK(strstr(hf_last_error_message(), "broken.yaml:5") != NULL);
        CHECK_STATUS(hf_load_fabric_config("/nonexistent/x.yaml", &cfg), HF_ERR_CONFIG);
        CHECK_STATUS(hf_load_fabric_config(NULL, &cfg), HF_ERR_NULL_ARGUMENT);
    }

    /* Hardware. */
    {
        bool ok = false;
        CHECK_STATUS(hf_detect_hardware_capabilities(&json), HF_OK);
        CHECK(json[0] == '[');
        hf_string_free(json);
        n = node("gpu", HF_HARDWARE_NVIDIA_H100, 400.0, 100);
        CHECK_STATUS(hf_validate_hardware_compatibility(&n, &ok), HF_OK);
        CHECK(ok);
        n = node("qpu", HF_HARDWARE_QUANTUM_QPU, 1.0, 100);
        CHECK_STATUS(hf_validate_hardware_compatibility(&n, &ok), HF_ERR_INVALID_NODE);
        CHECK_STATUS(hf_validate_hardware_compatibility(&n, NULL), HF_ERR_NULL_ARGUMENT);
    }

    /* What the kernel's io_uring offers the TCP transport. */
    {
        hf_transport_support t;
        memset(&t, 0x5a, sizeof t);
        CHECK_STATUS(hf_transport_probe(&t), HF_OK);
        CHECK(strlen(t.kernel) > 0 && strlen(t.kernel) < sizeof t.kernel);
        CHECK(strlen(t.unavailable_reason) < sizeof t.unavailable_reason);
        /* A reason exactly when there is no ring; nothing claimed without one. */
        CHECK(t.io_uring == (t.unavailable_reason[0] == '\0'));
        CHECK(t.io_uring || !(t.send_zc || t.recv_multishot || t.buffer_ring || t.sqpoll));
        CHECK(!t.recv_multishot || t.buffer_ring);
    }

    /* measure_network_performance between two instances. */
    {
        hf_protocol_options o;
        hf_protocol *a = NULL, *b = NULL;
        bool removed = false;
        hf_protocol_options_init(&o);
        o.fabric_name = argv[1];
        CHECK_STATUS(hf_protocol_new(&o, &a), HF_OK);
        CHECK_STATUS(hf_protocol_new(&o, &b), HF_OK);
        CHECK_STATUS(hf_measure_network_performance(a, 50, &json), HF_ERR_NODE_NOT_FOUND);
        n = node("m-a", HF_HARDWARE_CPU_SERVER, 100.0, 10);
        CHECK_STATUS(hf_register_node(a, &n), HF_OK);
        n = node("m-b", HF_HARDWARE_CPU_SERVER, 100.0, 10);
        CHECK_STATUS(hf_register_node(b, &n), HF_OK);
        CHECK_STATUS(hf_start_background_services(b), HF_OK);
        CHECK_STATUS(hf_measure_network_performance(a, 100, &json), HF_OK);
        CHECK(strstr(json, "\"pairs_measured\":1.0") != NULL);
        CHECK(strstr(json, "\"packet_loss_rate\":0.0") != NULL);
        hf_string_free(json);
        CHECK_STATUS(hf_measure_network_performance(NULL, 100, &json), HF_ERR_NULL_ARGUMENT);
        hf_protocol_free(a);
        hf_protocol_free(b);
        CHECK_STATUS(hf_fabric_remove(argv[1], &removed), HF_OK);
        CHECK(removed);
    }

    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("c control api: all checks passed\n");
    return 0;
}
