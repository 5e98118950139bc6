#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod cache;
pub mod caller;
pub mod client;
pub mod env;
pub mod env_fingerprint;
#[cfg(unix)]
pub(crate) mod fifo;
pub mod fingerprint;
pub mod nesting;
pub mod paths;
#[cfg(unix)]
pub(crate) mod private;
pub mod protocol;
pub mod reports;
pub(crate) mod runtime;
pub mod server;
pub mod session;
pub mod trace;
pub(crate) mod transport;

pub use client::{Client, ClientConfig};
pub use env::{EnvMatcher, EnvQuery, InvalidGlob, DEFAULT_UNTRACKED_ENV};
pub use reports::{EnvQueryRecord, EnvRecord, EnvValues, ReportedError, Reports};
pub use server::{Server, ServerError, ServerOptions};
pub use transport::EndpointError;
