//! What every handler can reach, and the gateway's part of it.
use std::sync::Arc;

use axum::extract::FromRef;

use crate::config::Config;
use crate::crypto::Keyring;
use crate::db::Db;
use crate::http::gateway::Callers;
use crate::services::gateway::Setups;
use crate::services::identity::SessionPolicy;
use crate::services::metering::{Gate, Meter};
use crate::services::throttle::LoginThrottle;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub throttle: Arc<LoginThrottle>,
    /// Master keys for the stored provider keys.
    pub keyring: Keyring,
    /// The pooled HTTP client for LLM providers (`services::upstream::client`).
    pub upstream: reqwest::Client,
    /// The gateway's caches, admission and meter.
    pub gateway: GatewayState,
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
        let config = Arc::new(config);
        let gateway = GatewayState(Arc::new(Gateway {
            meter: Meter::start(db.clone()),
            db: db.clone(),
            config: config.clone(),
            keyring: keyring.clone(),
            upstream: upstream.clone(),
            gate: Gate::default(),
            setups: Setups::default(),
            callers: Callers::default(),
        }));
        Self {
            db,
            config,
            throttle: Arc::new(throttle),
            keyring,
            upstream,
            gateway,
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

/// What the gateway's handlers take (`State<GatewayState>`): one shared handle, so a
/// call holds it for its whole flight for the price of one reference count.
#[derive(Clone)]
pub struct GatewayState(Arc<Gateway>);

pub struct Gateway {
    pub db: Db,
    pub config: Arc<Config>,
    pub keyring: Keyring,
    pub upstream: reqwest::Client,
    /// Quota reservations and rate limiters.
    pub gate: Gate,
    /// Provider, key and limits of recent calls, until the configuration changes.
    pub setups: Setups,
    /// Token holders of recent calls, until the database changes.
    pub callers: Callers,
    /// Writes the usage in batches.
    pub meter: Meter,
}

impl std::ops::Deref for GatewayState {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.0
    }
}

impl FromRef<AppState> for GatewayState {
    fn from_ref(s: &AppState) -> Self {
        s.gateway.clone()
    }
}
