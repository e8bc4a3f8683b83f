//! keelson: a desired-state compiler for Argo CD GitOps estates.
//!
//! The pipeline, one module per stage (see ARCHITECTURE.md):
//! [`load`] → [`lower`] → [`graph`] → … ; [`check`] runs the front half.

pub mod check;
pub mod cli;
pub mod compile;
pub mod diagnostic;
pub mod diff;
pub mod discover;
pub mod emit;
pub mod environment;
pub mod error;
pub mod explain;
pub mod fmt;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod gather;
pub mod graph;
pub mod init;
pub mod load;
pub mod lock;
pub mod lower;
pub mod model;
pub mod policy;
pub mod rules;
pub mod select;
pub mod semver;
pub mod strategy;
pub mod tags;
pub mod timing;
pub mod tree;
pub mod write;

pub use error::Error;

#[cfg(test)]
mod tidy;
