//! Use cases. Each public function is one operation: it checks the rules, runs its SQL
//! through `db::repo` inside one `db.read`/`db.write`, and writes its audit row in the
//! same write job as the change.
pub mod admin;
pub mod audit;
pub mod backups;
pub mod chat;
pub mod csv_text;
pub mod gateway;
pub mod identity;
pub mod import;
pub mod invitations;
pub mod invoices;
pub mod knowledge;
pub mod llm;
pub mod llm_probe;
pub mod mail;
pub mod members;
pub mod memory;
pub mod metering;
pub mod models;
pub mod notifications;
pub mod orgs;
pub mod outbound;
pub mod quota;
pub mod resources;
pub mod security;
pub mod sso;
pub mod teams;
pub mod throttle;
pub mod two_factor;
pub mod upstream;
pub mod webhooks;
pub mod workflows;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{EnvProvider, SmtpConfig};
use crate::crypto::Keyring;
use crate::db::scope::has_permission;
use crate::db::{Db, OrgContext};
use crate::domain::{Clock, Permission, UserId, fmt_time};
use crate::error::AppError;

/// What the use cases run on, made once at start (`app.rs`) and shared by the handlers,
/// the background jobs and the tests: the database, the master keys, the clock every rule
/// reads its time from (tests move it), the outbound clients and their policy, the mail
/// settings, the operator's providers, the address links are built from, the backups
/// and the metrics.
#[derive(Clone)]
pub struct Services {
    pub db: Db,
    pub keyring: Keyring,
    pub clock: Clock,
    pub upstream: upstream::Upstream,
    pub targets: outbound::TargetPolicy,
    pub mail: Option<Arc<SmtpConfig>>,
    pub env_providers: Arc<BTreeMap<String, EnvProvider>>,
    pub base_url: Arc<str>,
    /// This server's Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The backup schedule and its status (`backups::Backups::status`).
    pub backups: Arc<backups::Backups>,
    /// The organizations' API rate limits (`security::admit`).
    pub api_rates: Arc<security::ApiRates>,
    /// Invitation links that were not valid, per user and per address.
    pub invitation_throttle: Arc<throttle::LoginThrottle>,
}

impl Services {
    /// The services of a server (or a command) on `db` with `config`'s clock, policy, mail
    /// and providers; `base_url` is what links are built from.
    pub fn new(
        db: Db,
        keyring: Keyring,
        config: &crate::config::Config,
        base_url: String,
    ) -> Result<Self, String> {
        Ok(Services {
            metrics: Arc::new(crate::metrics::Metrics::new(&db)),
            db,
            keyring,
            clock: config.clock.clone(),
            upstream: upstream::Upstream::new(config.targets)?,
            targets: config.targets,
            mail: config.smtp.clone().map(Arc::new),
            env_providers: Arc::new(config.env_providers.clone()),
            base_url: base_url.into(),
            backups: Arc::new(backups::Backups::new(config)),
            api_rates: Arc::default(),
            invitation_throttle: Arc::new(throttle::LoginThrottle::new(
                config.login_window,
                config.login_max_failures_per_account,
                config.login_max_failures_per_ip,
            )),
        })
    }

    /// Services on a database of the tests, with a master key in `dir`.
    #[cfg(test)]
    pub(crate) fn for_tests(db: Db, dir: &std::path::Path) -> Self {
        let keyring = Keyring::load(None, dir).expect("test keyring");
        let config = crate::config::Config::new(dir.to_path_buf());
        Services::new(db, keyring, &config, "http://127.0.0.1:1".into()).expect("test services")
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// `now` as stored in the database.
    pub fn now_str(&self) -> String {
        fmt_time(self.clock.now())
    }
}

/// 403 unless the member holds `permission` (after their role defaults and overrides).
pub fn require(ctx: &OrgContext, permission: Permission) -> Result<(), AppError> {
    if has_permission(ctx, permission) {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            code: "permission_denied",
            message: format!("this needs the {permission} permission in this organization"),
        })
    }
}

/// Where a request came from, for audit rows and session lists.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Who is acting, as recorded in audit rows.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: UserId,
    pub email: String,
    pub meta: ClientMeta,
}

impl Actor {
    pub(crate) fn entry<'a>(
        &'a self,
        action: &'a str,
        resource_type: &'a str,
        resource_id: Option<String>,
        details: serde_json::Value,
    ) -> crate::db::repo::audit::Entry<'a> {
        crate::db::repo::audit::Entry {
            actor_id: Some(self.user_id),
            actor_email: Some(&self.email),
            action,
            resource_type,
            resource_id,
            ip: self.meta.ip.as_deref(),
            user_agent: self.meta.user_agent.as_deref(),
            details,
        }
    }
}

/// The actor's context re-read inside a write job, so that rules about roles are checked
/// against the committed state, not the one seen when the request arrived.
pub(crate) fn fresh_context(
    tx: &crate::db::WriteTx<'_>,
    ctx: &OrgContext,
) -> Result<OrgContext, AppError> {
    crate::db::scope::refresh(tx, ctx)?.ok_or_else(AppError::not_found)
}
