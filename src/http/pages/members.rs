//! Members of an organization: the member list (role changes, removal, leaving), a member's
//! permission overrides, invitations (create, shown once; cancel), and the role matrix.
use crate::domain::InvitationId;
use crate::domain::Permission;
use crate::domain::format::time_at;
use crate::http::extract::OrgCtx;
use crate::http::extract::OrgForm;
use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::org_frame::{form_errors, is_user_error, nav, no_store, shown_at};
use super::{layout, render, render_status, see_other};
use crate::db::OrgContext;
use crate::db::repo::members::Member;
use crate::db::scope::has_permission;
use crate::domain::{Email, Invalid, OrgKind, PERMISSIONS, PermissionSet, Role, UserId};
use crate::error::{AppError, Result};
use crate::http::api::pagination::{Page, encode_cursor, time_key};
use crate::http::extract::CurrentUser;
use crate::http::state::AppState;
use crate::http::views::{
    FormErrors, InvitationRow, MatrixRow, MemberPage, MemberRow, MembersPage, NewInviteView,
    PermissionRow, RoleOption,
};
use crate::services::{invitations, members};

/// Members per page.
const PAGE_SIZE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/o/{org}/members", get(index))
        .route("/o/{org}/members/{user_id}", get(show))
        .route(
            "/o/{org}/members/{user_id}/role",
            get(back_to_member).post(change_role),
        )
        .route(
            "/o/{org}/members/{user_id}/permissions",
            get(back_to_member).post(save_permissions),
        )
        .route(
            "/o/{org}/members/{user_id}/remove",
            get(back_to_member).post(remove),
        )
        .route("/o/{org}/invitations", get(back_to_members).post(invite))
        .route(
            "/o/{org}/invitations/{id}/cancel",
            get(back_to_members).post(cancel_invitation),
        )
}

fn members_url(ctx: &OrgContext) -> String {
    format!("/o/{}/members", ctx.org().slug)
}

fn member_url(ctx: &OrgContext, user: UserId) -> String {
    format!("/o/{}/members/{user}", ctx.org().slug)
}

fn user_id(raw: &str) -> Result<UserId> {
    UserId::parse(raw).ok_or_else(AppError::not_found)
}

/// The roles the viewer may hand out: none above their own (so owner only for owners).
fn grantable_roles(mine: Role) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|r| r.rank() <= mine.rank())
        .collect()
}

/// Whether the viewer may act on a member with `target` role (what to offer; the service
/// decides): owners only by owners, nobody ranked above the viewer.
fn may_manage(ctx: &OrgContext, target: Role) -> bool {
    has_permission(ctx, Permission::MembersManage)
        && (target != Role::Owner || ctx.role() == Role::Owner)
        && target.rank() <= ctx.role().rank()
}

fn member_row(ctx: &OrgContext, m: Member) -> MemberRow {
    let is_self = m.user.id == ctx.user_id();
    let personal = ctx.org().kind == OrgKind::Personal;
    let manageable = may_manage(ctx, m.role);
    let role_options = if manageable && !personal {
        grantable_roles(ctx.role())
            .into_iter()
            .map(|r| RoleOption {
                value: r.to_string(),
                selected: r == m.role,
            })
            .collect()
    } else {
        Vec::new()
    };
    MemberRow {
        id: m.user.id.to_string(),
        name: m.user.name,
        email: m.user.email,
        role: m.role.to_string(),
        status: m.status.as_str(),
        joined: time_at(m.joined_at),
        last_active: m.last_active_at.map_or_else(|| "never".into(), time_at),
        is_self,
        role_options,
        can_remove: if is_self { !personal } else { manageable },
        overrides: m.permissions.len(),
        two_factor: has_permission(ctx, Permission::SecurityManage).then_some(m.two_factor),
    }
}

fn matrix() -> (Vec<String>, Vec<MatrixRow>) {
    let roles = Role::ALL.iter().map(|r| r.to_string()).collect();
    let rows = PERMISSIONS
        .iter()
        .map(|p| MatrixRow {
            permission: (*p).to_string(),
            granted: Role::ALL
                .iter()
                .map(|r| r.default_permissions().contains(p))
                .collect(),
        })
        .collect();
    (roles, rows)
}

/// The `after` cursor of the member list: (joined_at, user id). A bad one means page one.
fn decode_after(raw: Option<&str>) -> Option<(String, String)> {
    let page = Page {
        limit: None,
        cursor: raw.filter(|c| !c.is_empty()).map(str::to_string),
    };
    page.after().ok().flatten().and_then(|c| {
        c.split_once('|')
            .map(|(a, b)| (a.to_string(), b.to_string()))
    })
}

async fn members_page(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    after: Option<&str>,
) -> Result<MembersPage> {
    let after = decode_after(after);
    let first_page = after.is_none();
    let mut list = members::list(&s.svc, ctx, after, PAGE_SIZE + 1).await?;
    let next_page = if list.len() as i64 > PAGE_SIZE {
        list.truncate(PAGE_SIZE as usize);
        list.last()
            .map(|m| encode_cursor(&time_key(m.joined_at, m.user.id)))
    } else {
        None
    };
    let can_invite = has_permission(ctx, Permission::MembersInvite);
    let invitations = if can_invite {
        invitations::list_pending(&s.svc, ctx)
            .await?
            .into_iter()
            .map(|i| InvitationRow {
                can_cancel: grantable_roles(ctx.role()).contains(&i.role),
                id: i.id.to_string(),
                email: i.email,
                role: i.role.to_string(),
                invited: time_at(i.created_at),
                expires: time_at(i.expires_at),
            })
            .collect()
    } else {
        Vec::new()
    };
    let (matrix_roles, matrix) = matrix();
    let title = format!("Members · {}", ctx.org().name);
    Ok(MembersPage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, "members"),
        members: list.into_iter().map(|m| member_row(ctx, m)).collect(),
        next_page,
        first_page,
        personal: ctx.org().kind == OrgKind::Personal,
        can_invite,
        invitations,
        invite_roles: grantable_roles(ctx.role())
            .iter()
            .map(|r| r.to_string())
            .collect(),
        invite_email: String::new(),
        invite_role: Role::Member.to_string(),
        invite_errors: FormErrors::default(),
        new_invite: None,
        notice: None,
        error: None,
        matrix_roles,
        matrix,
    })
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    after: Option<String>,
    /// What the previous action did (a fixed set of words, never shown as given).
    #[serde(default)]
    done: Option<String>,
}

async fn index(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let mut page = members_page(&s, &user, &ctx, q.after.as_deref()).await?;
    page.notice = match q.done.as_deref() {
        Some("role") => Some("Role changed.".to_string()),
        Some("removed") => Some("Member removed.".to_string()),
        Some("cancelled") => Some("Invitation cancelled.".to_string()),
        _ => None,
    };
    render(&page)
}

async fn back_to_members(Path(params): Path<Vec<(String, String)>>) -> Response {
    let org = params
        .iter()
        .find(|(k, _)| k == "org")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    see_other(&format!("/o/{org}/members"))
}

async fn back_to_member(Path((org, uid)): Path<(String, String)>) -> Response {
    see_other(&format!("/o/{org}/members/{uid}"))
}

/// After a member action: back to the list, or the list again with what went wrong.
async fn answer(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    result: Result<()>,
    success: String,
) -> Result<Response> {
    match result {
        Ok(()) => Ok(see_other(&success)),
        Err(e) if is_user_error(&e) => {
            let mut page = members_page(s, user, ctx, None).await?;
            page.error = Some(e.public_message());
            Ok(shown_at(
                render_status(e.status(), &page)?,
                &members_url(ctx),
            ))
        }
        Err(e) => Err(e),
    }
}

fn choose_a_role() -> Invalid {
    Invalid::new("role", "Choose one of the roles.")
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
}

async fn change_role(
    State(s): State<AppState>,
    Path((_, uid)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<RoleForm>,
) -> Result<Response> {
    let target = user_id(&uid)?;
    let result = match Role::parse(&f.role) {
        Some(role) => members::update(
            &s.svc,
            &ctx,
            &user.actor(),
            target,
            members::MemberUpdate {
                role: Some(role),
                permissions: None,
            },
        )
        .await
        .map(|_| ()),
        None => Err(AppError::invalid(vec![choose_a_role()])),
    };
    // Who changes their own role may lose the right to see this list.
    let success = if target == ctx.user_id() {
        format!("/o/{}", ctx.org().slug)
    } else {
        format!("{}?done=role", members_url(&ctx))
    };
    answer(&s, &user, &ctx, result, success).await
}

#[derive(Deserialize)]
struct Empty {}

async fn remove(
    State(s): State<AppState>,
    Path((_, uid)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    let target = user_id(&uid)?;
    let result = members::remove(&s.svc, &ctx, &user.actor(), target).await;
    let success = if target == ctx.user_id() {
        "/".to_string()
    } else {
        format!("{}?done=removed", members_url(&ctx))
    };
    answer(&s, &user, &ctx, result, success).await
}

#[derive(Deserialize)]
struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

async fn invite(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<InviteForm>,
) -> Result<Response> {
    let result = match Role::parse(&f.role) {
        Some(role) => invitations::create(&s.svc, &ctx, &user.actor(), &f.email, role).await,
        None => {
            // The address is checked too, so that both are told at once.
            let mut errors = vec![choose_a_role()];
            errors.extend(Email::parse(&f.email).err());
            Err(AppError::invalid(errors))
        }
    };
    match result {
        Ok(created) => {
            let mut page = members_page(&s, &user, &ctx, None).await?;
            page.new_invite = Some(NewInviteView {
                email: created.invitation.email,
                role: created.invitation.role.to_string(),
                accept_url: created.accept_url,
                email_sent: created.email_sent,
                replaced_invitation: created.replaced_invitation,
            });
            // The link is in this response only: never cached, never in htmx's history.
            let res = render_status(StatusCode::CREATED, &page)?;
            Ok(no_store(shown_at(res, &members_url(&ctx))))
        }
        Err(e) => {
            let fallback = if matches!(e, AppError::Forbidden { .. }) {
                "role"
            } else {
                "email"
            };
            let Some(errors) = form_errors(&e, &["email", "role"], fallback) else {
                return Err(e);
            };
            let mut page = members_page(&s, &user, &ctx, None).await?;
            page.invite_email = f.email;
            page.invite_role = f.role;
            page.invite_errors = errors;
            Ok(shown_at(
                render_status(e.status(), &page)?,
                &members_url(&ctx),
            ))
        }
    }
}

async fn cancel_invitation(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    let id = InvitationId::parse(&id).ok_or_else(AppError::not_found)?;
    let result = invitations::cancel(&s.svc, &ctx, &user.actor(), id).await;
    let success = format!("{}?done=cancelled", members_url(&ctx));
    answer(&s, &user, &ctx, result, success).await
}

async fn member_page(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    target: UserId,
) -> Result<MemberPage> {
    let m = members::get(&s.svc, ctx, target).await?;
    let editable = may_manage(ctx, m.role);
    let by_role = m.role.default_permissions();
    let effective = PermissionSet::effective(m.role, &m.permissions);
    let permissions = PERMISSIONS
        .iter()
        .copied()
        .map(|p| {
            let setting = match m.permissions.get(p.as_str()) {
                Some(true) => "grant",
                Some(false) => "deny",
                None => "default",
            };
            PermissionRow {
                path: p.to_string(),
                by_role: by_role.contains(&p),
                setting: setting.to_string(),
                effective: effective.contains(p),
                can_grant: p != Permission::OrgDelete
                    && (has_permission(ctx, p) || m.permissions.get(p.as_str()) == Some(&true)),
            }
        })
        .collect();
    let title = format!("{} · {}", m.user.name, ctx.org().name);
    Ok(MemberPage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, "members"),
        member: member_row(ctx, m),
        editable,
        permissions,
        saved: false,
        access_revoked: false,
        error: None,
    })
}

#[derive(Deserialize, Default)]
struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
    #[serde(default)]
    access_revoked: Option<String>,
}

async fn show(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, uid)): Path<(String, String)>,
    Query(q): Query<SavedQuery>,
) -> Result<Response> {
    let mut page = member_page(&s, &user, &ctx, user_id(&uid)?).await?;
    page.saved = q.saved.is_some();
    page.access_revoked = q.access_revoked.is_some();
    render(&page)
}

/// The overrides in a permission form: `perm:<path>` = `default` | `grant` | `deny`.
fn overrides_from_form(form: &BTreeMap<String, String>) -> BTreeMap<String, bool> {
    form.iter()
        .filter_map(|(k, v)| {
            let path = k.strip_prefix("perm:")?;
            match v.as_str() {
                "grant" => Some((path.to_string(), true)),
                "deny" => Some((path.to_string(), false)),
                _ => None,
            }
        })
        .collect()
}

async fn save_permissions(
    State(s): State<AppState>,
    Path((_, uid)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, form): OrgForm<BTreeMap<String, String>>,
) -> Result<Response> {
    let target = user_id(&uid)?;
    let result = members::update(
        &s.svc,
        &ctx,
        &user.actor(),
        target,
        members::MemberUpdate {
            role: None,
            permissions: Some(overrides_from_form(&form)),
        },
    )
    .await;
    match result {
        Ok(_) => Ok(see_other(&format!("{}?saved=1", member_url(&ctx, target)))),
        Err(e) if is_user_error(&e) => {
            let mut page = member_page(&s, &user, &ctx, target).await?;
            page.error = Some(e.public_message());
            Ok(shown_at(
                render_status(e.status(), &page)?,
                &member_url(&ctx, target),
            ))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;
    use crate::http::views::{Layout, OrgNav};

    fn nav_for(section: &str) -> OrgNav {
        OrgNav::new("acme", "Acme", section, |_| true)
    }

    fn row(id: &str, name: &str, options: Vec<RoleOption>) -> MemberRow {
        MemberRow {
            id: id.into(),
            name: name.into(),
            email: format!("{id}@example.com"),
            role: "member".into(),
            status: "active",
            joined: "2026-11-28 14:05 UTC".into(),
            last_active: "never".into(),
            is_self: false,
            role_options: options,
            can_remove: true,
            overrides: 0,
            two_factor: None,
        }
    }

    fn page() -> MembersPage {
        let (matrix_roles, matrix) = matrix();
        MembersPage {
            layout: Layout {
                title: "Members".into(),
                csrf_token: "csrf-123".into(),
                ..Default::default()
            },
            nav: nav_for("members"),
            members: vec![
                row(
                    "u1",
                    "<b>Bob</b>",
                    vec![
                        RoleOption {
                            value: "admin".into(),
                            selected: false,
                        },
                        RoleOption {
                            value: "member".into(),
                            selected: true,
                        },
                    ],
                ),
                row("u2", "Carol", Vec::new()),
            ],
            next_page: Some("abc".into()),
            first_page: true,
            personal: false,
            can_invite: true,
            invitations: vec![InvitationRow {
                id: "i1".into(),
                email: "dan@example.com".into(),
                role: "viewer".into(),
                invited: "2026-11-28 14:05 UTC".into(),
                expires: "2026-12-05 14:05 UTC".into(),
                can_cancel: true,
            }],
            invite_roles: vec!["admin".into(), "member".into()],
            invite_email: "not-an-email".into(),
            invite_role: "member".into(),
            invite_errors: FormErrors::one(
                "email",
                "Enter an email address like name@example.com.",
            ),
            new_invite: Some(NewInviteView {
                email: "erin@example.com".into(),
                role: "member".into(),
                accept_url: "http://x/invite/tok".into(),
                email_sent: true,
                replaced_invitation: false,
            }),
            notice: None,
            error: None,
            matrix_roles,
            matrix,
        }
    }

    #[test]
    fn the_members_page_offers_role_selects_removal_invitations_and_the_matrix() {
        let html = page().render().unwrap();
        assert!(html.contains("id=\"org-nav\""));
        assert!(html.contains("href=\"/o/acme/members\" aria-current=\"page\""));
        assert!(html.contains("action=\"/o/acme/members/u1/role\""));
        assert!(!html.contains("action=\"/o/acme/members/u2/role\""));
        assert!(html.contains("<option value=\"member\" selected>"));
        assert!(html.contains("&#60;b&#62;Bob") || html.contains("&lt;b&gt;Bob"));
        assert!(!html.contains("<b>Bob"));
        assert!(html.contains("hx-confirm=\"Remove"));
        assert!(html.contains("action=\"/o/acme/invitations/i1/cancel\""));
        assert!(html.contains("id=\"invite-email-error\""));
        assert!(html.contains("aria-invalid=\"true\""));
        assert!(html.contains("http://x/invite/tok"));
        assert!(html.contains("An email was sent"));
        assert!(html.contains("hx-history=\"false\""));
        assert!(html.contains("value=\"csrf-123\""));
        assert!(html.contains("?after=abc"));
        // The matrix: every permission a row, owners hold all of them.
        assert!(html.contains("<code>members.manage</code>"));
        assert_eq!(
            html.matches("<th scope=\"row\">").count(),
            PERMISSIONS.len()
        );
    }

    #[test]
    fn the_members_page_of_a_personal_workspace_offers_no_invitations() {
        let mut p = page();
        p.personal = true;
        p.new_invite = None;
        let html = p.render().unwrap();
        assert!(!html.contains("id=\"invite-form\""));
        assert!(html.contains("personal workspace"));
    }

    #[test]
    fn the_member_page_offers_three_way_choices_only_when_editable() {
        let rows = vec![
            PermissionRow {
                path: "audit.view".into(),
                by_role: false,
                setting: "grant".into(),
                effective: true,
                can_grant: true,
            },
            PermissionRow {
                path: "org.delete".into(),
                by_role: false,
                setting: "default".into(),
                effective: false,
                can_grant: false,
            },
        ];
        let mut p = MemberPage {
            layout: Layout::default(),
            nav: nav_for("members"),
            member: row("u1", "Bob", Vec::new()),
            editable: true,
            permissions: rows,
            access_revoked: false,
            saved: true,
            error: None,
        };
        let html = p.render().unwrap();
        assert!(html.contains("name=\"perm:audit.view\" value=\"grant\" checked"));
        assert!(html.contains("name=\"perm:org.delete\" value=\"grant\"  disabled"));
        assert!(html.contains("Permissions saved."));
        p.editable = false;
        let html = p.render().unwrap();
        assert!(!html.contains("type=\"radio\""));
        assert!(!html.contains("id=\"save-permissions\""));
    }

    #[test]
    fn permission_forms_become_the_complete_override_map() {
        let mut form = BTreeMap::new();
        form.insert("perm:audit.view".to_string(), "grant".to_string());
        form.insert("perm:agents.create".to_string(), "deny".to_string());
        form.insert("perm:llm.use".to_string(), "default".to_string());
        form.insert("other".to_string(), "grant".to_string());
        let o = overrides_from_form(&form);
        assert_eq!(o.len(), 2);
        assert_eq!(o.get("audit.view"), Some(&true));
        assert_eq!(o.get("agents.create"), Some(&false));
    }

    #[test]
    fn only_roles_up_to_ones_own_are_offered() {
        assert_eq!(grantable_roles(Role::Owner).len(), 6);
        assert_eq!(
            grantable_roles(Role::Manager),
            vec![Role::Manager, Role::Member, Role::Viewer, Role::Guest]
        );
    }
}
