//! HyperFabric: a low-latency interconnect library for HPC and AI clusters.
//!
//! The data model of the API reference ([`model`]), the error hierarchy ([`error`]), the
//! topology ([`topology`]), precomputed routing tables ([`routing`]), YAML configuration
//! ([`config`]), hardware detection ([`hw`]); the shared-memory data plane ([`ring`],
//! [`buffer`], [`transport`], [`engine`]) under the protocol ([`fabric`]); and the C ABI
//! ([`ffi`], whose header is `include/hyperfabric.h`).
#![warn(missing_docs)]

#[cfg(not(loom))]
pub mod buffer;
pub mod codec;
pub mod compress;
pub mod config;
#[cfg(not(loom))]
pub mod engine;
pub mod error;
#[cfg(not(loom))]
pub mod fabric;
#[cfg(not(loom))]
pub mod ffi;
pub mod hw;
pub mod model;
pub mod ring;
pub mod routing;
pub mod sync;
pub mod sys;
pub mod testbed;
pub mod topology;
#[cfg(not(loom))]
pub mod transport;

pub use error::{Error, ErrorCategory, ErrorKind, Result};
pub use model::{
    BottleneckInfo, DataType, FabricZone, HardwareType, IsolationLevel, NodeSignature,
    PacketPriority, PingResult, TopologyInfo, ZoneType,
};
pub use routing::{Metric, RouteRequest, RoutingEngine, TopologyManager};
pub use topology::{LinkPolicy, LinkSpec};

/// The README's examples, compiled and run as documentation tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
