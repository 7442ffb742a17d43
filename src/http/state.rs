//! What every handler can reach, and the gateway's part of it.
use std::sync::Arc;

use axum::extract::FromRef;

use crate::config::Config;
use crate::http::gateway::Callers;
use crate::services::Services;
use crate::services::identity::SessionPolicy;
use crate::services::knowledge::Knowledge;
use crate::services::models::Models;
use crate::services::throttle::LoginThrottle;

#[derive(Clone)]
pub struct AppState {
    /// What the use cases run on (database, keys, clock, outbound clients, mail).
    pub svc: Services,
    pub config: Arc<Config>,
    pub throttle: Arc<LoginThrottle>,
    /// "Forgot password" requests, per email and per address.
    pub reset_throttle: Arc<LoginThrottle>,
    /// Sign-ins waiting for their second factor (the sign-in page's second step).
    pub pending_logins: Arc<crate::services::two_factor::PendingLogins>,
    /// The gateway's caches, admission and meter.
    pub gateway: GatewayState,
    /// Knowledge bases' vector index, extraction and indexer.
    pub knowledge: Arc<Knowledge>,
    /// The workflow runner's wake-up call and cancel signals.
    pub runner: Arc<crate::services::workflows::Runner>,
}

impl AppState {
    pub fn new(svc: Services, config: Config, knowledge: Arc<Knowledge>) -> Self {
        let throttle = LoginThrottle::new(
            config.login_window,
            config.login_max_failures_per_account,
            config.login_max_failures_per_ip,
        );
        let config = Arc::new(config);
        let gateway = GatewayState(Arc::new(Gateway {
            models: crate::services::models::Models::start(svc.clone()),
            config: config.clone(),
            callers: Callers::default(),
        }));
        Self {
            svc,
            config,
            throttle: Arc::new(throttle),
            reset_throttle: Arc::new(LoginThrottle::new(
                std::time::Duration::from_secs(30 * 60),
                3,
                20,
            )),
            pending_logins: Arc::default(),
            gateway,
            knowledge,
            runner: crate::services::workflows::Runner::new(),
        }
    }

    /// What workflow runs work with.
    pub fn engine(&self) -> crate::services::workflows::Engine {
        crate::services::workflows::Engine {
            svc: self.svc.clone(),
            models: self.gateway.models.clone(),
            knowledge: self.knowledge.clone(),
            runner: self.runner.clone(),
        }
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
    pub config: Arc<Config>,
    /// Admission, setups and the meter: the one path of model calls.
    pub models: Arc<Models>,
    /// Token holders of recent calls, until the database changes.
    pub callers: Callers,
}

impl Gateway {
    pub fn svc(&self) -> &Services {
        &self.models.svc
    }
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
