#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(feature = "server")]
pub mod cache;
pub mod caller;
#[cfg(feature = "client")]
pub mod client;
pub mod env;
#[cfg(feature = "server")]
pub mod env_fingerprint;
#[cfg(all(unix, feature = "client"))]
pub(crate) mod fifo;
#[cfg(feature = "server")]
pub mod fingerprint;
#[cfg(feature = "server")]
pub mod nesting;
pub mod paths;
#[cfg(all(unix, feature = "server"))]
pub(crate) mod private;
pub mod protocol;
#[cfg(feature = "server")]
pub mod reports;
#[cfg(feature = "server")]
pub mod rules;
#[cfg(feature = "server")]
pub(crate) mod runtime;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod session;
#[cfg(feature = "server")]
pub mod trace;
pub mod trace_format;
#[cfg(feature = "client")]
pub(crate) mod transport;

#[cfg(feature = "client")]
pub use client::{Client, ClientConfig};
#[cfg(feature = "server")]
pub use env::EnvMatcher;
pub use env::{EnvQuery, InvalidGlob, DEFAULT_UNTRACKED_ENV};
#[cfg(feature = "server")]
pub use reports::{EnvQueryRecord, EnvRecord, EnvValues, ReportedError, Reports};
#[cfg(feature = "server")]
pub use rules::{
    verdict, CommandOutcome, InferredAccesses, InferredInput, Verdict, VerdictOptions,
};
#[cfg(feature = "server")]
pub use server::{Server, ServerError, ServerOptions, TraceRequest};
#[cfg(feature = "server")]
pub use trace::{Trace, TraceMode};
#[cfg(feature = "server")]
pub use transport::EndpointError;

/// docs/runners.md, whose Rust examples `cargo test --doc` compiles.
#[cfg(all(doctest, feature = "server"))]
#[doc = include_str!("../../../docs/runners.md")]
pub struct RunnersDoc;
