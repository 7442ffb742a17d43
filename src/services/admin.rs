//! The instance console: what a signed-in instance administrator does across the instance —
//! organizations (plan, limit overrides, suspension, deletion, entering one explicitly),
//! users (disable, sign out, superuser, password reset links), plans, model prices and
//! instance settings. Every change is audited in the instance chain. Nothing here acts
//! inside an organization's data: entering one makes the administrator a visible member.
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Actor, Services};
use crate::db::WriteTx;
use crate::db::repo::users::User;
use crate::db::repo::{
    audit, orgs, password_resets, plans, prices, sessions, settings, tokens, two_factor, users,
};
use crate::db::unscoped::{self, AdminOrg};
use crate::domain::plans::{PlanLimits, merge_overrides};
use crate::domain::{Invalid, Micros, OrgKind, OrgStatus, Role, UserId, UserStatus, fmt_time};
use crate::error::{AppError, Result};

/// How long a password reset link made in the console works.
pub const RESET_LINK_HOURS: i64 = 24;

/// Proof that the caller is an instance administrator signed in with a session (the
/// user row is read on every request, so a revoked administrator is refused at once).
/// API tokens act in one organization and never reach the console.
#[derive(Debug, Clone)]
pub struct InstanceAdmin {
    actor: Actor,
}

impl InstanceAdmin {
    pub fn check(user: &User, actor: Actor, with_session: bool) -> Result<InstanceAdmin> {
        if !user.is_superuser || user.status != UserStatus::Active || !with_session {
            return Err(AppError::Forbidden {
                code: "superuser_required",
                message: "the instance console is for instance administrators signed in \
                          with a session (API tokens act in one organization)"
                    .into(),
            });
        }
        Ok(InstanceAdmin { actor })
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    fn audit(
        &self,
        tx: &WriteTx<'_>,
        action: &str,
        resource_type: &str,
        id: Option<String>,
        details: Value,
        now: &str,
    ) -> Result<()> {
        audit::append_instance(
            tx,
            &self.actor.entry(action, resource_type, id, details),
            now,
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------- organizations

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrgUsage {
    pub requests: i64,
    pub cost_micros: Micros,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeePlan {
    /// The plan whose fee the period still pays.
    pub plan: String,
    /// YYYY-MM
    pub period: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdminOrgView {
    pub id: String,
    pub name: String,
    pub slug: String,
    #[schema(value_type = String)]
    pub kind: OrgKind,
    pub plan: String,
    pub members: i64,
    #[schema(value_type = String)]
    pub status: OrgStatus,
    pub suspend_reason: Option<String>,
    pub suspended_at: Option<DateTime<Utc>>,
    /// This billing period's totals.
    pub usage: OrgUsage,
    /// The limits in force: the plan's with the overrides applied.
    pub limits: PlanLimits,
    /// Limits set for this organization over its plan's (null: unlimited).
    #[schema(value_type = Object)]
    pub limit_overrides: Value,
    pub fee_plan: Option<FeePlan>,
    pub created_at: DateTime<Utc>,
}

fn org_view(c: &crate::db::Conn<'_>, o: AdminOrg) -> Result<AdminOrgView> {
    let plan = plans::find(c, &o.org.plan)?;
    let limits = plan
        .map(|p| p.limits())
        .unwrap_or_default()
        .overridden_by(&o.limit_overrides);
    Ok(AdminOrgView {
        id: o.org.id.to_string(),
        name: o.org.name,
        slug: o.org.slug,
        kind: o.org.kind,
        plan: o.org.plan,
        members: o.members,
        status: o.org.status,
        suspend_reason: o.org.suspended_reason,
        suspended_at: o.suspended_at,
        usage: OrgUsage {
            requests: o.requests,
            cost_micros: Micros::new(o.cost_micros),
        },
        limits,
        limit_overrides: serde_json::from_str(&o.limit_overrides).unwrap_or_else(|_| json!({})),
        fee_plan: o.fee_plan.map(|(plan, period)| FeePlan { plan, period }),
        created_at: o.org.created_at,
    })
}

pub struct Listed<T> {
    pub items: Vec<T>,
    pub total: i64,
}

pub async fn list_orgs(
    svc: &Services,
    _admin: &InstanceAdmin,
    q: String,
    limit: i64,
    offset: i64,
) -> Result<Listed<AdminOrgView>> {
    let now = svc.now_str();
    svc.db
        .read(move |tx| {
            let (rows, total) = unscoped::unscoped_admin_orgs(tx, &q, &now, limit, offset)?;
            let items = rows
                .into_iter()
                .map(|o| org_view(tx, o))
                .collect::<Result<Vec<_>>>()?;
            Ok(Listed { items, total })
        })
        .await
}

pub async fn get_org(
    svc: &Services,
    _admin: &InstanceAdmin,
    org_ref: String,
) -> Result<AdminOrgView> {
    let now = svc.now_str();
    svc.db
        .read(move |tx| {
            let o = unscoped::unscoped_admin_org(tx, &org_ref, &now)?
                .ok_or_else(AppError::not_found)?;
            org_view(tx, o)
        })
        .await
}

/// A change to an organization from the console; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct OrgChange {
    pub plan: Option<String>,
    /// Charge the new plan's fee from this period (default: from the next one).
    pub apply_now: bool,
    pub limits: Option<Map<String, Value>>,
    pub status: Option<OrgStatus>,
    pub suspend_reason: Option<String>,
}

pub async fn change_org(
    svc: &Services,
    admin: &InstanceAdmin,
    org_ref: String,
    change: OrgChange,
) -> Result<AdminOrgView> {
    let reason = change
        .suspend_reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    if change.status == Some(OrgStatus::Suspended) && reason.is_none() {
        return Err(AppError::invalid(vec![Invalid::new(
            "suspend_reason",
            "Say why the organization is suspended; its members see the reason.",
        )]));
    }
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(AppError::invalid(vec![Invalid::new(
            "suspend_reason",
            "At most 500 characters.",
        )]));
    }
    let (admin, now, at) = (admin.clone(), svc.now_str(), svc.now());
    svc.db
        .write(move |tx| {
            let o = unscoped::unscoped_admin_org(tx, &org_ref, &now)?
                .ok_or_else(AppError::not_found)?;
            let id = o.org.id;
            if let Some(plan) = change.plan.as_deref().filter(|p| *p != o.org.plan) {
                if plans::find(tx, plan)?.is_none() {
                    return Err(AppError::invalid(vec![Invalid::new(
                        "plan",
                        "There is no such plan.",
                    )]));
                }
                // The fee of the period under way stays the earlier plan's unless applied
                // now; a second change in the same period keeps the first plan's fee.
                let anchor = unscoped::unscoped_billing_anchor(tx, id)?;
                let period = crate::domain::period::period_at(at, anchor).label;
                let fee_plan = match (&o.fee_plan, change.apply_now) {
                    (_, true) => None,
                    (Some((earlier, p)), false) if *p == period => Some(earlier.clone()),
                    _ => Some(o.org.plan.clone()),
                };
                let fee = fee_plan.as_deref().map(|f| (f, period.as_str()));
                orgs::set_plan(tx, id, plan, fee, &now)?;
                admin.audit(
                    tx,
                    "organization.plan_changed",
                    "organization",
                    Some(id.to_string()),
                    json!({"name": o.org.name, "from": o.org.plan, "to": plan,
                           "fee_from": if change.apply_now { "now" } else { "next period" }}),
                    &now,
                )?;
            }
            if let Some(sent) = &change.limits {
                let merged =
                    merge_overrides(&o.limit_overrides, sent).map_err(AppError::invalid)?;
                orgs::set_limit_overrides(tx, id, &merged, &now)?;
                admin.audit(
                    tx,
                    "organization.limits_overridden",
                    "organization",
                    Some(id.to_string()),
                    json!({"name": o.org.name, "overrides": merged}),
                    &now,
                )?;
            }
            if let Some(status) = change.status {
                let same_reason = o.org.suspended_reason == reason;
                if status != o.org.status || (status == OrgStatus::Suspended && !same_reason) {
                    orgs::set_status(tx, id, status, reason.as_deref(), &now)?;
                    let action = match status {
                        OrgStatus::Suspended => "organization.suspended",
                        OrgStatus::Active => "organization.unsuspended",
                    };
                    admin.audit(
                        tx,
                        action,
                        "organization",
                        Some(id.to_string()),
                        json!({"name": o.org.name, "reason": reason}),
                        &now,
                    )?;
                }
            }
            let o = unscoped::unscoped_admin_org(tx, &id.to_string(), &now)?
                .ok_or_else(AppError::not_found)?;
            org_view(tx, o)
        })
        .await
}

/// Deletes a team organization and everything in it; `confirm` must repeat its slug.
pub async fn delete_org(
    svc: &Services,
    admin: &InstanceAdmin,
    org_ref: String,
    confirm: String,
) -> Result<()> {
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let org = orgs::find_by_ref(tx, &org_ref)?.ok_or_else(AppError::not_found)?;
            if org.kind == OrgKind::Personal {
                return Err(AppError::conflict(
                    "personal_organization",
                    "a personal workspace goes with its user; disable the user instead",
                ));
            }
            if confirm.trim() != org.slug {
                return Err(AppError::invalid(vec![Invalid::new(
                    "confirm",
                    format!("Type the organization's slug ({}) to delete it.", org.slug),
                )]));
            }
            if !unscoped::unscoped_delete_org(tx, org.id)? {
                return Err(AppError::not_found());
            }
            admin.audit(
                tx,
                "organization.deleted",
                "organization",
                Some(org.id.to_string()),
                json!({"name": org.name, "slug": org.slug, "by": "instance administrator"}),
                &now,
            )?;
            Ok(())
        })
        .await
}

/// The administrator enters an organization explicitly: they become a visible member with
/// the admin role, recorded with the reason in the organization's own chain and in the
/// instance chain. They leave it like any member.
pub async fn enter_org(
    svc: &Services,
    admin: &InstanceAdmin,
    org_ref: String,
    reason: String,
) -> Result<crate::db::OrgContext> {
    let reason = reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::invalid(vec![Invalid::new(
            "reason",
            "Say why you enter the organization (at most 500 characters); its owners see it.",
        )]));
    }
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let org = orgs::find_by_ref(tx, &org_ref)?.ok_or_else(AppError::not_found)?;
            if org.kind == OrgKind::Personal {
                return Err(AppError::conflict(
                    "personal_organization",
                    "a personal workspace has only its user as member",
                ));
            }
            let me = admin.actor.user_id;
            if !unscoped::unscoped_add_member(tx, org.id, me, Role::Admin, &now)? {
                return Err(AppError::conflict(
                    "already_member",
                    "you are a member of this organization already",
                ));
            }
            let ctx = crate::db::scope::enter(tx, me, &org.id.to_string())?
                .ok_or_else(AppError::not_found)?;
            audit::append(
                tx,
                &ctx,
                &admin.actor.entry(
                    "member.instance_admin_joined",
                    "member",
                    Some(me.to_string()),
                    json!({"email": admin.actor.email, "role": "admin", "reason": reason}),
                ),
                &now,
            )?;
            admin.audit(
                tx,
                "organization.entered",
                "organization",
                Some(org.id.to_string()),
                json!({"name": org.name, "reason": reason}),
                &now,
            )?;
            Ok(ctx)
        })
        .await
}

// ---------------------------------------------------------------- users

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserOrg {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub role: Role,
    #[schema(value_type = String)]
    pub status: OrgStatus,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdminUserView {
    pub id: String,
    pub email: String,
    pub name: String,
    #[schema(value_type = String)]
    pub status: UserStatus,
    pub is_superuser: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub organizations: Vec<UserOrg>,
    /// Whether the user has a confirmed second factor.
    pub two_factor_enabled: bool,
}

fn user_views(c: &crate::db::Conn<'_>, rows: Vec<users::ListedUser>) -> Result<Vec<AdminUserView>> {
    let ids: Vec<UserId> = rows.iter().map(|u| u.user.id).collect();
    let memberships = unscoped::unscoped_memberships_of_users(c, &ids)?;
    let mut enrolled = Vec::with_capacity(ids.len());
    for id in &ids {
        enrolled.push(two_factor::is_enabled(c, *id)?);
    }
    Ok(rows
        .into_iter()
        .zip(enrolled)
        .map(|(u, two_factor_enabled)| AdminUserView {
            two_factor_enabled,
            organizations: memberships
                .iter()
                .filter(|(id, _)| *id == u.user.id)
                .map(|(_, m)| UserOrg {
                    id: m.organization.id.to_string(),
                    name: m.organization.name.clone(),
                    slug: m.organization.slug.clone(),
                    role: m.role,
                    status: m.organization.status,
                })
                .collect(),
            id: u.user.id.to_string(),
            email: u.user.email,
            name: u.user.name,
            status: u.user.status,
            is_superuser: u.user.is_superuser,
            last_login_at: u.last_login_at,
            created_at: u.user.created_at,
        })
        .collect())
}

pub async fn list_users(
    svc: &Services,
    _admin: &InstanceAdmin,
    q: String,
    limit: i64,
    offset: i64,
) -> Result<Listed<AdminUserView>> {
    svc.db
        .read(move |tx| {
            let (rows, total) = users::list(tx, &q, limit, offset)?;
            Ok(Listed {
                items: user_views(tx, rows)?,
                total,
            })
        })
        .await
}

fn parse_user(id: &str) -> Result<UserId> {
    UserId::parse(id).ok_or_else(AppError::not_found)
}

fn user_view_of(c: &crate::db::Conn<'_>, id: UserId) -> Result<AdminUserView> {
    let user = users::find_by_id(c, id)?.ok_or_else(AppError::not_found)?;
    let last_login_at = users::last_login(c, id)?;
    user_views(
        c,
        vec![users::ListedUser {
            user,
            last_login_at,
        }],
    )?
    .pop()
    .ok_or_else(AppError::not_found)
}

pub async fn get_user(svc: &Services, _admin: &InstanceAdmin, id: String) -> Result<AdminUserView> {
    let id = parse_user(&id)?;
    svc.db.read(move |tx| user_view_of(tx, id)).await
}

#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub disabled: Option<bool>,
    pub superuser: Option<bool>,
}

fn last_admin() -> AppError {
    AppError::conflict(
        "last_superuser",
        "this is the last instance administrator who can sign in; make another one first",
    )
}

pub async fn change_user(
    svc: &Services,
    admin: &InstanceAdmin,
    id: String,
    change: UserChange,
) -> Result<AdminUserView> {
    let id = parse_user(&id)?;
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let user = users::find_by_id(tx, id)?.ok_or_else(AppError::not_found)?;
            let active_admin = user.is_superuser && user.status == UserStatus::Active;
            let losing_admin =
                active_admin && (change.disabled == Some(true) || change.superuser == Some(false));
            if losing_admin && users::count_active_superusers(tx)? <= 1 {
                return Err(last_admin());
            }
            if let Some(disabled) = change.disabled {
                let status = if disabled {
                    UserStatus::Disabled
                } else {
                    UserStatus::Active
                };
                if status != user.status {
                    users::set_status(tx, id, status, &now)?;
                    let mut details = json!({"email": user.email});
                    if disabled {
                        // Refused at once anyway (authentication reads the status); ended
                        // too, so that enabling the user again does not revive them.
                        let s = sessions::revoke_all_for_user(tx, id, &now)?;
                        let t = tokens::revoke_all_for_user(tx, id, &now)?;
                        details =
                            json!({"email": user.email, "sessions_ended": s, "tokens_revoked": t});
                    }
                    let action = if disabled {
                        "user.disabled"
                    } else {
                        "user.enabled"
                    };
                    admin.audit(tx, action, "user", Some(id.to_string()), details, &now)?;
                }
            }
            if let Some(on) = change.superuser
                && on != user.is_superuser
            {
                users::set_superuser(tx, id, on, &now)?;
                let action = if on {
                    "user.superuser_granted"
                } else {
                    "user.superuser_revoked"
                };
                admin.audit(
                    tx,
                    action,
                    "user",
                    Some(id.to_string()),
                    json!({"email": user.email}),
                    &now,
                )?;
            }
            user_view_of(tx, id)
        })
        .await
}

/// Ends every session of the user (their API tokens stay: revoke those by disabling).
pub async fn sign_out_user(svc: &Services, admin: &InstanceAdmin, id: String) -> Result<usize> {
    let id = parse_user(&id)?;
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let user = users::find_by_id(tx, id)?.ok_or_else(AppError::not_found)?;
            let n = sessions::revoke_all_for_user(tx, id, &now)?;
            admin.audit(
                tx,
                "user.signed_out",
                "user",
                Some(id.to_string()),
                json!({"email": user.email, "sessions_ended": n}),
                &now,
            )?;
            Ok(n)
        })
        .await
}

pub struct ResetLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// A one-time link with which the user sets a new password (shown once, to hand over).
pub async fn password_reset_link(
    svc: &Services,
    admin: &InstanceAdmin,
    id: String,
) -> Result<ResetLink> {
    let id = parse_user(&id)?;
    issue_reset_link(svc, id, Some(admin.actor.clone())).await
}

/// `xagent admin reset-password --email E`: the same one-time link, made on the command
/// line (audited without an actor, as the command line's).
pub async fn password_reset_link_for_email(svc: &Services, email: &str) -> Result<ResetLink> {
    let email = crate::domain::Email::parse(email).map_err(|e| AppError::invalid(vec![e]))?;
    let user = svc
        .db
        .read(move |tx| Ok::<_, AppError>(users::find_by_email(tx, &email)?))
        .await?
        .ok_or(AppError::NotFound {
            code: "user_not_found",
        })?
        .0;
    issue_reset_link(svc, user.id, None).await
}

async fn issue_reset_link(svc: &Services, id: UserId, by: Option<Actor>) -> Result<ResetLink> {
    let token = crate::auth::random_token();
    let hash = crate::auth::token_hash(&token);
    let expires_at = svc.now() + chrono::Duration::hours(RESET_LINK_HOURS);
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let user = users::find_by_id(tx, id)?.ok_or_else(AppError::not_found)?;
            password_resets::insert(
                tx,
                id,
                &hash,
                by.as_ref().map(|a| a.user_id),
                &now,
                &fmt_time(expires_at),
            )?;
            let details = json!({"email": user.email, "expires_at": fmt_time(expires_at),
                                 "by": if by.is_some() { "console" } else { "command line" }});
            let entry = match &by {
                Some(a) => a.entry(
                    "user.password_reset_issued",
                    "user",
                    Some(id.to_string()),
                    details,
                ),
                None => audit::Entry {
                    actor_id: None,
                    actor_email: None,
                    action: "user.password_reset_issued",
                    resource_type: "user",
                    resource_id: Some(id.to_string()),
                    ip: None,
                    user_agent: Some("xagent-cli"),
                    details,
                },
            };
            audit::append_instance(tx, &entry, &now)?;
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(ResetLink {
        url: format!("{}/reset-password/{token}", svc.base_url),
        expires_at,
    })
}

/// Removes a user's second factor (a lost device and no recovery code left): they sign
/// in with the password alone until they enrol again. Their sessions stay.
pub async fn reset_two_factor(svc: &Services, admin: &InstanceAdmin, id: String) -> Result<bool> {
    let id = parse_user(&id)?;
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let user = users::find_by_id(tx, id)?.ok_or_else(AppError::not_found)?;
            let had = super::two_factor::reset_in_tx(tx, id)?;
            admin.audit(
                tx,
                "user.two_factor_reset",
                "user",
                Some(id.to_string()),
                json!({"email": user.email, "had_two_factor": had}),
                &now,
            )?;
            Ok(had)
        })
        .await
}

/// Whether a reset link can still be used, and for whom (its email).
pub async fn reset_link_user(svc: &Services, token: String) -> Result<Option<String>> {
    let (hash, now) = (crate::auth::token_hash(&token), svc.now_str());
    svc.db
        .read(move |tx| {
            let Some((_, user, _)) = password_resets::find_usable(tx, &hash, &now)? else {
                return Ok(None);
            };
            Ok(users::find_by_id(tx, user)?.map(|u| u.email))
        })
        .await
}

/// Sets the new password through a reset link: the link is used up, every session and
/// reset link of the user ends. An unknown, used or expired link is 404.
pub async fn reset_password(
    svc: &Services,
    token: String,
    password: &str,
    meta: super::ClientMeta,
) -> Result<()> {
    let password =
        crate::domain::Password::parse(password).map_err(|e| AppError::invalid(vec![e]))?;
    let hash = super::identity::hash_off_thread(password).await?;
    let (token_hash, now) = (crate::auth::token_hash(&token), svc.now_str());
    svc.db
        .write(move |tx| {
            let (_, id, _) = password_resets::find_usable(tx, &token_hash, &now)?
                .ok_or_else(AppError::not_found)?;
            let user = users::find_by_id(tx, id)?.ok_or_else(AppError::not_found)?;
            users::set_password_hash(tx, id, &hash, &now)?;
            password_resets::use_up(tx, id, &now)?;
            let ended = sessions::revoke_all_for_user(tx, id, &now)?;
            let actor = Actor {
                user_id: id,
                email: user.email.clone(),
                meta,
            };
            audit::append_instance(
                tx,
                &actor.entry(
                    "user.password_reset",
                    "user",
                    Some(id.to_string()),
                    json!({"email": user.email, "sessions_ended": ended}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}

// ---------------------------------------------------------------- plans

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub monthly_fee_micros: Micros,
    pub limits: PlanLimits,
    /// Organizations on this plan.
    pub organizations: i64,
    pub is_default: bool,
}

impl PlanView {
    /// An empty plan, for the form that creates one.
    pub fn blank() -> PlanView {
        PlanView {
            id: "new".into(),
            name: String::new(),
            monthly_fee_micros: Micros::ZERO,
            limits: PlanLimits::default(),
            organizations: 0,
            is_default: false,
        }
    }
}

fn plan_view(p: &plans::Plan, organizations: i64, default: &str) -> PlanView {
    PlanView {
        id: p.id.clone(),
        name: p.name.clone(),
        monthly_fee_micros: p.price_monthly_micros,
        limits: p.limits(),
        organizations,
        is_default: p.id == default,
    }
}

pub async fn list_plans(svc: &Services, _admin: &InstanceAdmin) -> Result<Vec<PlanView>> {
    svc.db
        .read(|tx| {
            let default = super::orgs::default_plan(tx)?;
            Ok(plans::list(tx)?
                .iter()
                .map(|(p, n)| plan_view(p, *n, &default))
                .collect())
        })
        .await
}

#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    pub id: Option<String>,
    pub name: Option<String>,
    pub monthly_fee_micros: Option<Micros>,
    pub limits: Option<PlanLimits>,
}

fn check_plan_input(p: &PlanInput, creating: bool) -> Vec<Invalid> {
    let mut errors = Vec::new();
    match p.name.as_deref().map(str::trim) {
        Some(n) if n.is_empty() || n.chars().count() > 60 => {
            errors.push(Invalid::new("name", "Between 1 and 60 characters."));
        }
        None if creating => errors.push(Invalid::new("name", "Name the plan.")),
        _ => {}
    }
    if let Some(id) = &p.id
        && crate::domain::Slug::parse(id).is_err()
    {
        errors.push(Invalid::new(
            "id",
            "Lower-case letters, digits and dashes (2 to 40), e.g. \"team-plus\".",
        ));
    }
    if p.monthly_fee_micros.is_some_and(|f| f < Micros::ZERO) {
        errors.push(Invalid::new("monthly_fee_micros", "A fee is 0 or more."));
    }
    if let Some(l) = &p.limits {
        errors.extend(l.check());
    }
    errors
}

pub async fn create_plan(
    svc: &Services,
    admin: &InstanceAdmin,
    input: PlanInput,
) -> Result<PlanView> {
    let errors = check_plan_input(&input, true);
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let name = input.name.unwrap_or_default().trim().to_string();
    let id = match input.id {
        Some(id) => id,
        None => crate::domain::Slug::derive_from(&name).as_str().to_string(),
    };
    let limits = input.limits.unwrap_or_default();
    let plan = plans::Plan {
        id,
        name,
        max_agents: None,
        max_workflows: None,
        max_members: None,
        max_documents: None,
        max_storage_bytes: None,
        max_document_bytes: None,
        monthly_ai_credits_micros: None,
        rate_limit_rpm: None,
        price_monthly_micros: input.monthly_fee_micros.unwrap_or(Micros::ZERO),
    };
    let plan = plan.with_limits(&limits);
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            if plans::find(tx, &plan.id)?.is_some() {
                return Err(AppError::conflict(
                    "plan_exists",
                    format!("there is a plan with the id {:?} already", plan.id),
                ));
            }
            plans::save(tx, &plan, &now)?;
            admin.audit(
                tx,
                "plan.created",
                "plan",
                Some(plan.id.clone()),
                json!({"name": plan.name, "monthly_fee_micros": plan.price_monthly_micros,
                       "limits": plan.limits()}),
                &now,
            )?;
            let default = super::orgs::default_plan(tx)?;
            Ok(plan_view(&plan, 0, &default))
        })
        .await
}

/// Changes a plan's name, fee or limits; the limits take effect at once for every
/// organization on it, the fee from the next invoice.
pub async fn change_plan(
    svc: &Services,
    admin: &InstanceAdmin,
    id: String,
    input: PlanInput,
) -> Result<PlanView> {
    let errors = check_plan_input(
        &PlanInput {
            id: None,
            ..input.clone()
        },
        false,
    );
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let mut plan = plans::find(tx, &id)?.ok_or_else(AppError::not_found)?;
            if let Some(n) = &input.name {
                plan.name = n.trim().to_string();
            }
            if let Some(f) = input.monthly_fee_micros {
                plan.price_monthly_micros = f;
            }
            if let Some(l) = &input.limits {
                plan = plan.with_limits(l);
            }
            plans::save(tx, &plan, &now)?;
            admin.audit(
                tx,
                "plan.updated",
                "plan",
                Some(plan.id.clone()),
                json!({"name": plan.name, "monthly_fee_micros": plan.price_monthly_micros,
                       "limits": plan.limits()}),
                &now,
            )?;
            let default = super::orgs::default_plan(tx)?;
            let n = plans::organizations_on(tx, &plan.id)?;
            Ok(plan_view(&plan, n, &default))
        })
        .await
}

/// Removes a plan that no organization is on and that is not the default.
pub async fn delete_plan(svc: &Services, admin: &InstanceAdmin, id: String) -> Result<()> {
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let plan = plans::find(tx, &id)?.ok_or_else(AppError::not_found)?;
            let n = plans::organizations_on(tx, &plan.id)?;
            if n > 0 {
                return Err(AppError::conflict(
                    "plan_in_use",
                    format!(
                        "{n} organizations are on the {} plan; move them first",
                        plan.name
                    ),
                ));
            }
            if super::orgs::default_plan(tx)? == plan.id {
                return Err(AppError::conflict(
                    "plan_is_default",
                    "new organizations start on this plan; choose another default first",
                ));
            }
            plans::delete(tx, &plan.id)?;
            admin.audit(
                tx,
                "plan.deleted",
                "plan",
                Some(plan.id.clone()),
                json!({"name": plan.name}),
                &now,
            )?;
            Ok(())
        })
        .await
}

// ---------------------------------------------------------------- model prices

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PriceView {
    pub id: String,
    /// "" for any provider.
    pub provider: String,
    pub model: String,
    pub input_per_million_micros: Micros,
    pub output_per_million_micros: Micros,
    pub effective_from: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn price_view(p: &prices::Price) -> PriceView {
    PriceView {
        id: p.id.clone(),
        provider: p.provider.clone(),
        model: p.model.clone(),
        input_per_million_micros: p.input_per_million,
        output_per_million_micros: p.output_per_million,
        effective_from: p.effective_from,
        updated_at: p.updated_at,
    }
}

pub async fn list_prices(svc: &Services, _admin: &InstanceAdmin) -> Result<Vec<PriceView>> {
    svc.db
        .read(|tx| Ok(prices::list(tx)?.iter().map(price_view).collect()))
        .await
}

#[derive(Debug, Clone, Default)]
pub struct PriceInput {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub input_per_million_micros: Option<Micros>,
    pub output_per_million_micros: Option<Micros>,
    /// RFC 3339, or a date (midnight UTC).
    pub effective_from: Option<String>,
}

/// A moment as the console takes it: RFC 3339 or YYYY-MM-DD (midnight UTC).
pub fn parse_moment(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn apply_price(p: &mut prices::Price, input: &PriceInput, errors: &mut Vec<Invalid>) {
    if let Some(provider) = &input.provider {
        let provider = provider.trim();
        if provider.chars().count() > 64 || provider.contains(char::is_whitespace) {
            errors.push(Invalid::new(
                "provider",
                "A provider name without spaces (or empty: any).",
            ));
        }
        p.provider = provider.to_string();
    }
    if let Some(model) = &input.model {
        let model = model.trim();
        if model.is_empty() || model.chars().count() > 200 {
            errors.push(Invalid::new("model", "Between 1 and 200 characters."));
        }
        p.model = model.to_string();
    }
    for (field, value, slot) in [
        (
            "input_per_million_micros",
            input.input_per_million_micros,
            &mut p.input_per_million,
        ),
        (
            "output_per_million_micros",
            input.output_per_million_micros,
            &mut p.output_per_million,
        ),
    ] {
        if let Some(v) = value {
            if v < Micros::ZERO {
                errors.push(Invalid::new(field, "A price is 0 or more."));
            }
            *slot = v;
        }
    }
    if let Some(from) = input
        .effective_from
        .as_ref()
        .filter(|f| !f.trim().is_empty())
    {
        match parse_moment(from) {
            Some(t) => p.effective_from = t,
            None => errors.push(Invalid::new(
                "effective_from",
                "A date (2026-12-01) or a moment (2026-12-01T00:00:00Z).",
            )),
        }
    }
}

fn price_taken() -> AppError {
    AppError::conflict(
        "price_exists",
        "this provider and model have a price from that moment already; edit it",
    )
}

pub async fn create_price(
    svc: &Services,
    admin: &InstanceAdmin,
    input: PriceInput,
) -> Result<PriceView> {
    let now_t = crate::domain::as_stored(svc.now());
    let mut p = prices::Price {
        id: crate::domain::new_id().to_string(),
        provider: String::new(),
        model: String::new(),
        input_per_million: Micros::ZERO,
        output_per_million: Micros::ZERO,
        effective_from: now_t,
        updated_at: now_t,
    };
    let mut errors = Vec::new();
    if input.model.is_none() {
        errors.push(Invalid::new("model", "Name the model."));
    }
    if input.input_per_million_micros.is_none() || input.output_per_million_micros.is_none() {
        errors.push(Invalid::new(
            "input_per_million_micros",
            "Give both prices (input and output, per million tokens).",
        ));
    }
    apply_price(&mut p, &input, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            if prices::taken(tx, &p)? {
                return Err(price_taken());
            }
            prices::save(tx, &p, &now)?;
            admin.audit(
                tx,
                "model_price.created",
                "model_price",
                Some(p.id.clone()),
                price_details(&p),
                &now,
            )?;
            Ok(price_view(&p))
        })
        .await
}

fn price_details(p: &prices::Price) -> Value {
    json!({"provider": p.provider, "model": p.model,
           "input_per_million_micros": p.input_per_million,
           "output_per_million_micros": p.output_per_million,
           "effective_from": fmt_time(p.effective_from)})
}

/// Changes a price. Usage already metered keeps what it was charged.
pub async fn change_price(
    svc: &Services,
    admin: &InstanceAdmin,
    id: String,
    input: PriceInput,
) -> Result<PriceView> {
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let mut p = prices::find(tx, &id)?.ok_or_else(AppError::not_found)?;
            let mut errors = Vec::new();
            apply_price(&mut p, &input, &mut errors);
            if !errors.is_empty() {
                return Err(AppError::invalid(errors));
            }
            if prices::taken(tx, &p)? {
                return Err(price_taken());
            }
            prices::save(tx, &p, &now)?;
            admin.audit(
                tx,
                "model_price.updated",
                "model_price",
                Some(p.id.clone()),
                price_details(&p),
                &now,
            )?;
            Ok(price_view(&p))
        })
        .await
}

pub async fn delete_price(svc: &Services, admin: &InstanceAdmin, id: String) -> Result<()> {
    let (admin, now) = (admin.clone(), svc.now_str());
    svc.db
        .write(move |tx| {
            let p = prices::find(tx, &id)?.ok_or_else(AppError::not_found)?;
            prices::delete(tx, &p.id)?;
            admin.audit(
                tx,
                "model_price.deleted",
                "model_price",
                Some(p.id.clone()),
                price_details(&p),
                &now,
            )?;
            Ok(())
        })
        .await
}

// ---------------------------------------------------------------- instance settings

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstanceSettings {
    pub signup_open: bool,
    pub default_plan: String,
    /// Whether outgoing mail is configured (SMTP).
    pub smtp_configured: bool,
}

pub async fn settings(svc: &Services, _admin: &InstanceAdmin) -> Result<InstanceSettings> {
    let smtp_configured = svc.mail.is_some();
    svc.db
        .read(move |tx| {
            Ok(InstanceSettings {
                signup_open: settings::get_bool(tx, settings::SIGNUP_ENABLED)?,
                default_plan: super::orgs::default_plan(tx)?,
                smtp_configured,
            })
        })
        .await
}

pub async fn change_settings(
    svc: &Services,
    admin: &InstanceAdmin,
    signup_open: Option<bool>,
    default_plan: Option<String>,
) -> Result<InstanceSettings> {
    if let Some(open) = signup_open {
        super::identity::set_signup(svc, open, Some(admin.actor())).await?;
    }
    if let Some(plan) = default_plan {
        let (admin, now) = (admin.clone(), svc.now_str());
        svc.db
            .write(move |tx| {
                if plans::find(tx, &plan)?.is_none() {
                    return Err(AppError::invalid(vec![Invalid::new(
                        "default_plan",
                        "There is no such plan.",
                    )]));
                }
                let before = super::orgs::default_plan(tx)?;
                if before != plan {
                    settings::set(tx, settings::DEFAULT_PLAN, &plan, &now)?;
                    admin.audit(
                        tx,
                        "instance.default_plan_changed",
                        "instance",
                        None,
                        json!({"from": before, "to": plan}),
                        &now,
                    )?;
                }
                Ok(())
            })
            .await?;
    }
    settings(svc, admin).await
}

/// Sends a test mail through the configured SMTP server; the error says what failed
/// (never the password).
pub async fn send_test_mail(svc: &Services, admin: &InstanceAdmin, to: String) -> Result<()> {
    let Some(cfg) = svc.mail.clone() else {
        return Err(AppError::conflict(
            "smtp_not_configured",
            "no SMTP server is configured (--smtp-host)",
        ));
    };
    let to = crate::domain::Email::parse(&to).map_err(|e| AppError::invalid(vec![e]))?;
    let body = format!(
        "This is a test mail from xagent at {}, sent by {}.\n",
        svc.base_url, admin.actor.email
    );
    let sent = super::mail::send_text(&cfg, to.as_str(), "xagent test mail", body).await;
    let (a, now, ok) = (admin.clone(), svc.now_str(), sent.is_ok());
    let error = sent.as_ref().err().cloned();
    svc.db
        .write(move |tx| {
            a.audit(
                tx,
                "instance.test_mail_sent",
                "instance",
                None,
                json!({"to": to.as_str(), "delivered": ok, "error": error}),
                &now,
            )
        })
        .await?;
    sent.map_err(|e| AppError::BadGateway {
        code: "smtp_failed",
        message: format!("the test mail was not accepted: {e}"),
    })
}

// ---------------------------------------------------------------- overview and backup

pub async fn count_suspended(svc: &Services, _admin: &InstanceAdmin) -> Result<i64> {
    svc.db.read(|tx| Ok(orgs::count_suspended(tx)?)).await
}

/// A consistent, checked copy of the live database for a superuser to download (removed
/// when dropped). Audited.
pub async fn backup_now(svc: &Services, admin: &InstanceAdmin) -> Result<super::backups::TempCopy> {
    let copy = super::backups::temp_copy(svc).await?;
    let (a, now, size) = (admin.clone(), svc.now_str(), copy.bytes());
    svc.db
        .write(move |tx| {
            a.audit(
                tx,
                "instance.backup_downloaded",
                "instance",
                None,
                json!({"bytes": size}),
                &now,
            )
        })
        .await?;
    Ok(copy)
}

/// The scheduled backups as the console shows them.
pub fn backup_status(svc: &Services, _admin: &InstanceAdmin) -> super::backups::BackupStatus {
    svc.backups.status()
}
