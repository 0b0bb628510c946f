//! ddcoterm: record terminal sessions and guard commands with CoTerm-compatible Lua policy.
//!
//! Layers (DESIGN.md §2): `config`/`dirs`/`model`/`error` at the bottom; `policy`, `datadog`, `spool`,
//! `redact`, `audit` above them; `shim`, `recorder`, `approval`, `bundle`, `ssh`, `upload` above those; the guard sequence (`guard`) and
//! `agent` above them; `cli`/`cmd` on top.

pub mod bundle;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod datadog;
pub mod dirs;
pub mod entry;
pub mod error;
pub mod fsutil;
pub mod guard;
pub mod model;
pub mod nss;
pub mod policy;
pub mod recorder;
pub mod redact;
pub mod shim;
pub mod spool;
// Added by the parallel work streams (one line each, keep sorted on merge):
pub mod agent;
pub mod approval;
pub mod audit;
pub mod ssh;
pub mod upload;
