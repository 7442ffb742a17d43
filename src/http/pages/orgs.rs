//! Organization pages: home, create, switch.
use crate::domain::Permission;
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::org_frame::form_errors;
use super::{layout, render, render_status, safe_next, see_other};
use crate::db::scope::has_permission;
use crate::error::{AppError, Result};
use crate::http::extract::{CsrfForm, CurrentUser};
use crate::http::state::AppState;
use crate::http::views::{AuditRow, FormErrors, NavOrg, NewOrgPage, OrgDashboardPage, short_time};
use crate::services::{identity, orgs, resources};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/o/{org}", get(home))
        .route("/orgs/new", get(new_form).post(create))
        .route("/switch-org", post(switch))
}

async fn home(State(s): State<AppState>, OrgCtx { user, ctx }: OrgCtx) -> Result<Response> {
    let layout = layout(&s, &user, ctx.org().name.as_str(), Some(ctx.org_id())).await?;
    let can_view_audit = has_permission(&ctx, Permission::AuditView);
    let recent = if can_view_audit {
        let (rows, _) =
            crate::services::audit::labelled(&s.svc, &ctx, Default::default(), None, 10).await?;
        rows.into_iter()
            .map(|l| AuditRow {
                at: short_time(&l.record.at),
                actor: l.actor.name,
                actor_title: l
                    .actor
                    .id
                    .map(|id| format!("user {id}"))
                    .unwrap_or_default(),
                action: l.record.action,
                resource: [l.resource.kind, l.resource.name]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect()
    } else {
        Vec::new()
    };
    // Organization-wide counts are for members who may list members (not guests).
    let dashboard = if has_permission(&ctx, Permission::MembersView) {
        let now = s.svc.now();
        let limits = resources::limits(&s.svc, &ctx, now).await?;
        let summary = resources::summary(&s.svc, &ctx, now).await?;
        Some(super::dashboard::dashboard_of(&limits, &summary))
    } else {
        None
    };
    let o = ctx.org();
    render(&OrgDashboardPage {
        org: NavOrg {
            id: o.id.to_string(),
            name: o.name.clone(),
            label: o.name.clone(),
            slug: o.slug.clone(),
            role: ctx.role().to_string(),
            personal: o.kind == crate::domain::OrgKind::Personal,
            current: true,
        },
        plan: o.plan.clone(),
        kind: o.kind.as_str().to_string(),
        created: crate::domain::format::time_at(o.created_at),
        permissions: ctx.permissions().iter().map(|p| p.to_string()).collect(),
        recent,
        can_view_audit,
        layout,
        dashboard,
    })
}

async fn new_form(State(s): State<AppState>, user: CurrentUser) -> Result<Response> {
    render(&NewOrgPage {
        layout: layout(&s, &user, "New organization", None).await?,
        name: String::new(),
        slug: String::new(),
        errors: FormErrors::default(),
    })
}

#[derive(Deserialize)]
struct NewOrgForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    slug: String,
}

async fn create(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<NewOrgForm>,
) -> Result<Response> {
    let result = orgs::create(
        &s.svc,
        &user.actor(),
        user.user.is_superuser,
        orgs::CreateOrg {
            name: f.name.clone(),
            slug: Some(f.slug.clone()),
            plan: None,
        },
    )
    .await;
    match result {
        Ok(org) => {
            identity::set_current_org(&s.svc, user.user.id, org.id.to_string()).await?;
            Ok(see_other(&format!("/o/{}", org.slug)))
        }
        Err(e) => {
            // A taken slug is the slug's problem; a paid plan refused is the whole form's.
            let fallback = if matches!(e, AppError::Conflict { .. }) {
                "slug"
            } else {
                "form"
            };
            let Some(errors) = form_errors(&e, &["name", "slug"], fallback) else {
                return Err(e);
            };
            render_status(
                e.status(),
                &NewOrgPage {
                    layout: layout(&s, &user, "New organization", None).await?,
                    name: f.name,
                    slug: f.slug,
                    errors,
                },
            )
        }
    }
}

#[derive(Deserialize)]
struct SwitchForm {
    organization_id: String,
    #[serde(default)]
    next: Option<String>,
}

async fn switch(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<SwitchForm>,
) -> Result<Response> {
    let ctx = identity::set_current_org(&s.svc, user.user.id, f.organization_id).await?;
    let target = match f.next.as_deref() {
        Some(n) if !n.is_empty() && !n.starts_with("/o/") => safe_next(n),
        _ => format!("/o/{}", ctx.org().slug),
    };
    Ok(see_other(&target))
}
