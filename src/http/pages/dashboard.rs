//! The organization dashboard on its home page: resources per type and usage against the
//! plan's limits, from the same documents as `GET …/summary` and `GET …/limits`.
use crate::db::repo::resources::ResourceKind;
use crate::domain::{Micros, format};
use crate::http::views::{Dashboard, KindLabel, ResourceCount, UsageMeter};
use crate::services::resources::{Limits, Summary};

fn meter(
    id: &str,
    label: &str,
    used: i64,
    max: Option<i64>,
    show: fn(i64) -> String,
) -> UsageMeter {
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

pub(super) fn dashboard_of(limits: &Limits, summary: &Summary) -> Dashboard {
    let counts = ResourceKind::ALL
        .into_iter()
        .map(|k| {
            let entry = summary.resources.get(k.path());
            let breakdown = entry
                .map(|e| {
                    ["private", "team", "organization", "public"]
                        .iter()
                        .filter_map(|v| {
                            e.by_visibility
                                .get(*v)
                                .filter(|n| **n > 0)
                                .map(|n| format!("{n} {v}"))
                        })
                        .collect::<Vec<_>>()
                        .join(" · ")
                })
                .unwrap_or_default();
            ResourceCount {
                path: k.path().to_string(),
                label: KindLabel::of(k).plural,
                total: format::count(entry.map_or(0, |e| e.total)),
                breakdown,
            }
        })
        .collect();
    let plain = format::count;
    let credits = &limits.ai_credits;
    let meters = vec![
        meter(
            "usage-agents",
            "Agents",
            limits.agents.used,
            limits.agents.max,
            plain,
        ),
        meter(
            "usage-workflows",
            "Workflows",
            limits.workflows.used,
            limits.workflows.max,
            plain,
        ),
        meter(
            "usage-members",
            "Members",
            limits.users.used,
            limits.users.max,
            plain,
        ),
        meter(
            "usage-storage",
            "Document storage",
            limits.storage_bytes.used,
            limits.storage_bytes.max,
            format::bytes,
        ),
        meter(
            "usage-credits",
            "AI credits this month",
            credits.used.map_or(0, Micros::get),
            credits.max.map(Micros::get),
            |m| Micros::new(m).money(),
        ),
    ];
    let usage = summary.usage.as_ref();
    Dashboard {
        counts,
        meters,
        period: usage.map(|u| u.period.clone()).unwrap_or_default(),
        requests: format::counted(usage.map_or(0, |u| u.requests), "AI request", "AI requests"),
        members: format::counted(summary.members, "member", "members"),
        teams: format::counted(summary.teams, "team", "teams"),
    }
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;
    use crate::domain::OrgId;
    use crate::http::views::{Layout, NavOrg, OrgDashboardPage};
    use crate::services::resources::{CreditLimit, KindCount, Limit, MaxOnly, PeriodUse};

    fn sample() -> Dashboard {
        let limit = |used, max| Limit { used, max };
        let limits = Limits {
            plan: "free".into(),
            agents: limit(4, Some(5)),
            workflows: limit(1, Some(10)),
            users: limit(3, None),
            storage_bytes: limit(2048, Some(1_048_576)),
            ai_credits: CreditLimit {
                used: Some(Micros::new(1_500_000)),
                max: Some(Micros::new(1_000_000)),
            },
            document_bytes: MaxOnly { max: None },
        };
        let agents = KindCount {
            total: 4,
            by_visibility: [("private".to_string(), 3), ("organization".to_string(), 1)].into(),
        };
        let summary = Summary {
            organization_id: OrgId::new(),
            resources: [("agents".to_string(), agents)].into(),
            members: 3,
            teams: 1,
            storage_bytes: 2048,
            usage: Some(PeriodUse {
                period: "2026-11".into(),
                requests: 12,
                cost_micros: Micros::new(1_500_000),
            }),
        };
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
