/*
 * HyperFabric C API.
 *
 * Generated from src/ffi by cbindgen; do not edit. Regenerate with
 *   HF_UPDATE_HEADER=1 cargo build
 *
 * Conventions: fallible calls return an hf_status (HF_OK = 0, negative codes in blocks of 100
 * per error category, see hf_status_category); hf_last_error_message() gives the detail of the
 * thread's last failure. Out-parameters come last and are written only on success. Option
 * structs start with struct_size and have an _init function that fills the defaults. Enums
 * cross as uint32_t and are validated. Every handle or result the library hands out has a
 * _free function; passing NULL to it does nothing.
 *
 * Progress: with hf_start_background_services an engine thread delivers messages, runs
 * handlers and answers requests and pings. Without it the engine moves only inside calls:
 * the calls that wait (hf_send_data, hf_request_wait, hf_request_wait_any,
 * hf_request_wait_all, hf_recv, hf_ping) drive it until they return, hf_request_test and
 * hf_progress make one pass, and a send waiting for room in a full ring drains this
 * process's rings. Handlers run on the thread that drives the engine. A process busy
 * elsewhere answers nothing meanwhile: call hf_progress in long loops, or start the
 * background services.
 *
 * Processes: a protocol belongs to the process that created it, and so does everything made
 * with it (requests, endpoints, senders, receivers, messages, pools from
 * hf_protocol_create_buffer_manager and their buffers). In the child of fork() every call on
 * them returns HF_ERR_INVALID_ARGUMENT ("this protocol was created by process N; after
 * fork() create a new one") and their _free functions release nothing of the parent's; the
 * child creates a protocol of its own.
 */

#ifndef HYPERFABRIC_H
#define HYPERFABRIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Largest address blob `hf_node_address` writes.
#define HF_ADDRESS_MAX 256

// The `*index` of `hf_request_wait_any` when no request completed.
#define HF_INDEX_NONE (size_t)-1

// Latency budget of quantum control traffic, ns (the reference's constant).
#define HF_MAX_LATENCY_QUANTUM_NS 100000

// Latency budget of AI inference traffic, ns.
#define HF_MAX_LATENCY_AI_INFERENCE_NS 1000000

// Latency budget of training traffic, ns.
#define HF_MAX_LATENCY_TRAINING_NS 10000000

// Default zero-copy buffer size, bytes.
#define HF_DEFAULT_BUFFER_SIZE 65536

// Buffer size for large transfers, bytes.
#define HF_LARGE_BUFFER_SIZE 1048576

// Buffer size for quantum state transfers, bytes.
#define HF_QUANTUM_BUFFER_SIZE 4096

// Smallest node bandwidth the fabric supports, Gbit/s.
#define HF_MIN_BANDWIDTH_GBPS 1.0

// Largest node bandwidth the fabric supports, Gbit/s.
#define HF_MAX_BANDWIDTH_GBPS 1000.0

// Smallest coherence time a QPU must declare, µs.
#define HF_QUANTUM_COHERENCE_THRESHOLD_US 10.0

// Largest number of nodes sharing an entanglement-requiring route or zone.
#define HF_MAX_QUANTUM_ENTANGLED_NODES 100

// Longest node or zone id, bytes.
#define HF_MAX_NODE_ID_LEN 63

// Hardware of a node (`hf_node_signature.hardware_type`).
enum hf_hardware_type
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    // NVIDIA H100 GPU.
    HF_HARDWARE_NVIDIA_H100 = 0,
    // NVIDIA A100 GPU.
    HF_HARDWARE_NVIDIA_A100 = 1,
    // NVIDIA RTX 4090 GPU.
    HF_HARDWARE_NVIDIA_RTX4090 = 2,
    // AMD Instinct MI300X.
    HF_HARDWARE_AMD_MI300X = 3,
    // AMD Instinct MI250X.
    HF_HARDWARE_AMD_MI250X = 4,
    // Intel Gaudi 2.
    HF_HARDWARE_INTEL_GAUDI2 = 5,
    // Gate-based quantum processing unit.
    HF_HARDWARE_QUANTUM_QPU = 6,
    // Quantum annealer.
    HF_HARDWARE_QUANTUM_ANNEALER = 7,
    // Neuromorphic chip.
    HF_HARDWARE_NEUROMORPHIC_CHIP = 8,
    // Intel Loihi.
    HF_HARDWARE_INTEL_LOIHI = 9,
    // Photonic switch.
    HF_HARDWARE_PHOTONIC_SWITCH = 10,
    // Optical interconnect.
    HF_HARDWARE_OPTICAL_INTERCONNECT = 11,
    // CPU server.
    HF_HARDWARE_CPU_SERVER = 12,
    // Storage array.
    HF_HARDWARE_STORAGE_ARRAY = 13,
    // Network switch.
    HF_HARDWARE_NETWORK_SWITCH = 14,
    // Anything else.
    HF_HARDWARE_CUSTOM = 15,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum hf_hardware_type hf_hardware_type;
#else
typedef uint32_t hf_hardware_type;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

// Kind of data of a message (`hf_send_options.data_type`).
enum hf_data_type
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    // Tensor.
    HF_DATA_TENSOR = 0,
    // Model parameters.
    HF_DATA_PARAMETER = 1,
    // Gradients.
    HF_DATA_GRADIENT = 2,
    // Activations.
    HF_DATA_ACTIVATION = 3,
    // Embeddings.
    HF_DATA_EMBEDDING = 4,
    // Quantum state (coherence-deadline routed).
    HF_DATA_QUANTUM_STATE = 5,
    // Quantum circuit (coherence-deadline routed).
    HF_DATA_QUANTUM_CIRCUIT = 6,
    // Neuromorphic spike event.
    HF_DATA_NEUROMORPHIC_SPIKE = 7,
    // Train of spike events.
    HF_DATA_SPIKE_TRAIN = 8,
    // Control message.
    HF_DATA_CONTROL_MESSAGE = 9,
    // Metadata.
    HF_DATA_METADATA = 10,
    // Heartbeat.
    HF_DATA_HEARTBEAT = 11,
    // Generic data (the default).
    HF_DATA_GENERIC = 12,
    // Binary blob.
    HF_DATA_BINARY = 13,
    // JSON document.
    HF_DATA_JSON = 14,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum hf_data_type hf_data_type;
#else
typedef uint32_t hf_data_type;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

// Quality-of-service class (`hf_send_options.priority`).
enum hf_packet_priority
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    // Real-time critical.
    HF_PRIORITY_ULTRA_HIGH = 0,
    // Low-latency applications.
    HF_PRIORITY_HIGH = 1,
    // Standard applications (the default).
    HF_PRIORITY_MEDIUM = 2,
    // Background tasks.
    HF_PRIORITY_LOW = 3,
    // Large transfers.
    HF_PRIORITY_BULK = 4,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum hf_packet_priority hf_packet_priority;
#else
typedef uint32_t hf_packet_priority;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

// Workload class of a zone (`hf_fabric_zone.zone_type`).
enum hf_zone_type
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    // AI training cluster.
    HF_ZONE_COMPUTE_CLUSTER = 0,
    // Real-time inference.
    HF_ZONE_INFERENCE_FARM = 1,
    // Storage systems.
    HF_ZONE_STORAGE_TIER = 2,
    // Quantum processing.
    HF_ZONE_QUANTUM_REALM = 3,
    // Neuromorphic computing.
    HF_ZONE_NEUROMORPHIC_NET = 4,
    // Edge computing.
    HF_ZONE_EDGE_NETWORK = 5,
    // Management and monitoring; its members may talk to every zone.
    HF_ZONE_CONTROL_PLANE = 6,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum hf_zone_type hf_zone_type;
#else
typedef uint32_t hf_zone_type;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

// Isolation of a zone (`hf_fabric_zone.isolation_level`).
enum hf_isolation_level
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    // No rule.
    HF_ISOLATION_NONE = 0,
    // Inter-zone traffic is rate-limited to leave the reservation.
    HF_ISOLATION_LOW = 1,
    // Only members and control-plane nodes exchange traffic with members.
    HF_ISOLATION_MEDIUM = 2,
    // Medium, and routes between members never transit outside the zone.
    HF_ISOLATION_HIGH = 3,
    // High, and traffic is always encrypted with the zone key.
    HF_ISOLATION_QUANTUM_SECURE = 4,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum hf_isolation_level hf_isolation_level;
#else
typedef uint32_t hf_isolation_level;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

// How the background engine thread waits when idle (`hf_protocol_options.idle_strategy`).
enum hf_idle_strategy
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    // Spin, then sleep on a doorbell (the default: an idle process uses almost no CPU).
    HF_IDLE_ADAPTIVE = 0,
    // Poll without pause (lowest latency; one core busy).
    HF_IDLE_SPIN = 1,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum hf_idle_strategy hf_idle_strategy;
#else
typedef uint32_t hf_idle_strategy;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

// Route metric (`hf_topology_find_shortest_path`).
enum hf_metric
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    // Lowest path latency; ties: fewer hops.
    HF_METRIC_LATENCY = 0,
    // Widest path (largest bottleneck bandwidth); ties: lower latency, then fewer hops.
    HF_METRIC_BANDWIDTH = 1,
    // Fewest links; ties: lower latency.
    HF_METRIC_HOPS = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum hf_metric hf_metric;
#else
typedef uint32_t hf_metric;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

// One buffer, from a pool (returned to it by `hf_buffer_free`) or standalone.
typedef struct hf_buffer hf_buffer;

// A pool of equal buffers (thread-safe). Free it with `hf_buffer_manager_free`; buffers
// taken from it stay valid after that.
typedef struct hf_buffer_manager hf_buffer_manager;

// An endpoint: the fast path of `hf_post` and `hf_send_data` for one (source,
// destination) pair. Use it from one thread at a time (give each sending thread its own);
// a second thread calling while another is inside gets `HF_ERR_INVALID_ARGUMENT`.
// Messages of one endpoint arrive in order. Free it with `hf_endpoint_free` before the
// protocol.
typedef struct hf_endpoint hf_endpoint;

// A fabric configuration read from YAML (the reference's configuration dictionary).
typedef struct hf_fabric_config hf_fabric_config;

// A registered range of this process's memory. Free it with `hf_mem_deregister`.
typedef struct hf_mem hf_mem;

// A message taken by `hf_recv`: read it with `hf_message_get_view`, release it with
// `hf_message_free` (a buffer sent by descriptor then returns to its sender's pool).
typedef struct hf_message hf_message;

// A protocol instance: the nodes this process hosts on one fabric. Thread-safe: any thread
// may call any `hf_` function on it.
//
// It belongs to the process that created it, with everything made through it (requests,
// endpoints, senders, receivers, messages, pools from `hf_protocol_create_buffer_manager`
// and their buffers): in the child of `fork()`, each call on them returns
// `HF_ERR_INVALID_ARGUMENT` ("this protocol was created by process N; after fork() create a
// new one") instead of touching the parent's rings, locks and engine, and their `_free`
// functions release nothing of the parent's. The child creates a protocol of its own.
typedef struct hf_protocol hf_protocol;

// The receiver of every direct channel to one node (`hf_open_receiver`). One thread at a
// time.
typedef struct hf_receiver hf_receiver;

// A request in flight (`hf_send_data_nb`, `hf_endpoint_send_data_nb`): complete it with
// `hf_request_test`, `hf_request_wait`, `hf_request_wait_any` or `hf_request_wait_all`, or
// abandon it with `hf_request_cancel`; then free it with `hf_request_free`. One thread at a
// time.
typedef struct hf_request hf_request;

// The response a handler gives (`hf_response_set`, `hf_response_buffer`): the engine's
// answer buffer, reused from one request to the next, during one handler call.
typedef struct hf_response hf_response;

// The sending end of a direct channel (`hf_open_sender`). One thread at a time.
typedef struct hf_sender hf_sender;

// A topology of nodes, links and zones with routing tables kept current (the reference's
// `TopologyManager`, with its `RoutingEngine`). Thread-safe.
typedef struct hf_topology_manager hf_topology_manager;

// The result of a fallible call: `HF_OK` (0), or a negative code in the block of 100 of its
// category (`hf_status_category`).
typedef int32_t hf_status;

// Bytes the library hands out (a response): read `data[0..len]`, then release with
// `hf_bytes_free`. A zeroed `hf_bytes` (NULL data) is empty.
typedef struct {
    // The bytes (NULL when `len` is 0).
    uint8_t *data;
    // Number of bytes.
    size_t len;
    // Allocation size, for `hf_bytes_free`.
    size_t capacity;
} hf_bytes;

// Options of a send (`hf_send_data`, `hf_post`, ...). Fill with `hf_send_options_init`; a
// NULL options pointer means the defaults.
typedef struct {
    // `sizeof(hf_send_options)`, set by `hf_send_options_init`.
    size_t struct_size;
    // An `hf_data_type` (default `HF_DATA_GENERIC`).
    uint32_t data_type;
    // An `hf_packet_priority` (default `HF_PRIORITY_MEDIUM`).
    uint32_t priority;
    // Refuse the send if the route is slower, ns; 0: no constraint (default).
    uint64_t latency_constraint_ns;
    // Route across quantum-capable nodes only (default false).
    bool requires_quantum_entanglement;
    // Compress the payload, kept only when smaller (default false).
    bool compression_enabled;
    // Seal the payload with the fabric key (default false).
    bool encryption_enabled;
    // Metadata delivered with the message, a JSON object; NULL: none (default).
    const char *metadata_json;
    // How long to wait, ms (default 5000).
    uint64_t timeout_ms;
} hf_send_options;

// A node signature (`hf_register_node`). Fill with `hf_node_signature_init`, then set at
// least `node_id`, `hardware_type`, `bandwidth_gbps` and `latency_ns`. Optional numbers are
// unset when negative (floating point) or 0 (counts); optional strings when NULL.
typedef struct {
    // `sizeof(hf_node_signature)`, set by `hf_node_signature_init`.
    size_t struct_size;
    // Unique id: 1 to 63 bytes of UTF-8, no control characters.
    const char *node_id;
    // An `hf_hardware_type`.
    uint32_t hardware_type;
    // Bandwidth, Gbit/s; positive.
    double bandwidth_gbps;
    // Latency, ns.
    uint64_t latency_ns;
    // Memory, GB; negative: unset.
    double memory_gb;
    // Compute units; 0: unset.
    uint64_t compute_units;
    // Power draw, W; negative: unset.
    double power_watts;
    // Rack position; NULL: unset.
    const char *rack_position;
    // Physical location; NULL: unset.
    const char *physical_location;
    // Quantum coherence time, µs (required for quantum processors); negative: unset.
    double quantum_coherence_time_us;
    // Neuromorphic neurons; 0: unset.
    uint64_t neuromorphic_neurons;
    // Photonic channels; 0: unset.
    uint64_t photonic_channels;
    // Metadata as a JSON object; NULL: none.
    const char *metadata_json;
} hf_node_signature;

// A route, owned by the library: release with `hf_route_free`.
typedef struct {
    // Node ids from source to destination.
    char **path;
    // Entries of `path`.
    size_t path_len;
    // Sum of link and node latencies, ns.
    uint64_t latency_ns;
    // Bottleneck bandwidth, Gbit/s.
    double bandwidth_gbps;
    // Links.
    uint32_t hops;
} hf_route;

// What the kernel's io_uring offers the TCP transport (see `hf_transport_probe`).
typedef struct {
    // The kernel release (`uname -r`), NUL-terminated.
    char kernel[65];
    // Whether an io_uring could be set up at all.
    bool io_uring;
    // Zero-copy sends (`IORING_OP_SEND_ZC`) completed on a TCP socket.
    bool send_zc;
    // A multishot receive delivered data into provided buffers and stayed armed.
    bool recv_multishot;
    // Provided-buffer rings (`IORING_REGISTER_PBUF_RING`) can be registered.
    bool buffer_ring;
    // A kernel submission thread (`IORING_SETUP_SQPOLL`) is allowed to this user.
    bool sqpoll;
    // `io_uring_enter` takes a timeout (an idle engine sleeps a bounded time in it).
    bool enter_timeout;
    // Why no io_uring could be set up (empty when one could), NUL-terminated, truncated.
    char unavailable_reason[128];
} hf_transport_support;

// Gets each message `hf_receiver_poll` takes: `user_data`, the source node's index, and the
// bytes, valid during the call only (read in place in the ring, or in the sender's buffer).
typedef void (*hf_receive_fn)(void *user_data,
                              uint32_t source,
                              const uint8_t *data,
                              size_t len);

// A borrowed view of a message: every pointer stays valid while the message (or, in a
// handler, the call) lives.
typedef struct {
    // Sending node id.
    const char *source;
    // Receiving node id.
    const char *destination;
    // Payload.
    const uint8_t *data;
    // Payload bytes.
    size_t len;
    // Metadata (a JSON object), or NULL.
    const uint8_t *metadata;
    // Metadata bytes.
    size_t metadata_len;
    // An `hf_data_type`.
    uint32_t data_type;
    // An `hf_packet_priority`.
    uint32_t priority;
    // Message id.
    uint64_t request_id;
    // Whether the sender waits for no response (`hf_post`).
    bool one_way;
} hf_message_view;

// A request handler (`hf_on_receive`): gets `user_data` and the message (valid during the
// call), may set the response with `hf_response_set` (a copy) or write it in place after
// `hf_response_buffer`, and returns `HF_OK` or an error
// status, which the requester receives as its error. It runs on the thread that drives the
// engine: the engine thread with background services, otherwise whichever thread is inside
// a call that drives it (see `hf_progress`). It must not call `hf_` functions on the same
// protocol but posts through an endpoint made before to a node of this host one hop away
// (`hf_endpoint_post`, up to 16 KiB); sends by node names (`hf_post`, `hf_send_data`) from
// a handler, and sends through an endpoint whose node is on another host or hops away,
// fail with `HF_ERR_INVALID_ARGUMENT`.
// While it runs the engine delivers nothing else (other handlers, and the answers to this
// process's requests, wait for it).
typedef hf_status (*hf_handler)(void *user_data,
                                const hf_message_view *message,
                                hf_response *response);

// Options of `hf_protocol_new`. Fill with `hf_protocol_options_init`, then change fields.
typedef struct {
    // `sizeof(hf_protocol_options)` of the header the program was built with, set by
    // `hf_protocol_options_init`. Fields are only ever appended: a program built against an
    // earlier header has a smaller struct, which is filled and read as it is, and the
    // fields it lacks keep their defaults (the layouts from the one that ends with
    // `tcp_sqpoll` are taken; any other size is refused).
    size_t struct_size;
    // Route on latency predicted from measurements (default false).
    bool enable_ml_routing;
    // Coherence-deadline routing for quantum traffic (default false).
    bool enable_quantum_optimization;
    // Delivery guarantees (default true): each message arrives exactly once and in order
    // per (source, destination, priority), or its sender is told (a request fails; a
    // one-way message fails the next send of the pair). Through forwarders, frames a hop
    // loses are sent again; straight over TCP, one-way messages a closed connection
    // carried unconfirmed are reported (some may have arrived). False: best effort. See
    // `docs/delivery.md`.
    bool enable_fault_tolerance;
    // Latency constraint of sends that give none, ns; 0: none (default).
    uint64_t default_latency_constraint_ns;
    // Buffers in the zero-copy pool (default 1000).
    uint32_t buffer_pool_size;
    // Largest frame in a ring, bytes; larger payloads are fragmented (default 65536).
    // Frames over TCP to the process hosting the destination carry 256 KiB of body
    // whatever this is.
    uint32_t max_packet_size;
    // Fabric name: its host state is `/dev/shm/hyperfabric-<uid>/<name>/`; NULL: `"default"`.
    const char *fabric_name;
    // An `hf_idle_strategy` (default `HF_IDLE_ADAPTIVE`).
    uint32_t idle_strategy;
    // Core the background thread is pinned to; -1: not pinned (default).
    int32_t engine_core;
    // 32-byte AES-256 fabric key for encrypted sends; NULL: none (default).
    const uint8_t *key;
    // From how many bytes `hf_endpoint_post_mem` lets the receiver copy the bytes once,
    // straight from this process's memory (smaller sends are posted through shared memory);
    // -1: measured once per process at the first such send (default; where the kernel's copy
    // never beats shared memory, as on some virtual machines, every send is posted); 0:
    // always.
    int64_t single_copy_from;
    // Whether `hf_post`, `hf_send_data` and `hf_send_data_nb` go through an endpoint the
    // calling thread keeps for the (source, destination) pair (default true; at most 32 per
    // thread, a ring file each; sends from one thread to one pair stay in order). false:
    // through the engine's lock and rings, for applications with many short-lived threads or
    // thousands of pairs per thread.
    bool endpoints_by_name;
    // Address and port to accept connections from other hosts on (`"0.0.0.0:7100"`; port
    // 0 picks a free one); NULL: none, unless the environment asks for TCP
    // (`HF_TRANSPORT=tcp`, see the README). With it, nodes of other hosts are reached by
    // `hf_insert_peer` and `hf_connect_host`.
    const char *tcp_listen;
    // Accept connections between hosts without a fabric key (default false: without `key`,
    // `hf_protocol_new` with `tcp_listen` fails).
    bool tcp_insecure;
    // Reach nodes of this host over TCP too when a connection hosts them (default false;
    // for measuring TCP on one machine).
    bool tcp_force;
    // With `tcp_listen`: poll the engine's io_uring with a kernel thread
    // (`IORING_SETUP_SQPOLL`, default false; `HF_TCP_SQPOLL=1` sets it for any TCP
    // configuration, `HF_TRANSPORT=tcp` included): receives complete without entering the kernel,
    // for a thread that spins while there is traffic. `hf_protocol_new` fails where the
    // kernel refuses it.
    bool tcp_sqpoll;
    // With `tcp_listen`: flights of frames (queued while a socket was full) of at least this
    // many bytes go out as zero-copy sends (`IORING_OP_SEND_ZC`) where the kernel has them;
    // 0 (the default) for 65536, negative for never. A connection whose kernel copies them
    // anyway (a peer on this host) sends plainly from then on. `HF_TCP_ZEROCOPY_MIN`
    // (`off` or bytes) overrides it.
    int64_t tcp_zerocopy_min;
} hf_protocol_options;

// What `hf_recv_into` received (its data is in the caller's buffer).
typedef struct {
    // Bytes of data written to the buffer (when the call failed with
    // `HF_ERR_BUFFER_OVERFLOW`: the size of the message, which stays queued).
    size_t len;
    // Sending node id, a NUL-terminated string valid for the life of the process.
    const char *source;
    // `HF_DATA_*`.
    uint32_t data_type;
    // `HF_PRIORITY_*`.
    uint32_t priority;
    // Message id.
    uint64_t request_id;
    // Whether the sender waits for no response.
    bool one_way;
    // Metadata sent with it (JSON object bytes; empty when none, else release with
    // `hf_bytes_free`).
    hf_bytes metadata;
} hf_recv_info;

// The outcome of `hf_ping`, owned by the library: release with `hf_ping_result_free`.
typedef struct {
    // Source node id.
    char *source;
    // Destination node id.
    char *destination;
    // Median round trip / 2, ns.
    uint64_t latency_ns;
    // Bandwidth of a pipelined burst of probes, Gbit/s.
    double bandwidth_gbps;
    // Node ids along the path the probes took, source first.
    char **path;
    // Entries of `path`.
    size_t path_len;
    // Share of probes that timed out.
    double packet_loss_rate;
    // Unix time of the ping, s.
    double timestamp;
    // Whether any probe came back.
    bool success;
} hf_ping_result;

// A zone specification (`hf_create_zone`). Fill with `hf_fabric_zone_init`.
typedef struct {
    // `sizeof(hf_fabric_zone)`, set by `hf_fabric_zone_init`.
    size_t struct_size;
    // Unique id: 1 to 63 bytes of UTF-8, no control characters.
    const char *zone_id;
    // An `hf_zone_type`.
    uint32_t zone_type;
    // An `hf_isolation_level`.
    uint32_t isolation_level;
    // Most members; positive.
    uint32_t max_nodes;
    // Bandwidth reserved, Gbit/s; positive.
    double required_bandwidth_gbps;
    // Free text; NULL: none.
    const char *description;
    // Members must be quantum-capable.
    bool quantum_coherence_required;
    // Neuromorphic traffic inside the zone is coalesced.
    bool neuromorphic_optimization;
} hf_fabric_zone;

// Gets each message of `hf_recv_batch`: `user_data` and a view valid during the call.
typedef void (*hf_message_fn)(void *user_data,
                              const hf_message_view *message);

// A bottleneck and what to do about it.
typedef struct {
    // A node id, or `a<->b` for a link.
    char *location;
    // What is short (`bandwidth`, `latency`, ...).
    char *bottleneck_type;
    // 0..1.
    double severity;
    // 0..1.
    double current_utilization;
    // What to do.
    char *recommended_action;
} hf_bottleneck;

// The topology report (`get_topology_info`), owned by the library: release with
// `hf_topology_report_free`.
typedef struct {
    // Registered nodes.
    size_t total_nodes;
    // Links.
    size_t total_links;
    // Zones.
    size_t zones;
    // Quantum processors.
    size_t quantum_enabled_nodes;
    // Neuromorphic processors.
    size_t neuromorphic_nodes;
    // Unix time of the report, s.
    double timestamp;
    // The bottlenecks, `bottlenecks_len` of them.
    hf_bottleneck *bottlenecks;
    // Entries of `bottlenecks`.
    size_t bottlenecks_len;
    // Names of the figures (`route_epoch`, `frames_sent`, ...), `metrics_len` of them.
    char **metric_names;
    // Their values, in the same order.
    double *metric_values;
    // Entries of `metric_names` and `metric_values`.
    size_t metrics_len;
} hf_topology_report;

// A node as a list shows it.
typedef struct {
    // Its id.
    char *node_id;
    // `hf_hardware_type` (`hf_hardware_type_name` gives its name).
    uint32_t hardware_type;
    // Gbit/s.
    double bandwidth_gbps;
    // ns.
    uint64_t latency_ns;
    // GB; negative when not given.
    double memory_gb;
    // Compute units; -1 when not given.
    int64_t compute_units;
    // The host it runs on, or NULL.
    char *host;
} hf_node_info;

// A list of nodes, owned by the library: release with `hf_node_list_free`.
typedef struct {
    // The nodes.
    hf_node_info *items;
    // Entries of `items`.
    size_t len;
} hf_node_list;

// A node of a running fabric as this host sees it (filled in by `hf_get_node_stats`; the
// caller owns it, nothing to free).
typedef struct {
    // Registered here by a live process.
    bool up;
    // The hosting process (0 when down).
    uint32_t pid;
    // Unix time of its registration (up) or of its leaving (down), s; 0 when never seen.
    double since_unix;
    // Messages its rings carried out (sends, forwards, answers).
    uint64_t sent_messages;
    // Their payload bytes.
    uint64_t sent_bytes;
    // Messages put into rings toward it.
    uint64_t received_messages;
    // Their payload bytes.
    uint64_t received_bytes;
    // Ring slots waiting for it now.
    uint64_t queued_slots;
} hf_node_stats;

// Success.
#define HF_OK 0

// A node with this id already exists (DuplicateNodeError).
#define HF_ERR_DUPLICATE_NODE -101

// The named node does not exist (NodeNotFoundError).
#define HF_ERR_NODE_NOT_FOUND -102

// A node specification is invalid (InvalidNodeError).
#define HF_ERR_INVALID_NODE -103

// No route satisfies the request (NoRouteFoundError).
#define HF_ERR_NO_ROUTE_FOUND -201

// The best route is slower than the latency constraint (LatencyConstraintViolationError).
#define HF_ERR_LATENCY_CONSTRAINT_VIOLATION -202

// The named link does not exist (LinkNotFoundError).
#define HF_ERR_LINK_NOT_FOUND -203

// No route meets the quantum coherence deadline (QuantumCoherenceError).
#define HF_ERR_QUANTUM_COHERENCE -301

// Data exceeds the buffer capacity (BufferOverflowError).
#define HF_ERR_BUFFER_OVERFLOW -401

// Not enough data in the buffer (BufferUnderflowError).
#define HF_ERR_BUFFER_UNDERFLOW -402

// Every buffer of the pool is in use (BufferExhaustedError).
#define HF_ERR_BUFFER_EXHAUSTED -403

// A zone with this id already exists (DuplicateZoneError).
#define HF_ERR_DUPLICATE_ZONE -501

// The named zone does not exist (ZoneNotFoundError).
#define HF_ERR_ZONE_NOT_FOUND -502

// A zone specification is invalid (InvalidZoneError).
#define HF_ERR_INVALID_ZONE -503

// The fabric cannot provide what the zone requires (InsufficientResourcesError).
#define HF_ERR_INSUFFICIENT_RESOURCES -504

// Traffic would cross a zone's isolation boundary (ZoneIsolationViolationError).
#define HF_ERR_ZONE_ISOLATION_VIOLATION -505

// A configuration file is unreadable or invalid (ConfigError).
#define HF_ERR_CONFIG -601

// An operating-system call failed (IOError).
#define HF_ERR_IO -701

// An operation did not complete in time (TimeoutError).
#define HF_ERR_TIMEOUT -801

// An argument is invalid (InvalidArgumentError).
#define HF_ERR_INVALID_ARGUMENT -901

// A pointer argument is NULL.
#define HF_ERR_NULL_ARGUMENT -902

// A string argument is not valid UTF-8.
#define HF_ERR_INVALID_UTF8 -903

// An enum argument holds no valid value.
#define HF_ERR_INVALID_ENUM -904

// The library failed internally (a bug: please report the message).
#define HF_ERR_PANIC -999

// A frame failed authentication: wrong key or tampered (AuthenticationError).
#define HF_ERR_AUTHENTICATION -1001

// A frame does not decode (MalformedFrameError).
#define HF_ERR_MALFORMED_FRAME -1002

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// A pool of `pool_size` buffers of `buffer_size` bytes in this process's memory, in `*out`
// (`HF_ERR_INVALID_ARGUMENT` for a zero or oversized count or size).
//
// # Safety
// `out` points to writable memory for a pointer.
hf_status hf_buffer_manager_new(size_t pool_size,
                                size_t buffer_size,
                                hf_buffer_manager **out);

// A pool whose buffers live in a shared segment of this process: they reach any node of the
// host by descriptor (`hf_send_buffer`, `hf_post_buffer`, `hf_sender_try_send_buffer`)
// without a copy.
//
// # Safety
// `protocol` is a live handle; `out` points to writable memory for a pointer.
hf_status hf_protocol_create_buffer_manager(const hf_protocol *protocol,
                                            size_t pool_size,
                                            size_t buffer_size,
                                            hf_buffer_manager **out);

// Releases a pool handle. NULL is ignored.
//
// # Safety
// `manager` is NULL or a handle not freed before.
void hf_buffer_manager_free(hf_buffer_manager *manager);

// Takes a free buffer into `*out` (`HF_ERR_BUFFER_EXHAUSTED` when all are in use).
// Lock-free.
//
// # Safety
// `manager` is a live handle; `out` points to writable memory for a pointer.
hf_status hf_buffer_manager_acquire(const hf_buffer_manager *manager,
                                    hf_buffer **out);

// Free buffers of the pool now, in `*available`.
//
// # Safety
// `manager` is a live handle; `available` points to writable memory.
hf_status hf_buffer_manager_available(const hf_buffer_manager *manager,
                                      size_t *available);

// A standalone buffer of `size` bytes (the reference's `ZeroCopyBuffer`): with
// `enable_compression` reads and writes compress by default; `enable_encryption` seals it
// when sent.
//
// # Safety
// `out` points to writable memory for a pointer.
hf_status hf_zero_copy_buffer_new(size_t size,
                                  bool enable_compression,
                                  bool enable_encryption,
                                  hf_buffer **out);

// Releases a buffer (a pooled one returns to its pool). NULL is ignored.
//
// # Safety
// `buffer` is NULL or a handle not freed or consumed before.
void hf_buffer_free(hf_buffer *buffer);

// Writes `len` bytes at `offset` (lz4-compressed with a 4-byte length prefix when `compress`
// or the buffer's default says so); `*written` gets the bytes stored (fewer than `len` when
// compressed: the next free offset is `offset + *written`; `hf_buffer_read` takes `len`).
// `HF_ERR_BUFFER_OVERFLOW`, with nothing written, when they do not fit.
//
// # Safety
// `buffer` is a live handle; `data` points to `len` readable bytes; `written` is NULL or
// writable.
hf_status hf_buffer_write(hf_buffer *buffer,
                          const uint8_t *data,
                          size_t len,
                          size_t offset,
                          bool compress,
                          size_t *written);

// Reads `size` bytes of data at `offset` into `*out` (release with `hf_bytes_free`).
// `size` is always the length of the data as the caller wrote it: for data written
// compressed (read with `decompress` or the buffer's default), the original, uncompressed
// length passed to `hf_buffer_write`, not the `*written` it returned; a smaller `size`
// gives the first bytes. `HF_ERR_BUFFER_UNDERFLOW` when fewer bytes were written,
// `HF_ERR_MALFORMED_FRAME` when the bytes at `offset` are not compressed data.
//
// # Safety
// `buffer` is a live handle; `out` points to writable memory for an `hf_bytes`.
hf_status hf_buffer_read(const hf_buffer *buffer,
                         size_t size,
                         size_t offset,
                         bool decompress,
                         hf_bytes *out);

// The buffer's memory for filling in place: `*data` (valid until the buffer is freed or
// consumed) and `*capacity`; mark the bytes written with `hf_buffer_set_len`.
//
// # Safety
// `buffer` is a live handle; `data` and `capacity` point to writable memory.
hf_status hf_buffer_data(hf_buffer *buffer,
                         uint8_t **data,
                         size_t *capacity);

// Marks the first `len` bytes valid (`HF_ERR_BUFFER_OVERFLOW` beyond the capacity).
//
// # Safety
// `buffer` is a live handle.
hf_status hf_buffer_set_len(hf_buffer *buffer,
                            size_t len);

// Bytes of valid data, in `*len`.
//
// # Safety
// `buffer` is a live handle; `len` points to writable memory.
hf_status hf_buffer_len(const hf_buffer *buffer,
                        size_t *len);

// `hf_send_data` of a buffer's valid bytes: by descriptor (zero copy) when it comes from
// `hf_protocol_create_buffer_manager` and neither compression nor encryption is asked,
// else as bytes. The call consumes `buffer` whatever its outcome.
//
// # Safety
// As `hf_send_data`; `buffer` is a live handle, not used after the call.
hf_status hf_send_buffer(const hf_protocol *protocol,
                         const char *source,
                         const char *destination,
                         hf_buffer *buffer,
                         const hf_send_options *options,
                         hf_bytes *response);

// `hf_post` of a buffer (zero copy under the conditions of `hf_send_buffer`). The call
// consumes `buffer` whatever its outcome.
//
// # Safety
// As `hf_post`; `buffer` is a live handle, not used after the call.
hf_status hf_post_buffer(const hf_protocol *protocol,
                         const char *source,
                         const char *destination,
                         hf_buffer *buffer,
                         const hf_send_options *options);

// An empty topology manager in `*out`; `enable_auto_optimization` spreads flows over
// equal-cost next hops.
//
// # Safety
// `out` points to writable memory for a pointer.
hf_status hf_topology_manager_new(bool enable_auto_optimization,
                                  hf_topology_manager **out);

// Releases a topology manager. NULL is ignored.
//
// # Safety
// `manager` is NULL or a handle not freed before.
void hf_topology_manager_free(hf_topology_manager *manager);

// Adds a node (`HF_ERR_DUPLICATE_NODE`, `HF_ERR_INVALID_NODE`).
//
// # Safety
// `manager` is a live handle; `node` an initialised signature.
hf_status hf_topology_add_node(const hf_topology_manager *manager,
                               const hf_node_signature *node);

// Removes a node with its links and memberships (`HF_ERR_NODE_NOT_FOUND`).
//
// # Safety
// `manager` is a live handle; `node_id` a NUL-terminated string.
hf_status hf_topology_remove_node(const hf_topology_manager *manager,
                                  const char *node_id);

// Declares a link between two nodes; `latency_ns` 0 and `bandwidth_gbps` <= 0 take the
// values derived from the nodes (`HF_ERR_NODE_NOT_FOUND`, `HF_ERR_INVALID_ARGUMENT`).
//
// # Safety
// `manager` is a live handle; the ids are NUL-terminated strings.
hf_status hf_topology_add_link(const hf_topology_manager *manager,
                               const char *a,
                               const char *b,
                               uint64_t latency_ns,
                               double bandwidth_gbps);

// Removes a declared link (`HF_ERR_LINK_NOT_FOUND`).
//
// # Safety
// `manager` is a live handle; the ids are NUL-terminated strings.
hf_status hf_topology_remove_link(const hf_topology_manager *manager,
                                  const char *a,
                                  const char *b);

// The best route by `metric` (an `hf_metric`) into `*route` (`HF_ERR_NODE_NOT_FOUND`,
// `HF_ERR_NO_ROUTE_FOUND`, `HF_ERR_ZONE_ISOLATION_VIOLATION`).
//
// # Safety
// `manager` is a live handle; the ids are NUL-terminated strings; `route` writable.
hf_status hf_topology_find_shortest_path(const hf_topology_manager *manager,
                                         const char *source,
                                         const char *destination,
                                         uint32_t metric,
                                         hf_route **route);

// The reference's `RoutingEngine.find_optimal_path`: the lowest-latency route (learned
// latency with ML routing) for data of `data_type` that meets `latency_constraint_ns` (0:
// none) and `bandwidth_requirement_gbps` (<= 0: none), zone and quantum rules included
// (`HF_ERR_LATENCY_CONSTRAINT_VIOLATION`, `HF_ERR_QUANTUM_COHERENCE`,
// `HF_ERR_NO_ROUTE_FOUND`, ...).
//
// # Safety
// As `hf_topology_find_shortest_path`.
hf_status hf_find_optimal_path(const hf_topology_manager *manager,
                               const char *source,
                               const char *destination,
                               uint32_t data_type,
                               uint64_t latency_constraint_ns,
                               double bandwidth_requirement_gbps,
                               hf_route **route);

// Releases a route. NULL is ignored.
//
// # Safety
// `route` is NULL or a route from this library not freed before.
void hf_route_free(hf_route *route);

// Records measurements of the link between two nodes (latency, utilised bandwidth, loss
// rate in 0..=1); with ML routing they change the routes.
//
// # Safety
// `manager` is a live handle; the ids are NUL-terminated strings.
hf_status hf_update_link_metrics(const hf_topology_manager *manager,
                                 const char *source,
                                 const char *destination,
                                 uint64_t latency_ns,
                                 double bandwidth_utilized_gbps,
                                 double packet_loss_rate);

// The current bottlenecks, most severe first, as a JSON array of the reference's
// `BottleneckInfo` objects, in `*json`.
//
// # Safety
// `manager` is a live handle; `json` writable.
hf_status hf_topology_analyze_bottlenecks(const hf_topology_manager *manager,
                                          char **json);

// The nodes, as a JSON array of node signatures in insertion order, in `*json`.
//
// # Safety
// `manager` is a live handle; `json` writable.
hf_status hf_topology_nodes(const hf_topology_manager *manager,
                            char **json);

// The topology as the reference's `TopologyInfo` (JSON) in `*json`.
//
// # Safety
// `manager` is a live handle; `json` writable.
hf_status hf_topology_get_info(const hf_topology_manager *manager,
                               char **json);

// Reads and checks a fabric configuration file (YAML) into `*config`: `HF_ERR_CONFIG` with
// `FILE:LINE: FIELD: ...` in the last error message.
//
// # Safety
// `path` is a NUL-terminated string; `config` writable.
hf_status hf_load_fabric_config(const char *path,
                                hf_fabric_config **config);

// Writes a configuration as YAML, atomically (loading it gives back an equal one).
//
// # Safety
// `config` is a live handle; `path` a NUL-terminated string.
hf_status hf_save_fabric_config(const hf_fabric_config *config,
                                const char *path);

// A topology manager holding the configuration's nodes, links and zones, in `*manager`.
//
// # Safety
// `config` is a live handle; `manager` writable.
hf_status hf_fabric_config_topology(const hf_fabric_config *config,
                                    hf_topology_manager **manager);

// Releases a configuration. NULL is ignored.
//
// # Safety
// `config` is NULL or a handle not freed before.
void hf_fabric_config_free(hf_fabric_config *config);

// This machine's devices as node signatures: a JSON array in `*json`.
//
// # Safety
// `json` points to writable memory for a pointer.
hf_status hf_detect_hardware_capabilities(char **json);

// Whether a node's hardware meets the fabric's requirements, in `*compatible` (an invalid
// signature gives its error instead).
//
// # Safety
// `node` is an initialised signature; `compatible` writable.
hf_status hf_validate_hardware_compatibility(const hf_node_signature *node,
                                             bool *compatible);

// The reference's `measure_network_performance`: pings every other node from the nodes
// this protocol hosts for `duration_ms` and reports the metrics as a JSON object of numbers
// in `*json` (`HF_ERR_NODE_NOT_FOUND` when it hosts none).
//
// # Safety
// `protocol` is a live handle; `json` writable.
hf_status hf_measure_network_performance(const hf_protocol *protocol,
                                         uint64_t duration_ms,
                                         char **json);

// Tries what the TCP transport uses of io_uring on this kernel, on a real ring and a
// loopback TCP connection (a few milliseconds), and fills `*out`. `hyperfabric detect`
// prints the same.
//
// # Safety
// `out` points to writable memory for an `hf_transport_support`.
hf_status hf_transport_probe(hf_transport_support *out);

// Largest message `hf_sender_try_send` carries inline (larger ones: send a buffer).
size_t hf_direct_max_inline(void);

// Opens a direct channel from hosted node `source` to `destination` (a live node of any
// process of the host) into `*out`: `HF_ERR_NODE_NOT_FOUND`, or
// `HF_ERR_ZONE_ISOLATION_VIOLATION` when a zone forbids the pair.
//
// # Safety
// `protocol` is a live handle; the ids are NUL-terminated strings; `out` points to writable
// memory for a pointer.
hf_status hf_open_sender(const hf_protocol *protocol,
                         const char *source,
                         const char *destination,
                         hf_sender **out);

// Closes a sender (the receiver still reads what it holds). NULL is ignored.
//
// # Safety
// `sender` is NULL or a handle not freed before.
void hf_sender_free(hf_sender *sender);

// Pushes `len` bytes (at most `hf_direct_max_inline()`); `*sent` is false when the ring is
// full now (try again). No lock, no allocation, no system call.
//
// # Safety
// `sender` is a live handle used by this thread only; `data` points to `len` readable
// bytes; `sent` points to writable memory.
hf_status hf_sender_try_send(hf_sender *sender,
                             const uint8_t *data,
                             size_t len,
                             bool *sent);

// Pushes `len` bytes, spinning while the ring is full: `HF_ERR_TIMEOUT` after `timeout_ms`,
// `HF_ERR_NODE_NOT_FOUND` once the destination left the fabric or its process died (checked
// every 10 ms while waiting, with or without background services), `HF_ERR_MALFORMED_FRAME`
// when the receiver found the channel corrupt.
//
// # Safety
// As `hf_sender_try_send`, without `sent`.
hf_status hf_sender_send(hf_sender *sender,
                         const uint8_t *data,
                         size_t len,
                         uint64_t timeout_ms);

// Passes a buffer of a pool from `hf_protocol_create_buffer_manager` by descriptor (zero
// copy): on `*sent`, `*buffer` is consumed and set to NULL (the receiver returns it to its
// pool); when the ring is full, `*sent` is false and the buffer stays yours.
// `HF_ERR_INVALID_ARGUMENT` (buffer kept) for a buffer of another pool.
//
// # Safety
// `sender` is a live handle; `buffer` points to a live buffer handle; `sent` is writable.
hf_status hf_sender_try_send_buffer(hf_sender *sender,
                                    hf_buffer **buffer,
                                    bool *sent);

// Opens the receiver of hosted node `node_id` into `*out` (`HF_ERR_INVALID_ARGUMENT` while
// another is open for the node).
//
// # Safety
// `protocol` is a live handle; `node_id` a NUL-terminated string; `out` writable.
hf_status hf_open_receiver(const hf_protocol *protocol,
                           const char *node_id,
                           hf_receiver **out);

// Closes a receiver (another may then be opened for the node). NULL is ignored.
//
// # Safety
// `receiver` is NULL or a handle not freed before.
void hf_receiver_free(hf_receiver *receiver);

// Takes at most one message and gives it to `callback` in place; `*got` (if not NULL) says
// whether one was taken. Never blocks.
//
// # Safety
// `receiver` is a live handle used by this thread only; `callback` is a valid function;
// `got` is NULL or writable.
hf_status hf_receiver_poll(hf_receiver *receiver,
                           hf_receive_fn callback,
                           void *user_data,
                           bool *got);

// Takes at most one message and copies it into `buf` (`capacity` bytes): `*got` says
// whether one was taken, `*len` its size and `*source` its source node's index.
// `HF_ERR_BUFFER_OVERFLOW` when it does not fit (the message is then dropped; `*len` says
// how large it was).
//
// # Safety
// `receiver` is a live handle used by this thread only; `buf` points to `capacity`
// writable bytes; `len`, `source` and `got` point to writable memory.
hf_status hf_receiver_try_recv(hf_receiver *receiver,
                               uint8_t *buf,
                               size_t capacity,
                               size_t *len,
                               uint32_t *source,
                               bool *got);

// The id of node `index` (a source from `hf_receiver_poll` or `hf_receiver_try_recv`) in
// `*node_id`: a static string, never freed. `HF_ERR_NODE_NOT_FOUND` for an unknown index.
//
// # Safety
// `receiver` is a live handle; `node_id` points to writable memory for a pointer.
hf_status hf_receiver_node_name(hf_receiver *receiver,
                                uint32_t index,
                                const char **node_id);

// Creates an endpoint from hosted node `source` to `destination` (a live node of any
// process of the host) into `*endpoint`. `HF_ERR_NODE_NOT_FOUND` for an unknown node,
// `HF_ERR_ZONE_ISOLATION_VIOLATION` when a zone forbids the pair.
//
// # Safety
// `protocol` is a live handle; `source` and `destination` NUL-terminated strings;
// `endpoint` points to writable memory for a pointer.
hf_status hf_endpoint_create(const hf_protocol *protocol,
                             const char *source,
                             const char *destination,
                             hf_endpoint **endpoint);

// One-way send of `len` bytes at `data` through the endpoint: returns once the message is
// in the ring (errors as `hf_post`). `options` NULL: the defaults.
//
// # Safety
// `endpoint` is a live handle; `data` points to `len` readable bytes (may be NULL when
// `len` is 0); `options` NULL or initialised.
hf_status hf_endpoint_post(const hf_endpoint *endpoint,
                           const uint8_t *data,
                           size_t len,
                           const hf_send_options *options);

// One-way sends of `count` messages through the endpoint, in order (message `i`: `lens[i]`
// bytes at `data[i]`), with default options: one check and one doorbell for the batch.
// Returns once all are in the ring. Every entry is checked before any is sent (a NULL
// `data[i]` with a length: `HF_ERR_NULL_ARGUMENT`; a length above the largest message, 1 GiB:
// `HF_ERR_INVALID_ARGUMENT`; nothing sent); an error while sending leaves the messages
// before it sent.
//
// # Safety
// `endpoint` is a live handle; `data` and `lens` point to `count` entries each (may be NULL
// when `count` is 0); each `data[i]` points to `lens[i]` readable bytes (may be NULL when
// `lens[i]` is 0).
hf_status hf_endpoint_post_batch(const hf_endpoint *endpoint,
                                 const uint8_t *const *data,
                                 const size_t *lens,
                                 size_t count);

// `hf_send_data` through the endpoint: waits for the response, stored in `*response`
// (release it with `hf_bytes_free`).
//
// # Safety
// As `hf_endpoint_post`; `response` points to writable memory for an `hf_bytes`.
hf_status hf_endpoint_send_data(const hf_endpoint *endpoint,
                                const uint8_t *data,
                                size_t len,
                                const hf_send_options *options,
                                hf_bytes *response);

// `hf_send_data_nb` through the endpoint: returns once the request is in the ring, with a
// request in `*request` (complete it with `hf_request_test` or `hf_request_wait`, release
// it with `hf_request_free`).
//
// # Safety
// As `hf_endpoint_post`; `request` points to writable memory for a pointer.
hf_status hf_endpoint_send_data_nb(const hf_endpoint *endpoint,
                                   const uint8_t *data,
                                   size_t len,
                                   const hf_send_options *options,
                                   hf_request **request);

// Releases an endpoint (its ring goes away once the receiver drained it). NULL is ignored.
//
// # Safety
// `endpoint` is NULL or a handle not freed before, not in use by another thread.
void hf_endpoint_free(hf_endpoint *endpoint);

// Registers `len` bytes at `addr` of this process's memory for `hf_endpoint_post_mem`, into
// `*mem`. The bytes must stay mapped and readable while registered (the library may read
// them itself to post a send the receiver cannot copy), and unchanged while a send from
// them is in flight. `HF_ERR_INVALID_ARGUMENT` for a NULL address, a zero length, or a range
// that is not mapped memory of this process.
//
// # Safety
// `protocol` is a live handle; `mem` points to writable memory for a pointer; the range
// stays mapped and readable until `hf_mem_deregister`.
hf_status hf_mem_register(const hf_protocol *protocol,
                          const void *addr,
                          size_t len,
                          hf_mem **mem);

// Deregisters a region: sends from it are refused from then on; sends in flight keep their
// guarantee (each request completes, fails, or, once freed or cancelled, its receiver drops
// the message if it had not copied it yet). NULL is ignored.
//
// # Safety
// `mem` is NULL or a handle not deregistered before.
void hf_mem_deregister(hf_mem *mem);

// One-way send of `len` bytes at `offset` of registered region `mem` through the endpoint,
// without copying them: the destination's process copies them once, from this process's memory
// straight into its receiver's buffer. `*request` completes (empty response) when they are
// copied, which is when the destination takes the message (`hf_recv_into`, `hf_recv`, or its
// handler); until then they must not change. Freeing or cancelling the request earlier takes
// the send back (its receiver drops it unless it copied it already), as does its deadline
// (`options->timeout_ms`). Where the destination's process cannot read this one (another user,
// a ptrace policy, a route through other nodes) or the options ask for metadata, compression,
// encryption or a constraint, the bytes are sent as by `hf_endpoint_post` and the request is
// complete at once. `HF_ERR_INVALID_ARGUMENT` for a range beyond the region,
// `HF_ERR_BUFFER_EXHAUSTED` with 64 such sends of the endpoint in flight.
//
// # Safety
// `endpoint` and `mem` are live handles; `options` NULL or initialised; `request` points to
// writable memory for a pointer.
hf_status hf_endpoint_post_mem(const hf_endpoint *endpoint,
                               const hf_mem *mem,
                               size_t offset,
                               size_t len,
                               const hf_send_options *options,
                               hf_request **request);

// Releases bytes the library handed out and zeroes `*bytes`. NULL, or an already released
// (zeroed) `hf_bytes`, is ignored.
//
// # Safety
// `bytes` is NULL or an `hf_bytes` filled by this library (or zeroed).
void hf_bytes_free(hf_bytes *bytes);

// Releases a string the library handed out. NULL is ignored.
//
// # Safety
// `s` is NULL or a string from this library not freed before.
void hf_string_free(char *s);

// Creates a protocol from the configuration file at `path` (YAML, `docs/config.md`) and
// stores it in `*out`: its protocol options, links and `key_file`; its fabric name unless
// `fabric_name` is not NULL; with `host` not NULL, as that host of its `hosts` section
// (listening at its address, connecting to the hosts listed before it). A file that does
// not load is `HF_ERR_CONFIG`, with the file, line and field in `hf_last_error_message`.
// Register its nodes with `hf_register_configured_node`. Free it with `hf_protocol_free`.
//
// # Safety
// `path` is a NUL-terminated string; `fabric_name` and `host` are NULL or NUL-terminated
// strings; `out` points to writable memory for a pointer.
hf_status hf_protocol_from_config(const char *path,
                                  const char *fabric_name,
                                  const char *host,
                                  hf_protocol **out);

// Registers node `node_id` of the configuration the protocol was made from, with its
// signature there. `HF_ERR_NODE_NOT_FOUND` when the configuration has no such node,
// `HF_ERR_INVALID_ARGUMENT` for a protocol not made by `hf_protocol_from_config`.
//
// # Safety
// `protocol` is a live handle; `node_id` is a NUL-terminated string.
hf_status hf_register_configured_node(const hf_protocol *protocol,
                                      const char *node_id);

// Sets the response of a handler call (copied; a later call replaces it).
//
// # Safety
// `response` is the pointer the handler received; `data` points to `len` readable bytes.
hf_status hf_response_set(hf_response *response,
                          const uint8_t *data,
                          size_t len);

// Makes the response of a handler call `len` bytes long (zeroed) and stores in `*out`
// where to write them: the handler fills the answer in place, with no copy and, once the
// engine's buffer is large enough, no allocation. The pointer is valid until the handler
// returns or calls `hf_response_set` / `hf_response_buffer` again. `len` may be 0 (then
// `*out` is a valid pointer to nothing). `HF_ERR_NULL_ARGUMENT` for a NULL argument,
// `HF_ERR_INVALID_ARGUMENT` for `len` above the largest message.
//
// # Safety
// `response` is the pointer the handler received; `out` points to a writable pointer.
hf_status hf_response_buffer(hf_response *response,
                             size_t len,
                             uint8_t **out);

// Sets the request handler of hosted node `node_id` (`handler` NULL removes it: requests are
// then queued for `hf_recv` and answered with a delivery receipt). The handler's response
// goes back to `hf_send_data`; a non-`HF_OK` status becomes the requester's error.
//
// # Safety
// `protocol` is a live handle; `node_id` a NUL-terminated string; `user_data` stays valid,
// and may be used from another thread, until the handler is replaced or the protocol freed.
hf_status hf_on_receive(const hf_protocol *protocol,
                        const char *node_id,
                        hf_handler handler,
                        void *user_data);

// Creates a protocol instance and stores it in `*out` (`HF_ERR_INVALID_ARGUMENT` for bad
// options, `HF_ERR_IO` when the fabric directory cannot be used). `options` NULL: the
// defaults. Free it with `hf_protocol_free`.
//
// # Safety
// `options` is NULL or an initialised `hf_protocol_options` whose strings and key stay valid
// during the call; `out` points to writable memory for a pointer.
hf_status hf_protocol_new(const hf_protocol_options *options,
                          hf_protocol **out);

// Stops the background thread, unregisters the nodes this instance hosts, and frees it.
// NULL is ignored.
//
// # Safety
// `protocol` is NULL or a handle from `hf_protocol_new` not freed before; no other thread
// uses it during or after the call.
void hf_protocol_free(hf_protocol *protocol);

// Deletes the host state of fabric `name` once no process hosts a node in it (call it after
// the last protocol of the fabric is freed); `*removed` (if not NULL) says whether it was.
//
// # Safety
// `name` is a NUL-terminated string; `removed` is NULL or writable.
hf_status hf_fabric_remove(const char *name,
                           bool *removed);

// Connects to the process listening on `address` (`"10.0.0.2:7100"`) and waits until its
// nodes are known: from then on they are sent to by name. `HF_ERR_AUTHENTICATION` when
// either side refuses the other's key, `HF_ERR_DUPLICATE_NODE` when both host a node of
// the same id, `HF_ERR_IO` when nothing listens there, `HF_ERR_TIMEOUT` when its nodes do
// not come in time, `HF_ERR_INVALID_ARGUMENT` for a malformed address or a protocol
// without TCP.
//
// # Safety
// `protocol` is a live handle; `address` a NUL-terminated string.
hf_status hf_connect_host(const hf_protocol *protocol,
                          const char *address);

// Finds the nodes of every other process of a job started by a PMIx launcher (`srun`,
// `prterun`, Open MPI's `mpirun`): publishes the address blobs of the nodes this protocol
// hosts (register them first), waits at a fence of the whole job, and inserts every other
// rank's nodes, as `hf_insert_peer` does; no MPI call is needed. Their count goes to
// `*peers`. `HF_ERR_CONFIG` when the library was built without PMIx (cargo feature `pmix`)
// or the process was not started by a PMIx launcher.
//
// # Safety
// `protocol` is a live handle; `peers` is writable.
hf_status hf_bootstrap_pmix(const hf_protocol *protocol,
                            size_t *peers);

// Writes the address blob of hosted node `node_id` into `blob` (`capacity` bytes; at most
// `HF_ADDRESS_MAX` are needed) and its length into `*len`: what another process passes to
// `hf_insert_peer`, carried by MPI (`MPI_Allgather`), PMIx or a file.
// `HF_ERR_BUFFER_OVERFLOW` when `capacity` is too small.
//
// # Safety
// `protocol` is a live handle; `node_id` a NUL-terminated string; `blob` points to
// `capacity` writable bytes; `len` is writable.
hf_status hf_node_address(const hf_protocol *protocol,
                          const char *node_id,
                          uint8_t *blob,
                          size_t capacity,
                          size_t *len);

// Takes another process's address blob and stores the node id to send to in `*node_id`
// (release with `hf_string_free`): `HF_ERR_NO_ROUTE_FOUND` for a node of another host (the
// TCP transport is not here yet), `HF_ERR_NODE_NOT_FOUND` when it is not registered,
// `HF_ERR_INVALID_ARGUMENT` for a blob that does not decode or names another fabric.
//
// # Safety
// `protocol` is a live handle; `blob` points to `len` readable bytes; `node_id` writable.
hf_status hf_insert_peer(const hf_protocol *protocol,
                         const uint8_t *blob,
                         size_t len,
                         char **node_id);

// Registers a node hosted by this process: `HF_ERR_DUPLICATE_NODE` when any process of the
// fabric hosts the id, `HF_ERR_INVALID_NODE` for an invalid signature.
//
// # Safety
// `protocol` is a live handle; `node` is NULL or an initialised `hf_node_signature` whose
// strings stay valid during the call.
hf_status hf_register_node(const hf_protocol *protocol,
                           const hf_node_signature *node);

// Removes a node this process hosts (`HF_ERR_NODE_NOT_FOUND` otherwise).
//
// # Safety
// `protocol` is a live handle; `node_id` is NULL or a NUL-terminated string.
hf_status hf_unregister_node(const hf_protocol *protocol,
                             const char *node_id);

// Starts the background engine thread (pinned to `engine_core` when set): from then on it
// drives the engine, so messages are delivered, handlers run (on that thread), requests and
// pings are answered, and the hosted nodes send heartbeats (peers mark a node down after
// 200 ms without one), whatever the process's other threads do. The calls that wait then
// only look for their results. Without it, the engine moves only inside calls (see
// `hf_progress`).
//
// # Safety
// `protocol` is a live handle.
hf_status hf_start_background_services(const hf_protocol *protocol);

// Stops the background engine thread.
//
// # Safety
// `protocol` is a live handle.
hf_status hf_stop_background_services(const hf_protocol *protocol);

// One engine pass in the calling thread; `*handled` (if not NULL) gets the number of
// messages handled. The pass delivers what arrived in this process's rings: it runs
// handlers (in the calling thread), queues messages for `hf_recv`, answers requests and
// pings, completes this process's requests, forwards what is routed through its nodes, and
// sends coalesced events whose window passed; every 256th call also does the periodic work
// (finding peers whose process died, and failing the requests waiting on them).
//
// Progress rule: without background services nothing happens between calls. The calls
// that wait (`hf_send_data`, `hf_request_wait`, `hf_request_wait_any`,
// `hf_request_wait_all`, `hf_recv`, `hf_ping`) drive the engine until they return,
// `hf_request_test` and `hf_progress` make one pass each, and a send finding the
// destination's ring full drains this process's rings while it waits. A process computing
// for long without such calls answers nothing meanwhile (its peers' requests wait up to
// their timeouts; its nodes are not declared dead for it): call `hf_progress` in the loop,
// or start the background services, with which this call is not needed.
//
// # Safety
// `protocol` is a live handle; `handled` NULL or writable.
hf_status hf_progress(const hf_protocol *protocol,
                      size_t *handled);

// Takes the oldest message queued for hosted node `node_id` (one without handler), waiting
// up to `timeout_ms` (0: just look), into `*message` (release with `hf_message_free`).
// `HF_ERR_TIMEOUT` when nothing came.
//
// Progress: the call reads the node's endpoint rings itself, so messages sent through
// endpoints arrive without anyone else driving this process (a request among them gets
// its delivery receipt when taken here). Without background services it also drives the
// engine while it waits (every few looks, and once with `timeout_ms` 0), which delivers
// what came through the engine's rings; handlers of this process's other nodes may run
// in the calling thread then.
//
// # Safety
// `protocol` is a live handle; `node_id` a NUL-terminated string; `message` points to
// writable memory for a pointer.
hf_status hf_recv(const hf_protocol *protocol,
                  const char *node_id,
                  uint64_t timeout_ms,
                  hf_message **message);

// Takes the next message of hosted node `node_id` (one without handler) into the caller's
// buffer, as `MPI_Recv` does: its data is copied into `buf` (`cap` bytes), the rest
// described in `*info`. Waits up to `timeout_ms` (0: just look). No allocation for a message
// without metadata. `HF_ERR_TIMEOUT` when nothing came; `HF_ERR_BUFFER_OVERFLOW` when the
// next message is larger than `cap`: `info->len` is then its size and it stays the node's
// next message (call again with a larger buffer). A send from registered memory
// (`hf_endpoint_post_mem`) is copied straight into `buf`; one whose copy then delivers
// nothing (its sender gave it up during the copy, or freed part of its memory) may have
// written `buf`: only the first `info->len` bytes of a successful call are the message.
// So may a large message from another host that the kernel receives straight into `buf`
// while the call waits, when the call ends before it is whole (it is then delivered by a
// later call).
//
// # Safety
// `protocol` is a live handle; `node_id` a NUL-terminated string; `buf` points to `cap`
// writable bytes (may be NULL when `cap` is 0); `info` points to writable memory for an
// `hf_recv_info`.
hf_status hf_recv_into(const hf_protocol *protocol,
                       const char *node_id,
                       uint64_t timeout_ms,
                       uint8_t *buf,
                       size_t cap,
                       hf_recv_info *info);

// Fills `*view` with pointers into `message` (valid until `hf_message_free`).
//
// # Safety
// `message` is a live handle; `view` points to writable memory for an `hf_message_view`.
hf_status hf_message_get_view(const hf_message *message,
                              hf_message_view *out);

// Releases a message. NULL is ignored.
//
// # Safety
// `message` is NULL or a handle from `hf_recv` not freed before.
void hf_message_free(hf_message *message);

// The name of hardware type `value` (`"nvidia_h100"`; a static string, not to be freed),
// or NULL when `value` is none.
const char *hf_hardware_type_name(uint32_t value);

// The hardware type named `name` into `*value`; `HF_ERR_INVALID_ARGUMENT`, with the
// accepted names in the message, when it is none (`*value` is then left alone).
//
// # Safety
// `name` is a NUL-terminated string; `value` points to a writable `uint32_t`.
hf_status hf_hardware_type_from_name(const char *name,
                                     uint32_t *value);

// The name of data type `value` (static), or NULL.
const char *hf_data_type_name(uint32_t value);

// The data type named `name` into `*value`, as `hf_hardware_type_from_name`.
//
// # Safety
// `name` is a NUL-terminated string; `value` points to a writable `uint32_t`.
hf_status hf_data_type_from_name(const char *name,
                                 uint32_t *value);

// The name of packet priority `value` (static), or NULL.
const char *hf_packet_priority_name(uint32_t value);

// The packet priority named `name` into `*value`, as `hf_hardware_type_from_name`.
//
// # Safety
// `name` is a NUL-terminated string; `value` points to a writable `uint32_t`.
hf_status hf_packet_priority_from_name(const char *name,
                                       uint32_t *value);

// The name of zone type `value` (static), or NULL.
const char *hf_zone_type_name(uint32_t value);

// The zone type named `name` into `*value`, as `hf_hardware_type_from_name`.
//
// # Safety
// `name` is a NUL-terminated string; `value` points to a writable `uint32_t`.
hf_status hf_zone_type_from_name(const char *name,
                                 uint32_t *value);

// The name of isolation level `value` (static), or NULL.
const char *hf_isolation_level_name(uint32_t value);

// The isolation level named `name` into `*value`, as `hf_hardware_type_from_name`.
//
// # Safety
// `name` is a NUL-terminated string; `value` points to a writable `uint32_t`.
hf_status hf_isolation_level_from_name(const char *name,
                                       uint32_t *value);

// Fills the first `size` bytes of `options` with the defaults, `struct_size` set to `size`:
// the header's `hf_protocol_options_init(options)` passes `sizeof(hf_protocol_options)` of
// the header the program was built with, so a program built against an earlier header
// (with fewer fields) gets its own struct filled and nothing past it. `size` is the size of
// some version of the struct: from the layout that ends with `tcp_sqpoll`.
//
// # Safety
// `options` is NULL or points to `size` writable bytes.
hf_status hf_protocol_options_init_size(hf_protocol_options *options,
                                        size_t size);

// Fills the options of the layout that ends with `tcp_sqpoll` with the defaults (what
// programs built against that header call). The header maps `hf_protocol_options_init` to
// [`hf_protocol_options_init_size`] with the program's own struct size.
//
// # Safety
// `options` is NULL or points to a writable `hf_protocol_options` of that layout or later.
hf_status hf_protocol_options_init(hf_protocol_options *options);

// Fills `node` (of the layout the header of programs before sized inits had).
//
// # Safety
// `node` is NULL or points to writable memory for an `hf_node_signature`.
hf_status hf_node_signature_init(hf_node_signature *node);

// Fills `node` with an empty signature (every optional field unset) once its `size` (the
// header's `hf_node_signature_init(node)` passes `sizeof(hf_node_signature)` of the header
// the program was built with) is found to hold this library's struct: nothing past the
// program's struct is written. A smaller size is refused.
//
// # Safety
// `node` is NULL or points to `size` writable bytes.
hf_status hf_node_signature_init_size(hf_node_signature *node,
                                      size_t size);

// Fills `options` (of the layout the header of programs before sized inits had).
//
// # Safety
// `options` is NULL or points to writable memory for an `hf_send_options`.
hf_status hf_send_options_init(hf_send_options *options);

// Fills `options` with the defaults of a send once its `size` (the header's
// `hf_send_options_init(options)` passes `sizeof(hf_send_options)` of the header the
// program was built with) is found to hold this library's struct: nothing past the
// program's struct is written. A smaller size is refused.
//
// # Safety
// `options` is NULL or points to `size` writable bytes.
hf_status hf_send_options_init_size(hf_send_options *options,
                                    size_t size);

// Pings `destination` from hosted node `source` with probes of `packet_size` bytes, into
// `*result` (release with `hf_ping_result_free`).
//
// # Safety
// `protocol` is a live handle; `source` and `destination` NUL-terminated strings; `result`
// points to writable memory for a pointer.
hf_status hf_ping(const hf_protocol *protocol,
                  const char *source,
                  const char *destination,
                  size_t packet_size,
                  uint64_t timeout_ms,
                  hf_ping_result **result);

// Releases a ping result. NULL is ignored.
//
// # Safety
// `result` is NULL or a result from `hf_ping` not freed before.
void hf_ping_result_free(hf_ping_result *result);

// Sends `len` bytes at `data` from hosted node `source` to `destination` and waits for the
// response (a node without handler answers with an empty delivery receipt), stored in
// `*response` (release it with `hf_bytes_free`). Fails before sending with
// `HF_ERR_LATENCY_CONSTRAINT_VIOLATION`, `HF_ERR_ZONE_ISOLATION_VIOLATION`,
// `HF_ERR_NODE_NOT_FOUND`, ...; with `HF_ERR_TIMEOUT` when no answer comes in time; with
// the handler's status when it fails. `options` NULL: the defaults. Without background
// services the call drives the engine while it waits (see `hf_progress`).
//
// # Safety
// `protocol` is a live handle; `source` and `destination` NUL-terminated strings; `data`
// points to `len` readable bytes (may be NULL when `len` is 0); `options` NULL or
// initialised; `response` points to writable memory for an `hf_bytes`.
hf_status hf_send_data(const hf_protocol *protocol,
                       const char *source,
                       const char *destination,
                       const uint8_t *data,
                       size_t len,
                       const hf_send_options *options,
                       hf_bytes *response);

// Like `hf_send_data`, but returns once the message is in the ring, with a request in
// `*request` to complete with `hf_request_test` or `hf_request_wait` and release with
// `hf_request_free`. Errors found before sending come back here.
//
// # Safety
// As `hf_send_data`; `request` points to writable memory for a pointer.
hf_status hf_send_data_nb(const hf_protocol *protocol,
                          const char *source,
                          const char *destination,
                          const uint8_t *data,
                          size_t len,
                          const hf_send_options *options,
                          hf_request **request);

// One-way send: returns once the message is in the destination's ring (errors as
// `hf_send_data`, before sending). Each calling thread keeps an endpoint per (source,
// destination) pair it sends to (at most 32; `hf_protocol_options.endpoints_by_name`; see
// `docs/dataplane.md`), so a post by name costs about what `hf_endpoint_post` costs; sends
// from one thread to one pair stay in order.
//
// # Safety
// As `hf_send_data`, without `response`.
hf_status hf_post(const hf_protocol *protocol,
                  const char *source,
                  const char *destination,
                  const uint8_t *data,
                  size_t len,
                  const hf_send_options *options);

// Fills `zone` with an empty specification.
//
// # Safety
// `zone` is NULL or points to writable memory for an `hf_fabric_zone`.
hf_status hf_fabric_zone_init(hf_fabric_zone *zone);

// Creates a zone of the fabric (every process enforces it): `HF_ERR_DUPLICATE_ZONE`,
// `HF_ERR_INSUFFICIENT_RESOURCES`, `HF_ERR_INVALID_ZONE`.
//
// # Safety
// `protocol` is a live handle; `zone` NULL or an initialised `hf_fabric_zone` whose strings
// stay valid during the call.
hf_status hf_create_zone(const hf_protocol *protocol,
                         const hf_fabric_zone *zone);

// Makes a registered node a member of a zone (`HF_ERR_ZONE_NOT_FOUND`,
// `HF_ERR_NODE_NOT_FOUND`, `HF_ERR_INSUFFICIENT_RESOURCES` when full).
//
// # Safety
// `protocol` is a live handle; the ids are NUL-terminated strings.
hf_status hf_assign_to_zone(const hf_protocol *protocol,
                            const char *zone_id,
                            const char *node_id);

// The topology (nodes, links, zones, route metrics, traffic counters) as a JSON object with
// the fields of the reference's `TopologyInfo`, in `*json` (release with `hf_string_free`).
//
// # Safety
// `protocol` is a live handle; `json` points to writable memory for a pointer.
hf_status hf_get_topology_info(const hf_protocol *protocol,
                               char **json);

// Receives up to `max` messages of hosted node `node_id` (one without handler) in one call,
// each lent in place to `callback` (no copy, no allocation; the view and its bytes are valid
// during the callback only): waits up to `timeout_ms` for the first (0: just look), then
// takes what else is there without waiting. `*count` gets how many the callback got.
// `HF_ERR_TIMEOUT` when nothing came; `HF_ERR_INVALID_ARGUMENT` for `max` 0. The callback
// must not call `hf_` functions on the same protocol.
//
// # Safety
// `protocol` is a live handle; `node_id` a NUL-terminated string; `callback` a function
// that may be called with `user_data`; `count` points to writable memory for a `size_t`.
hf_status hf_recv_batch(const hf_protocol *protocol,
                        const char *node_id,
                        uint64_t timeout_ms,
                        size_t max,
                        hf_message_fn callback,
                        void *user_data,
                        size_t *count);

// The protocol's topology report (`get_topology_info`, with its traffic counters among the
// metrics) in `*out`.
//
// # Safety
// `protocol` is a live handle; `out` points to writable memory for a pointer.
hf_status hf_protocol_topology_report(const hf_protocol *protocol,
                                      hf_topology_report **out);

// A topology manager's report in `*out`.
//
// # Safety
// `manager` is a live handle; `out` points to writable memory for a pointer.
hf_status hf_topology_manager_report(const hf_topology_manager *manager,
                                     hf_topology_report **out);

// Releases a topology report. NULL is ignored.
//
// # Safety
// `report` is NULL or a report from this library not freed before.
void hf_topology_report_free(hf_topology_report *report);

// This machine's hardware as nodes (`detect_hardware_capabilities`) in `*out`.
//
// # Safety
// `out` points to writable memory for a pointer.
hf_status hf_detect_hardware(hf_node_list **out);

// A topology manager's nodes, in insertion order, in `*out`.
//
// # Safety
// `manager` is a live handle; `out` points to writable memory for a pointer.
hf_status hf_topology_node_list(const hf_topology_manager *manager,
                                hf_node_list **out);

// Releases a node list. NULL is ignored.
//
// # Safety
// `list` is NULL or a list from this library not freed before.
void hf_node_list_free(hf_node_list *list);

// The state and traffic of node `node_id` of the fabric `fabric` running on this host, in
// `*out`: read from the host's registry, the rings' headers and the counters processes
// publish, without joining the fabric. `HF_ERR_NODE_NOT_FOUND` when the fabric does not
// run here, or the node is neither registered nor remembered as departed.
//
// # Safety
// `fabric` and `node_id` are NUL-terminated strings; `out` points to a writable
// `hf_node_stats`.
hf_status hf_get_node_stats(const char *fabric,
                            const char *node_id,
                            hf_node_stats *out);

// Progresses a request without blocking. `*done` becomes true once it completed; the
// call then returns the request's outcome and, on success, stores the response in
// `*response`. A completed request gives `HF_ERR_INVALID_ARGUMENT` when tested again, a
// cancelled one `HF_ERR_INVALID_ARGUMENT` ("cancelled").
//
// Progress: without background services, each call makes one pass of the engine (so a
// loop of tests completes the request; handlers run in the calling thread).
//
// # Safety
// `request` is a live handle; `done` and `response` point to writable memory.
hf_status hf_request_test(hf_request *request,
                          bool *done,
                          hf_bytes *response);

// Blocks until the request completes; returns its outcome and, on success, stores the
// response in `*response`. The request ends at its send timeout (`HF_ERR_TIMEOUT`); a
// completed or cancelled request gives `HF_ERR_INVALID_ARGUMENT`.
//
// Progress: without background services the call drives the engine while it waits
// (handlers run in the calling thread).
//
// # Safety
// `request` is a live handle; `response` points to writable memory for an `hf_bytes`.
hf_status hf_request_wait(hf_request *request,
                          hf_bytes *response);

// Waits until one of the `count` requests at `requests` completes, like `MPI_Waitany`:
// NULL entries, and requests that already completed or were cancelled, are skipped. Writes
// the position of the one that completed to `*index` and returns its outcome; on success
// its response goes to `*response` (release it with `hf_bytes_free`). That request is then
// completed: free it with `hf_request_free` (testing or waiting on it again gives
// `HF_ERR_INVALID_ARGUMENT`); the others stay as they were.
//
// `timeout_ms` bounds the call: 0 makes it one look (like `MPI_Testany`), `UINT64_MAX`
// leaves the bound to each request's own send timeout, at which that request completes
// with `HF_ERR_TIMEOUT` as its outcome. `*index` is `HF_INDEX_NONE` when no request
// completed: the call returns `HF_ERR_TIMEOUT` if none did within `timeout_ms` (they stay
// pending), `HF_ERR_INVALID_ARGUMENT` if no entry is pending or one request appears twice.
// So `HF_ERR_TIMEOUT` with `*index != HF_INDEX_NONE` is that request's own timeout.
//
// Progress: without background services the call drives the engines of the requests'
// protocols while it waits (handlers of their nodes run in the calling thread).
//
// # Safety
// `requests` points to `count` readable pointers (or is NULL with `count` 0), each NULL or
// a live handle no other thread uses during the call; `index` and `response` point to
// writable memory.
hf_status hf_request_wait_any(hf_request **requests,
                              size_t count,
                              uint64_t timeout_ms,
                              size_t *index,
                              hf_bytes *response);

// Waits until every pending request among the `count` at `requests` completes, like
// `MPI_Waitall`, for at most `timeout_ms` (`UINT64_MAX`: as long as the requests' own send
// timeouts). For each request pending at the call, `statuses[i]` gets its outcome and
// `responses[i]` its response on success, a zeroed `hf_bytes` otherwise (release each with
// `hf_bytes_free`). NULL entries, and requests that already completed or were cancelled,
// are skipped and their `statuses[i]` and `responses[i]` left as they are: calling again
// after a timeout completes the arrays of the first call.
//
// Returns `HF_OK` when every request completed successfully, else the status of the first
// entry (in array order) that did not; `statuses` tells each. A request still in flight
// when `timeout_ms` passes gets `HF_ERR_TIMEOUT` and stays pending (wait again, cancel it
// or free it); one whose own send timeout passed also gets `HF_ERR_TIMEOUT` but is
// completed (`hf_request_test` then gives `HF_ERR_INVALID_ARGUMENT`). With nothing
// pending the call returns `HF_OK` at once. `HF_ERR_INVALID_ARGUMENT`, with nothing
// written, when one request appears twice.
//
// Progress: as `hf_request_wait_any`.
//
// # Safety
// `requests` as for `hf_request_wait_any`; `statuses` and `responses` point to `count`
// writable elements each (or are NULL with `count` 0).
hf_status hf_request_wait_all(hf_request **requests,
                              size_t count,
                              uint64_t timeout_ms,
                              hf_status *statuses,
                              hf_bytes *responses);

// Abandons a pending request, like `MPI_Cancel`: its response, if one comes, is dropped;
// `hf_request_test` and `hf_request_wait` then return `HF_ERR_INVALID_ARGUMENT`
// ("cancelled"), and `hf_request_wait_any` / `hf_request_wait_all` skip it. The receiver
// may already have handled the message: cancelling only stops waiting for the answer.
// Cancelling a request that completed or was cancelled does nothing. Free the request
// with `hf_request_free` as usual.
//
// # Safety
// `request` is a live handle no other thread uses during the call.
hf_status hf_request_cancel(hf_request *request);

// Releases a request (an unfinished one is abandoned: its late response is dropped). NULL
// is ignored.
//
// # Safety
// `request` is NULL or a handle not freed before.
void hf_request_free(hf_request *request);

// The library version: `major << 16 | minor << 8 | patch`.
uint32_t hf_version(void);

// The library version as text (`"0.1.0"`); a static string, never freed.
const char *hf_version_string(void);

// The name of a status code: `"OK"`, the exception name of the API reference
// (`"NodeNotFoundError"`, ...), or `"UnknownStatus"`; a static string, never freed.
const char *hf_status_str(hf_status status);

// The category block of a status: `HF_OK` for success, else the first code of its block
// (`-100` node errors, `-200` routing, `-300` quantum, `-400` buffer, `-500` zone, `-600`
// config, `-700` I/O, `-800` timeout, `-900` invalid argument, `-1000` security); a code
// outside every block gives `HF_ERR_INVALID_ARGUMENT`.
hf_status hf_status_category(hf_status status);

// The detail of the last failed call on this thread (empty before the first failure;
// successful calls leave it as it is, like `errno`); valid until the next failing `hf_`
// call on this thread; never freed by the caller.
const char *hf_last_error_message(void);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* HYPERFABRIC_H */

// hf_protocol_options_init fills the struct of the header the program is built with: a
// program built against an earlier header (with fewer fields) gets its own struct filled
// and nothing past it, and hf_protocol_new reads that much.
#define hf_protocol_options_init(options) \
    hf_protocol_options_init_size((options), sizeof(hf_protocol_options))
// The same for the other structs with an _init function.
#define hf_node_signature_init(node) \
    hf_node_signature_init_size((node), sizeof(hf_node_signature))
#define hf_send_options_init(options) \
    hf_send_options_init_size((options), sizeof(hf_send_options))
