//! Bastion mode: `ddcoterm agent` holds the evidence (spool, audit log, recordings, upload credentials) under
//! its own system user; recorders running as the user stream to it over a unix socket (docs/bastion.md).
//!
//! `proto` is the wire format, `store` the agent's durable storage (store first, then ack), `server` the
//! listener (peers known by `SO_PEERCRED`), `client` the recorder's side.

pub mod client;
pub mod credentials;
pub mod health;
pub mod progress;
pub mod proto;
pub mod server;
pub mod store;

pub use client::live_recorder;

#[cfg(test)]
mod tests;
