//! What every handler can reach.
use std::sync::Arc;

use crate::config::Config;
use crate::crypto::Keyring;
use crate::db::Db;
use crate::services::identity::SessionPolicy;
use crate::services::throttle::LoginThrottle;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub throttle: Arc<LoginThrottle>,
    /// Master keys for the stored provider keys.
    pub keyring: Keyring,
    /// The pooled HTTP client for LLM providers.
    pub upstream: reqwest::Client,
    /// Quota reservations and rate limiters of the gateway.
    pub gate: Arc<crate::services::quota::Gate>,
    /// Provider, key and limits of recent gateway calls, until the configuration changes.
    pub setups: Arc<crate::services::gateway::Setups>,
    /// Token holders of recent gateway calls, until the database changes.
    pub callers: Arc<crate::http::gateway::Callers>,
    /// Writes the gateway's usage in batches.
    pub meter: crate::services::gateway::Meter,
    /// The base URL links are built from (public URL, or the bound address).
    pub base_url: Arc<str>,
}

impl AppState {
    pub fn new(
        db: Db,
        config: Config,
        keyring: Keyring,
        upstream: reqwest::Client,
        base_url: String,
    ) -> Self {
        let throttle = LoginThrottle::new(
            config.login_window,
            config.login_max_failures_per_account,
            config.login_max_failures_per_ip,
        );
        let meter = crate::services::gateway::Meter::start(db.clone());
        Self {
            db,
            config: Arc::new(config),
            throttle: Arc::new(throttle),
            keyring,
            upstream,
            gate: Arc::default(),
            setups: Arc::default(),
            callers: Arc::default(),
            meter,
            base_url: base_url.into(),
        }
    }

    /// "Test connection" with this server's keys, environment and upstream client (the
    /// API and the pages both offer it).
    pub async fn test_connection(
        &self,
        ctx: &crate::db::OrgContext,
        provider: &str,
        target: crate::services::llm_probe::Target,
    ) -> crate::error::Result<crate::services::llm_probe::ConnectionTest> {
        crate::services::llm_probe::test_connection(
            &self.db,
            &self.keyring,
            &self.config.env_providers,
            &self.upstream,
            ctx,
            provider,
            target,
        )
        .await
    }

    pub fn session_policy(&self) -> SessionPolicy {
        SessionPolicy {
            idle: self.config.session_idle,
            max_age: self.config.session_max_age,
        }
    }
}
