//! Organizations: listing the caller's, creating new ones, resolving `{org}` to a context.
use super::Services;
use crate::domain::Permission;
use serde_json::json;

use super::Actor;
use crate::db::repo::{audit, orgs};
use crate::db::scope::enter;
use crate::db::unscoped::{Membership, unscoped_memberships_of};
use crate::db::{OrgContext, WriteTx};
use crate::domain::{Invalid, OrgId, OrgKind, OrgName, OrgSettings, Slug, UserId};
use crate::error::{AppError, Result};

pub async fn list_mine(svc: &Services, user: UserId) -> Result<Vec<Membership>> {
    svc.db
        .read(move |tx| Ok(unscoped_memberships_of(tx, user)?))
        .await
}

/// The membership check as a service: 404 for anything the user may not act in.
/// Also keeps the member's "last active" time (written at most every five minutes).
pub async fn context(svc: &Services, user: UserId, org_ref: String) -> Result<OrgContext> {
    let ctx = svc
        .db
        .lookup(|tx| enter(tx, user, &org_ref)?.ok_or_else(AppError::not_found))?;
    // A member whose org.view is denied by an override is shut out of the organization.
    super::require(&ctx, Permission::OrgView)?;
    refuse_suspended(ctx.org())?;
    super::two_factor::refuse_unenrolled(svc, &ctx)?;
    let now = svc.now();
    if activity_is_stale(ctx.last_active_at(), now) {
        let (db, touch) = (svc.db.clone(), ctx.clone());
        tokio::spawn(async move {
            let stamp = crate::domain::fmt_time(now);
            let _ = db
                .write_bookkeeping(crate::db::Bookkeeping::MemberActive, move |tx| {
                    Ok::<_, AppError>(orgs::touch_member(tx, &touch, &stamp)?)
                })
                .await;
        });
    }
    Ok(ctx)
}

/// A suspended organization answers its own members 403 with the administrator's reason
/// (others still get 404 from the membership check before this).
pub fn refuse_suspended(org: &orgs::Org) -> Result<()> {
    if org.status != crate::domain::OrgStatus::Suspended {
        return Ok(());
    }
    let reason = org
        .suspended_reason
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or("no reason given");
    Err(AppError::Forbidden {
        code: "organization_suspended",
        message: format!(
            "the organization {} is suspended by the instance administrator: {reason}",
            org.name
        ),
    })
}

/// Whether a member's "last active" time is due to be written again: never written, or
/// more than five minutes before `now`.
fn activity_is_stale(
    last_active_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    last_active_at.is_none_or(|t| now.signed_duration_since(t) > chrono::Duration::minutes(5))
}

pub struct CreateOrg {
    pub name: String,
    pub slug: Option<String>,
    pub plan: Option<String>,
}

/// Creates a team organization with the actor as owner.
pub async fn create(
    svc: &Services,
    actor: &Actor,
    is_superuser: bool,
    input: CreateOrg,
) -> Result<orgs::Org> {
    let mut errors = Vec::new();
    let name = OrgName::parse(&input.name).map_err(|e| errors.push(e)).ok();
    let slug = match input
        .slug
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => Slug::parse(s).map_err(|e| errors.push(e)).ok().map(Some),
        None => Some(None),
    };
    let (Some(name), Some(slug)) = (name, slug) else {
        return Err(AppError::invalid(errors));
    };
    let actor = actor.clone();
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let default = default_plan(tx)?;
            let plan = input.plan.unwrap_or_else(|| default.clone());
            if plan != default && !is_superuser {
                return Err(AppError::Forbidden {
                    code: "plan_requires_admin",
                    message: "only an instance administrator can put an organization on \
                              another plan than the default"
                        .into(),
                });
            }
            if !orgs::plan_exists(tx, &plan)? {
                return Err(AppError::invalid(vec![Invalid::new(
                    "plan",
                    "There is no such plan.",
                )]));
            }
            let slug = match slug {
                Some(s) => {
                    if orgs::slug_taken(tx, &s)? {
                        return Err(AppError::conflict(
                            "slug_taken",
                            format!("The slug \"{s}\" is taken; choose another."),
                        ));
                    }
                    s
                }
                None => free_slug(tx, &Slug::derive_from(name.as_str()))?,
            };
            create_in_tx(tx, &actor, &name, &slug, OrgKind::Team, &plan, &now)
        })
        .await
}

/// The plan new organizations and personal workspaces start on: the instance setting,
/// or "free" while none is set (or the one set is gone).
pub(crate) fn default_plan(c: &crate::db::Conn<'_>) -> Result<String> {
    use crate::db::repo::settings;
    match settings::get(c, settings::DEFAULT_PLAN)? {
        Some(p) if orgs::plan_exists(c, &p)? => Ok(p),
        _ => Ok("free".to_string()),
    }
}

/// A slug like `base` that is not taken yet.
pub(crate) fn free_slug(tx: &WriteTx<'_>, base: &Slug) -> Result<Slug> {
    if !orgs::slug_taken(tx, base)? {
        return Ok(base.clone());
    }
    for _ in 0..8 {
        let suffix = &crate::auth::random_token()
            .to_lowercase()
            .replace(['-', '_'], "")[..6];
        let candidate = base.with_suffix(suffix);
        if !orgs::slug_taken(tx, &candidate)? {
            return Ok(candidate);
        }
    }
    Err(AppError::conflict(
        "slug_taken",
        "Could not find a free slug; choose one.",
    ))
}

pub(crate) fn create_in_tx(
    tx: &WriteTx<'_>,
    actor: &Actor,
    name: &OrgName,
    slug: &Slug,
    kind: OrgKind,
    plan: &str,
    now: &str,
) -> Result<orgs::Org> {
    let ctx = orgs::create_with_owner(
        tx,
        &orgs::NewOrg {
            id: OrgId::new(),
            name,
            slug,
            kind,
            plan,
            owner: actor.user_id,
            now,
        },
    )?;
    let org = ctx.org().clone();
    audit::append(
        tx,
        &ctx,
        &actor.entry(
            "organization.created",
            "organization",
            Some(org.id.to_string()),
            json!({"name": org.name, "slug": org.slug, "kind": kind.as_str(), "plan": plan}),
        ),
        now,
    )?;
    Ok(org)
}

/// The newest audit rows of the organization (its home page); the caller checked
/// `audit.view`.
pub struct UpdateOrg {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub settings: Option<serde_json::Value>,
}

/// Renames, re-slugs or re-configures the organization (`org.update`); audited with the
/// values before and after.
pub async fn update(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    input: UpdateOrg,
) -> Result<orgs::Org> {
    super::require(ctx, Permission::OrgUpdate)?;
    let mut errors = Vec::new();
    let name = input
        .name
        .as_deref()
        .map(|n| OrgName::parse(n).map_err(|e| errors.push(e)).ok());
    let slug = input
        .slug
        .as_deref()
        .map(|s| Slug::parse(s).map_err(|e| errors.push(e)).ok());
    // Checked here for a quick answer, and merged again inside the write job against
    // the committed settings, so that concurrent changes to other keys are not lost.
    let current = OrgSettings::from_stored(&ctx.org().settings);
    if let Some(p) = input.settings.as_ref()
        && let Err(e) = current.merged(p)
    {
        errors.extend(e);
    }
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let patch = input.settings;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let ctx = super::fresh_context(tx, &ctx)?;
            super::require(&ctx, Permission::OrgUpdate)?;
            let before = orgs::find_by_ref(tx, &ctx.org_id().to_string())?
                .ok_or_else(AppError::not_found)?;
            let settings = patch
                .as_ref()
                .map(|p| OrgSettings::from_stored(&before.settings).merged(p))
                .transpose()
                .map_err(AppError::invalid)?;
            let new_name = name
                .flatten()
                .map_or(before.name.clone(), |n| n.into_inner());
            let new_slug = slug
                .flatten()
                .map_or(before.slug.clone(), |s| s.into_inner());
            let new_settings = match settings {
                Some(s) => {
                    serde_json::to_value(s).map_err(|e| AppError::Internal(e.to_string()))?
                }
                None => before.settings.clone(),
            };
            if new_slug != before.slug {
                let s = Slug::parse(&new_slug)?;
                if orgs::slug_taken(tx, &s)? {
                    return Err(AppError::conflict(
                        "slug_taken",
                        format!("The slug \"{new_slug}\" is taken; choose another."),
                    ));
                }
            }
            if new_name == before.name && new_slug == before.slug && new_settings == before.settings
            {
                return Ok(before);
            }
            orgs::update(tx, &ctx, &new_name, &new_slug, &new_settings, &now)?;
            let mut changed_before = serde_json::Map::new();
            let mut changed_after = serde_json::Map::new();
            for (k, b, a) in [
                ("name", json!(before.name), json!(new_name)),
                ("slug", json!(before.slug), json!(new_slug)),
                ("settings", before.settings.clone(), new_settings.clone()),
            ] {
                if b != a {
                    changed_before.insert(k.into(), b);
                    changed_after.insert(k.into(), a);
                }
            }
            audit::append(
                tx,
                &ctx,
                &actor.entry(
                    "organization.updated",
                    "organization",
                    Some(ctx.org_id().to_string()),
                    json!({"before": changed_before, "after": changed_after}),
                ),
                &now,
            )?;
            orgs::find_by_ref(tx, &ctx.org_id().to_string())?.ok_or_else(AppError::not_found)
        })
        .await
}

/// Deletes a team organization and everything in it, in one transaction; owners only,
/// never a personal organization. Audited in the instance log (the org's own log goes).
pub async fn delete(svc: &Services, ctx: &OrgContext, actor: &Actor) -> Result<()> {
    // org.delete is an owner's permission (it cannot be granted to others, and an owner
    // may have it denied by an override).
    if ctx.role() != crate::domain::Role::Owner
        || !crate::db::scope::has_permission(ctx, Permission::OrgDelete)
    {
        return Err(AppError::Forbidden {
            code: "owner_required",
            message: "only an owner can delete the organization".into(),
        });
    }
    if ctx.org().kind == OrgKind::Personal {
        return Err(AppError::conflict(
            "personal_organization",
            "a personal workspace cannot be deleted",
        ));
    }
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            if !orgs::delete(tx, &ctx)? {
                return Err(AppError::not_found());
            }
            audit::append_instance(
                tx,
                &actor.entry(
                    "organization.deleted",
                    "organization",
                    Some(ctx.org_id().to_string()),
                    json!({"name": ctx.org().name, "slug": ctx.org().slug}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn activity_is_written_again_only_after_five_minutes() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 14, 5, 0).unwrap();
        assert!(activity_is_stale(None, now), "never written");
        assert!(!activity_is_stale(Some(now - Duration::minutes(4)), now));
        assert!(!activity_is_stale(Some(now - Duration::minutes(5)), now));
        assert!(activity_is_stale(
            Some(now - Duration::minutes(5) - Duration::microseconds(1)),
            now
        ));
        // Across midnight and a month's end: the times, not their text, are compared.
        let midnight = Utc.with_ymd_and_hms(2026, 12, 1, 0, 2, 0).unwrap();
        let before = Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 0).unwrap();
        assert!(!activity_is_stale(Some(before), midnight));
    }
}
