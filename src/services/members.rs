//! Members of an organization: list, change role and permission overrides, remove.
//! The guard rails (ARCHITECTURE §3) are checked inside the write transaction.
use super::Services;
use std::collections::BTreeMap;

use serde_json::json;

use super::{Actor, fresh_context, require};
use crate::db::OrgContext;
use crate::db::repo::{audit, members};
use crate::domain::{Invalid, Permission, Role, UserId};
use crate::error::{AppError, Result};

pub async fn list(
    svc: &Services,
    ctx: &OrgContext,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<Vec<members::Member>> {
    require(ctx, Permission::MembersView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let after = after.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
            Ok(members::list(tx, &ctx, after, limit)?)
        })
        .await
}

pub async fn get(svc: &Services, ctx: &OrgContext, user: UserId) -> Result<members::Member> {
    require(ctx, Permission::MembersView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| members::find(tx, &ctx, user)?.ok_or_else(AppError::not_found))
        .await
}

fn forbidden(code: &'static str, message: &str) -> AppError {
    AppError::Forbidden {
        code,
        message: message.to_string(),
    }
}

/// Whether `actor` may act on `target` at all: owners only by owners; otherwise only
/// members ranked no higher than the actor.
pub(crate) fn may_manage(actor: &OrgContext, target: Role) -> Result<()> {
    if target == Role::Owner && actor.role() != Role::Owner {
        return Err(forbidden(
            "owner_protected",
            "only an owner can change or remove an owner",
        ));
    }
    if target.rank() > actor.role().rank() {
        return Err(forbidden(
            "role_above_own",
            "you cannot change a member ranked above you",
        ));
    }
    Ok(())
}

/// Whether `actor` may hand out `role`.
fn may_grant_role(actor: &OrgContext, role: Role) -> Result<()> {
    if role == Role::Owner && actor.role() != Role::Owner {
        return Err(forbidden(
            "owner_required",
            "only an owner can make someone an owner",
        ));
    }
    if role.rank() > actor.role().rank() {
        return Err(forbidden(
            "role_above_own",
            "you cannot grant a role above your own",
        ));
    }
    Ok(())
}

pub fn parse_overrides(raw: &BTreeMap<String, bool>) -> Result<BTreeMap<String, bool>> {
    let unknown: Vec<&String> = raw
        .keys()
        .filter(|k| Permission::parse(k).is_none())
        .collect();
    if !unknown.is_empty() {
        let list = unknown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(AppError::invalid(vec![Invalid::new(
            "permissions",
            format!("These are not permissions: {list}."),
        )]));
    }
    Ok(raw.clone())
}

pub struct MemberUpdate {
    pub role: Option<Role>,
    /// The complete set of overrides (replaces the previous one).
    pub permissions: Option<BTreeMap<String, bool>>,
}

pub async fn update(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    user: UserId,
    change: MemberUpdate,
) -> Result<members::Member> {
    require(ctx, Permission::MembersManage)?;
    let overrides = change
        .permissions
        .as_ref()
        .map(parse_overrides)
        .transpose()?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::MembersManage)?;
            let target = members::find(tx, &me, user)?.ok_or_else(AppError::not_found)?;
            may_manage(&me, target.role)?;
            if let Some(role) = change.role.filter(|r| *r != target.role) {
                may_grant_role(&me, role)?;
                if target.role == Role::Owner && members::count_owners(tx, &me)? <= 1 {
                    return Err(AppError::conflict(
                        "last_owner",
                        "an organization needs at least one owner; make someone else owner first",
                    ));
                }
                members::set_role(tx, &me, user, role)?;
                audit::append(
                    tx,
                    &me,
                    &actor.entry(
                        "member.role_changed",
                        "member",
                        Some(user.to_string()),
                        json!({"email": target.user.email, "before": target.role, "after": role}),
                    ),
                    &now,
                )?;
            }
            if let Some(new) = overrides.filter(|o| *o != target.permissions) {
                // Granting is limited to what the actor holds; denying is always allowed.
                let above: Vec<&String> = new
                    .iter()
                    .filter(|(p, grant)| {
                        **grant
                            && !Permission::parse(p).is_some_and(|p| me.permissions().contains(p))
                            && target.permissions.get(*p) != Some(&true)
                    })
                    .map(|(p, _)| p)
                    .collect();
                if !above.is_empty() {
                    let list = above
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(forbidden(
                        "permission_above_own",
                        &format!("you cannot grant permissions you do not hold: {list}"),
                    ));
                }
                if new.get(Permission::OrgDelete.as_str()) == Some(&true) {
                    return Err(forbidden(
                        "owner_required",
                        "org.delete belongs to owners and cannot be granted",
                    ));
                }
                members::set_permissions(tx, &me, user, &new)?;
                audit::append(
                tx,
                &me,
                &actor.entry(
                    "member.permissions_changed",
                    "member",
                    Some(user.to_string()),
                    json!({"email": target.user.email, "before": target.permissions, "after": new}),
                ),
                &now,
            )?;
            }
            members::find(tx, &me, user)?.ok_or_else(AppError::not_found)
        })
        .await
}

/// Removes a member (members.manage), or the caller leaves (anyone). The last owner
/// cannot go. Their API tokens for this organization are revoked with them.
pub async fn remove(svc: &Services, ctx: &OrgContext, actor: &Actor, user: UserId) -> Result<()> {
    remove_with_transfer(svc, ctx, actor, user, None).await
}

/// Removes a member and hands everything they own in the organization to `transfer_to`
/// (a member; default: the remover, or for someone leaving, the longest-standing owner),
/// so that nothing is left owned by someone who can no longer reach it.
pub async fn remove_with_transfer(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    user: UserId,
    transfer_to: Option<UserId>,
) -> Result<()> {
    let leaving = user == ctx.user_id();
    if !leaving {
        require(ctx, Permission::MembersManage)?;
    }
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            let target = members::find(tx, &me, user)?.ok_or_else(AppError::not_found)?;
            if !leaving {
                require(&me, Permission::MembersManage)?;
                may_manage(&me, target.role)?;
            }
            if target.role == Role::Owner && members::count_owners(tx, &me)? <= 1 {
                return Err(AppError::conflict(
                    "last_owner",
                    "an organization needs at least one owner; make someone else owner first",
                ));
            }
            let heir = match transfer_to {
                Some(h) if h == user => {
                    return Err(AppError::invalid(vec![Invalid::new(
                        "transfer_to",
                        "Choose someone other than the member being removed.",
                    )]));
                }
                Some(h) => {
                    members::find(tx, &me, h)?
                        .ok_or_else(|| {
                            AppError::invalid(vec![Invalid::new(
                                "transfer_to",
                                "Choose a member of this organization.",
                            )])
                        })?
                        .user
                        .id
                }
                None if !leaving => me.user_id(),
                None => members::list(tx, &me, None, 1000)?
                    .into_iter()
                    .find(|m| m.role == Role::Owner && m.user.id != user)
                    .map(|m| m.user.id)
                    .ok_or_else(|| {
                        AppError::conflict("last_owner", "an organization needs at least one owner")
                    })?,
            };
            let transferred =
                crate::db::repo::resources::transfer_owner(tx, &me, user, heir, &now)?;
            if !members::remove(tx, &me, user, &now)? {
                return Err(AppError::not_found());
            }
            let moved: serde_json::Map<String, serde_json::Value> = transferred
                .iter()
                .map(|(k, n)| (k.path().to_string(), json!(n)))
                .collect();
            audit::append(
                tx,
                &me,
                &actor.entry(
                    if leaving {
                        "member.left"
                    } else {
                        "member.removed"
                    },
                    "member",
                    Some(user.to_string()),
                    json!({"email": target.user.email, "role": target.role,
                       "resources_transferred_to": heir, "resources_transferred": moved}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}
