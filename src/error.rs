//! The one error type of HyperFabric.
//!
//! [`Error`] mirrors the exception hierarchy of the API reference: every variant is one leaf
//! exception (`DuplicateNodeError`, `NoRouteFoundError`, ...), [`ErrorKind`] names it without its
//! message, and [`ErrorCategory`] is its parent class (`NodeError`, `RoutingError`, ...). The
//! numeric status codes that the C ABI returns are assigned here, in blocks of 100 per category,
//! and never reused.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parent class of an error, as in the reference's hierarchy (`NodeError`, `RoutingError`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// `NodeError`: a node is unknown, duplicated or malformed.
    Node,
    /// `RoutingError`: no path, or no path within the constraints.
    Routing,
    /// `QuantumError`: a coherence deadline or quantum-capable path cannot be met.
    Quantum,
    /// `BufferError`: a zero-copy buffer was over- or under-run.
    Buffer,
    /// `ZoneError`: a zone is unknown, duplicated, malformed, full, or its isolation was violated.
    Zone,
    /// `ConfigError`: a configuration file could not be read or is invalid.
    Config,
    /// `IOError`: the operating system refused an operation.
    Io,
    /// `TimeoutError`: an operation did not complete in time.
    Timeout,
    /// `InvalidArgumentError`: an argument that is not a node or zone specification is invalid.
    InvalidArgument,
    /// `SecurityError`: a frame failed authentication or is malformed.
    Security,
}

impl ErrorCategory {
    /// Every category, in status-code order.
    pub const ALL: [ErrorCategory; 10] = [
        ErrorCategory::Node,
        ErrorCategory::Routing,
        ErrorCategory::Quantum,
        ErrorCategory::Buffer,
        ErrorCategory::Zone,
        ErrorCategory::Config,
        ErrorCategory::Io,
        ErrorCategory::Timeout,
        ErrorCategory::InvalidArgument,
        ErrorCategory::Security,
    ];

    /// The exception class name of the category (`"NodeError"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCategory::Node => "NodeError",
            ErrorCategory::Routing => "RoutingError",
            ErrorCategory::Quantum => "QuantumError",
            ErrorCategory::Buffer => "BufferError",
            ErrorCategory::Zone => "ZoneError",
            ErrorCategory::Config => "ConfigError",
            ErrorCategory::Io => "IOError",
            ErrorCategory::Timeout => "TimeoutError",
            ErrorCategory::InvalidArgument => "InvalidArgumentError",
            ErrorCategory::Security => "SecurityError",
        }
    }

    /// The first (least negative) status code of the category's block: codes of the category
    /// lie in `base - 99 ..= base`.
    pub fn status_base(self) -> i32 {
        let index = ErrorCategory::ALL
            .iter()
            .position(|c| *c == self)
            .expect("every category is listed in ALL") as i32;
        -100 * (index + 1)
    }
}

macro_rules! error_kinds {
    ($( $kind:ident = $code:literal, $category:ident, $name:literal, $doc:literal; )*) => {
        /// The leaf exception of an [`Error`], without its message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $( #[doc = $doc] $kind, )*
        }

        impl ErrorKind {
            /// Every kind, in status-code order.
            pub const ALL: &'static [ErrorKind] = &[ $( ErrorKind::$kind, )* ];

            /// The exception name of the reference (`"DuplicateNodeError"`, ...).
            pub fn name(self) -> &'static str {
                match self { $( ErrorKind::$kind => $name, )* }
            }

            /// The parent class of this kind.
            pub fn category(self) -> ErrorCategory {
                match self { $( ErrorKind::$kind => ErrorCategory::$category, )* }
            }

            /// The status code the C ABI returns for this kind (always negative).
            pub fn status_code(self) -> i32 {
                match self { $( ErrorKind::$kind => $code, )* }
            }

            /// The kind that a status code stands for, if any.
            pub fn from_status_code(code: i32) -> Option<ErrorKind> {
                match code { $( $code => Some(ErrorKind::$kind), )* _ => None }
            }
        }
    };
}

error_kinds! {
    DuplicateNode = -101, Node, "DuplicateNodeError", "A node with this id already exists.";
    NodeNotFound = -102, Node, "NodeNotFoundError", "The named node does not exist.";
    InvalidNode = -103, Node, "InvalidNodeError", "A node specification is invalid.";
    NoRouteFound = -201, Routing, "NoRouteFoundError", "No route satisfies the request.";
    LatencyConstraintViolation = -202, Routing, "LatencyConstraintViolationError",
        "The best route is slower than the latency constraint.";
    LinkNotFound = -203, Routing, "LinkNotFoundError", "The named link does not exist.";
    QuantumCoherence = -301, Quantum, "QuantumCoherenceError",
        "No route reaches the destination within the quantum coherence deadline.";
    BufferOverflow = -401, Buffer, "BufferOverflowError", "Data exceeds the buffer capacity.";
    BufferUnderflow = -402, Buffer, "BufferUnderflowError", "Not enough data in the buffer.";
    BufferExhausted = -403, Buffer, "BufferExhaustedError", "Every buffer of the pool is in use.";
    DuplicateZone = -501, Zone, "DuplicateZoneError", "A zone with this id already exists.";
    ZoneNotFound = -502, Zone, "ZoneNotFoundError", "The named zone does not exist.";
    InvalidZone = -503, Zone, "InvalidZoneError", "A zone specification is invalid.";
    InsufficientResources = -504, Zone, "InsufficientResourcesError",
        "The fabric cannot provide what the zone requires.";
    ZoneIsolationViolation = -505, Zone, "ZoneIsolationViolationError",
        "Traffic would cross a zone's isolation boundary.";
    Config = -601, Config, "ConfigError", "A configuration file is unreadable or invalid.";
    Io = -701, Io, "IOError", "An operating-system call failed.";
    Timeout = -801, Timeout, "TimeoutError", "An operation did not complete in time.";
    InvalidArgument = -901, InvalidArgument, "InvalidArgumentError", "An argument is invalid.";
    AuthenticationFailed = -1001, Security, "AuthenticationError",
        "A frame failed authentication (wrong key or tampered).";
    MalformedFrame = -1002, Security, "MalformedFrameError", "A frame does not decode.";
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A HyperFabric error: one variant per leaf exception of the API reference, each carrying a
/// message that names the offending node, zone, field or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `DuplicateNodeError`.
    #[error("{0}")]
    DuplicateNode(String),
    /// `NodeNotFoundError`.
    #[error("{0}")]
    NodeNotFound(String),
    /// `InvalidNodeError`.
    #[error("{0}")]
    InvalidNode(String),
    /// `NoRouteFoundError`.
    #[error("{0}")]
    NoRouteFound(String),
    /// `LatencyConstraintViolationError`.
    #[error("{0}")]
    LatencyConstraintViolation(String),
    /// `LinkNotFoundError`.
    #[error("{0}")]
    LinkNotFound(String),
    /// `QuantumCoherenceError`.
    #[error("{0}")]
    QuantumCoherence(String),
    /// `BufferOverflowError`.
    #[error("{0}")]
    BufferOverflow(String),
    /// `BufferUnderflowError`.
    #[error("{0}")]
    BufferUnderflow(String),
    /// `BufferExhaustedError`.
    #[error("{0}")]
    BufferExhausted(String),
    /// `DuplicateZoneError`.
    #[error("{0}")]
    DuplicateZone(String),
    /// `ZoneNotFoundError`.
    #[error("{0}")]
    ZoneNotFound(String),
    /// `InvalidZoneError`.
    #[error("{0}")]
    InvalidZone(String),
    /// `InsufficientResourcesError`.
    #[error("{0}")]
    InsufficientResources(String),
    /// `ZoneIsolationViolationError`.
    #[error("{0}")]
    ZoneIsolationViolation(String),
    /// `ConfigError`: the message starts with `file:line:` where the position is known.
    #[error("{0}")]
    Config(String),
    /// `IOError`, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. the path being read.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// `TimeoutError`.
    #[error("{0}")]
    Timeout(String),
    /// `InvalidArgumentError`.
    #[error("{0}")]
    InvalidArgument(String),
    /// `AuthenticationError`.
    #[error("{0}")]
    AuthenticationFailed(String),
    /// `MalformedFrameError`.
    #[error("{0}")]
    MalformedFrame(String),
}

impl Error {
    /// The leaf exception of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::DuplicateNode(_) => ErrorKind::DuplicateNode,
            Error::NodeNotFound(_) => ErrorKind::NodeNotFound,
            Error::InvalidNode(_) => ErrorKind::InvalidNode,
            Error::NoRouteFound(_) => ErrorKind::NoRouteFound,
            Error::LatencyConstraintViolation(_) => ErrorKind::LatencyConstraintViolation,
            Error::LinkNotFound(_) => ErrorKind::LinkNotFound,
            Error::QuantumCoherence(_) => ErrorKind::QuantumCoherence,
            Error::BufferOverflow(_) => ErrorKind::BufferOverflow,
            Error::BufferUnderflow(_) => ErrorKind::BufferUnderflow,
            Error::BufferExhausted(_) => ErrorKind::BufferExhausted,
            Error::DuplicateZone(_) => ErrorKind::DuplicateZone,
            Error::ZoneNotFound(_) => ErrorKind::ZoneNotFound,
            Error::InvalidZone(_) => ErrorKind::InvalidZone,
            Error::InsufficientResources(_) => ErrorKind::InsufficientResources,
            Error::ZoneIsolationViolation(_) => ErrorKind::ZoneIsolationViolation,
            Error::Config(_) => ErrorKind::Config,
            Error::Io { .. } => ErrorKind::Io,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::AuthenticationFailed(_) => ErrorKind::AuthenticationFailed,
            Error::MalformedFrame(_) => ErrorKind::MalformedFrame,
        }
    }

    /// Builds an error of `kind` with `message`. `Io` errors built this way carry
    /// `io::ErrorKind::Other`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        let m = message.into();
        match kind {
            ErrorKind::DuplicateNode => Error::DuplicateNode(m),
            ErrorKind::NodeNotFound => Error::NodeNotFound(m),
            ErrorKind::InvalidNode => Error::InvalidNode(m),
            ErrorKind::NoRouteFound => Error::NoRouteFound(m),
            ErrorKind::LatencyConstraintViolation => Error::LatencyConstraintViolation(m),
            ErrorKind::LinkNotFound => Error::LinkNotFound(m),
            ErrorKind::QuantumCoherence => Error::QuantumCoherence(m),
            ErrorKind::BufferOverflow => Error::BufferOverflow(m),
            ErrorKind::BufferUnderflow => Error::BufferUnderflow(m),
            ErrorKind::BufferExhausted => Error::BufferExhausted(m),
            ErrorKind::DuplicateZone => Error::DuplicateZone(m),
            ErrorKind::ZoneNotFound => Error::ZoneNotFound(m),
            ErrorKind::InvalidZone => Error::InvalidZone(m),
            ErrorKind::InsufficientResources => Error::InsufficientResources(m),
            ErrorKind::ZoneIsolationViolation => Error::ZoneIsolationViolation(m),
            ErrorKind::Config => Error::Config(m),
            ErrorKind::Io => Error::Io {
                context: m,
                source: std::io::Error::other("operation failed"),
            },
            ErrorKind::Timeout => Error::Timeout(m),
            ErrorKind::InvalidArgument => Error::InvalidArgument(m),
            ErrorKind::AuthenticationFailed => Error::AuthenticationFailed(m),
            ErrorKind::MalformedFrame => Error::MalformedFrame(m),
        }
    }

    /// The parent class of this error.
    pub fn category(&self) -> ErrorCategory {
        self.kind().category()
    }

    /// The C status code of this error.
    pub fn status_code(&self) -> i32 {
        self.kind().status_code()
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_status_code_and_constructor() {
        let mut seen = std::collections::HashSet::new();
        for &kind in ErrorKind::ALL {
            let code = kind.status_code();
            assert!(code < 0, "{kind} has non-negative code {code}");
            assert!(seen.insert(code), "{kind} reuses code {code}");
            assert_eq!(ErrorKind::from_status_code(code), Some(kind));
            let base = kind.category().status_base();
            assert!(
                code <= base && code > base - 100,
                "{kind} outside its block"
            );
            let err = Error::new(kind, "m");
            assert_eq!(err.kind(), kind);
            assert_eq!(err.status_code(), code);
            assert!(err.to_string().starts_with('m'));
            assert!(kind.name().ends_with("Error"));
        }
        assert_eq!(ErrorKind::from_status_code(0), None);
        assert_eq!(ErrorKind::from_status_code(-100), None);
    }

    #[test]
    fn categories_match_the_reference_hierarchy() {
        assert_eq!(ErrorKind::DuplicateNode.category().name(), "NodeError");
        assert_eq!(ErrorKind::NoRouteFound.category().name(), "RoutingError");
        assert_eq!(
            ErrorKind::LatencyConstraintViolation.category(),
            ErrorCategory::Routing
        );
        assert_eq!(
            ErrorKind::QuantumCoherence.category().name(),
            "QuantumError"
        );
        assert_eq!(ErrorKind::BufferUnderflow.category().name(), "BufferError");
        assert_eq!(
            ErrorKind::InsufficientResources.category(),
            ErrorCategory::Zone
        );
    }
}
