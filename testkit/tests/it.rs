//! The testkit's self-tests, in one binary: the registry, its authentication
//! and lifecycle, and the fault proxy.

mod auth;
mod common;
mod lifecycle;
mod proxy;
mod registry;
