/*
 * NULL for every pointer argument of the C API that api.c and control.c do not already pass
 * NULL: each call gets valid values everywhere else and must return HF_ERR_NULL_ARGUMENT
 * (or, where the header says NULL is allowed, succeed). Run under ASan/UBSan by
 * tests/c_api.rs.
 *
 *   nulls FABRIC EXAMPLES_DIR
 */
#include "hyperfabric.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

#define NUL HF_ERR_NULL_ARGUMENT

int main(int argc, char **argv) {
    hf_protocol_options o;
    hf_protocol *p = NULL, *none = NULL;
    hf_node_signature n;
    hf_buffer_manager *pool = NULL, *shared = NULL;
    hf_buffer *buf = NULL, *nobuf = NULL;
    hf_topology_manager *tm = NULL;
    hf_fabric_config *cfg = NULL;
    hf_sender *tx = NULL;
    hf_receiver *rx = NULL;
    hf_request *req = NULL;
    hf_route *route = NULL;
    hf_message *msg = NULL;
    hf_ping_result *ping = NULL;
    hf_bytes bytes = {NULL, 0, 0};
    char *json = NULL, *id = NULL, path[512];
    const char *name = NULL;
    uint8_t data[16] = {1, 2, 3}, blob[HF_ADDRESS_MAX];
    uint8_t *mem = NULL;
    size_t len = 0, cap = 0;
    uint32_t src = 0;
    bool flag = false;
    if (argc < 3) {
        fprintf(stderr, "usage: nulls FABRIC EXAMPLES_DIR\n");
        return 2;
    }

    /* Valid objects to pass beside the NULL under test. */
    hf_protocol_options_init(&o);
    o.fabric_name = argv[1];
    CHECK_STATUS(hf_protocol_new(NULL, &none), HF_OK); /* NULL options: the defaults */
    hf_protocol_free(none);
    hf_fabric_remove("default", NULL); /* left alone if another process uses it */
    CHECK_STATUS(hf_protocol_new(&o, &p), HF_OK);
    hf_node_signature_init(&n);
    n.node_id = "n1";
    n.bandwidth_gbps = 100.0;
    n.latency_ns = 10;
    CHECK_STATUS(hf_register_node(p, &n), HF_OK);
    n.node_id = "n2";
    CHECK_STATUS(hf_register_node(p, &n), HF_OK);
    CHECK_STATUS(hf_buffer_manager_new(2, 64, &pool), HF_OK);
    CHECK_STATUS(hf_protocol_create_buffer_manager(p, 2, 64, &shared), HF_OK);
    CHECK_STATUS(hf_buffer_manager_acquire(pool, &buf), HF_OK);
    CHECK_STATUS(hf_buffer_write(buf, data, 3, 0, false, NULL), HF_OK); /* written optional */
    CHECK_STATUS(hf_topology_manager_new(true, &tm), HF_OK);
    CHECK_STATUS(hf_topology_add_node(tm, &n), HF_OK);
    n.node_id = "n1";
    CHECK_STATUS(hf_topology_add_node(tm, &n), HF_OK);
    CHECK_STATUS(hf_topology_add_link(tm, "n1", "n2", 0, 0.0), HF_OK);
    snprintf(path, sizeof path, "%s/ai-cluster.yaml", argv[2]);
    CHECK_STATUS(hf_load_fabric_config(path, &cfg), HF_OK);
    CHECK_STATUS(hf_open_sender(p, "n1", "n2", &tx), HF_OK);
    CHECK_STATUS(hf_open_receiver(p, "n2", &rx), HF_OK);
    CHECK_STATUS(hf_send_data_nb(p, "n1", "n2", data, 3, NULL, &req), HF_OK);

    /* Buffers. */
    CHECK_STATUS(hf_protocol_create_buffer_manager(NULL, 2, 64, &pool), NUL);
    CHECK_STATUS(hf_protocol_create_buffer_manager(p, 2, 64, NULL), NUL);
    CHECK_STATUS(hf_buffer_manager_acquire(NULL, &nobuf), NUL);
    CHECK_STATUS(hf_buffer_manager_acquire(pool, NULL), NUL);
    CHECK_STATUS(hf_buffer_manager_available(NULL, &len), NUL);
    CHECK_STATUS(hf_buffer_manager_available(pool, NULL), NUL);
    CHECK_STATUS(hf_zero_copy_buffer_new(8, false, false, NULL), NUL);
    CHECK_STATUS(hf_buffer_write(buf, NULL, 3, 0, false, &len), NUL);
    CHECK_STATUS(hf_buffer_read(NULL, 3, 0, false, &bytes), NUL);
    CHECK_STATUS(hf_buffer_read(buf, 3, 0, false, NULL), NUL);
    CHECK_STATUS(hf_buffer_data(NULL, &mem, &cap), NUL);
    CHECK_STATUS(hf_buffer_data(buf, NULL, &cap), NUL);
    CHECK_STATUS(hf_buffer_data(buf, &mem, NULL), NUL);
    CHECK_STATUS(hf_buffer_set_len(NULL, 1), NUL);
    CHECK_STATUS(hf_buffer_len(NULL, &len), NUL);
    CHECK_STATUS(hf_buffer_len(buf, NULL), NUL);
    /* The sends consume their buffer whatever the outcome: a fresh one each time. */
    CHECK_STATUS(hf_buffer_manager_acquire(shared, &nobuf), HF_OK);
    CHECK_STATUS(hf_send_buffer(NULL, "n1", "n2", nobuf, NULL, &bytes), NUL);
    CHECK_STATUS(hf_buffer_manager_acquire(shared, &nobuf), HF_OK);
    CHECK_STATUS(hf_send_buffer(p, NULL, "n2", nobuf, NULL, &bytes), NUL);
    CHECK_STATUS(hf_buffer_manager_acquire(shared, &nobuf), HF_OK);
    CHECK_STATUS(hf_send_buffer(p, "n1", NULL, nobuf, NULL, &bytes), NUL);
    CHECK_STATUS(hf_send_buffer(p, "n1", "n2", NULL, NULL, &bytes), NUL);
    CHECK_STATUS(hf_buffer_manager_acquire(shared, &nobuf), HF_OK);
    CHECK_STATUS(hf_send_buffer(p, "n1", "n2", nobuf, NULL, NULL), NUL);
    CHECK_STATUS(hf_buffer_manager_acquire(shared, &nobuf), HF_OK);
    CHECK_STATUS(hf_post_buffer(NULL, "n1", "n2", nobuf, NULL), NUL);
    CHECK_STATUS(hf_buffer_manager_acquire(shared, &nobuf), HF_OK);
    CHECK_STATUS(hf_post_buffer(p, NULL, "n2", nobuf, NULL), NUL);
    CHECK_STATUS(hf_buffer_manager_acquire(shared, &nobuf), HF_OK);
    CHECK_STATUS(hf_post_buffer(p, "n1", NULL, nobuf, NULL), NUL);
    CHECK_STATUS(hf_buffer_manager_available(shared, &len), HF_OK);
    if (len != 2) {
        fprintf(stderr, "consumed buffers did not return to their pool (%zu free)\n", len);
        failures++;
    }

    /* Topology, routing, configuration, hardware, measurement. */
    CHECK_STATUS(hf_topology_add_node(NULL, &n), NUL);
    CHECK_STATUS(hf_topology_remove_node(NULL, "n1"), NUL);
    CHECK_STATUS(hf_topology_remove_node(tm, NULL), NUL);
    CHECK_STATUS(hf_topology_add_link(NULL, "n1", "n2", 0, 0.0), NUL);
    CHECK_STATUS(hf_topology_add_link(tm, "n1", NULL, 0, 0.0), NUL);
    CHECK_STATUS(hf_topology_remove_link(NULL, "n1", "n2"), NUL);
    CHECK_STATUS(hf_topology_remove_link(tm, NULL, "n2"), NUL);
    CHECK_STATUS(hf_topology_remove_link(tm, "n1", NULL), NUL);
    CHECK_STATUS(hf_topology_find_shortest_path(NULL, "n1", "n2", 0, &route), NUL);
    CHECK_STATUS(hf_topology_find_shortest_path(tm, NULL, "n2", 0, &route), NUL);
    CHECK_STATUS(hf_topology_find_shortest_path(tm, "n1", NULL, 0, &route), NUL);
    CHECK_STATUS(hf_find_optimal_path(NULL, "n1", "n2", HF_DATA_GENERIC, 0, 0.0, &route), NUL);
    CHECK_STATUS(hf_find_optimal_path(tm, NULL, "n2", HF_DATA_GENERIC, 0, 0.0, &route), NUL);
    CHECK_STATUS(hf_find_optimal_path(tm, "n1", NULL, HF_DATA_GENERIC, 0, 0.0, &route), NUL);
    CHECK_STATUS(hf_find_optimal_path(tm, "n1", "n2", HF_DATA_GENERIC, 0, 0.0, NULL), NUL);
    CHECK_STATUS(hf_update_link_metrics(NULL, "n1", "n2", 1, 1.0, 0.0), NUL);
    CHECK_STATUS(hf_update_link_metrics(tm, NULL, "n2", 1, 1.0, 0.0), NUL);
    CHECK_STATUS(hf_update_link_metrics(tm, "n1", NULL, 1, 1.0, 0.0), NUL);
    CHECK_STATUS(hf_topology_analyze_bottlenecks(NULL, &json), NUL);
    CHECK_STATUS(hf_topology_analyze_bottlenecks(tm, NULL), NUL);
    CHECK_STATUS(hf_topology_nodes(NULL, &json), NUL);
    CHECK_STATUS(hf_topology_nodes(tm, NULL), NUL);
    CHECK_STATUS(hf_topology_get_info(NULL, &json), NUL);
    CHECK_STATUS(hf_load_fabric_config(path, NULL), NUL);
    CHECK_STATUS(hf_save_fabric_config(NULL, path), NUL);
    CHECK_STATUS(hf_save_fabric_config(cfg, NULL), NUL);
    CHECK_STATUS(hf_fabric_config_topology(NULL, &tm), NUL);
    CHECK_STATUS(hf_fabric_config_topology(cfg, NULL), NUL);
    CHECK_STATUS(hf_detect_hardware_capabilities(NULL), NUL);
    CHECK_STATUS(hf_transport_probe(NULL), NUL);
    CHECK_STATUS(hf_validate_hardware_compatibility(NULL, &flag), NUL);
    CHECK_STATUS(hf_measure_network_performance(p, 10, NULL), NUL);

    /* Direct channels. */
    CHECK_STATUS(hf_open_sender(NULL, "n1", "n2", &tx), NUL);
    CHECK_STATUS(hf_open_sender(p, NULL, "n2", &tx), NUL);
    CHECK_STATUS(hf_open_sender(p, "n1", NULL, &tx), NUL);
    CHECK_STATUS(hf_sender_try_send(NULL, data, 3, &flag), NUL);
    CHECK_STATUS(hf_sender_try_send(tx, data, 3, NULL), NUL);
    CHECK_STATUS(hf_sender_send(NULL, data, 3, 10), NUL);
    CHECK_STATUS(hf_sender_send(tx, NULL, 3, 10), NUL);
    CHECK_STATUS(hf_sender_try_send_buffer(NULL, &buf, &flag), NUL);
    CHECK_STATUS(hf_sender_try_send_buffer(tx, NULL, &flag), NUL);
    CHECK_STATUS(hf_sender_try_send_buffer(tx, &buf, NULL), NUL);
    CHECK_STATUS(hf_open_receiver(NULL, "n2", &rx), NUL);
    CHECK_STATUS(hf_open_receiver(p, NULL, &rx), NUL);
    CHECK_STATUS(hf_open_receiver(p, "n1", NULL), NUL);
    CHECK_STATUS(hf_receiver_poll(NULL, NULL, NULL, &flag), NUL);
    CHECK_STATUS(hf_receiver_try_recv(NULL, data, sizeof data, &len, &src, &flag), NUL);
    CHECK_STATUS(hf_receiver_try_recv(rx, NULL, sizeof data, &len, &src, &flag), NUL);
    CHECK_STATUS(hf_receiver_try_recv(rx, data, sizeof data, NULL, &src, &flag), NUL);
    CHECK_STATUS(hf_receiver_try_recv(rx, data, sizeof data, &len, NULL, &flag), NUL);
    CHECK_STATUS(hf_receiver_try_recv(rx, data, sizeof data, &len, &src, NULL), NUL);
    CHECK_STATUS(hf_receiver_node_name(NULL, 0, &name), NUL);
    CHECK_STATUS(hf_receiver_node_name(rx, 0, NULL), NUL);

    /* Protocol calls. */
    CHECK_STATUS(hf_fabric_remove(argv[1], NULL), HF_OK); /* `removed` is optional */
    CHECK_STATUS(hf_node_address(NULL, "n1", blob, sizeof blob, &len), NUL);
    CHECK_STATUS(hf_node_address(p, NULL, blob, sizeof blob, &len), NUL);
    CHECK_STATUS(hf_insert_peer(NULL, blob, 8, &id), NUL);
    CHECK_STATUS(hf_send_data_nb(NULL, "n1", "n2", data, 3, NULL, &req), NUL);
    CHECK_STATUS(hf_send_data_nb(p, NULL, "n2", data, 3, NULL, &req), NUL);
    CHECK_STATUS(hf_send_data_nb(p, "n1", NULL, data, 3, NULL, &req), NUL);
    CHECK_STATUS(hf_send_data_nb(p, "n1", "n2", NULL, 3, NULL, &req), NUL);
    CHECK_STATUS(hf_request_test(req, &flag, NULL), NUL);
    CHECK_STATUS(hf_request_wait(req, NULL), NUL);
    {
        hf_request *reqs[1] = {req};
        hf_status st[1] = {0};
        hf_bytes rb[1] = {{NULL, 0, 0}};
        CHECK_STATUS(hf_request_wait_any(NULL, 1, 0, &len, &bytes), NUL);
        CHECK_STATUS(hf_request_wait_any(reqs, 1, 0, NULL, &bytes), NUL);
        CHECK_STATUS(hf_request_wait_any(reqs, 1, 0, &len, NULL), NUL);
        CHECK_STATUS(hf_request_wait_all(NULL, 1, 0, st, rb), NUL);
        CHECK_STATUS(hf_request_wait_all(reqs, 1, 0, NULL, rb), NUL);
        CHECK_STATUS(hf_request_wait_all(reqs, 1, 0, st, NULL), NUL);
        CHECK_STATUS(hf_request_cancel(NULL), NUL);
    }
    CHECK_STATUS(hf_post(p, NULL, "n2", data, 3, NULL), NUL);
    CHECK_STATUS(hf_post(p, "n1", NULL, data, 3, NULL), NUL);
    CHECK_STATUS(hf_post(p, "n1", "n2", NULL, 3, NULL), NUL);
    {
        hf_endpoint *ep = NULL;
        hf_bytes eresp = {NULL, 0, 0};
        CHECK_STATUS(hf_endpoint_create(NULL, "n1", "n2", &ep), NUL);
        CHECK_STATUS(hf_endpoint_create(p, NULL, "n2", &ep), NUL);
        CHECK_STATUS(hf_endpoint_create(p, "n1", NULL, &ep), NUL);
        CHECK_STATUS(hf_endpoint_create(p, "n1", "n2", NULL), NUL);
        CHECK_STATUS(hf_endpoint_post(NULL, data, 3, NULL), NUL);
        CHECK_STATUS(hf_endpoint_post_batch(NULL, NULL, NULL, 0), NUL);
        CHECK_STATUS(hf_endpoint_send_data(NULL, data, 3, NULL, &eresp), NUL);
        CHECK_STATUS(hf_endpoint_send_data_nb(NULL, data, 3, NULL, &req), NUL);
        if (hf_endpoint_create(p, "n1", "n2", &ep) == HF_OK) {
            CHECK_STATUS(hf_endpoint_post(ep, NULL, 3, NULL), NUL);
            CHECK_STATUS(hf_endpoint_send_data(ep, data, 3, NULL, NULL), NUL);
            CHECK_STATUS(hf_endpoint_send_data_nb(ep, data, 3, NULL, NULL), NUL);
            hf_endpoint_free(ep);
        }
    }
    {
        uint8_t rbuf[8];
        hf_recv_info rinfo;
        CHECK_STATUS(hf_recv_into(NULL, "n2", 0, rbuf, sizeof rbuf, &rinfo), NUL);
        CHECK_STATUS(hf_recv_into(p, NULL, 0, rbuf, sizeof rbuf, &rinfo), NUL);
        CHECK_STATUS(hf_recv_into(p, "n2", 0, NULL, sizeof rbuf, &rinfo), NUL);
        CHECK_STATUS(hf_recv_into(p, "n2", 0, rbuf, sizeof rbuf, NULL), NUL);
        size_t rcount = 0;
        CHECK_STATUS(hf_recv_batch(NULL, "n2", 0, 1, NULL, NULL, &rcount), NUL);
        CHECK_STATUS(hf_recv_batch(p, NULL, 0, 1, NULL, NULL, &rcount), NUL);
        CHECK_STATUS(hf_recv_batch(p, "n2", 0, 1, NULL, NULL, &rcount), NUL);
        CHECK_STATUS(hf_recv_batch(p, "n2", 0, 1, NULL, NULL, NULL), NUL);
    }
    CHECK_STATUS(hf_recv(NULL, "n2", 0, &msg), NUL);
    CHECK_STATUS(hf_recv(p, NULL, 0, &msg), NUL);
    CHECK_STATUS(hf_response_set(NULL, data, 3), NUL);
    {
        uint8_t *out = NULL;
        CHECK_STATUS(hf_response_buffer(NULL, 3, &out), NUL);
    }
    CHECK_STATUS(hf_ping(NULL, "n1", "n2", 8, 10, &ping), NUL);
    CHECK_STATUS(hf_ping(p, NULL, "n2", 8, 10, &ping), NUL);
    CHECK_STATUS(hf_ping(p, "n1", NULL, 8, 10, &ping), NUL);
    CHECK_STATUS(hf_create_zone(NULL, NULL), NUL);
    CHECK_STATUS(hf_assign_to_zone(NULL, "z", "n1"), NUL);
    CHECK_STATUS(hf_assign_to_zone(p, NULL, "n1"), NUL);
    CHECK_STATUS(hf_get_topology_info(NULL, &json), NUL);

    hf_request_free(req);
    hf_sender_free(tx);
    hf_receiver_free(rx);
    hf_buffer_free(buf);
    hf_buffer_manager_free(pool);
    hf_buffer_manager_free(shared);
    hf_topology_manager_free(tm);
    hf_fabric_config_free(cfg);
    hf_protocol_free(p);
    CHECK_STATUS(hf_fabric_remove(argv[1], &flag), HF_OK);
    if (!flag) {
        fprintf(stderr, "the fabric was not removed\n");
        failures++;
    }
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("c null arguments: all checks passed\n");
    return 0;
}
