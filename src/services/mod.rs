//! Use cases. Each public function is one operation: it checks the rules, runs its SQL
//! through `db::repo` inside one `db.read`/`db.write`, and writes its audit row in the
//! same write job as the change.
pub mod audit;
pub mod csv_text;
pub mod gateway;
pub mod identity;
pub mod invitations;
pub mod invoices;
pub mod llm;
pub mod llm_probe;
pub mod mail;
pub mod members;
pub mod metering;
pub mod notifications;
pub mod orgs;
pub mod outbound;
pub mod quota;
pub mod resources;
pub mod teams;
pub mod throttle;
pub mod upstream;
pub mod webhooks;

use crate::db::OrgContext;
use crate::db::scope::has_permission;
use crate::domain::{Permission, UserId};
use crate::error::AppError;

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
