//! Repositories: each a set of functions over [`crate::Db`] for one table family. They hold
//! SQL and nothing else; rules live in the domain crates.

pub mod audit;
pub mod chat;
pub mod jobs;
pub mod keys;
pub mod knowledge;
pub mod providers;
pub mod schedules;
pub mod sessions;
pub mod usage;
pub mod users;
