//! An organization's audit log: filters (actor, action, resource type, dates), pages of
//! events newest first with their details, and export links carrying the same filters.
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::org_frame::{form_errors, nav};
use super::{layout, render_status, urlencode};
use crate::db::OrgContext;
use crate::db::repo::audit::Record;
use crate::error::{AppError, Result};
use crate::http::api::audit::AuditQuery;
use crate::http::api::pagination::encode_cursor;
use crate::http::extract::CurrentUser;
use crate::http::state::AppState;
use crate::http::views::{ActorOption, AuditLogRow, AuditPage, FormErrors, short_time};
use crate::services::{audit, members};

/// Events per page.
const PAGE_SIZE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/o/{org}/audit", get(show))
}

/// The filter form as typed (dates as `YYYY-MM-DD`, `until` inclusive).
#[derive(Deserialize, Default, Debug, Clone)]
struct AuditForm {
    #[serde(default)]
    actor_id: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    cursor: String,
}

impl AuditForm {
    fn is_filtered(&self) -> bool {
        [
            &self.actor_id,
            &self.action,
            &self.resource_type,
            &self.resource_id,
            &self.since,
            &self.until,
        ]
        .iter()
        .any(|v| !v.trim().is_empty())
    }

    /// `until` is inclusive on the page: a bare date means "up to the end of that day".
    fn until_exclusive(&self) -> String {
        let t = self.until.trim();
        match chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            Ok(d) => d
                .succ_opt()
                .map(|n| n.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| t.to_string()),
            Err(_) => t.to_string(),
        }
    }

    /// The filters as query pairs, as the API (and so the export) reads them.
    fn api_pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("actor_id", self.actor_id.trim().to_string()),
            ("action", self.action.trim().to_string()),
            ("resource_type", self.resource_type.trim().to_string()),
            ("resource_id", self.resource_id.trim().to_string()),
            ("since", self.since.trim().to_string()),
            ("until", self.until_exclusive()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }

    /// The filters as this page's own query pairs (dates as typed).
    fn page_pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("actor_id", &self.actor_id),
            ("action", &self.action),
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_string()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }

    fn query(&self) -> AuditQuery {
        let some = |v: &str| Some(v.to_string()).filter(|s| !s.trim().is_empty());
        AuditQuery {
            action: some(&self.action),
            resource_type: some(&self.resource_type),
            resource_id: some(&self.resource_id),
            actor_id: some(&self.actor_id),
            since: some(&self.since),
            until: some(&self.until_exclusive()),
            limit: Some(PAGE_SIZE),
            cursor: some(&self.cursor),
            format: None,
        }
    }
}

fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query_string(pairs))
    }
}

fn log_row(r: Record) -> AuditLogRow {
    let resource = match &r.resource_id {
        Some(id) => format!("{} {id}", r.resource_type),
        None => r.resource_type.clone(),
    };
    AuditLogRow {
        id: r.id,
        at: short_time(&r.at),
        actor: r.actor_email.unwrap_or_else(|| "system".into()),
        action: r.action,
        resource,
        ip: r.ip.unwrap_or_default(),
        user_agent: r.user_agent.unwrap_or_default(),
        details: serde_json::to_string_pretty(&r.details).unwrap_or_default(),
    }
}

/// Members to filter by, when the viewer may list them.
async fn actors(s: &AppState, ctx: &OrgContext, selected: &str) -> Result<Vec<ActorOption>> {
    let list = match members::list(&s.db, ctx, None, 200).await {
        Ok(l) => l,
        Err(AppError::Forbidden { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut out: Vec<ActorOption> = list
        .into_iter()
        .map(|m| ActorOption {
            selected: m.user.id.to_string() == selected,
            id: m.user.id.to_string(),
            label: format!("{} ({})", m.user.name, m.user.email),
        })
        .collect();
    // A former member chosen before (or by link) stays chosen.
    if !selected.is_empty() && !out.iter().any(|a| a.selected) {
        out.push(ActorOption {
            id: selected.to_string(),
            label: selected.to_string(),
            selected: true,
        });
    }
    out.sort_by_key(|a| a.label.to_lowercase());
    Ok(out)
}

async fn show(
    State(s): State<AppState>,
    user: CurrentUser,
    Path(org): Path<String>,
    Query(f): Query<AuditForm>,
) -> Result<Response> {
    let ctx = user.org_context(&s, org).await?;
    let base = format!("/o/{}/audit", ctx.org().slug);
    let q = f.query();
    let mut errors = FormErrors::default();
    let mut status = StatusCode::OK;
    let parsed: Result<_> = q.filter().and_then(|filter| Ok((filter, q.before_seq()?)));
    let (rows, next) = match parsed {
        Ok((filter, before)) => audit::query(&s.db, &ctx, filter, before, PAGE_SIZE).await?,
        Err(e) => {
            let field = match &e {
                AppError::BadRequest { message, .. } if message.starts_with("until") => "until",
                AppError::BadRequest { message, .. } if message.starts_with("since") => "since",
                AppError::BadRequest { message, .. } if message.starts_with("action") => "action",
                _ => "since",
            };
            errors = form_errors(&e, &[], field).ok_or(e)?;
            status = StatusCode::BAD_REQUEST;
            // The log itself still needs audit.view.
            audit::query(&s.db, &ctx, Default::default(), None, 0).await?;
            (Vec::new(), None)
        }
    };
    let page_pairs = f.page_pairs();
    let older_href = next.map(|seq| {
        let mut pairs = page_pairs.clone();
        pairs.push(("cursor", encode_cursor(&seq.to_string())));
        with_query(&base, &pairs)
    });
    let newest_href = (!f.cursor.is_empty()).then(|| with_query(&base, &page_pairs));
    let export = |format: &str| {
        let mut pairs = vec![("format", format.to_string())];
        pairs.extend(f.api_pairs());
        with_query(
            &format!("/api/v1/orgs/{}/audit/export", ctx.org_id()),
            &pairs,
        )
    };
    let title = format!("Audit log · {}", ctx.org().name);
    let page = AuditPage {
        layout: layout(&s, &user, &title, Some(ctx.org_id())).await?,
        nav: nav(&ctx, "audit"),
        rows: rows.into_iter().map(log_row).collect(),
        actors: actors(&s, &ctx, f.actor_id.trim()).await?,
        action: f.action.clone(),
        resource_type: f.resource_type.clone(),
        since: f.since.clone(),
        until: f.until.clone(),
        errors,
        filtered: f.is_filtered(),
        older_href,
        newest_href,
        export_csv: export("csv"),
        export_ndjson: export("ndjson"),
    };
    render_status(status, &page)
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;
    use crate::http::views::{Layout, OrgNav};

    #[test]
    fn until_is_inclusive_and_filters_carry_over_to_exports() {
        let f = AuditForm {
            action: "member.invited".into(),
            until: "2026-11-30".into(),
            since: "2026-11-01".into(),
            ..Default::default()
        };
        assert_eq!(f.until_exclusive(), "2026-12-01");
        assert!(f.is_filtered());
        let q = query_string(&f.api_pairs());
        assert_eq!(q, "action=member.invited&since=2026-11-01&until=2026-12-01");
        assert_eq!(
            query_string(&f.page_pairs()),
            "action=member.invited&since=2026-11-01&until=2026-11-30"
        );
        assert!(!AuditForm::default().is_filtered());
        let filter = f.query().filter().unwrap();
        assert_eq!(filter.action.as_deref(), Some("member.invited"));
        assert!(filter.until.unwrap().starts_with("2026-12-01T00:00:00"));
    }

    #[test]
    fn the_audit_page_shows_rows_with_details_pagination_and_exports() {
        let page = AuditPage {
            layout: Layout::default(),
            nav: OrgNav::new("acme", "Acme", "audit", |_| true),
            rows: vec![AuditLogRow {
                id: "a1".into(),
                at: "2026-11-28 14:05 UTC".into(),
                actor: "ada@example.com".into(),
                action: "member.invited".into(),
                resource: "invitation x".into(),
                ip: "127.0.0.1".into(),
                user_agent: "Mozilla/5.0".into(),
                details: "{\n  \"email\": \"<bob>@example.com\"\n}".into(),
            }],
            actors: vec![ActorOption {
                id: "u1".into(),
                label: "Ada (ada@example.com)".into(),
                selected: true,
            }],
            action: "member.invited".into(),
            resource_type: String::new(),
            since: String::new(),
            until: "nonsense".into(),
            errors: FormErrors::one("until", "until must be an RFC 3339 time or a date"),
            filtered: true,
            older_href: Some("/o/acme/audit?action=member.invited&cursor=MTA".into()),
            newest_href: None,
            export_csv: "/api/v1/orgs/o1/audit/export?format=csv&action=member.invited".into(),
            export_ndjson: "/api/v1/orgs/o1/audit/export?format=ndjson".into(),
        };
        let html = page.render().unwrap();
        assert!(html.contains("<code class=\"audit-action\">member.invited</code>"));
        assert!(html.contains("<details class=\"audit-details\">"));
        assert!(html.contains("Mozilla/5.0"));
        assert!(!html.contains("<bob>"));
        assert!(html.contains("id=\"audit-older\""));
        assert!(
            html.contains("format=csv&#38;action=member.invited")
                || html.contains("format=csv&amp;action=member.invited")
        );
        assert!(html.contains("hx-boost=\"false\""));
        assert!(html.contains("<option value=\"u1\" selected>"));
        assert!(html.contains("id=\"audit-until-error\""));
        assert!(html.contains("Clear filters"));
    }
}
