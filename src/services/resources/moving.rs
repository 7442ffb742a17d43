//! Moving what a user owns from their personal workspace into an organization.
use crate::services::Services;
use serde_json::{Map, Value, json};

use super::{limit_reached, plan_limit};
use crate::db::repo::resources::{self as repo};
use crate::db::repo::{audit, plans};
use crate::domain::Role;
use crate::error::{AppError, Result};
use crate::services::{Actor, require};

/// What a move took along.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = MoveResult)]
pub struct MoveResult {
    /// how many of each kind (`agents`, `knowledge-bases`, …) moved
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub moved: Map<String, Value>,
    pub organization_id: crate::domain::OrgId,
}

/// Moves everything the user owns in their personal workspace into an organization where
/// they may create each of those types (the seed's `migrate_user_to_organization`). The
/// target's plan limits apply to the result. Audited in both organizations.
pub async fn move_to_organization(
    svc: &Services,
    actor: &Actor,
    from_ref: String,
    to_ref: String,
) -> Result<MoveResult> {
    let actor = actor.clone();
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let user = actor.user_id;
            let from =
                crate::db::scope::enter(tx, user, &from_ref)?.ok_or_else(AppError::not_found)?;
            let to = crate::db::scope::enter(tx, user, &to_ref)?.ok_or_else(AppError::not_found)?;
            crate::services::orgs::refuse_suspended(from.org())?;
            crate::services::orgs::refuse_suspended(to.org())?;
            if from.org().kind != crate::domain::OrgKind::Personal || from.role() != Role::Owner {
                return Err(AppError::bad_request(
                    "not_personal",
                    "resources move from your personal workspace only",
                ));
            }
            if from.org_id() == to.org_id() {
                return Err(AppError::bad_request(
                    "same_organization",
                    "choose another organization to move to",
                ));
            }
            let counts = repo::owned_counts(tx, &from, user)?;
            for kind in counts.keys() {
                require(&to, kind.create_permission())?;
            }
            let plan = plans::for_org(tx, &to)?.ok_or_else(AppError::not_found)?;
            for (kind, n) in &counts {
                if let Some(max) = plan_limit(*kind, &plan)
                    && repo::count(tx, &to, *kind)? + n > max
                {
                    return Err(limit_reached(kind.path(), max, &plan.name));
                }
            }
            let bytes = repo::owned_storage(tx, &from, user)?;
            if let Some(max) = plan.max_storage_bytes
                && repo::storage_bytes(tx, &to)? + bytes > max
            {
                return Err(AppError::Unprocessable {
                    code: "plan_limit",
                    message: format!(
                        "the {} plan allows {} of documents in all; the move would pass it",
                        plan.name,
                        crate::domain::format::bytes(max)
                    ),
                });
            }
            repo::move_owned(tx, &from, &to, user, &now)?;
            let moved: Map<String, Value> = counts
                .iter()
                .map(|(k, n)| (k.path().to_string(), json!(n)))
                .collect();
            audit::append(
                tx,
                &from,
                &actor.entry(
                    "resources.moved_out",
                    "organization",
                    Some(to.org_id().to_string()),
                    json!({"to": to.org().slug, "moved": moved}),
                ),
                &now,
            )?;
            audit::append(
                tx,
                &to,
                &actor.entry(
                    "resources.moved_in",
                    "organization",
                    Some(from.org_id().to_string()),
                    json!({"from": from.org().slug, "moved": moved}),
                ),
                &now,
            )?;
            Ok(MoveResult {
                moved,
                organization_id: to.org_id(),
            })
        })
        .await
}
