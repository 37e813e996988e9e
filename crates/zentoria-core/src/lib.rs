//! The shared vocabulary of Zentoria: ids, the domain error, scopes and roles, configuration
//! types, and the crypto helpers every module uses to keep secrets safe.
//!
//! This crate must never depend on a web framework, a database driver or any other Zentoria
//! crate: everything else depends on it.

pub mod cache;
pub mod config;
pub mod crypto;
pub mod error;
pub mod id;
pub mod scope;
pub mod time;

pub use error::{Error, Result};
pub use scope::{Role, Scope, Scopes};
