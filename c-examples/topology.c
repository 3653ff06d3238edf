/*
 * topology: loads a fabric configuration and prints the latency route between every pair of
 * its first nodes, then the bottlenecks (as JSON, the library's format for structured results).
 *
 *   topology CONFIG.yaml [MAX_NODES]
 */
#include <hyperfabric.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(hf_status s, const char *what) {
    if (s != HF_OK) {
        fprintf(stderr, "topology: %s: %s (%s)\n", what, hf_status_str(s), hf_last_error_message());
        exit(1);
    }
    return 0;
}

/* Node ids from the nodes' JSON ("node_id":"..."), at most `max`. */
static int node_ids(const char *json, char ids[][64], int max) {
    int n = 0;
    const char *p = json;
    while (n < max && (p = strstr(p, "\"node_id\":\"")) != NULL) {
        p += strlen("\"node_id\":\"");
        const char *end = strchr(p, '"');
        if (!end || end - p >= 64) {
            break;
        }
        memcpy(ids[n], p, (size_t)(end - p));
        ids[n][end - p] = '\0';
        n++;
        p = end;
    }
    return n;
}

int main(int argc, char **argv) {
    hf_fabric_config *cfg = NULL;
    hf_topology_manager *tm = NULL;
    char *info = NULL, *bottlenecks = NULL;
    char ids[16][64];
    int max = argc > 2 ? atoi(argv[2]) : 6, n;
    if (argc < 2) {
        fprintf(stderr, "usage: topology CONFIG.yaml [MAX_NODES]\n");
        return 2;
    }
    if (max < 2 || max > 16) {
        max = 6;
    }
    check(hf_load_fabric_config(argv[1], &cfg), "hf_load_fabric_config");
    check(hf_fabric_config_topology(cfg, &tm), "hf_fabric_config_topology");
    check(hf_topology_nodes(tm, &info), "hf_topology_nodes");
    n = node_ids(info, ids, max);
    printf("%-14s %-14s %10s %8s  %s\n", "source", "destination", "latency_ns", "gbit_s", "path");
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            hf_route *r = NULL;
            hf_status s;
            if (i == j) {
                continue;
            }
            s = hf_topology_find_shortest_path(tm, ids[i], ids[j], HF_METRIC_LATENCY, &r);
            if (s != HF_OK) {
                printf("%-14s %-14s %10s %8s  %s\n", ids[i], ids[j], "-", "-", hf_status_str(s));
                continue;
            }
            printf("%-14s %-14s %10llu %8.1f  ", ids[i], ids[j], (unsigned long long)r->latency_ns,
                   r->bandwidth_gbps);
            for (size_t k = 0; k < r->path_len; k++) {
                printf("%s%s", k ? " -> " : "", r->path[k]);
            }
            printf("\n");
            hf_route_free(r);
        }
    }
    check(hf_topology_analyze_bottlenecks(tm, &bottlenecks), "hf_topology_analyze_bottlenecks");
    printf("bottlenecks: %s\n", bottlenecks);
    hf_string_free(bottlenecks);
    hf_string_free(info);
    hf_topology_manager_free(tm);
    hf_fabric_config_free(cfg);
    return 0;
}
