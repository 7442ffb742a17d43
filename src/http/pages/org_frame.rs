//! What the organization administration pages share: the side navigation, field errors
//! made from service errors, and the headers of a form post answered with a page.
use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::db::OrgContext;
use crate::db::scope::has_permission;
use crate::error::AppError;
use crate::http::views::{FormErrors, OrgNav};

/// The side navigation of `ctx`'s pages, with `section` marked as the current one.
pub(super) fn nav(ctx: &OrgContext, section: &str) -> OrgNav {
    OrgNav::new(&ctx.org().slug, &ctx.org().name, section, |p| {
        has_permission(ctx, p)
    })
}

/// Whether the person can do something about `e` on the page they are on (wrong input, a
/// rule, a conflict), as opposed to errors that deserve the error page.
pub(super) fn is_user_error(e: &AppError) -> bool {
    matches!(
        e,
        AppError::BadRequest { .. }
            | AppError::Forbidden { .. }
            | AppError::Conflict { .. }
            | AppError::Unprocessable { .. }
    )
}

/// Field errors from a service error: a field the form has keeps its name, anything else
/// goes to `fallback`. A document reported together with one of its fields the form has
/// (`settings` and `settings.invitation_ttl_days`) is left to that field. `None` when the
/// error is not the person's to fix.
pub(super) fn form_errors(e: &AppError, fields: &[&str], fallback: &str) -> Option<FormErrors> {
    if !is_user_error(e) {
        return None;
    }
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |field: &str, message: &str| {
        let field = if fields.contains(&field) {
            field
        } else {
            fallback
        };
        match out.iter_mut().find(|(f, _)| f == field) {
            Some((_, m)) if m.contains(message) => {}
            Some((_, m)) => {
                m.push(' ');
                m.push_str(message);
            }
            None => out.push((field.to_string(), message.to_string())),
        }
    };
    match e {
        AppError::BadRequest {
            fields: by_field, ..
        } if !by_field.is_empty() => {
            let told_by_a_part = |document: &str| {
                by_field.keys().any(|k| {
                    k.strip_prefix(document)
                        .is_some_and(|rest| rest.starts_with('.'))
                        && fields.contains(&k.as_str())
                })
            };
            for (f, m) in by_field {
                if !told_by_a_part(f) {
                    add(f, m);
                }
            }
        }
        other => add(fallback, &other.public_message()),
    }
    Some(FormErrors(out))
}

/// A page answering a form post: the address bar shows `page` (a URL that can be reloaded)
/// instead of the post's address.
pub(super) fn shown_at(mut res: Response, page: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(page) {
        res.headers_mut().insert("hx-push-url", v);
    }
    res
}

/// Responses holding something shown once (an invitation link) are never cached.
pub(super) fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Every member of the organization, by name (owner names, share and add-member choices),
/// or nobody when the viewer may not list members.
pub(super) async fn org_people(
    s: &crate::http::state::AppState,
    ctx: &OrgContext,
) -> Result<Vec<crate::http::views::PersonRow>, AppError> {
    const BATCH: i64 = 500;
    const MAX: usize = 5000;
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let batch = match crate::services::members::list(&s.svc, ctx, after.clone(), BATCH).await {
            Ok(b) => b,
            Err(AppError::Forbidden { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let full = batch.len() as i64 == BATCH;
        after = batch
            .last()
            .map(|m| (crate::domain::fmt_time(m.joined_at), m.user.id.to_string()));
        out.extend(batch.into_iter().map(|m| crate::http::views::PersonRow {
            id: m.user.id.to_string(),
            name: m.user.name,
            email: m.user.email,
        }));
        if !full || out.len() >= MAX {
            break;
        }
    }
    out.sort_by_key(|p| p.name.to_lowercase());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn service_errors_become_field_errors_on_known_fields_or_the_fallback() {
        let mut fields = BTreeMap::new();
        fields.insert("email".to_string(), "Enter an email address.".to_string());
        fields.insert("weird".to_string(), "Odd.".to_string());
        fields.insert("other".to_string(), "Odder.".to_string());
        let e = AppError::BadRequest {
            code: "validation_failed",
            message: "x".into(),
            fields,
        };
        let errs = form_errors(&e, &["email", "role"], "role").unwrap();
        assert_eq!(errs.get("email"), Some("Enter an email address."));
        assert_eq!(errs.get("role"), Some("Odder. Odd."));

        let e = AppError::conflict("already_member", "This person is already a member.");
        let errs = form_errors(&e, &["email"], "email").unwrap();
        assert_eq!(errs.get("email"), Some("This person is already a member."));

        assert!(form_errors(&AppError::Internal("db".into()), &[], "x").is_none());
        assert!(form_errors(&AppError::not_found(), &[], "x").is_none());
    }

    #[test]
    fn a_document_reported_with_its_parts_is_shown_at_the_parts_the_form_has() {
        use crate::domain::Invalid;
        let e = AppError::invalid(vec![
            Invalid::new("name", "Enter a name."),
            Invalid::new("settings.invitation_ttl_days", "Between 1 and 90."),
            Invalid::new("settings.audit_retention_days", "Between 1 and 36500."),
        ]);
        let AppError::BadRequest { fields, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(fields["settings"], "Between 1 and 90. Between 1 and 36500.");
        let known = [
            "name",
            "settings.invitation_ttl_days",
            "settings.audit_retention_days",
        ];
        let errs = form_errors(&e, &known, "form").unwrap();
        assert_eq!(errs.get("name"), Some("Enter a name."));
        assert_eq!(
            errs.get("settings.invitation_ttl_days"),
            Some("Between 1 and 90.")
        );
        assert_eq!(
            errs.get("settings.audit_retention_days"),
            Some("Between 1 and 36500.")
        );
        assert!(!errs.has("form"), "{errs:?}");
        assert_eq!(errs.0.len(), 3);
        // A form without the parts shows the document's message where it can.
        let errs = form_errors(&e, &["name"], "form").unwrap();
        assert_eq!(
            errs.get("form"),
            Some("Between 1 and 90. Between 1 and 36500.")
        );
    }

    #[test]
    fn the_org_home_page_links_only_the_sections_the_viewer_may_use() {
        use askama::Template;

        use crate::http::views::{Layout, NavOrg, OrgHomePage};
        let home = |permissions: &[&str]| OrgHomePage {
            layout: Layout::default(),
            org: NavOrg {
                id: "o1".into(),
                name: "Acme".into(),
                label: "Acme".into(),
                slug: "acme".into(),
                role: "viewer".into(),
                personal: false,
                current: true,
            },
            plan: "free".into(),
            kind: "team".into(),
            created: "2026-11-28 14:05 UTC".into(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            recent: Vec::new(),
            can_view_audit: false,
        };
        let html = home(&["org.view", "members.view", "teams.view"])
            .render()
            .unwrap();
        assert!(html.contains("href=\"/o/acme\" aria-current=\"page\""));
        assert!(html.contains("href=\"/o/acme/members\""));
        assert!(html.contains("href=\"/o/acme/teams\""));
        assert!(!html.contains("href=\"/o/acme/audit\""));
        assert!(!html.contains("href=\"/o/acme/settings\""));
        let html = home(&["org.view", "audit.view", "org.update"])
            .render()
            .unwrap();
        assert!(!html.contains("href=\"/o/acme/members\""));
        assert!(html.contains("href=\"/o/acme/audit\""));
        assert!(html.contains("href=\"/o/acme/settings\""));
    }
}
