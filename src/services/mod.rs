//! Use cases. Each public function is one operation: it checks the rules, runs its SQL
//! through `db::repo` inside one `db.read`/`db.write`, and writes its audit row in the
//! same write job as the change.
pub mod identity;
pub mod orgs;
pub mod throttle;

use crate::domain::UserId;

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
