//! An organization's settings: name, slug, invitation lifetime, audit retention; and the
//! danger zone (delete, owners only, typing the slug to confirm).
use crate::domain::Permission;
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
use crate::http::extract::{CsrfForm, CurrentUser};
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
    user: CurrentUser,
    Path(org): Path<String>,
    Query(q): Query<SavedQuery>,
) -> Result<Response> {
    let ctx = user.org_context(&s, org).await?;
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

/// A whole number of days from a form field; `Ok(None)` when empty.
fn days(raw: &str) -> std::result::Result<Option<u32>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<u32>()
        .map(Some)
        .map_err(|_| "must be a whole number of days".to_string())
}

/// The settings document of the form, or field errors.
fn settings_patch(f: &SettingsForm) -> std::result::Result<serde_json::Value, FormErrors> {
    let mut errors = Vec::new();
    let ttl = match days(&f.invitation_ttl_days) {
        Ok(Some(d)) => Some(d),
        Ok(None) => {
            errors.push(("invitation_ttl_days".to_string(), "is required".to_string()));
            None
        }
        Err(m) => {
            errors.push(("invitation_ttl_days".to_string(), m));
            None
        }
    };
    let retention = days(&f.audit_retention_days)
        .map_err(|m| errors.push(("audit_retention_days".to_string(), m)))
        .ok();
    match (ttl, retention) {
        (Some(ttl), Some(retention)) if errors.is_empty() => Ok(json!({
            "invitation_ttl_days": ttl,
            "audit_retention_days": retention,
        })),
        _ => Err(FormErrors(errors)),
    }
}

/// The service names the settings key in its message; show it next to that field.
fn place_settings_errors(errors: FormErrors) -> FormErrors {
    FormErrors(
        errors
            .0
            .into_iter()
            .map(|(field, message)| {
                if field != "settings" {
                    (field, message)
                } else if message.contains("audit_retention_days") {
                    ("audit_retention_days".to_string(), message)
                } else {
                    ("invitation_ttl_days".to_string(), message)
                }
            })
            .collect(),
    )
}

async fn save(
    State(s): State<AppState>,
    Path(org): Path<String>,
    CsrfForm(user, f): CsrfForm<SettingsForm>,
) -> Result<Response> {
    let ctx = user.org_context(&s, org).await?;
    let result = match settings_patch(&f) {
        Ok(patch) => {
            orgs::update(
                &s.db,
                &ctx,
                &user.actor(),
                orgs::UpdateOrg {
                    name: Some(f.name.clone()),
                    slug: Some(f.slug.trim().to_string()),
                    settings: Some(patch),
                },
            )
            .await
        }
        Err(errors) => {
            return again(&s, &user, &ctx, f, errors, StatusCode::BAD_REQUEST).await;
        }
    };
    match result {
        Ok(org) => Ok(see_other(&format!("/o/{}/settings?saved=1", org.slug))),
        Err(e) => {
            let Some(errors) = form_errors(
                &e,
                &["name", "slug", "settings", "form"],
                if matches!(e, crate::error::AppError::Conflict { .. }) {
                    "slug"
                } else {
                    "form"
                },
            ) else {
                return Err(e);
            };
            again(
                &s,
                &user,
                &ctx,
                f,
                place_settings_errors(errors),
                e.status(),
            )
            .await
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
    Path(org): Path<String>,
    CsrfForm(user, f): CsrfForm<DeleteForm>,
) -> Result<Response> {
    let ctx = user.org_context(&s, org).await?;
    let result = if f.confirm_slug.trim() != ctx.org().slug {
        Err(crate::error::AppError::bad_request(
            "confirmation_mismatch",
            format!("type the slug \"{}\" exactly to confirm", ctx.org().slug),
        ))
    } else {
        orgs::delete(&s.db, &ctx, &user.actor()).await
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
            settings_patch(&form("3", "")).unwrap(),
            json!({"invitation_ttl_days": 3, "audit_retention_days": null})
        );
        assert_eq!(
            settings_patch(&form(" 7 ", "30")).unwrap(),
            json!({"invitation_ttl_days": 7, "audit_retention_days": 30})
        );
        let e = settings_patch(&form("x", "-1")).unwrap_err();
        assert!(e.has("invitation_ttl_days") && e.has("audit_retention_days"));
        assert!(
            settings_patch(&form("", ""))
                .unwrap_err()
                .has("invitation_ttl_days")
        );
        let placed = place_settings_errors(FormErrors::one(
            "settings",
            "audit_retention_days must be between 1 and 36500, or null",
        ));
        assert!(placed.has("audit_retention_days"));
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
            errors: FormErrors::one("slug", "the slug \"acme-2\" is taken"),
            delete_errors: FormErrors::one("confirm_slug", "type the slug"),
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
