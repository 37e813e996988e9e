//! The SQL port of Zentoria: one [`Db`] over SQLite (the embedded default) or PostgreSQL
//! (to scale out), versioned migrations per backend, and the repositories the domain crates
//! use. Queries are written once with `$n` placeholders wherever both backends mean the same.
//!
//! This crate must never depend on a web framework or on a domain crate.

mod db;
pub mod repo;
mod tx;

pub use db::{Backend, Db, PoolStats};
pub use tx::Tx;

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend is in force. The
/// body is compiled once per backend, so there is no dynamic dispatch on the query path.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// Maps a driver error into the domain error: unique violations become `Conflict`, everything
/// else is internal (and logged by the front end, never shown).
pub fn db_err(e: sqlx::Error) -> zentoria_core::Error {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return zentoria_core::Error::Conflict("already exists".into());
    }
    zentoria_core::Error::internal(e)
}
