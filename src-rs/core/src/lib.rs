//! runner-aware: a two-way channel between a task runner and the tools it
//! spawns.
//!
//! A runner starts a [`Server`] per task, hands [`Server::env`] to the child,
//! and after the child exits calls [`Server::close`] for the [`Reports`]:
//! which reads and writes the tools said to ignore, which inputs, outputs and
//! key values they declared, which env variables they fetched (tracked or
//! not), and whether they asked not to be cached. Tools talk through
//! [`Client`], one connection per process.

#![warn(missing_docs)]

pub mod client;
pub mod env;
pub mod paths;
pub mod protocol;
pub mod reports;
pub(crate) mod runtime;
pub mod server;
pub mod session;
pub(crate) mod transport;

pub use client::{Client, ClientConfig};
pub use env::{EnvMatcher, EnvQuery, InvalidGlob, DEFAULT_UNTRACKED_ENV};
pub use reports::{EnvQueryRecord, EnvRecord, ReportedError, Reports};
pub use server::{Server, ServerError, ServerOptions};
pub use transport::EndpointError;
