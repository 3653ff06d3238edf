// cluster: the header from C++. One process hosts a small cluster (two GPUs and a storage node
// whose handler answers with a checksum), sends a tensor to storage, pings it, and prints the
// topology info. RAII wrappers keep the handles tidy.
//
//   cluster
#include <hyperfabric.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

void check(hf_status s, const char *what) {
    if (s != HF_OK) {
        throw std::runtime_error(std::string(what) + ": " + hf_status_str(s) + " (" +
                                 hf_last_error_message() + ")");
    }
}

struct Protocol {
    hf_protocol *p = nullptr;
    std::string fabric;
    explicit Protocol(std::string name) : fabric(std::move(name)) {
        hf_protocol_options o;
        check(hf_protocol_options_init(&o), "hf_protocol_options_init");
        o.fabric_name = fabric.c_str();
        check(hf_protocol_new(&o, &p), "hf_protocol_new");
    }
    ~Protocol() {
        hf_protocol_free(p);
        hf_fabric_remove(fabric.c_str(), nullptr);
    }
    Protocol(const Protocol &) = delete;
    Protocol &operator=(const Protocol &) = delete;

    void add(const char *id, uint32_t hw, double gbps, uint64_t ns) {
        hf_node_signature n;
        check(hf_node_signature_init(&n), "hf_node_signature_init");
        n.node_id = id;
        n.hardware_type = hw;
        n.bandwidth_gbps = gbps;
        n.latency_ns = ns;
        check(hf_register_node(p, &n), "hf_register_node");
    }
};

// FNV-1a over the request: the storage node's answer.
hf_status checksum(void *, const hf_message_view *m, hf_response *response) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < m->len; i++) {
        h = (h ^ m->data[i]) * 0x100000001b3ULL;
    }
    return hf_response_set(response, reinterpret_cast<const uint8_t *>(&h), sizeof h);
}

}  // namespace

int main() {
    try {
        Protocol fabric("cluster-" + std::to_string(getpid()));
        fabric.add("gpu-01", HF_HARDWARE_NVIDIA_H100, 400.0, 100);
        fabric.add("gpu-02", HF_HARDWARE_NVIDIA_H100, 400.0, 100);
        fabric.add("storage-01", HF_HARDWARE_STORAGE_ARRAY, 200.0, 500);
        check(hf_on_receive(fabric.p, "storage-01", checksum, nullptr), "hf_on_receive");
        check(hf_start_background_services(fabric.p), "hf_start_background_services");

        std::vector<uint8_t> tensor(1 << 20);
        for (size_t i = 0; i < tensor.size(); i++) {
            tensor[i] = static_cast<uint8_t>(i * 31);
        }
        hf_bytes reply{};
        check(hf_send_data(fabric.p, "gpu-01", "storage-01", tensor.data(), tensor.size(), nullptr,
                           &reply),
              "hf_send_data");
        uint64_t got = 0, want = 0xcbf29ce484222325ULL;
        for (uint8_t b : tensor) {
            want = (want ^ b) * 0x100000001b3ULL;
        }
        if (reply.len == sizeof got) {
            std::copy(reply.data, reply.data + sizeof got, reinterpret_cast<uint8_t *>(&got));
        }
        hf_bytes_free(&reply);
        std::printf("1 MiB tensor gpu-01 -> storage-01: checksum %s\n", got == want ? "ok" : "BAD");

        hf_ping_result *ping = nullptr;
        check(hf_ping(fabric.p, "gpu-02", "storage-01", 64, 1000, &ping), "hf_ping");
        std::printf("ping gpu-02 -> storage-01: %llu ns, loss %.0f%%\n",
                    static_cast<unsigned long long>(ping->latency_ns), ping->packet_loss_rate * 100);
        hf_ping_result_free(ping);

        char *info = nullptr;
        check(hf_get_topology_info(fabric.p, &info), "hf_get_topology_info");
        std::printf("topology: %.120s...\n", info);
        hf_string_free(info);
        return got == want ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cluster: %s\n", e.what());
        return 1;
    }
}
