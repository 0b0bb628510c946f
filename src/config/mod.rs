//! Layered configuration: settings schema, per-file parsing with locations, the layer loader and the policy
//! floor. Only `load.rs` knows the layer order.

pub mod bundle_layer;
pub mod durations;
pub mod edit;
pub mod expected;
pub mod file_layer;
pub mod health;
pub mod lines;
pub mod load;
pub mod org_cache;
pub mod policy_set;
pub mod safety;
pub mod settings;
pub mod show;
pub mod trust;

pub use load::{load, load_guarded, LayerInfo, LoadOptions, Loaded, Paths};
pub use policy_set::{PolicySet, SnippetKind, SnippetRef, SourcedLint, SourcedRule};
pub use settings::Settings;

#[cfg(test)]
mod load_tests;
