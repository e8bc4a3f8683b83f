//! keelson: a desired-state compiler for Argo CD GitOps estates.
//!
//! The pipeline, one module per stage (see ARCHITECTURE.md):
//! [`load`] → [`lower`] → [`graph`] → … ; [`check`] runs the front half.

pub mod check;
pub mod compile;
pub mod discover;
pub mod emit;
pub mod lock;
pub mod select;
pub mod write;
pub mod diagnostic;
pub mod error;
pub mod fmt;
pub mod graph;
pub mod init;
pub mod load;
pub mod lower;
pub mod model;
pub mod semver;

pub use error::Error;
