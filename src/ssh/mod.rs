//! SSH logins on a bastion (`ddcoterm ssh-login`, sshd's `ForceCommand`): what a session asks for, which
//! transfer programs may run unrecorded, and who the session comes from. No I/O beyond reading files;
//! `cmd/ssh_login.rs` hands the [`plan::Plan`] to the guard sequence.

pub mod classify;
pub mod health;
pub mod origin;
pub mod plan;
pub mod trust;
pub mod words;
