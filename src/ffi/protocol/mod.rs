//! `hf_protocol`: the protocol API of the C ABI, one file per concern: the enums
//! (`enums.rs`), the option structs and their defaults (`options.rs`), the handle's life, its
//! nodes and who drives its engine (`lifecycle.rs`), sends (`send.rs`), received messages
//! (`messages.rs`), request handlers (`handlers.rs`), `hf_ping` (`ping.rs`), zones and the
//! topology report (`zones.rs`), and the owned bytes and strings it hands out (`bytes.rs`).

mod bytes;
mod config;
mod enums;
mod handlers;
mod lifecycle;
mod messages;
mod names;
mod options;
mod ping;
mod send;
mod zones;

pub use bytes::{hf_bytes, hf_bytes_free, hf_string_free};
pub use config::{hf_protocol_from_config, hf_register_configured_node};
pub use enums::{
    hf_data_type, hf_hardware_type, hf_idle_strategy, hf_isolation_level, hf_packet_priority,
    hf_zone_type,
};
pub use handlers::{hf_handler, hf_on_receive, hf_response, hf_response_set};
pub(crate) use lifecycle::protocol;
pub use lifecycle::{
    hf_fabric_remove, hf_insert_peer, hf_node_address, hf_progress, hf_protocol, hf_protocol_free,
    hf_protocol_new, hf_register_node, hf_start_background_services, hf_stop_background_services,
    hf_unregister_node, HF_ADDRESS_MAX,
};
pub(crate) use messages::view_of;
pub use messages::{
    hf_message, hf_message_free, hf_message_get_view, hf_message_view, hf_recv, hf_recv_info,
    hf_recv_into,
};
pub use names::{
    hf_data_type_from_name, hf_data_type_name, hf_hardware_type_from_name, hf_hardware_type_name,
    hf_isolation_level_from_name, hf_isolation_level_name, hf_packet_priority_from_name,
    hf_packet_priority_name, hf_zone_type_from_name, hf_zone_type_name,
};
pub use options::{
    hf_node_signature, hf_node_signature_init, hf_protocol_options, hf_protocol_options_init,
    hf_send_options, hf_send_options_init,
};
pub(crate) use options::{send_options, signature};
pub use ping::{hf_ping, hf_ping_result, hf_ping_result_free};
pub use send::{hf_post, hf_send_data, hf_send_data_nb};
pub use zones::{
    hf_assign_to_zone, hf_create_zone, hf_fabric_zone, hf_fabric_zone_init, hf_get_topology_info,
};
