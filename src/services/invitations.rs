//! Invitations: create (role up to the inviter's), list pending, cancel, accept — by a
//! signed-in user with the invited email, or by a visitor who makes an account on the spot.
use super::Services;
use crate::config::SmtpConfig;
use crate::domain::Permission;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Actor, ClientMeta, fresh_context, require};
use crate::auth;
use crate::db::repo::orgs::Org;
use crate::db::repo::{audit, invitations, members, users};
use crate::db::scope::joining_context;
use crate::db::unscoped::unscoped_invitation_by_token;
use crate::db::{OrgContext, WriteTx};
use crate::domain::{Email, InvitationId, OrgKind, OrgSettings, Role, UserId, fmt_time};
use crate::error::{AppError, Result};

pub struct Created {
    pub invitation: invitations::Invitation,
    /// Shown once.
    pub token: String,
    pub accept_url: String,
    /// Whether an email went out (SMTP configured and the send worked).
    pub email_sent: bool,
    /// Whether a pending invitation for the same email was cancelled, its link dead.
    pub replaced_invitation: bool,
}

fn invalid() -> AppError {
    AppError::NotFound {
        code: "invitation_invalid",
    }
}

pub fn accept_url(base_url: &str, token: &str) -> String {
    format!("{base_url}/invite/{token}")
}

pub async fn create(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    email: &str,
    role: Role,
) -> Result<Created> {
    let (base_url, smtp) = (&*svc.base_url, svc.mail.as_deref());
    require(ctx, Permission::MembersInvite)?;
    let email = Email::parse(email)?;
    if ctx.org().kind == OrgKind::Personal {
        return Err(AppError::conflict(
            "personal_organization",
            "a personal workspace has no other members; create an organization to invite people",
        ));
    }
    let token = auth::random_token();
    let hash = auth::token_hash(&token);
    let (ctx2, actor2, email2) = (ctx.clone(), actor.clone(), email.clone());
    let at = svc.now();
    let (invitation, replaced_invitation) = svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx2)?;
            check_may_invite(tx, &me, email2.as_str(), role)?;
            let now_s = fmt_time(at);
            let ttl = OrgSettings::from_stored(&me.org().settings).invitation_ttl_days;
            let expires = fmt_time(at + chrono::Duration::days(i64::from(ttl)));
            // Inviting again replaces the earlier link (recorded in this row's details).
            let replaced = invitations::cancel_pending_for_email(tx, &me, email2.as_str(), &now_s)?;
            check_plan_room(tx, &me, &now_s)?;
            let id = InvitationId::new();
            invitations::insert(
                tx,
                &me,
                &invitations::NewInvitation {
                    id,
                    email: email2.as_str(),
                    role,
                    token_hash: &hash,
                    invited_by: actor2.user_id,
                    now: &now_s,
                    expires_at: &expires,
                },
            )?;
            audit::append(
                tx,
                &me,
                &actor2.entry(
                    "member.invited",
                    "invitation",
                    Some(id.to_string()),
                    json!({"email": email2.as_str(), "role": role, "expires_at": expires, "replaced_pending": replaced}),
                ),
                &now_s,
            )?;
            let invitation = invitations::find(tx, &me, id)?.ok_or_else(AppError::not_found)?;
            Ok::<_, AppError>((invitation, replaced > 0))
        })
        .await?;
    let url = accept_url(base_url, &token);
    let email_sent = match smtp {
        Some(cfg) => send_mail(cfg, ctx, actor, &invitation, &url).await,
        None => false,
    };
    Ok(Created {
        invitation,
        token,
        accept_url: url,
        email_sent,
        replaced_invitation,
    })
}

/// The inviter's rules, re-read inside the write: the permission, no role above their
/// own (only an owner invites an owner), and nobody who is already a member.
fn check_may_invite(tx: &WriteTx<'_>, me: &OrgContext, email: &str, role: Role) -> Result<()> {
    require(me, Permission::MembersInvite)?;
    if role == Role::Owner && me.role() != Role::Owner {
        return Err(AppError::Forbidden {
            code: "owner_required",
            message: "Only an owner can invite an owner.".into(),
        });
    }
    if role.rank() > me.role().rank() {
        return Err(AppError::Forbidden {
            code: "role_above_own",
            message: "You cannot invite someone with a role above your own.".into(),
        });
    }
    if members::find_by_email(tx, me, email)?.is_some() {
        return Err(AppError::conflict(
            "already_member",
            "This person is already a member.",
        ));
    }
    Ok(())
}

/// Members and pending invitations together stay within the plan.
fn check_plan_room(tx: &WriteTx<'_>, me: &OrgContext, now: &str) -> Result<()> {
    let plan = crate::db::repo::plans::for_org(tx, me)?.ok_or_else(AppError::not_found)?;
    if let Some(max) = plan.max_members {
        let taken = members::count(tx, me)? + invitations::count_pending(tx, me, now)?;
        if taken >= max {
            return Err(AppError::Unprocessable {
                code: "plan_limit",
                message: format!(
                    "the {} plan allows at most {max} members, counting pending invitations; upgrade the plan, cancel an invitation or remove a member",
                    plan.name
                ),
            });
        }
    }
    Ok(())
}

/// Mails the link; a failure is logged and reported as not sent (the link is shown).
async fn send_mail(
    cfg: &SmtpConfig,
    ctx: &OrgContext,
    actor: &Actor,
    invitation: &invitations::Invitation,
    url: &str,
) -> bool {
    let mail = super::mail::InvitationMail {
        to: &invitation.email,
        org_name: &ctx.org().name,
        inviter: &actor.email,
        role: invitation.role.as_str(),
        accept_url: url,
        expires_at: invitation.expires_at,
    };
    match super::mail::send_invitation(cfg, &mail).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, invitation = %invitation.id, "invitation email not sent");
            false
        }
    }
}

pub async fn list_pending(
    svc: &Services,
    ctx: &OrgContext,
) -> Result<Vec<invitations::Invitation>> {
    require(ctx, Permission::MembersInvite)?;
    let ctx = ctx.clone();
    let now = svc.now_str();
    svc.db
        .read(move |tx| Ok(invitations::list_pending(tx, &ctx, &now)?))
        .await
}

pub async fn cancel(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    id: InvitationId,
) -> Result<()> {
    require(ctx, Permission::MembersInvite)?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::MembersInvite)?;
            let inv = invitations::find(tx, &me, id)?.ok_or_else(AppError::not_found)?;
            // Cancelling follows the rules of inviting: not above your own role.
            if (inv.role == Role::Owner && me.role() != Role::Owner)
                || inv.role.rank() > me.role().rank()
            {
                return Err(AppError::Forbidden {
                    code: "role_above_own",
                    message: "you cannot cancel an invitation for a role above your own".into(),
                });
            }
            if !invitations::cancel(tx, &me, id, &now)? {
                return Err(AppError::not_found());
            }
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "invitation.cancelled",
                    "invitation",
                    Some(id.to_string()),
                    json!({"email": inv.email, "role": inv.role}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}

/// How long an invitation that ended (used, cancelled, expired) is kept: long enough for
/// the members page and a person who asks "what happened to my link", after which the
/// audit log alone tells its story.
pub const FINISHED_KEPT_DAYS: i64 = 30;

/// Removes every organization's invitations that ended more than `FINISHED_KEPT_DAYS`
/// before `at`. Idempotent, one organization per transaction, for the maintenance tick.
pub async fn purge_finished(svc: &Services, at: chrono::DateTime<chrono::Utc>) -> Result<usize> {
    let before = fmt_time(at - chrono::Duration::days(FINISHED_KEPT_DAYS));
    let ids = svc
        .db
        .read(|tx| Ok::<_, AppError>(crate::db::unscoped::unscoped_all_org_ids(tx)?))
        .await?;
    let mut total = 0;
    for id in ids {
        let before = before.clone();
        total += svc
            .db
            .write(move |tx| {
                let Some(ctx) =
                    crate::db::scope::SystemScope::new("invitation-cleanup").in_org(tx, id)?
                else {
                    return Ok(0);
                };
                Ok::<_, AppError>(invitations::purge_finished(tx, &ctx, &before)?)
            })
            .await?;
    }
    Ok(total)
}

/// What the accept page shows about a pending invitation.
#[derive(Debug, Clone)]
pub struct Preview {
    pub org_name: String,
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    pub inviter_name: Option<String>,
    pub account_exists: bool,
}

pub async fn preview(svc: &Services, token: &str) -> Result<Preview> {
    let hash = auth::token_hash(token);
    let now = svc.now();
    svc.db
        .read(move |tx| {
            let inv = unscoped_invitation_by_token(tx, &hash)?
                .filter(|i| i.is_pending(now))
                .ok_or_else(invalid)?;
            let org = crate::db::repo::orgs::find_by_ref(tx, &inv.organization_id.to_string())?
                .ok_or_else(invalid)?;
            let inviter_name = match inv.invited_by {
                Some(u) => users::find_by_id(tx, u)?.map(|u| u.name),
                None => None,
            };
            let account_exists = users::find_by_email(tx, &Email::parse(&inv.email)?)?.is_some();
            Ok(Preview {
                org_name: org.name,
                email: inv.email,
                role: inv.role,
                expires_at: inv.expires_at,
                inviter_name,
                account_exists,
            })
        })
        .await
}

/// Joins `user` to the invitation's organization inside the caller's write job.
fn join(
    tx: &WriteTx<'_>,
    token_hash: &str,
    user: &users::User,
    meta: &ClientMeta,
    at: DateTime<Utc>,
) -> Result<(Org, Role)> {
    let now = &fmt_time(at);
    let inv = unscoped_invitation_by_token(tx, token_hash)?
        .filter(|i| i.is_pending(at))
        .ok_or_else(invalid)?;
    if !inv.email.eq_ignore_ascii_case(&user.email) {
        return Err(AppError::Forbidden {
            code: "invitation_email_mismatch",
            message:
                "this invitation was sent to a different email address; sign in with that account"
                    .into(),
        });
    }
    let ctx = joining_context(tx, &inv, user.id)?.ok_or_else(invalid)?;
    if members::find(tx, &ctx, user.id)?.is_some() {
        return Err(AppError::conflict(
            "already_member",
            "you are already a member of this organization",
        ));
    }
    let plan = crate::db::repo::plans::for_org(tx, &ctx)?.ok_or_else(invalid)?;
    if let Some(max) = plan.max_members
        && members::count(tx, &ctx)? >= max
    {
        return Err(AppError::Unprocessable {
            code: "plan_limit",
            message: format!(
                "this organization has reached its {} plan's member limit; ask an owner to upgrade",
                plan.name
            ),
        });
    }
    if !invitations::mark_accepted(tx, &ctx, inv.id, user.id, now)? {
        return Err(invalid());
    }
    members::insert(tx, &ctx, user.id, inv.role, inv.invited_by, now)?;
    let actor = Actor {
        user_id: user.id,
        email: user.email.clone(),
        meta: meta.clone(),
    };
    audit::append(
        tx,
        &ctx,
        &actor.entry(
            "member.joined",
            "member",
            Some(user.id.to_string()),
            json!({"email": user.email, "role": inv.role, "invitation_id": inv.id}),
        ),
        now,
    )?;
    users::set_current_org(tx, user.id, ctx.org_id(), now)?;
    Ok((ctx.org().clone(), inv.role))
}

/// Refuses acceptance from an address (or by a user) that presented too many invitation
/// links that are not valid: guessing one is hopeless, trying is still throttled.
fn refuse_throttled(svc: &Services, who: &str, meta: &ClientMeta) -> Result<()> {
    match svc.invitation_throttle.blocked(who, meta.ip.as_deref()) {
        None => Ok(()),
        Some(wait) => Err(AppError::TooManyRequests {
            code: "rate_limited",
            message: format!(
                "Too many invitation links that are not valid came from here; try again in {wait} s."
            ),
            retry_after_secs: Some(wait),
        }),
    }
}

/// Counts an acceptance that failed for its link.
fn note_outcome<T>(svc: &Services, who: &str, meta: &ClientMeta, r: &Result<T>) {
    if let Err(AppError::NotFound {
        code: "invitation_invalid",
    }) = r
    {
        svc.invitation_throttle
            .record_failure(who, meta.ip.as_deref());
    }
}

/// A signed-in user accepts; their email must be the invited one.
pub async fn accept(
    svc: &Services,
    user: UserId,
    token: &str,
    meta: &ClientMeta,
) -> Result<(Org, Role)> {
    let who = user.to_string();
    refuse_throttled(svc, &who, meta)?;
    let r = accept_unthrottled(svc, user, token, meta).await;
    note_outcome(svc, &who, meta, &r);
    r
}

async fn accept_unthrottled(
    svc: &Services,
    user: UserId,
    token: &str,
    meta: &ClientMeta,
) -> Result<(Org, Role)> {
    let hash = auth::token_hash(token);
    let meta = meta.clone();
    let at = svc.now();
    svc.db
        .write(move |tx| {
            let user = users::find_by_id(tx, user)?.ok_or(AppError::Unauthorized)?;
            join(tx, &hash, &user, &meta, at)
        })
        .await
}

/// A visitor without an account: makes one for the invited email (even when open
/// sign-up is off — the invitation is the way in) and joins.
pub async fn accept_with_new_account(
    svc: &Services,
    token: &str,
    name: &str,
    password: &str,
    meta: &ClientMeta,
) -> Result<(users::User, Org, Role)> {
    refuse_throttled(svc, "new account", meta)?;
    let r = accept_with_new_account_unthrottled(svc, token, name, password, meta).await;
    note_outcome(svc, "new account", meta, &r);
    r
}

async fn accept_with_new_account_unthrottled(
    svc: &Services,
    token: &str,
    name: &str,
    password: &str,
    meta: &ClientMeta,
) -> Result<(users::User, Org, Role)> {
    let mut errors = Vec::new();
    let name = crate::domain::PersonName::parse(name)
        .map_err(|e| errors.push(e))
        .ok();
    let password = crate::domain::Password::parse(password)
        .map_err(|e| errors.push(e))
        .ok();
    let (Some(name), Some(password)) = (name, password) else {
        return Err(AppError::invalid(errors));
    };
    let p = preview(svc, token).await?;
    if p.account_exists {
        return Err(AppError::conflict(
            "account_exists",
            "an account with this email exists; sign in to accept the invitation",
        ));
    }
    let email = Email::parse(&p.email)?;
    let hash = super::identity::hash_off_thread(password).await?;
    let token_hash = auth::token_hash(token);
    let meta = meta.clone();
    // One transaction: no account is left behind if the invitation went meanwhile.
    let at = svc.now();
    svc.db
        .write(move |tx| {
            let (user, _) = super::identity::insert_user_with_workspace(
                tx,
                &email,
                &name,
                Some(&hash),
                false,
                &meta,
                &fmt_time(at),
            )?;
            let (org, role) = join(tx, &token_hash, &user, &meta, at)?;
            Ok((user, org, role))
        })
        .await
}
