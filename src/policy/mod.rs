//! Policy: parses an invocation, computes its context from files, and runs sandboxed Luau lints and rules
//! into a [`Decision`]. Never prompts and never runs the guarded tool.

pub mod code_cache;
pub mod context;
pub mod engine;
pub mod flags;
pub mod invocation;
pub mod sandbox;
pub mod test_table;

pub use engine::{Decision, DecisionSource, LintWarning, PolicyEngine};
pub use flags::{parse_flags, FlagValue};
pub use invocation::{Invocation, ProcessFact};
