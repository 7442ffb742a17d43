//! API integration tests: the real server on a free port, a temporary database, real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod account_basics;
mod admin_console;
mod agent_services;
mod audit_chain;
mod audit_names;
mod audit_trail;
mod backups;
mod billing;
mod cli;
mod compressed_bodies;
mod config_file;
mod errors;
mod extraction;
mod gateway;
mod guards;
mod identity;
mod import;
mod invitations;
mod isolation;
mod isolation_matrix;
mod llm_keys;
mod metrics;
mod org_admin;
mod org_fixture;
mod org_isolation;
mod orgs;
mod outbound_targets;
mod owner_race;
mod pages;
mod panics;
mod private_columns;
mod resources;
mod role_matrix;
mod secrets_in_logs;
mod security_policy;
mod sso;
mod two_factor;
mod visibility_property;
mod workflows;
