//! The organization dashboard on its home page: resources per type and usage against the
//! plan's limits, from the same documents as `GET …/summary` and `GET …/limits`.
use serde_json::Value;

use crate::db::repo::resources::ResourceKind;
use crate::domain::{Micros, format};
use crate::http::views::{Dashboard, KindLabel, ResourceCount, UsageMeter};

fn meter(id: &str, label: &str, limit: &Value, show: fn(i64) -> String) -> UsageMeter {
    let used = limit["used"].as_i64().unwrap_or(0);
    let max = limit["max"].as_i64();
    let percent = match max {
        Some(m) if m > 0 => (used.saturating_mul(100) / m).clamp(0, 100),
        Some(_) => 100,
        None => 0,
    };
    let level = match max {
        Some(m) if used >= m => "full",
        Some(_) if percent >= 80 => "warn",
        _ => "ok",
    };
    UsageMeter {
        id: id.to_string(),
        label: label.to_string(),
        used,
        max,
        text: match max {
            Some(m) => format!("{} of {}", show(used), show(m)),
            None => format!("{} (no limit)", show(used)),
        },
        percent,
        level: level.to_string(),
    }
}

pub(super) fn dashboard_of(limits: &Value, summary: &Value) -> Dashboard {
    let counts = ResourceKind::ALL
        .into_iter()
        .map(|k| {
            let entry = &summary["resources"][k.path()];
            let breakdown = entry["by_visibility"]
                .as_object()
                .map(|by| {
                    ["private", "team", "organization", "public"]
                        .iter()
                        .filter_map(|v| {
                            by.get(*v)
                                .and_then(Value::as_i64)
                                .filter(|n| *n > 0)
                                .map(|n| format!("{n} {v}"))
                        })
                        .collect::<Vec<_>>()
                        .join(" · ")
                })
                .unwrap_or_default();
            ResourceCount {
                path: k.path().to_string(),
                label: KindLabel::of(k).plural,
                total: format::count(entry["total"].as_i64().unwrap_or(0)),
                breakdown,
            }
        })
        .collect();
    let plain = format::count;
    let meters = vec![
        meter("usage-agents", "Agents", &limits["agents"], plain),
        meter("usage-workflows", "Workflows", &limits["workflows"], plain),
        meter("usage-members", "Members", &limits["users"], plain),
        meter(
            "usage-storage",
            "Document storage",
            &limits["storage_bytes"],
            format::bytes,
        ),
        meter(
            "usage-credits",
            "AI credits this month",
            &limits["ai_credits"],
            |m| Micros::new(m).money(),
        ),
    ];
    Dashboard {
        counts,
        meters,
        period: summary["usage"]["period"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        requests: format::counted(
            summary["usage"]["requests"].as_i64().unwrap_or(0),
            "AI request",
            "AI requests",
        ),
        members: format::counted(
            summary["members"].as_i64().unwrap_or(0),
            "member",
            "members",
        ),
        teams: format::counted(summary["teams"].as_i64().unwrap_or(0), "team", "teams"),
    }
}

#[cfg(test)]
mod tests {
    use askama::Template;
    use serde_json::json;

    use super::*;
    use crate::http::views::{Layout, NavOrg, OrgDashboardPage};

    fn sample() -> Dashboard {
        let limits = json!({
            "plan": "free",
            "agents": {"used": 4, "max": 5},
            "workflows": {"used": 1, "max": 10},
            "users": {"used": 3, "max": null},
            "storage_bytes": {"used": 2048, "max": 1048576},
            "ai_credits": {"used": 1500000, "max": 1000000},
        });
        let summary = json!({
            "resources": {"agents": {"total": 4, "by_visibility": {"private": 3, "organization": 1}}},
            "members": 3, "teams": 1,
            "usage": {"period": "2026-11", "requests": 12, "cost_micros": 1500000},
        });
        dashboard_of(&limits, &summary)
    }

    #[test]
    fn limits_become_meters_with_levels() {
        let d = sample();
        assert_eq!(d.counts[0].total, "4");
        assert_eq!(d.counts[0].breakdown, "3 private · 1 organization");
        assert_eq!(d.counts[1].total, "0");
        let m = |id: &str| d.meters.iter().find(|m| m.id == id).unwrap();
        assert_eq!(
            (m("usage-agents").percent, m("usage-agents").level.as_str()),
            (80, "warn")
        );
        assert_eq!(m("usage-agents").text, "4 of 5");
        assert_eq!(m("usage-members").text, "3 (no limit)");
        assert_eq!(m("usage-storage").text, "2 KiB of 1 MiB");
        assert_eq!(
            (
                m("usage-credits").percent,
                m("usage-credits").level.as_str()
            ),
            (100, "full")
        );
        assert_eq!(m("usage-credits").text, "$1.50 of $1.00");
    }

    #[test]
    fn the_home_page_shows_counts_and_accessible_meters() {
        let page = OrgDashboardPage {
            layout: Layout::default(),
            org: NavOrg {
                id: "o1".into(),
                name: "Acme".into(),
                label: "Acme".into(),
                slug: "acme".into(),
                role: "owner".into(),
                personal: false,
                current: true,
            },
            plan: "free".into(),
            kind: "team".into(),
            created: "2026-11-28 14:05 UTC".into(),
            permissions: vec!["org.view".into()],
            recent: Vec::new(),
            can_view_audit: false,
            dashboard: Some(sample()),
        };
        let html = page.render().unwrap();
        assert!(
            html.contains("id=\"org-name\""),
            "the home page is still there"
        );
        assert!(html.contains("id=\"resource-counts\""));
        assert!(html.contains("href=\"/o/acme/agents\""));
        assert!(html.contains("role=\"meter\""));
        assert!(html.contains("aria-valuenow=\"4\" aria-valuemin=\"0\" aria-valuemax=\"5\""));
        assert!(html.contains("<svg"));
        assert!(html.contains("3 (no limit)"));
    }
}
