//! xagent: the organization layer of the xAgent platform in one executable.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//!
//! Dependencies point one way: `domain ← auth ← db ← services ← http ← app ← main`.

/// Application assembly: open the database, build the router, serve, shut down cleanly.
pub mod app;
/// Password hashing and random token generation (no I/O, no HTTP).
pub mod auth;
/// The command line: `serve`, `migrate`, `admin`, `backup`, `restore`, `keys`, `audit`.
pub mod cli;
/// Configuration from flags and `XAGENT_*` variables, validated once at start.
pub mod config;
/// Secrets at rest: master keys, per-organization data keys, sealed provider keys.
pub mod crypto;
/// The only module that touches SQLite: pool, single writer, migrations, tenancy scope, SQL.
pub mod db;
/// Pure types and rules: ids, roles, permissions, emails, slugs.
pub mod domain;
/// The one error type and how it renders for the API and for pages.
pub mod error;
/// The axum router: API, pages, assets, middleware.
pub mod http;
/// Prometheus metrics: the counters the server keeps and their text exposition.
pub mod metrics;
/// Use cases: one function per operation, each inside one database transaction.
pub mod services;
/// Logging setup.
pub mod telemetry;

/// The version printed by `xagent --version` and shown in page footers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
