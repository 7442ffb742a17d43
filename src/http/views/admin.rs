//! Views of the instance console (`/admin`).
use askama::Template;

use super::Layout;
use crate::services::admin::{AdminOrgView, AdminUserView, InstanceSettings, PlanView, PriceView};

/// Which section of the console a page is, for its navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Home,
    Orgs,
    Users,
    Plans,
    Prices,
    Settings,
    Audit,
}

impl Section {
    pub const ALL: [(Section, &'static str, &'static str); 7] = [
        (Section::Home, "/admin", "Overview"),
        (Section::Orgs, "/admin/organizations", "Organizations"),
        (Section::Users, "/admin/users", "Users"),
        (Section::Plans, "/admin/plans", "Plans"),
        (Section::Prices, "/admin/prices", "Model prices"),
        (Section::Settings, "/admin/settings", "Settings"),
        (Section::Audit, "/admin/audit", "Audit log"),
    ];
}

/// What a form post left to say: a success note, or what went wrong.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// One line of the backup status on the overview.
#[derive(Debug, Clone)]
pub struct BackupLine {
    pub label: String,
    pub value: String,
    pub warn: bool,
}

#[derive(Template)]
#[template(path = "pages/admin/home.html")]
pub struct HomePage {
    pub layout: Layout,
    pub section: Section,
    pub orgs: i64,
    pub suspended: i64,
    pub users: i64,
    pub plans: Vec<PlanView>,
    pub backups: Vec<BackupLine>,
    pub outcome: Outcome,
}

/// Where "previous" and "next" of a paged list go (empty: nowhere).
#[derive(Debug, Clone, Default)]
pub struct Pager {
    pub prev: String,
    pub next: String,
    pub shown: String,
}

#[derive(Template)]
#[template(path = "pages/admin/orgs.html")]
pub struct OrgsPage {
    pub layout: Layout,
    pub section: Section,
    pub q: String,
    pub orgs: Vec<AdminOrgView>,
    pub pager: Pager,
}

/// One limit on an organization's page: the plan's value and the override, as typed.
#[derive(Debug, Clone)]
pub struct LimitRow {
    pub name: &'static str,
    pub label: &'static str,
    pub plan: String,
    /// "" (follow the plan), "unlimited" or the number.
    pub value: String,
    pub in_force: String,
}

#[derive(Template)]
#[template(path = "pages/admin/org.html")]
pub struct OrgPage {
    pub layout: Layout,
    pub section: Section,
    pub org: AdminOrgView,
    pub plans: Vec<PlanView>,
    pub limits: Vec<LimitRow>,
    pub outcome: Outcome,
}

#[derive(Template)]
#[template(path = "pages/admin/users.html")]
pub struct UsersPage {
    pub layout: Layout,
    pub section: Section,
    pub q: String,
    pub users: Vec<AdminUserView>,
    pub pager: Pager,
}

#[derive(Template)]
#[template(path = "pages/admin/user.html")]
pub struct UserPage {
    pub layout: Layout,
    pub section: Section,
    pub user: AdminUserView,
    pub is_me: bool,
    /// A reset link just made: shown this once.
    pub reset_link: Option<(String, String)>,
    pub outcome: Outcome,
}

#[derive(Template)]
#[template(path = "pages/admin/plans.html")]
pub struct PlansPage {
    pub layout: Layout,
    pub section: Section,
    pub plans: Vec<PlanView>,
    pub outcome: Outcome,
}

#[derive(Template)]
#[template(path = "pages/admin/prices.html")]
pub struct PricesPage {
    pub layout: Layout,
    pub section: Section,
    pub prices: Vec<PriceView>,
    pub outcome: Outcome,
}

#[derive(Template)]
#[template(path = "pages/admin/settings.html")]
pub struct SettingsPage {
    pub layout: Layout,
    pub section: Section,
    pub settings: InstanceSettings,
    pub plans: Vec<PlanView>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub struct AuditLine {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub ip: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "pages/admin/audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub section: Section,
    pub actions: Vec<(&'static str, bool)>,
    pub since: String,
    pub until: String,
    pub rows: Vec<AuditLine>,
    pub next: String,
    pub export_csv: String,
    pub export_ndjson: String,
    pub outcome: Outcome,
}

/// A limit as a page shows it: "unlimited" or the number with separators.
pub fn limit_text(v: Option<i64>) -> String {
    v.map_or_else(|| "unlimited".to_string(), crate::domain::format::count)
}
