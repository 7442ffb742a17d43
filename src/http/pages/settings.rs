//! An organization's settings: name, slug, invitation lifetime, audit retention; and the
//! danger zone (delete, owners only, typing the slug to confirm).
use crate::domain::Permission;
use crate::http::extract::OrgCtx;
use crate::http::extract::OrgForm;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::org_frame::{form_errors, nav, shown_at};
use super::{layout, render, render_status, see_other};
use crate::db::OrgContext;
use crate::db::scope::has_permission;
use crate::domain::{OrgKind, OrgSettings, Role};
use crate::error::Result;
use crate::http::extract::CurrentUser;
use crate::http::state::AppState;
use crate::http::views::{FormErrors, SettingsPage};
use crate::services::orgs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/o/{org}/settings", get(show).post(save))
        .route("/o/{org}/delete", get(back).post(delete))
}

fn settings_url(ctx: &OrgContext) -> String {
    format!("/o/{}/settings", ctx.org().slug)
}

async fn back(Path(org): Path<String>) -> Response {
    see_other(&format!("/o/{org}/settings"))
}

async fn settings_page(s: &AppState, user: &CurrentUser, ctx: &OrgContext) -> Result<SettingsPage> {
    let o = ctx.org();
    let settings = OrgSettings::from_stored(&o.settings);
    let title = format!("Settings · {}", o.name);
    Ok(SettingsPage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, "settings"),
        can_update: has_permission(ctx, Permission::OrgUpdate),
        can_delete: ctx.role() == Role::Owner && has_permission(ctx, Permission::OrgDelete),
        personal: o.kind == OrgKind::Personal,
        current_slug: o.slug.clone(),
        name: o.name.clone(),
        slug: o.slug.clone(),
        invitation_ttl_days: settings.invitation_ttl_days.to_string(),
        audit_retention_days: settings
            .audit_retention_days
            .map(|d| d.to_string())
            .unwrap_or_default(),
        errors: FormErrors::default(),
        delete_errors: FormErrors::default(),
        saved: false,
    })
}

#[derive(Deserialize, Default)]
struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

async fn show(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Query(q): Query<SavedQuery>,
) -> Result<Response> {
    let mut page = settings_page(&s, &user, &ctx).await?;
    page.saved = q.saved.is_some();
    render(&page)
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    invitation_ttl_days: String,
    #[serde(default)]
    audit_retention_days: String,
}

/// A number of days as typed, for the settings document: a number when it reads as one
/// (the service checks its range), `null` when empty, else the text itself, which the
/// service refuses in the same pass as the other fields.
fn days(raw: &str) -> serde_json::Value {
    let t = raw.trim();
    if t.is_empty() {
        return serde_json::Value::Null;
    }
    t.parse::<i64>().map_or_else(|_| json!(t), |n| json!(n))
}

/// The settings document of the form.
fn settings_patch(f: &SettingsForm) -> serde_json::Value {
    json!({
        "invitation_ttl_days": days(&f.invitation_ttl_days),
        "audit_retention_days": days(&f.audit_retention_days),
    })
}

/// The form's fields, named as the service reports them.
const SETTINGS_FIELDS: &[&str] = &[
    "name",
    "slug",
    "settings.invitation_ttl_days",
    "settings.audit_retention_days",
];

async fn save(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<SettingsForm>,
) -> Result<Response> {
    let result = orgs::update(
        &s.svc,
        &ctx,
        &user.actor(),
        orgs::UpdateOrg {
            name: Some(f.name.clone()),
            slug: Some(f.slug.trim().to_string()),
            settings: Some(settings_patch(&f)),
        },
    )
    .await;
    match result {
        Ok(org) => Ok(see_other(&format!("/o/{}/settings?saved=1", org.slug))),
        Err(e) => {
            let fallback = if matches!(e, crate::error::AppError::Conflict { .. }) {
                "slug"
            } else {
                "form"
            };
            let Some(errors) = form_errors(&e, SETTINGS_FIELDS, fallback) else {
                return Err(e);
            };
            again(&s, &user, &ctx, f, errors, e.status()).await
        }
    }
}

/// The settings page again, with what was typed and what is wrong with it.
async fn again(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    f: SettingsForm,
    errors: FormErrors,
    status: StatusCode,
) -> Result<Response> {
    let mut page = settings_page(s, user, ctx).await?;
    page.name = f.name;
    page.slug = f.slug;
    page.invitation_ttl_days = f.invitation_ttl_days;
    page.audit_retention_days = f.audit_retention_days;
    page.errors = errors;
    Ok(shown_at(render_status(status, &page)?, &settings_url(ctx)))
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm_slug: String,
}

async fn delete(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<DeleteForm>,
) -> Result<Response> {
    let result = if f.confirm_slug.trim() != ctx.org().slug {
        Err(crate::error::AppError::bad_request(
            "confirmation_mismatch",
            format!("Type the slug \"{}\" exactly to confirm.", ctx.org().slug),
        ))
    } else {
        orgs::delete(&s.svc, &ctx, &user.actor()).await
    };
    match result {
        Ok(()) => Ok(see_other("/")),
        Err(e) => {
            let Some(errors) = form_errors(&e, &["confirm_slug"], "confirm_slug") else {
                return Err(e);
            };
            let mut page = settings_page(&s, &user, &ctx).await?;
            page.delete_errors = errors;
            Ok(shown_at(
                render_status(e.status(), &page)?,
                &settings_url(&ctx),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;
    use crate::http::views::{Layout, OrgNav};

    fn form(ttl: &str, retention: &str) -> SettingsForm {
        SettingsForm {
            name: "Acme".into(),
            slug: "acme".into(),
            invitation_ttl_days: ttl.into(),
            audit_retention_days: retention.into(),
        }
    }

    #[test]
    fn the_form_becomes_a_settings_document_and_empty_retention_keeps_everything() {
        assert_eq!(
            settings_patch(&form("3", "")),
            json!({"invitation_ttl_days": 3, "audit_retention_days": null})
        );
        assert_eq!(
            settings_patch(&form(" 7 ", "30")),
            json!({"invitation_ttl_days": 7, "audit_retention_days": 30})
        );
        assert_eq!(
            settings_patch(&form("x", "-1")),
            json!({"invitation_ttl_days": "x", "audit_retention_days": -1})
        );
        let refused = OrgSettings::default()
            .merged(&settings_patch(&form("x", "-1")))
            .unwrap_err();
        assert_eq!(refused.len(), 2, "both are reported: {refused:?}");
        assert!(
            OrgSettings::default()
                .merged(&settings_patch(&form("", "")))
                .is_err(),
            "the invitation lifetime is required"
        );
    }

    fn page() -> SettingsPage {
        SettingsPage {
            layout: Layout::default(),
            nav: OrgNav::new("acme", "Acme", "settings", |_| true),
            can_update: true,
            can_delete: true,
            personal: false,
            current_slug: "acme".into(),
            name: "Acme".into(),
            slug: "acme-2".into(),
            invitation_ttl_days: "7".into(),
            audit_retention_days: String::new(),
            errors: FormErrors::one("slug", "The slug \"acme-2\" is taken; choose another."),
            delete_errors: FormErrors::one("confirm_slug", "Type the slug."),
            saved: false,
        }
    }

    #[test]
    fn the_danger_zone_is_for_owners_of_team_organizations_only() {
        let html = page().render().unwrap();
        assert!(html.contains("id=\"delete-org-form\""));
        assert!(html.contains("action=\"/o/acme/delete\""));
        assert!(html.contains("id=\"settings-slug-error\""));
        assert!(html.contains("id=\"confirm-slug-error\""));
        assert!(html.contains("value=\"acme-2\""));
        let mut p = page();
        p.personal = true;
        assert!(!p.render().unwrap().contains("id=\"delete-org-form\""));
        let mut p = page();
        p.can_delete = false;
        p.can_update = false;
        let html = p.render().unwrap();
        assert!(!html.contains("id=\"delete-org-form\""));
        assert!(!html.contains("id=\"save-settings\""));
        assert!(html.contains("disabled"));
    }
}
