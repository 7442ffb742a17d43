//! Page templates as structs (askama). No database, no services: handlers fill them.
use askama::Template;

use crate::db::repo::sessions::Session;
use crate::db::repo::tokens::ApiToken;

/// The header of every page: who is signed in, their organizations, the switcher.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub title: String,
    pub user: Option<NavUser>,
    pub csrf_token: String,
    pub orgs: Vec<NavOrg>,
    pub current_org: Option<NavOrg>,
}

#[derive(Debug, Clone)]
pub struct NavUser {
    pub name: String,
    pub email: String,
    pub is_superuser: bool,
}

#[derive(Debug, Clone)]
pub struct NavOrg {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub role: String,
    pub personal: bool,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "pages/auth/login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub email: String,
    pub next: String,
    pub error: Option<String>,
    pub first_run: bool,
}

#[derive(Template)]
#[template(path = "pages/account/index.html")]
pub struct AccountPage {
    pub layout: Layout,
    pub sessions: Vec<SessionRow>,
    pub tokens: Vec<TokenRow>,
    /// A token just created: shown this once.
    pub new_token: Option<NewTokenView>,
    pub form_error: Option<String>,
    pub form_name: String,
}

pub struct SessionRow {
    pub session: Session,
    pub current: bool,
    pub created: String,
    pub last_seen: String,
}

pub struct TokenRow {
    pub token: ApiToken,
    pub org_name: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub active: bool,
}

pub struct NewTokenView {
    pub name: String,
    pub secret: String,
    pub org_name: String,
}

#[derive(Template)]
#[template(path = "pages/orgs/home.html")]
pub struct OrgHomePage {
    pub layout: Layout,
    pub org: NavOrg,
    pub plan: String,
    pub kind: String,
    pub created: String,
    pub permissions: Vec<String>,
    pub recent: Vec<AuditRow>,
    pub can_view_audit: bool,
}

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
}

#[derive(Template)]
#[template(path = "pages/orgs/new.html")]
pub struct NewOrgPage {
    pub layout: Layout,
    pub name: String,
    pub slug: String,
    pub errors: Vec<(String, String)>,
}

impl NewOrgPage {
    pub fn error_for(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub heading: String,
    pub message: String,
}

/// "2026-11-28 14:05 UTC" from a stored RFC 3339 time.
pub fn short_time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_page_renders_the_form_and_escapes_input() {
        let page = LoginPage {
            layout: Layout {
                title: "Sign in".into(),
                ..Default::default()
            },
            email: "<script>x</script>".into(),
            next: "/account".into(),
            error: Some("Email or password is incorrect.".into()),
            first_run: false,
        };
        let html = page.render().unwrap();
        assert!(html.contains("<form"));
        assert!(html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"));
        assert!(!html.contains("<script>x"));
        assert!(html.contains("Email or password is incorrect."));
    }

    #[test]
    fn short_time_formats_and_keeps_garbage() {
        assert_eq!(
            short_time("2026-11-28T14:05:09.123456Z"),
            "2026-11-28 14:05 UTC"
        );
        assert_eq!(short_time("never"), "never");
    }
}
