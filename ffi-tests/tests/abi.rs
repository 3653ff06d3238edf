//! The header as bindgen reads it agrees with the Rust ABI: every struct's size, alignment
//! and field offsets, every status code and enum value; and calls through the generated
//! bindings work end to end (nodes, send, ping, zone, buffers).

use hyperfabric::ffi::{control as ctl, protocol as rs, status as st};
use hyperfabric_ffi_tests as c;
use std::ffi::{c_void, CStr, CString};
use std::mem::{align_of, offset_of, size_of};

macro_rules! same_layout {
    ($t:ident { $($f:ident),* $(,)? }) => {{
        assert_eq!(size_of::<c::$t>(), size_of::<rs::$t>(), "size of {}", stringify!($t));
        assert_eq!(align_of::<c::$t>(), align_of::<rs::$t>(), "align of {}", stringify!($t));
        $(
            assert_eq!(
                offset_of!(c::$t, $f),
                offset_of!(rs::$t, $f),
                "offset of {}.{}",
                stringify!($t),
                stringify!($f)
            );
        )*
    }};
}

#[test]
fn structs_have_the_rust_layout() {
    same_layout!(hf_protocol_options {
        struct_size,
        enable_ml_routing,
        enable_quantum_optimization,
        enable_fault_tolerance,
        default_latency_constraint_ns,
        buffer_pool_size,
        max_packet_size,
        fabric_name,
        idle_strategy,
        engine_core,
        key,
        single_copy_from,
        endpoints_by_name,
        tcp_listen,
        tcp_insecure,
        tcp_force,
        tcp_sqpoll,
        tcp_zerocopy_min,
    });
    same_layout!(hf_node_signature {
        struct_size,
        node_id,
        hardware_type,
        bandwidth_gbps,
        latency_ns,
        memory_gb,
        compute_units,
        power_watts,
        rack_position,
        physical_location,
        quantum_coherence_time_us,
        neuromorphic_neurons,
        photonic_channels,
        metadata_json,
    });
    same_layout!(hf_send_options {
        struct_size,
        data_type,
        priority,
        latency_constraint_ns,
        requires_quantum_entanglement,
        compression_enabled,
        encryption_enabled,
        metadata_json,
        timeout_ms,
    });
    same_layout!(hf_fabric_zone {
        struct_size,
        zone_id,
        zone_type,
        isolation_level,
        max_nodes,
        required_bandwidth_gbps,
        description,
        quantum_coherence_required,
        neuromorphic_optimization,
    });
    same_layout!(hf_bytes {
        data,
        len,
        capacity
    });
    same_layout!(hf_message_view {
        source,
        destination,
        data,
        len,
        metadata,
        metadata_len,
        data_type,
        priority,
        request_id,
        one_way,
    });
    {
        use ctl as rs;
        same_layout!(hf_route {
            path,
            path_len,
            latency_ns,
            bandwidth_gbps,
            hops
        });
    }
    same_layout!(hf_ping_result {
        source,
        destination,
        latency_ns,
        bandwidth_gbps,
        path,
        path_len,
        packet_loss_rate,
        timestamp,
        success,
    });
}

#[test]
fn status_codes_and_enum_values_match() {
    let pairs: &[(i64, i32)] = &[
        (c::HF_OK as i64, st::HF_OK),
        (c::HF_ERR_DUPLICATE_NODE as i64, st::HF_ERR_DUPLICATE_NODE),
        (c::HF_ERR_NODE_NOT_FOUND as i64, st::HF_ERR_NODE_NOT_FOUND),
        (c::HF_ERR_INVALID_NODE as i64, st::HF_ERR_INVALID_NODE),
        (c::HF_ERR_NO_ROUTE_FOUND as i64, st::HF_ERR_NO_ROUTE_FOUND),
        (
            c::HF_ERR_LATENCY_CONSTRAINT_VIOLATION as i64,
            st::HF_ERR_LATENCY_CONSTRAINT_VIOLATION,
        ),
        (c::HF_ERR_LINK_NOT_FOUND as i64, st::HF_ERR_LINK_NOT_FOUND),
        (
            c::HF_ERR_QUANTUM_COHERENCE as i64,
            st::HF_ERR_QUANTUM_COHERENCE,
        ),
        (c::HF_ERR_BUFFER_OVERFLOW as i64, st::HF_ERR_BUFFER_OVERFLOW),
        (
            c::HF_ERR_BUFFER_UNDERFLOW as i64,
            st::HF_ERR_BUFFER_UNDERFLOW,
        ),
        (
            c::HF_ERR_BUFFER_EXHAUSTED as i64,
            st::HF_ERR_BUFFER_EXHAUSTED,
        ),
        (c::HF_ERR_DUPLICATE_ZONE as i64, st::HF_ERR_DUPLICATE_ZONE),
        (c::HF_ERR_ZONE_NOT_FOUND as i64, st::HF_ERR_ZONE_NOT_FOUND),
        (c::HF_ERR_INVALID_ZONE as i64, st::HF_ERR_INVALID_ZONE),
        (
            c::HF_ERR_INSUFFICIENT_RESOURCES as i64,
            st::HF_ERR_INSUFFICIENT_RESOURCES,
        ),
        (
            c::HF_ERR_ZONE_ISOLATION_VIOLATION as i64,
            st::HF_ERR_ZONE_ISOLATION_VIOLATION,
        ),
        (c::HF_ERR_CONFIG as i64, st::HF_ERR_CONFIG),
        (c::HF_ERR_IO as i64, st::HF_ERR_IO),
        (c::HF_ERR_TIMEOUT as i64, st::HF_ERR_TIMEOUT),
        (
            c::HF_ERR_INVALID_ARGUMENT as i64,
            st::HF_ERR_INVALID_ARGUMENT,
        ),
        (c::HF_ERR_NULL_ARGUMENT as i64, st::HF_ERR_NULL_ARGUMENT),
        (c::HF_ERR_INVALID_UTF8 as i64, st::HF_ERR_INVALID_UTF8),
        (c::HF_ERR_INVALID_ENUM as i64, st::HF_ERR_INVALID_ENUM),
        (c::HF_ERR_PANIC as i64, st::HF_ERR_PANIC),
        (c::HF_ERR_AUTHENTICATION as i64, st::HF_ERR_AUTHENTICATION),
        (c::HF_ERR_MALFORMED_FRAME as i64, st::HF_ERR_MALFORMED_FRAME),
    ];
    for &(header, rust) in pairs {
        assert_eq!(header, rust as i64);
    }
    // Every kind of the library has its code in the header.
    for k in hyperfabric::ErrorKind::ALL {
        assert!(
            pairs.iter().any(|&(h, _)| h == k.status_code() as i64),
            "{k:?} has no constant in the header"
        );
    }
    // Every enum value of the header, against the Rust enum it mirrors.
    let values: &[(u32, u32)] = &[
        (
            c::HF_HARDWARE_NVIDIA_H100,
            rs::hf_hardware_type::HF_HARDWARE_NVIDIA_H100 as u32,
        ),
        (
            c::HF_HARDWARE_NVIDIA_A100,
            rs::hf_hardware_type::HF_HARDWARE_NVIDIA_A100 as u32,
        ),
        (
            c::HF_HARDWARE_NVIDIA_RTX4090,
            rs::hf_hardware_type::HF_HARDWARE_NVIDIA_RTX4090 as u32,
        ),
        (
            c::HF_HARDWARE_AMD_MI300X,
            rs::hf_hardware_type::HF_HARDWARE_AMD_MI300X as u32,
        ),
        (
            c::HF_HARDWARE_AMD_MI250X,
            rs::hf_hardware_type::HF_HARDWARE_AMD_MI250X as u32,
        ),
        (
            c::HF_HARDWARE_INTEL_GAUDI2,
            rs::hf_hardware_type::HF_HARDWARE_INTEL_GAUDI2 as u32,
        ),
        (
            c::HF_HARDWARE_QUANTUM_QPU,
            rs::hf_hardware_type::HF_HARDWARE_QUANTUM_QPU as u32,
        ),
        (
            c::HF_HARDWARE_QUANTUM_ANNEALER,
            rs::hf_hardware_type::HF_HARDWARE_QUANTUM_ANNEALER as u32,
        ),
        (
            c::HF_HARDWARE_NEUROMORPHIC_CHIP,
            rs::hf_hardware_type::HF_HARDWARE_NEUROMORPHIC_CHIP as u32,
        ),
        (
            c::HF_HARDWARE_INTEL_LOIHI,
            rs::hf_hardware_type::HF_HARDWARE_INTEL_LOIHI as u32,
        ),
        (
            c::HF_HARDWARE_PHOTONIC_SWITCH,
            rs::hf_hardware_type::HF_HARDWARE_PHOTONIC_SWITCH as u32,
        ),
        (
            c::HF_HARDWARE_OPTICAL_INTERCONNECT,
            rs::hf_hardware_type::HF_HARDWARE_OPTICAL_INTERCONNECT as u32,
        ),
        (
            c::HF_HARDWARE_CPU_SERVER,
            rs::hf_hardware_type::HF_HARDWARE_CPU_SERVER as u32,
        ),
        (
            c::HF_HARDWARE_STORAGE_ARRAY,
            rs::hf_hardware_type::HF_HARDWARE_STORAGE_ARRAY as u32,
        ),
        (
            c::HF_HARDWARE_NETWORK_SWITCH,
            rs::hf_hardware_type::HF_HARDWARE_NETWORK_SWITCH as u32,
        ),
        (
            c::HF_HARDWARE_CUSTOM,
            rs::hf_hardware_type::HF_HARDWARE_CUSTOM as u32,
        ),
        (c::HF_DATA_TENSOR, rs::hf_data_type::HF_DATA_TENSOR as u32),
        (
            c::HF_DATA_PARAMETER,
            rs::hf_data_type::HF_DATA_PARAMETER as u32,
        ),
        (
            c::HF_DATA_GRADIENT,
            rs::hf_data_type::HF_DATA_GRADIENT as u32,
        ),
        (
            c::HF_DATA_ACTIVATION,
            rs::hf_data_type::HF_DATA_ACTIVATION as u32,
        ),
        (
            c::HF_DATA_EMBEDDING,
            rs::hf_data_type::HF_DATA_EMBEDDING as u32,
        ),
        (
            c::HF_DATA_QUANTUM_STATE,
            rs::hf_data_type::HF_DATA_QUANTUM_STATE as u32,
        ),
        (
            c::HF_DATA_QUANTUM_CIRCUIT,
            rs::hf_data_type::HF_DATA_QUANTUM_CIRCUIT as u32,
        ),
        (
            c::HF_DATA_NEUROMORPHIC_SPIKE,
            rs::hf_data_type::HF_DATA_NEUROMORPHIC_SPIKE as u32,
        ),
        (
            c::HF_DATA_SPIKE_TRAIN,
            rs::hf_data_type::HF_DATA_SPIKE_TRAIN as u32,
        ),
        (
            c::HF_DATA_CONTROL_MESSAGE,
            rs::hf_data_type::HF_DATA_CONTROL_MESSAGE as u32,
        ),
        (
            c::HF_DATA_METADATA,
            rs::hf_data_type::HF_DATA_METADATA as u32,
        ),
        (
            c::HF_DATA_HEARTBEAT,
            rs::hf_data_type::HF_DATA_HEARTBEAT as u32,
        ),
        (c::HF_DATA_GENERIC, rs::hf_data_type::HF_DATA_GENERIC as u32),
        (c::HF_DATA_BINARY, rs::hf_data_type::HF_DATA_BINARY as u32),
        (c::HF_DATA_JSON, rs::hf_data_type::HF_DATA_JSON as u32),
        (
            c::HF_PRIORITY_ULTRA_HIGH,
            rs::hf_packet_priority::HF_PRIORITY_ULTRA_HIGH as u32,
        ),
        (
            c::HF_PRIORITY_HIGH,
            rs::hf_packet_priority::HF_PRIORITY_HIGH as u32,
        ),
        (
            c::HF_PRIORITY_MEDIUM,
            rs::hf_packet_priority::HF_PRIORITY_MEDIUM as u32,
        ),
        (
            c::HF_PRIORITY_LOW,
            rs::hf_packet_priority::HF_PRIORITY_LOW as u32,
        ),
        (
            c::HF_PRIORITY_BULK,
            rs::hf_packet_priority::HF_PRIORITY_BULK as u32,
        ),
        (
            c::HF_ZONE_COMPUTE_CLUSTER,
            rs::hf_zone_type::HF_ZONE_COMPUTE_CLUSTER as u32,
        ),
        (
            c::HF_ZONE_INFERENCE_FARM,
            rs::hf_zone_type::HF_ZONE_INFERENCE_FARM as u32,
        ),
        (
            c::HF_ZONE_STORAGE_TIER,
            rs::hf_zone_type::HF_ZONE_STORAGE_TIER as u32,
        ),
        (
            c::HF_ZONE_QUANTUM_REALM,
            rs::hf_zone_type::HF_ZONE_QUANTUM_REALM as u32,
        ),
        (
            c::HF_ZONE_NEUROMORPHIC_NET,
            rs::hf_zone_type::HF_ZONE_NEUROMORPHIC_NET as u32,
        ),
        (
            c::HF_ZONE_EDGE_NETWORK,
            rs::hf_zone_type::HF_ZONE_EDGE_NETWORK as u32,
        ),
        (
            c::HF_ZONE_CONTROL_PLANE,
            rs::hf_zone_type::HF_ZONE_CONTROL_PLANE as u32,
        ),
        (
            c::HF_ISOLATION_NONE,
            rs::hf_isolation_level::HF_ISOLATION_NONE as u32,
        ),
        (
            c::HF_ISOLATION_LOW,
            rs::hf_isolation_level::HF_ISOLATION_LOW as u32,
        ),
        (
            c::HF_ISOLATION_MEDIUM,
            rs::hf_isolation_level::HF_ISOLATION_MEDIUM as u32,
        ),
        (
            c::HF_ISOLATION_HIGH,
            rs::hf_isolation_level::HF_ISOLATION_HIGH as u32,
        ),
        (
            c::HF_ISOLATION_QUANTUM_SECURE,
            rs::hf_isolation_level::HF_ISOLATION_QUANTUM_SECURE as u32,
        ),
        (
            c::HF_IDLE_ADAPTIVE,
            rs::hf_idle_strategy::HF_IDLE_ADAPTIVE as u32,
        ),
        (c::HF_IDLE_SPIN, rs::hf_idle_strategy::HF_IDLE_SPIN as u32),
        (
            c::HF_METRIC_LATENCY,
            ctl::hf_metric::HF_METRIC_LATENCY as u32,
        ),
        (
            c::HF_METRIC_BANDWIDTH,
            ctl::hf_metric::HF_METRIC_BANDWIDTH as u32,
        ),
        (c::HF_METRIC_HOPS, ctl::hf_metric::HF_METRIC_HOPS as u32),
    ];
    for (i, &(header, rust)) in values.iter().enumerate() {
        assert_eq!(header, rust, "enum value #{i}");
    }
    assert_eq!(values.len(), 16 + 15 + 5 + 7 + 5 + 2 + 3);
    // The reference's constants.
    use hyperfabric::model as m;
    assert_eq!(
        c::HF_MAX_LATENCY_QUANTUM_NS as u64,
        m::MAX_LATENCY_QUANTUM_NS
    );
    assert_eq!(
        c::HF_MAX_LATENCY_AI_INFERENCE_NS as u64,
        m::MAX_LATENCY_AI_INFERENCE_NS
    );
    assert_eq!(
        c::HF_MAX_LATENCY_TRAINING_NS as u64,
        m::MAX_LATENCY_TRAINING_NS
    );
    assert_eq!(c::HF_DEFAULT_BUFFER_SIZE as usize, m::DEFAULT_BUFFER_SIZE);
    assert_eq!(c::HF_LARGE_BUFFER_SIZE as usize, m::LARGE_BUFFER_SIZE);
    assert_eq!(c::HF_QUANTUM_BUFFER_SIZE as usize, m::QUANTUM_BUFFER_SIZE);
    assert_eq!(c::HF_MIN_BANDWIDTH_GBPS, m::MIN_BANDWIDTH_GBPS);
    assert_eq!(c::HF_MAX_BANDWIDTH_GBPS, m::MAX_BANDWIDTH_GBPS);
    assert_eq!(
        c::HF_QUANTUM_COHERENCE_THRESHOLD_US,
        m::QUANTUM_COHERENCE_THRESHOLD_US
    );
    assert_eq!(
        c::HF_MAX_QUANTUM_ENTANGLED_NODES as usize,
        m::MAX_QUANTUM_ENTANGLED_NODES
    );
    assert_eq!(c::HF_MAX_NODE_ID_LEN as usize, m::MAX_NODE_ID_LEN);
    assert_eq!(c::HF_ADDRESS_MAX as usize, hyperfabric::fabric::ADDRESS_MAX);
}

unsafe extern "C" fn upper(
    _user: *mut c_void,
    m: *const c::hf_message_view,
    response: *mut c::hf_response,
) -> c::hf_status {
    let m = unsafe { &*m };
    let data = unsafe { std::slice::from_raw_parts(m.data, m.len) };
    let up = data.to_ascii_uppercase();
    unsafe { c::hf_response_set(response, up.as_ptr(), up.len()) }
}

fn ok(s: c::hf_status) {
    if s != 0 {
        let msg = unsafe { CStr::from_ptr(c::hf_last_error_message()) };
        panic!("status {s}: {msg:?}");
    }
}

#[test]
fn calls_through_the_generated_bindings_work() {
    let fabric = CString::new(format!("ffi-bindgen-{}", std::process::id())).unwrap();
    unsafe {
        let mut o: c::hf_protocol_options = std::mem::zeroed();
        ok(c::hf_protocol_options_init(&mut o));
        o.fabric_name = fabric.as_ptr();
        let (mut a, mut b) = (std::ptr::null_mut(), std::ptr::null_mut());
        ok(c::hf_protocol_new(&o, &mut a));
        ok(c::hf_protocol_new(&o, &mut b));
        let ids = [CString::new("x").unwrap(), CString::new("y").unwrap()];
        for (p, id) in [(a, &ids[0]), (b, &ids[1])] {
            let mut n: c::hf_node_signature = std::mem::zeroed();
            ok(c::hf_node_signature_init(&mut n));
            n.node_id = id.as_ptr();
            n.hardware_type = c::HF_HARDWARE_NVIDIA_H100;
            n.bandwidth_gbps = 400.0;
            n.latency_ns = 100;
            ok(c::hf_register_node(p, &n));
        }
        ok(c::hf_on_receive(
            b,
            ids[1].as_ptr(),
            Some(upper),
            std::ptr::null_mut(),
        ));
        ok(c::hf_start_background_services(b));
        let mut resp: c::hf_bytes = std::mem::zeroed();
        ok(c::hf_send_data(
            a,
            ids[0].as_ptr(),
            ids[1].as_ptr(),
            b"tensor".as_ptr(),
            6,
            std::ptr::null(),
            &mut resp,
        ));
        assert_eq!(std::slice::from_raw_parts(resp.data, resp.len), b"TENSOR");
        c::hf_bytes_free(&mut resp);

        let mut ping = std::ptr::null_mut();
        ok(c::hf_ping(
            a,
            ids[0].as_ptr(),
            ids[1].as_ptr(),
            64,
            1000,
            &mut ping,
        ));
        assert!((*ping).success && (*ping).path_len == 2);
        c::hf_ping_result_free(ping);

        let zone_id = CString::new("gpus").unwrap();
        let mut z: c::hf_fabric_zone = std::mem::zeroed();
        ok(c::hf_fabric_zone_init(&mut z));
        z.zone_id = zone_id.as_ptr();
        z.zone_type = c::HF_ZONE_COMPUTE_CLUSTER;
        z.isolation_level = c::HF_ISOLATION_LOW;
        z.max_nodes = 2;
        z.required_bandwidth_gbps = 100.0;
        ok(c::hf_create_zone(a, &z));
        assert_eq!(c::hf_create_zone(a, &z), c::HF_ERR_DUPLICATE_ZONE);

        let mut pool = std::ptr::null_mut();
        ok(c::hf_buffer_manager_new(1, 64, &mut pool));
        let mut buf = std::ptr::null_mut();
        ok(c::hf_buffer_manager_acquire(pool, &mut buf));
        let mut written = 0;
        ok(c::hf_buffer_write(
            buf,
            b"abc".as_ptr(),
            3,
            0,
            false,
            &mut written,
        ));
        assert_eq!(
            c::hf_buffer_write(buf, b"abc".as_ptr(), 3, 62, false, &mut written),
            c::HF_ERR_BUFFER_OVERFLOW
        );
        c::hf_buffer_free(buf);
        c::hf_buffer_manager_free(pool);

        c::hf_protocol_free(a);
        c::hf_protocol_free(b);
        let mut removed = false;
        ok(c::hf_fabric_remove(fabric.as_ptr(), &mut removed));
        assert!(removed);
    }
}
