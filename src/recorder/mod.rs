//! Terminal recording (DESIGN.md §5): PTY relay, asciicast file, shell-integration markers, snapshots and
//! the fan-out to Outputs. Never the network: Outputs given by `cmd/` do that.

pub mod cast;
pub mod fanout;
pub mod library;
pub mod markers;
pub mod nesting;
pub mod pipeline;
pub mod playback;
pub mod player;
pub mod queue;
pub mod recovery;
pub mod relay;
pub mod retention;
pub mod shell;
pub mod snapshot;
pub mod termfilter;
pub mod tty;
pub mod utf8;
