//! Page templates as structs (askama). No database, no services: handlers fill them.
use crate::domain::Permission;
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
    /// The name, with the slug beside it when another of the person's organizations has
    /// the same name.
    pub label: String,
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
    /// Wrong credentials or too many attempts: about the whole form.
    pub error: Option<String>,
    pub errors: FormErrors,
    pub first_run: bool,
    /// How to create the first administrator, shown when `first_run`.
    pub create_user: String,
    /// The password was right and the account has two-factor: the second step's token.
    pub challenge: Option<String>,
    /// "Forgot password?" works here (mail is configured).
    pub can_reset: bool,
}

/// "Forgot password": the email form, then "check your mail".
#[derive(Template)]
#[template(path = "pages/auth/forgot.html")]
pub struct ForgotPasswordPage {
    pub layout: Layout,
    pub email: String,
    pub errors: FormErrors,
    pub error: Option<String>,
    pub sent: bool,
    /// Mail is configured; otherwise the page says to ask an administrator.
    pub available: bool,
}

#[derive(Template)]
#[template(path = "pages/account/index.html")]
pub struct AccountPage {
    pub layout: Layout,
    pub sessions: Vec<SessionRow>,
    pub tokens: Vec<TokenRow>,
    /// A token just created: shown this once.
    pub new_token: Option<NewTokenView>,
    /// The new-token form as typed, and what is wrong with it.
    pub form: TokenFormValues,
    pub form_errors: FormErrors,
    /// Whether the account has two-factor authentication.
    pub two_factor: crate::services::two_factor::Status,
    /// The password form's errors, and what the last change did.
    pub password_errors: FormErrors,
    pub notice: Option<String>,
}

/// Two-factor authentication of the signed-in user: status, enrolment (QR code and
/// secret), the recovery codes shown once, turning it off.
#[derive(Template)]
#[template(path = "pages/account/two_factor.html")]
pub struct TwoFactorPage {
    pub layout: Layout,
    pub status: crate::services::two_factor::Status,
    /// An enrolment just started: the QR code (an SVG made here) and the secret.
    pub enrolment: Option<crate::services::two_factor::Enrolment>,
    /// Recovery codes just made: shown this once.
    pub recovery_codes: Vec<String>,
    pub errors: FormErrors,
    pub notice: Option<String>,
    /// An organization that requires two-factor sent the user here.
    pub required_by: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TokenFormValues {
    pub name: String,
    /// Empty: the current organization.
    pub organization_id: String,
    pub expires_at: String,
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
    /// The actor's name (or "system").
    pub actor: String,
    /// "user 7f0c…" for the tooltip; empty for the system.
    pub actor_title: String,
    pub action: String,
    /// "team Research", "quota".
    pub resource: String,
}

#[derive(Template)]
#[template(path = "pages/orgs/new.html")]
pub struct NewOrgPage {
    pub layout: Layout,
    pub name: String,
    pub slug: String,
    pub errors: FormErrors,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub heading: String,
    pub message: String,
}

pub use crate::domain::format::time as short_time;

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
            errors: FormErrors::one("password", "Enter your password."),
            first_run: false,
            create_user: String::new(),
            challenge: None,
            can_reset: true,
        };
        let html = page.render().unwrap();
        assert!(html.contains("<form"));
        assert!(html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"));
        assert!(!html.contains("<script>x"));
        assert!(html.contains("Email or password is incorrect."));
        assert!(html.contains("aria-invalid=\"true\" aria-describedby=\"password-error\""));
        assert!(
            html.contains(
                "<p class=\"field-error\" id=\"password-error\">Enter your password.</p>"
            )
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Organization administration: members, invitations, teams, settings, audit log.
// ---------------------------------------------------------------------------------------------

/// The side navigation of an organization's pages: only the sections the viewer may use.
#[derive(Debug, Clone, Default)]
pub struct OrgNav {
    pub slug: String,
    pub name: String,
    /// `home`, `members`, `teams`, `audit` or `settings`.
    pub section: String,
    pub members: bool,
    pub teams: bool,
    pub audit: bool,
    pub settings: bool,
    pub llm: bool,
    pub usage: bool,
    pub billing: bool,
    pub security: bool,
}

impl OrgNav {
    /// `has` answers "does the viewer hold this permission".
    pub fn new(slug: &str, name: &str, section: &str, has: impl Fn(Permission) -> bool) -> Self {
        Self {
            slug: slug.to_string(),
            name: name.to_string(),
            section: section.to_string(),
            members: has(Permission::MembersView),
            teams: has(Permission::TeamsView),
            audit: has(Permission::AuditView),
            settings: has(Permission::OrgUpdate) || has(Permission::OrgDelete),
            llm: has(Permission::LlmUse),
            usage: has(Permission::UsageView),
            billing: has(Permission::BillingView),
            security: has(Permission::SecurityManage),
        }
    }

    /// For the org home page (its template calls this), which knows the viewer's
    /// permissions as a list of their string forms.
    pub fn for_home(slug: &str, name: &str, permissions: &[String]) -> Self {
        Self::new(slug, name, "home", |p| {
            permissions.iter().any(|x| x == p.as_str())
        })
    }
}

/// The field errors of one form, shown next to each field.
#[derive(Debug, Clone, Default)]
pub struct FormErrors(pub Vec<(String, String)>);

impl FormErrors {
    pub fn one(field: &str, message: impl Into<String>) -> Self {
        Self(vec![(field.to_string(), message.into())])
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Template)]
#[template(path = "pages/members/index.html")]
pub struct MembersPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub members: Vec<MemberRow>,
    /// The `after` cursor of the next page, when there is one.
    pub next_page: Option<String>,
    pub first_page: bool,
    pub personal: bool,
    pub can_invite: bool,
    pub invitations: Vec<InvitationRow>,
    /// Roles the viewer may invite with.
    pub invite_roles: Vec<String>,
    pub invite_email: String,
    pub invite_role: String,
    pub invite_errors: FormErrors,
    /// An invitation just made: its link is shown this once.
    pub new_invite: Option<NewInviteView>,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub matrix_roles: Vec<String>,
    pub matrix: Vec<MatrixRow>,
}

pub struct MemberRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub status: &'static str,
    pub joined: String,
    pub last_active: String,
    pub is_self: bool,
    /// Roles the viewer may set; empty when the role is not theirs to change.
    pub role_options: Vec<RoleOption>,
    pub can_remove: bool,
    /// How many permission overrides the member has.
    pub overrides: usize,
    /// Whether the member has two-factor; `None` when the viewer may not see it.
    pub two_factor: Option<bool>,
}

pub struct RoleOption {
    pub value: String,
    pub selected: bool,
}

pub struct InvitationRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub invited: String,
    pub expires: String,
    /// Whether the viewer may cancel it (not for a role above their own).
    pub can_cancel: bool,
}

pub struct NewInviteView {
    pub email: String,
    pub role: String,
    pub accept_url: String,
    pub email_sent: bool,
    pub replaced_invitation: bool,
}

pub struct MatrixRow {
    pub permission: String,
    /// One per role, in the order of `matrix_roles`.
    pub granted: Vec<bool>,
}

#[derive(Template)]
#[template(path = "pages/members/member.html")]
pub struct MemberPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub member: MemberRow,
    /// Whether the viewer may change this member's overrides.
    pub editable: bool,
    pub permissions: Vec<PermissionRow>,
    pub saved: bool,
    /// The member's sessions here were just ended.
    pub access_revoked: bool,
    pub error: Option<String>,
}

pub struct PermissionRow {
    pub path: String,
    /// Part of the member's role by default.
    pub by_role: bool,
    /// `default`, `grant` or `deny`.
    pub setting: String,
    /// What the member has with the override applied.
    pub effective: bool,
    /// Whether the viewer may grant it (one cannot hand out what one does not hold).
    pub can_grant: bool,
}

#[derive(Template)]
#[template(path = "pages/invite/accept.html")]
pub struct InvitePage {
    pub layout: Layout,
    pub token: String,
    pub org_name: String,
    pub email: String,
    pub role: String,
    pub expires: String,
    pub inviter: Option<String>,
    /// `accept` (signed in with the invited email), `other_account` (signed in as someone
    /// else), `sign_up` (visitor, no account yet) or `sign_in` (visitor, account exists).
    pub mode: String,
    /// The signed-in user's email, when there is one.
    pub signed_in_as: String,
    pub name: String,
    pub errors: FormErrors,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/teams/index.html")]
pub struct TeamsPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub teams: Vec<TeamRow>,
    pub can_manage: bool,
    pub name: String,
    pub description: String,
    pub errors: FormErrors,
    pub notice: Option<String>,
}

pub struct TeamRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub members: i64,
    pub created: String,
}

#[derive(Template)]
#[template(path = "pages/teams/team.html")]
pub struct TeamPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub team: TeamRow,
    pub members: Vec<PersonRow>,
    /// Organization members not in the team yet (the add-member choices).
    pub candidates: Vec<PersonRow>,
    pub can_manage: bool,
    pub name: String,
    pub description: String,
    pub errors: FormErrors,
    pub error: Option<String>,
    pub notice: Option<String>,
}

pub struct PersonRow {
    pub id: String,
    pub name: String,
    pub email: String,
}

#[derive(Template)]
#[template(path = "pages/settings/index.html")]
pub struct SettingsPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub can_update: bool,
    pub can_delete: bool,
    pub personal: bool,
    /// The slug as stored (what the delete confirmation asks for).
    pub current_slug: String,
    pub name: String,
    pub slug: String,
    pub invitation_ttl_days: String,
    pub audit_retention_days: String,
    pub errors: FormErrors,
    pub delete_errors: FormErrors,
    pub saved: bool,
}

/// "Sign in with single sign-on": the email whose domain picks the organization.
#[derive(Template)]
#[template(path = "pages/auth/sso.html")]
pub struct SsoLoginPage {
    pub layout: Layout,
    pub email: String,
    pub errors: FormErrors,
}

/// What "Test the connection" found, for the single sign-on page.
#[derive(Debug, Clone)]
pub struct SsoTestView {
    pub ok: bool,
    pub message: String,
    pub authorization_endpoint: String,
    pub latency_ms: u64,
}

/// An organization's single sign-on settings (`security.manage`).
#[derive(Template)]
#[template(path = "pages/settings/sso.html")]
pub struct SsoSettingsPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub slug: String,
    pub can_manage: bool,
    pub personal: bool,
    pub configured: bool,
    pub issuer: String,
    pub client_id: String,
    /// The stored secret's hint; the secret itself never reaches a page.
    pub secret_hint: Option<String>,
    /// One domain per line.
    pub allowed_domains: String,
    pub default_role: String,
    pub sso_only: bool,
    pub redirect_uri: String,
    pub errors: FormErrors,
    pub notice: Option<String>,
    pub test: Option<SsoTestView>,
}

impl SsoSettingsPage {
    /// The roles a first sign-in may give (never owner).
    pub fn roles(&self) -> &'static [&'static str] {
        &["admin", "manager", "member", "viewer", "guest"]
    }

    pub fn role_selected(&self, role: &str) -> bool {
        self.default_role.trim() == role
    }
}

#[derive(Template)]
#[template(path = "pages/security/index.html")]
pub struct SecurityPage {
    pub layout: Layout,
    pub nav: OrgNav,
    /// One network per line, as shown in the form.
    pub ip_allowlist: String,
    pub session_idle_minutes: String,
    pub session_max_hours: String,
    pub token_max_days: String,
    pub api_rate_limit_rpm: String,
    /// The caller's address as the server sees it.
    pub your_ip: String,
    /// Saving was refused because the list leaves out `your_ip`: ask for confirmation.
    pub lockout: bool,
    pub require_2fa: bool,
    pub require_2fa_grace_days: String,
    /// When members without two-factor are refused, as shown ("" when not required).
    pub require_2fa_enforced_from: String,
    pub errors: FormErrors,
    pub saved: bool,
}

#[derive(Template)]
#[template(path = "pages/audit/index.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub rows: Vec<AuditLogRow>,
    pub actors: Vec<ActorOption>,
    pub action: String,
    pub resource_type: String,
    pub since: String,
    pub until: String,
    pub errors: FormErrors,
    pub filtered: bool,
    pub older_href: Option<String>,
    pub newest_href: Option<String>,
    pub export_csv: String,
    pub export_ndjson: String,
}

pub struct AuditLogRow {
    pub id: String,
    pub at: String,
    /// A member's name, a former member's recorded email, or "system".
    pub actor: String,
    /// The email beside a member's name, or "former member".
    pub actor_note: String,
    /// For the tooltip; empty for the system.
    pub actor_id: String,
    pub action: String,
    /// "team", "knowledge base".
    pub resource_kind: String,
    /// The resource's name (or what the entry recorded of it); empty when it has no id.
    pub resource: String,
    /// "deleted", "former member", an email; or empty.
    pub resource_note: String,
    /// "team 7f0c…", for the tooltip; empty when the entry names no id.
    pub resource_title: String,
    pub ip: String,
    /// The details as key/value lines, the ids last.
    pub details: Vec<Fact>,
}

pub struct ActorOption {
    pub id: String,
    pub label: String,
    pub selected: bool,
}

// ---------------------------------------------------------------------------------------------
// Resources (agents, workflows, documents, tools, knowledge bases, conversations), the public
// gallery and the organization dashboard.
// ---------------------------------------------------------------------------------------------

/// How the pages name a resource type.
#[derive(Debug, Clone, Default)]
pub struct KindLabel {
    /// The address segment: `agents`, `knowledge-bases`, ...
    pub path: String,
    /// "Agents", "Knowledge bases".
    pub plural: String,
    /// "agent", "knowledge base".
    pub singular: String,
}

impl KindLabel {
    pub fn of(kind: crate::db::repo::resources::ResourceKind) -> Self {
        use crate::db::repo::resources::ResourceKind as K;
        let (plural, singular) = match kind {
            K::Agent => ("Agents", "agent"),
            K::Workflow => ("Workflows", "workflow"),
            K::Document => ("Documents", "document"),
            K::Tool => ("Tools", "tool"),
            K::KnowledgeBase => ("Knowledge bases", "knowledge base"),
            K::Conversation => ("Conversations", "conversation"),
        };
        Self {
            path: kind.path().to_string(),
            plural: plural.to_string(),
            singular: singular.to_string(),
        }
    }
}

/// A resource form as typed (new and edit), refilled after an error. Lists are text: tools
/// comma-separated, traits and skills one `name=value` per line, steps and schemas JSON.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ResourceFormValues {
    pub name: String,
    pub description: String,
    pub visibility: String,
    pub model: String,
    pub system_prompt: String,
    pub tools: String,
    pub personality_traits: String,
    pub skills: String,
    pub steps: String,
    pub input_schema: String,
    pub embedding_model: String,
    pub agent_id: String,
    pub knowledge_base_ids: String,
    pub memory: String,
    /// `on` when the box is ticked (absent otherwise).
    pub memory_extraction: String,
    /// The version the edit form was made from (a concurrent edit is refused).
    pub version: String,
}

/// One choice of a select or a checkbox list.
#[derive(Debug, Clone, Default)]
pub struct ChoiceOption {
    pub id: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "pages/resources/index.html")]
pub struct ResourcesPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub kind: KindLabel,
    pub rows: Vec<ResourceRow>,
    pub q: String,
    /// The visibility filter (empty: any).
    pub visibility: String,
    pub filtered: bool,
    pub older_href: Option<String>,
    pub newest_href: Option<String>,
    pub can_create: bool,
    /// The create form starts open.
    pub open_new: bool,
    pub form: ResourceFormValues,
    pub errors: FormErrors,
    /// The agents a new conversation may use.
    pub agents: Vec<ChoiceOption>,
    /// The largest document accepted ("10 MiB").
    pub max_upload: String,
    pub notice: Option<String>,
}

pub struct ResourceRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub visibility: String,
    pub owner: String,
    pub updated: String,
}

pub struct ResourceDetail {
    pub id: String,
    pub name: String,
    pub description: String,
    pub visibility: String,
    pub owner: String,
    pub created: String,
    pub updated: String,
    pub version: i64,
}

/// A type-specific field as shown: `block` values (prompts, JSON) get a preformatted box.
pub struct Fact {
    pub label: String,
    pub value: String,
    pub block: bool,
}

pub struct NamedValue {
    pub name: String,
    pub value: String,
}

/// The share dialog of a resource: visibility, and members and teams it is shared with.
#[derive(Default)]
pub struct ShareDialog {
    pub open: bool,
    pub visibility: String,
    pub members: Vec<ChoiceOption>,
    pub teams: Vec<ChoiceOption>,
    /// Shares the viewer cannot list (no members.view / teams.view): kept as they are.
    pub kept_users: Vec<String>,
    pub kept_teams: Vec<String>,
    pub error: Option<String>,
}

pub struct KbDocumentRow {
    pub id: String,
    pub name: String,
    /// Whether the viewer may open it (otherwise only its id is known).
    pub readable: bool,
    /// `queued`, `indexing 3/10`, `ready (12 chunks)`, `failed: reason`.
    pub status: String,
    /// The status word, for styling: queued, indexing, ready, failed.
    pub state: String,
}

/// A passage a reply used: its document (a link when the reader may open it).
pub struct CitationLink {
    pub href: Option<String>,
    pub label: String,
}

pub struct MessageRow {
    pub role: String,
    pub content: String,
    pub author: String,
    pub at: String,
    /// A reply's model, tokens and cost.
    pub meta: String,
    pub citations: Vec<CitationLink>,
    /// A reply cut short.
    pub partial: bool,
}

/// A fact an agent keeps, as its page lists it.
pub struct MemoryRow {
    pub id: String,
    pub key: String,
    pub value: String,
    /// "you" or "everyone who may use the agent".
    pub scope: String,
    pub source_href: Option<String>,
    pub updated: String,
}

pub struct RunStepRow {
    pub index: i64,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub input: String,
    pub output: String,
    pub error: String,
    /// Tokens, cost and time.
    pub meta: String,
}

pub struct RunRow {
    pub id: String,
    pub status: String,
    pub at: String,
    pub by: String,
    pub meta: String,
    pub input: String,
    pub output: String,
    pub error: String,
    pub cancellable: bool,
    pub steps: Vec<RunStepRow>,
}

#[derive(Template)]
#[template(path = "pages/resources/show.html")]
pub struct ResourcePage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub kind: KindLabel,
    pub item: ResourceDetail,
    pub facts: Vec<Fact>,
    pub traits: Vec<NamedValue>,
    pub skills: Vec<NamedValue>,
    pub can_write: bool,
    pub form: ResourceFormValues,
    pub errors: FormErrors,
    pub notice: Option<String>,
    /// An action on the page that failed (delete, knowledge-base documents).
    pub error: Option<String>,
    pub share: ShareDialog,
    /// The agents a conversation may use (edit form).
    pub agents: Vec<ChoiceOption>,
    pub download_href: Option<String>,
    pub kb_documents: Vec<KbDocumentRow>,
    pub kb_candidates: Vec<ChoiceOption>,
    /// The person may upload documents (an empty knowledge base links to the upload).
    pub can_upload: bool,
    pub messages: Vec<MessageRow>,
    pub message_content: String,
    pub message_errors: FormErrors,
    /// The conversation's agent's model, for the message box.
    pub chat_model: String,
    /// An agent's memory: its mode in words, the facts the viewer sees, the add form.
    pub memory_mode: String,
    pub memory: Vec<MemoryRow>,
    pub memory_errors: FormErrors,
    pub memory_key: String,
    pub memory_value: String,
    /// A workflow's runs, newest first, and the run form.
    pub runs: Vec<RunRow>,
    pub runs_active: bool,
    pub can_run: bool,
    pub run_input: String,
    pub run_errors: FormErrors,
}

pub struct AccessRow {
    pub name: String,
    pub email: String,
    pub role: String,
    pub can_read: bool,
    pub can_write: bool,
    pub reasons: Vec<String>,
}

#[derive(Template)]
#[template(path = "pages/resources/access.html")]
pub struct AccessPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub kind: KindLabel,
    pub item_id: String,
    pub item_name: String,
    pub visibility: String,
    pub rows: Vec<AccessRow>,
}

pub struct GalleryTab {
    pub path: String,
    pub label: String,
    pub current: bool,
}

pub struct GalleryCard {
    pub id: String,
    pub name: String,
    pub description: String,
    pub organization: String,
    /// One line about the item itself (an agent's model, a document's file name).
    pub detail: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "pages/gallery/index.html")]
pub struct GalleryPage {
    pub layout: Layout,
    pub kind: KindLabel,
    pub tabs: Vec<GalleryTab>,
    pub cards: Vec<GalleryCard>,
    pub q: String,
    pub older_href: Option<String>,
    pub newest_href: Option<String>,
}

/// Resources of one type on the dashboard.
pub struct ResourceCount {
    pub path: String,
    pub label: String,
    pub total: String,
    /// "2 private · 1 organization".
    pub breakdown: String,
}

/// Usage against a plan limit, drawn as a bar.
pub struct UsageMeter {
    pub id: String,
    pub label: String,
    pub used: i64,
    /// None: the plan sets no limit.
    pub max: Option<i64>,
    /// "3 of 5", "1.2 MiB of 100 MiB", "4 (no limit)".
    pub text: String,
    /// 0 to 100, for the bar's width.
    pub percent: i64,
    /// `ok`, `warn` (80 % or more) or `full`.
    pub level: String,
}

#[derive(Default)]
pub struct Dashboard {
    pub counts: Vec<ResourceCount>,
    pub meters: Vec<UsageMeter>,
    pub period: String,
    /// "12 AI requests".
    pub requests: String,
    /// "3 members".
    pub members: String,
    /// "1 team".
    pub teams: String,
}

/// The organization home with the dashboard: the same page as `OrgHomePage` (its
/// template extends the home template) plus resource counts and usage against the plan.
#[derive(Template)]
#[template(path = "pages/orgs/dashboard.html")]
pub struct OrgDashboardPage {
    pub layout: Layout,
    pub org: NavOrg,
    pub plan: String,
    pub kind: String,
    pub created: String,
    pub permissions: Vec<String>,
    pub recent: Vec<AuditRow>,
    pub can_view_audit: bool,
    /// None for members who may not see organization-wide counts (guests).
    pub dashboard: Option<Dashboard>,
}

/// What a "test connection" found, as shown under the provider it tested.
#[derive(Debug, Clone)]
pub struct TestView {
    pub ok: bool,
    pub message: String,
    /// Which key, where, how long: "organization key sk-…abcd · https://… · 120 ms".
    pub detail: String,
    /// The first model ids, comma-separated.
    pub models: String,
}

/// A provider entry of the organization, or one configured only on the server.
pub struct ProviderRow {
    pub name: String,
    pub base_url: String,
    pub key_hint: String,
    pub enabled: bool,
    /// False: called without a key (Ollama, vLLM, …) unless one is set.
    pub key_required: bool,
    /// Which key the organization's calls use: "organization key", "server key", "none".
    pub effective: String,
    pub updated: String,
    /// Configured only through the server's environment (no organization entry).
    pub server_only: bool,
    pub test: Option<TestView>,
    /// Errors of this row's edit form, which is then open.
    pub errors: FormErrors,
}

/// The organization's LLM providers and policy.
#[derive(Template)]
#[template(path = "pages/llm/settings.html")]
pub struct LlmSettingsPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub can_manage_keys: bool,
    pub can_manage_policy: bool,
    pub providers: Vec<ProviderRow>,
    pub allow_user_keys: bool,
    pub default_model: String,
    /// One per line.
    pub allowed_models: String,
    pub policy_errors: FormErrors,
    /// The add form: what was typed (never the key) and what is wrong with it.
    pub new_name: String,
    pub new_base_url: String,
    pub new_no_key: bool,
    pub new_errors: FormErrors,
    pub notice: Option<String>,
}

pub struct MyKeyRow {
    pub name: String,
    pub base_url: String,
    pub key_hint: String,
    pub updated: String,
    pub test: Option<TestView>,
}

/// Which key a member's calls use, per provider.
pub struct ResolutionRow {
    pub provider: String,
    pub source: String,
    pub key_hint: String,
    pub reason: String,
}

/// A member's own provider keys in one organization.
#[derive(Template)]
#[template(path = "pages/llm/keys.html")]
pub struct MyKeysPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub allowed: bool,
    pub keys: Vec<MyKeyRow>,
    pub resolution: Vec<ResolutionRow>,
    /// Provider names to suggest in the form.
    pub known: Vec<String>,
    pub form_provider: String,
    pub form_base_url: String,
    pub errors: FormErrors,
    pub notice: Option<String>,
}

/// A line of a usage breakdown.
pub struct UsageRow {
    pub label: String,
    /// A second line (a member's email).
    pub sub: String,
    pub requests: String,
    pub input_tokens: String,
    pub output_tokens: String,
    pub cost: String,
}

pub struct InvoiceRow {
    pub id: String,
    pub period: String,
    pub total: String,
    pub issued: String,
}

/// An invoice on the billing page.
pub struct BillingInvoiceRow {
    pub id: String,
    pub period: String,
    pub total: String,
    /// What its credit notes add up to; empty when there are none.
    pub credited: String,
    pub balance: String,
    pub issued: String,
}

/// An organization's billing: the plan, the current period's cost so far and its
/// projection, the plan's AI credits used, and the invoices.
#[derive(Template)]
#[template(path = "pages/billing/index.html")]
pub struct BillingPage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub org_id: String,
    /// None: the organization has no plan.
    pub plan_name: Option<String>,
    pub monthly_fee: String,
    pub period: String,
    /// "1 Nov 2026 – 30 Nov 2026".
    pub range: String,
    pub cost_so_far: String,
    pub projection: String,
    /// "12 of 30 days (40%)".
    pub elapsed: String,
    /// The plan's monthly AI credits against the period's cost; None without credits.
    pub credits: Option<UsageMeter>,
    pub invoices: Vec<BillingInvoiceRow>,
}

/// A credit note as the invoice page lists it.
pub struct CreditNoteRow {
    pub id: String,
    pub amount: String,
    pub reason: String,
    pub issued: String,
}

/// One issued invoice, printable, with its credit notes and (for `billing.manage`) the
/// form that issues one.
#[derive(Template)]
#[template(path = "pages/billing/invoice.html")]
pub struct InvoicePage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub org_id: String,
    pub org_name: String,
    pub id: String,
    pub period: String,
    pub issued: String,
    pub currency: String,
    pub lines: Vec<UsageRow>,
    pub total: String,
    pub credit_notes: Vec<CreditNoteRow>,
    pub credited: String,
    pub balance: String,
    pub can_credit: bool,
    /// What the form had when it was refused (dollars, reason).
    pub form_amount: String,
    pub form_reason: String,
    pub errors: FormErrors,
    pub notice: Option<String>,
}

pub struct NotificationRow {
    pub id: String,
    pub title: String,
    pub body: String,
    pub when: String,
    pub unread: bool,
}

/// The quota form's fields as typed (money in dollars).
#[derive(Default)]
pub struct QuotaFields {
    pub monthly_credits: String,
    pub monthly_requests: String,
    pub rate_limit_rpm: String,
    pub rate_limit_tpm: String,
    pub member_monthly_credits: String,
    pub billing_anchor_day: String,
    pub alert_thresholds: String,
    pub webhook_url: String,
}

/// An organization's usage in one period: limits, totals, the daily chart, breakdowns.
#[derive(Template)]
#[template(path = "pages/usage/index.html")]
pub struct UsagePage {
    pub layout: Layout,
    pub nav: OrgNav,
    pub org_id: String,
    pub period: String,
    /// "1 Nov 2026 – 30 Nov 2026".
    pub range: String,
    pub prev_period: String,
    /// None for the current period (the future has no usage).
    pub next_period: Option<String>,
    pub limits: Vec<UsageMeter>,
    /// Limits without a running count: "60 requests per minute".
    pub rates: Vec<String>,
    pub alerts_sent: String,
    pub totals: UsageRow,
    pub mine: UsageRow,
    /// The daily cost chart, an SVG document drawn by the server.
    pub chart_svg: String,
    pub by_day: Vec<UsageRow>,
    pub by_model: Vec<UsageRow>,
    pub by_endpoint: Vec<UsageRow>,
    pub by_user: Vec<UsageRow>,
    pub can_manage_quota: bool,
    pub quota: QuotaFields,
    pub plan_credits: String,
    pub webhook_secret_set: bool,
    pub quota_errors: FormErrors,
    pub can_view_billing: bool,
    pub invoices: Vec<InvoiceRow>,
    pub notifications: Vec<NotificationRow>,
    pub notice: Option<String>,
}

pub mod admin;

/// Setting a new password through a reset link.
#[derive(Template)]
#[template(path = "pages/auth/reset.html")]
pub struct ResetPasswordPage {
    pub layout: Layout,
    pub token: String,
    /// The account the link is for; `None`: the link is unknown, used or expired.
    pub email: Option<String>,
    pub errors: FormErrors,
    pub done: bool,
}
