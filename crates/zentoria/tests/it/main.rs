//! Black-box tests: the real server over real sockets, on SQLite or (with
//! `ZENTORIA_TEST_DATABASE_URL`) PostgreSQL. `scripts/test.sh` runs them on both.

mod audit;
mod auth;
mod chat;
mod cli;
mod command;
mod crash;
mod events;
mod files;
mod gateway;
mod harness;
mod http;
mod jobs;
mod keys;
mod routes;
mod semantic;
mod upstream;
