//! An organization's audit log: filters (actor, action, resource type, dates), pages of
//! events newest first with their details, and export links carrying the same filters.
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;

use super::org_frame::{form_errors, nav};
use super::{layout, render_status, urlencode};
use crate::db::OrgContext;
use crate::domain::{Micros, format};
use crate::error::{AppError, Result};
use crate::http::api::audit::AuditQuery;
use crate::http::api::pagination::encode_cursor;
use crate::http::state::AppState;
use crate::http::views::{ActorOption, AuditLogRow, AuditPage, Fact, FormErrors, short_time};
use crate::services::audit::{self, Labelled};
use crate::services::members;

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

fn log_row(l: Labelled) -> AuditLogRow {
    let Labelled {
        record: r,
        actor,
        resource,
    } = l;
    let mut details = detail_facts(&r.details);
    let mut fact = |label: &str, value: String| {
        details.push(Fact {
            label: label.to_string(),
            value,
            block: false,
        });
    };
    fact("event id", r.id.clone());
    if let Some(a) = &actor.id {
        fact("actor id", a.clone());
    }
    if let Some(id) = &resource.id {
        fact("resource id", format!("{} {id}", r.resource_type));
    }
    fact(
        "user agent",
        r.user_agent.clone().unwrap_or_else(|| "none".into()),
    );
    AuditLogRow {
        id: r.id,
        at: short_time(&r.at),
        actor: actor.name,
        actor_note: actor.note,
        actor_id: actor.id.unwrap_or_default(),
        action: r.action,
        resource_kind: resource.kind,
        resource: resource.name,
        resource_note: resource.note,
        resource_title: resource
            .id
            .map(|id| format!("{} {id}", r.resource_type))
            .unwrap_or_default(),
        ip: r.ip.unwrap_or_default(),
        details,
    }
}

/// The details document as key/value lines: nested objects become dotted keys
/// (`before.name`), lists of plain values are joined, sizes and money read as people read
/// them; what is nested deeper stays JSON, pretty-printed.
fn detail_facts(details: &Value) -> Vec<Fact> {
    let mut out = Vec::new();
    match details {
        Value::Object(m) if m.is_empty() => {}
        Value::Object(_) => flatten("", details, 0, &mut out),
        Value::Null => {}
        other => out.push(Fact {
            label: "details".into(),
            value: plain(other, ""),
            block: false,
        }),
    }
    out
}

fn flatten(prefix: &str, v: &Value, depth: usize, out: &mut Vec<Fact>) {
    match v {
        Value::Object(m) if !m.is_empty() && depth < 3 => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, depth + 1, out);
            }
        }
        Value::Object(m) if m.is_empty() => out.push(Fact {
            label: prefix.to_string(),
            value: "none".into(),
            block: false,
        }),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            out.push(Fact {
                label: prefix.to_string(),
                value: if items.is_empty() {
                    "none".into()
                } else {
                    items
                        .iter()
                        .map(|i| plain(i, prefix))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                block: false,
            });
        }
        Value::Object(_) | Value::Array(_) => out.push(Fact {
            label: prefix.to_string(),
            value: serde_json::to_string_pretty(v).unwrap_or_default(),
            block: true,
        }),
        scalar => out.push(Fact {
            label: prefix.to_string(),
            value: plain(scalar, prefix),
            block: false,
        }),
    }
}

/// One value as shown; `key` says what a number counts (`size_bytes`, `cost_micros`).
fn plain(v: &Value, key: &str) -> String {
    match v {
        Value::Null => "none".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_i64() {
            Some(i) if key.ends_with("_bytes") => format::bytes(i),
            Some(i) if key.ends_with("_micros") => Micros::new(i).money(),
            Some(i) if i.unsigned_abs() >= 10_000 => format::count(i),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Members to filter by, when the viewer may list them.
async fn actors(s: &AppState, ctx: &OrgContext, selected: &str) -> Result<Vec<ActorOption>> {
    let list = match members::list(&s.svc, ctx, None, 200).await {
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
    OrgCtx { user, ctx }: OrgCtx,
    Query(f): Query<AuditForm>,
) -> Result<Response> {
    let base = format!("/o/{}/audit", ctx.org().slug);
    let q = f.query();
    let mut errors = FormErrors::default();
    let mut status = StatusCode::OK;
    let parsed: Result<_> = q.filter().and_then(|filter| Ok((filter, q.before_seq()?)));
    let (rows, next) = match parsed {
        Ok((filter, before)) => audit::labelled(&s.svc, &ctx, filter, before, PAGE_SIZE).await?,
        Err(e) => {
            // A cursor that is not valid (edited by hand) is told above the first field.
            errors = form_errors(&e, &["action", "since", "until"], "since").ok_or(e)?;
            status = StatusCode::BAD_REQUEST;
            // The log itself still needs audit.view.
            audit::query(&s.svc, &ctx, Default::default(), None, 0).await?;
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
                actor: "Ada Lovelace".into(),
                actor_note: "ada@example.com".into(),
                actor_id: "u1".into(),
                action: "member.invited".into(),
                resource_kind: "invitation".into(),
                resource: "<bob>@example.com".into(),
                resource_note: String::new(),
                resource_title: "invitation i1".into(),
                ip: "127.0.0.1".into(),
                details: detail_facts(&serde_json::json!({"email": "<bob>@example.com"})),
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
            errors: FormErrors::one("until", "Enter a date (YYYY-MM-DD) or an RFC 3339 time."),
            filtered: true,
            older_href: Some("/o/acme/audit?action=member.invited&cursor=MTA".into()),
            newest_href: None,
            export_csv: "/api/v1/orgs/o1/audit/export?format=csv&action=member.invited".into(),
            export_ndjson: "/api/v1/orgs/o1/audit/export?format=ndjson".into(),
        };
        let html = page.render().unwrap();
        assert!(html.contains("<code class=\"audit-action\">member.invited</code>"));
        assert!(html.contains("<details class=\"audit-details\">"));
        assert!(html.contains("title=\"user u1\">Ada Lovelace</span>"));
        assert!(html.contains("title=\"invitation i1\">"));
        assert!(html.contains("<td colspan=\"5\">"));
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

    #[test]
    fn details_read_as_keys_and_values() {
        let facts = detail_facts(&serde_json::json!({
            "name": "Research",
            "before": {"name": "Old", "description": ""},
            "size_bytes": 10_485_760,
            "shared_with": {"users": [], "teams": ["t1", "t2"]},
            "moved": {},
            "enabled": true,
            "steps": [{"agent": "a1"}],
        }));
        let shown: Vec<(String, String, bool)> = facts
            .into_iter()
            .map(|f| (f.label, f.value, f.block))
            .collect();
        let has = |k: &str, v: &str| shown.iter().any(|(a, b, _)| a == k && b == v);
        assert!(has("name", "Research"), "{shown:?}");
        assert!(has("before.name", "Old"), "{shown:?}");
        assert!(has("size_bytes", "10 MiB"), "{shown:?}");
        assert!(has("shared_with.teams", "t1, t2"), "{shown:?}");
        assert!(has("shared_with.users", "none"), "{shown:?}");
        assert!(has("moved", "none"), "{shown:?}");
        assert!(has("enabled", "yes"), "{shown:?}");
        assert!(
            shown
                .iter()
                .any(|(k, v, block)| k == "steps" && *block && v.contains("\"agent\"")),
            "{shown:?}"
        );
        assert!(detail_facts(&serde_json::json!({})).is_empty());
    }
}
