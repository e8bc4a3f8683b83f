//! keelson: a desired-state compiler for Argo CD GitOps estates.
//!
//! The crate is built in floors (see ARCHITECTURE.md, "Floors"): the shared
//! vocabulary at the bottom, one module per pipeline stage above it, the
//! commands that orchestrate stages above those, and [`cli`] on top. A
//! compile is [`gather::gather`] (every read) then [`compile::build`] (pure)
//! then `write`.
//!
//! Public modules are what the binary, the tests, the benchmarks and the
//! fuzz targets use; the rest are crate-private, so rustc reports what
//! nothing uses.

// The vocabulary.
pub mod diagnostic;
pub mod environment;
pub mod error;
pub mod lock;
pub mod model;
mod rules;
pub mod semver;
pub mod strategy;
mod templates;
pub mod timing;
pub mod tree;

// The stages.
pub mod check;
pub mod discover;
mod emit;
pub mod gather;
pub mod graph;
pub mod load;
mod lower;
mod objects;
pub mod policy;
pub mod select;
pub mod write;

// The commands.
pub mod cli;
pub mod compile;
pub mod diff;
mod explain;
pub mod fmt;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod init;
pub mod tags;

pub use emit::yaml;
pub use error::Error;

#[cfg(test)]
mod tidy;
