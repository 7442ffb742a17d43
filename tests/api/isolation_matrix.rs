//! The resource isolation matrix. Every route that takes an organization, an id or a
//! resource type has a case in `ROUTES` (or names the test that covers it elsewhere);
//! members of org B reach nothing of org A's resources under A's path or their own;
//! lists, search, the accessible view, the public gallery, the audit export and the
//! summary hold exactly the ids a reference model of ARCHITECTURE §4 predicts; and each
//! role of org A gets exactly the model's status for every type, visibility/sharing case
//! and action.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;
use crate::org_fixture::*;

// ---------------------------------------------------------------------------------------
// The route table.

/// How the isolation of one route is tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Probe {
    List,
    Create,
    Show,
    Update,
    Delete,
    Access,
    Content,
    Messages,
    AddMessage,
    KbAdd,
    KbRemove,
    KbDocuments,
    KbUpload,
    KbSearch,
    Memory,
    Remember,
    FactEdit,
    FactForget,
    Runs,
    StartRun,
    RunShow,
    RunCancel,
    Limits,
    Summary,
    AuditExport,
    Accessible,
    Gallery,
    RemoveMember,
    MoveToOrg,
    /// Covered by another file of this suite: (file in tests/api, test function).
    Elsewhere(&'static str, &'static str),
}

const ORG_ISO: &str = "org_isolation.rs";
const LLM: &str = "llm_keys.rs";
/// The console is instance-wide: its isolation is "nobody but a signed-in superuser".
const ADMIN: &str = "admin_console.rs";
const ADMIN_ISO: &str = "every_admin_route_refuses_non_superusers_and_tokens_and_changes_nothing";
const GATEWAY: &str = "gateway.rs";
const SECURITY: &str = "security_policy.rs";
const GATEWAY_ISO: &str = "usage_and_quota_of_another_org_are_not_found";
const BILLING_ISO: &str =
    "another_orgs_invoice_has_no_credit_notes_to_read_or_issue_and_nothing_is_written";
const LLM_ISO: &str = "llm_settings_and_keys_of_another_org_are_not_found";
const TWO_FACTOR: &str = "two_factor.rs";
const TWO_FACTOR_ISO: &str =
    "another_orgs_security_policy_is_not_found_and_one_orgs_policy_leaves_the_others_alone";
const SSO: &str = "sso.rs";
const SSO_ISO: &str = "sso_settings_of_another_org_are_not_found_and_nothing_is_written";
const BY_REF: &str = "members_of_another_org_find_nothing_by_id_or_slug_and_change_nothing";
const UNDER_OWN: &str = "ids_of_another_orgs_objects_under_ones_own_org_are_not_found";

/// Every API route with a path parameter, keyed by (method, path template) as
/// `/api/openapi.json` names it. A route missing here fails
/// `every_route_with_an_org_or_an_id_has_a_case_in_the_isolation_table`.
const ROUTES: &[(&str, &str, Probe)] = &[
    (
        "GET",
        "/api/v1/admin/organizations/{id}",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "PATCH",
        "/api/v1/admin/organizations/{id}",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "DELETE",
        "/api/v1/admin/organizations/{id}",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "GET",
        "/api/v1/admin/audit",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "GET",
        "/api/v1/admin/audit/export",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "POST",
        "/api/v1/admin/organizations/{id}/enter",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "GET",
        "/api/v1/admin/users/{id}",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "PATCH",
        "/api/v1/admin/users/{id}",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "POST",
        "/api/v1/admin/users/{id}/sign-out",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "POST",
        "/api/v1/admin/users/{id}/password-reset",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "POST",
        "/api/v1/admin/users/{id}/reset-2fa",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "PATCH",
        "/api/v1/admin/plans/{id}",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "DELETE",
        "/api/v1/admin/plans/{id}",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "PATCH",
        "/api/v1/admin/model-prices/{id}",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "DELETE",
        "/api/v1/admin/model-prices/{id}",
        Probe::Elsewhere(ADMIN, ADMIN_ISO),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/usage.csv",
        Probe::Elsewhere(GATEWAY, GATEWAY_ISO),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/invoices",
        Probe::Elsewhere(
            GATEWAY,
            "a_closed_period_becomes_one_invoice_and_only_its_org_sees_it",
        ),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/invoices/{id}",
        Probe::Elsewhere(
            GATEWAY,
            "a_closed_period_becomes_one_invoice_and_only_its_org_sees_it",
        ),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/invoices/{id}/credit-notes",
        Probe::Elsewhere("billing.rs", BILLING_ISO),
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/invoices/{id}/credit-notes",
        Probe::Elsewhere("billing.rs", BILLING_ISO),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/quota/webhook-deliveries",
        Probe::Elsewhere(GATEWAY, GATEWAY_ISO),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/notifications",
        Probe::Elsewhere(GATEWAY, GATEWAY_ISO),
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/notifications/{id}/read",
        Probe::Elsewhere(GATEWAY, GATEWAY_ISO),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/usage",
        Probe::Elsewhere(GATEWAY, GATEWAY_ISO),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/security",
        Probe::Elsewhere(TWO_FACTOR, TWO_FACTOR_ISO),
    ),
    (
        "PATCH",
        "/api/v1/orgs/{org}/security",
        Probe::Elsewhere(
            SECURITY,
            "the_policy_is_for_security_managers_of_its_own_organization_and_checks_its_input",
        ),
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/members/{user_id}/revoke-access",
        Probe::Elsewhere(
            SECURITY,
            "an_admin_ends_a_members_access_in_their_organization_only",
        ),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/quota",
        Probe::Elsewhere(GATEWAY, GATEWAY_ISO),
    ),
    (
        "PATCH",
        "/api/v1/orgs/{org}/quota",
        Probe::Elsewhere(GATEWAY, GATEWAY_ISO),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/llm",
        Probe::Elsewhere(LLM, LLM_ISO),
    ),
    (
        "PUT",
        "/api/v1/orgs/{org}/llm/providers/{provider}",
        Probe::Elsewhere(LLM, LLM_ISO),
    ),
    (
        "DELETE",
        "/api/v1/orgs/{org}/llm/providers/{provider}",
        Probe::Elsewhere(LLM, LLM_ISO),
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/llm/providers/{provider}/test",
        Probe::Elsewhere(LLM, LLM_ISO),
    ),
    (
        "POST",
        "/api/v1/me/llm/providers/{provider}/test",
        Probe::Elsewhere(LLM, LLM_ISO),
    ),
    (
        "PATCH",
        "/api/v1/orgs/{org}/llm/policy",
        Probe::Elsewhere(LLM, LLM_ISO),
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/security/sso/test",
        Probe::Elsewhere(SSO, SSO_ISO),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/llm/resolve",
        Probe::Elsewhere(LLM, LLM_ISO),
    ),
    (
        "GET",
        "/api/v1/me/llm/providers",
        Probe::Elsewhere(LLM, LLM_ISO),
    ),
    (
        "PUT",
        "/api/v1/me/llm/providers/{provider}",
        Probe::Elsewhere(LLM, LLM_ISO),
    ),
    (
        "DELETE",
        "/api/v1/me/llm/providers/{provider}",
        Probe::Elsewhere(LLM, LLM_ISO),
    ),
    (
        "DELETE",
        "/api/v1/me/tokens/{id}",
        Probe::Elsewhere(
            "isolation.rs",
            "another_users_tokens_and_sessions_cannot_be_seen_or_revoked",
        ),
    ),
    (
        "DELETE",
        "/api/v1/me/sessions/{id}",
        Probe::Elsewhere(
            "isolation.rs",
            "another_users_tokens_and_sessions_cannot_be_seen_or_revoked",
        ),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    (
        "PATCH",
        "/api/v1/orgs/{org}",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    (
        "DELETE",
        "/api/v1/orgs/{org}",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/members",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/members/{user_id}",
        Probe::Elsewhere(ORG_ISO, UNDER_OWN),
    ),
    (
        "PATCH",
        "/api/v1/orgs/{org}/members/{user_id}",
        Probe::Elsewhere(ORG_ISO, UNDER_OWN),
    ),
    (
        "DELETE",
        "/api/v1/orgs/{org}/members/{user_id}",
        Probe::RemoveMember,
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/invitations",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/invitations",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    (
        "DELETE",
        "/api/v1/orgs/{org}/invitations/{id}",
        Probe::Elsewhere(ORG_ISO, UNDER_OWN),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/teams",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/teams",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/teams/{id}",
        Probe::Elsewhere(ORG_ISO, UNDER_OWN),
    ),
    (
        "PATCH",
        "/api/v1/orgs/{org}/teams/{id}",
        Probe::Elsewhere(ORG_ISO, UNDER_OWN),
    ),
    (
        "DELETE",
        "/api/v1/orgs/{org}/teams/{id}",
        Probe::Elsewhere(ORG_ISO, UNDER_OWN),
    ),
    (
        "PUT",
        "/api/v1/orgs/{org}/teams/{id}/members/{user_id}",
        Probe::Elsewhere(ORG_ISO, UNDER_OWN),
    ),
    (
        "DELETE",
        "/api/v1/orgs/{org}/teams/{id}/members/{user_id}",
        Probe::Elsewhere(ORG_ISO, UNDER_OWN),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/audit",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    ("GET", "/api/v1/orgs/{org}/audit/export", Probe::AuditExport),
    ("GET", "/api/v1/orgs/{org}/{type}", Probe::List),
    ("POST", "/api/v1/orgs/{org}/{type}", Probe::Create),
    ("GET", "/api/v1/orgs/{org}/{type}/{id}", Probe::Show),
    ("PATCH", "/api/v1/orgs/{org}/{type}/{id}", Probe::Update),
    ("DELETE", "/api/v1/orgs/{org}/{type}/{id}", Probe::Delete),
    (
        "GET",
        "/api/v1/orgs/{org}/{type}/{id}/access",
        Probe::Access,
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/{type}/{id}/content",
        Probe::Content,
    ),
    (
        "PUT",
        "/api/v1/orgs/{org}/{type}/{id}/content",
        Probe::Elsewhere(
            "agent_services.rs",
            "a_changed_file_re_indexes_that_document_only_and_the_same_file_nothing",
        ),
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/{type}/{id}/messages",
        Probe::Messages,
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/{type}/{id}/messages",
        Probe::AddMessage,
    ),
    (
        "PUT",
        "/api/v1/orgs/{org}/{type}/{id}/documents/{doc_id}",
        Probe::KbAdd,
    ),
    (
        "DELETE",
        "/api/v1/orgs/{org}/{type}/{id}/documents/{doc_id}",
        Probe::KbRemove,
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/{type}/{id}/documents",
        Probe::KbDocuments,
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/{type}/{id}/documents",
        Probe::KbUpload,
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/{type}/{id}/search",
        Probe::KbSearch,
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/{type}/{id}/memory",
        Probe::Memory,
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/{type}/{id}/memory",
        Probe::Remember,
    ),
    (
        "PATCH",
        "/api/v1/orgs/{org}/{type}/{id}/memory/{memory_id}",
        Probe::FactEdit,
    ),
    (
        "DELETE",
        "/api/v1/orgs/{org}/{type}/{id}/memory/{memory_id}",
        Probe::FactForget,
    ),
    ("GET", "/api/v1/orgs/{org}/{type}/{id}/runs", Probe::Runs),
    (
        "POST",
        "/api/v1/orgs/{org}/{type}/{id}/runs",
        Probe::StartRun,
    ),
    (
        "GET",
        "/api/v1/orgs/{org}/{type}/{id}/runs/{run_id}",
        Probe::RunShow,
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/{type}/{id}/runs/{run_id}/cancel",
        Probe::RunCancel,
    ),
    ("GET", "/api/v1/orgs/{org}/limits", Probe::Limits),
    ("GET", "/api/v1/orgs/{org}/summary", Probe::Summary),
    ("GET", "/api/v1/me/accessible/{type}", Probe::Accessible),
    ("GET", "/api/v1/public/{type}", Probe::Gallery),
    (
        "PUT",
        "/api/v1/me/current-organization",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    (
        "POST",
        "/api/v1/me/tokens",
        Probe::Elsewhere(ORG_ISO, BY_REF),
    ),
    ("POST", "/api/v1/me/move-to-organization", Probe::MoveToOrg),
];

/// The resource types of `/api/v1/orgs/{org}/{type}`.
pub const RESOURCE_TYPES: [&str; 6] = [
    "agents",
    "workflows",
    "documents",
    "tools",
    "knowledge-bases",
    "conversations",
];

/// The server's route template for a path of the OpenAPI description, which spells out
/// `/api/v1/orgs/{org}/{type}/…` once per type (each has its own fields).
pub fn server_route(path: &str) -> String {
    let Some(rest) = path.strip_prefix("/api/v1/orgs/{org}/") else {
        return path.to_string();
    };
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if !RESOURCE_TYPES.contains(&first) {
        return path.to_string();
    }
    let tail = if tail.is_empty() {
        String::new()
    } else {
        format!("/{tail}")
    };
    format!("/api/v1/orgs/{{org}}/{{type}}{tail}")
}

/// A parameter or body field that names an organization or an object.
fn names_something(name: &str) -> bool {
    name.ends_with("_id") || name.contains("organization") || ["org", "transfer_to"].contains(&name)
}

/// Whether an operation of the OpenAPI description takes an org or an id anywhere: in
/// its path, its query or its JSON body.
fn takes_a_reference(doc: &Value, path: &str, op: &Value) -> bool {
    let query = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["in"] == "query" && p["name"].as_str().is_some_and(names_something));
    let body = op["requestBody"]["content"]
        .as_object()
        .into_iter()
        .flat_map(|c| c.values())
        .map(|c| match c["schema"]["$ref"].as_str() {
            Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
            None => &c["schema"],
        })
        .filter_map(|s| s["properties"].as_object())
        .any(|props| props.keys().any(|k| names_something(k)));
    path.contains('{') || query || body
}

#[tokio::test]
async fn every_route_with_an_org_or_an_id_has_a_case_in_the_isolation_table() {
    let app = TestApp::spawn().await;
    let r = reply(reqwest::get(app.url("/api/openapi.json")).await.unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut described = BTreeSet::new();
    for (path, item) in r.body["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let m = method.to_ascii_uppercase();
            let is_method =
                ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&m.as_str());
            // Every path parameter is an org, an id or a type; query and body fields that
            // name an org or an object count too. All of them need an isolation case.
            if is_method && takes_a_reference(&r.body, path, op) {
                described.insert((m, server_route(path)));
            }
        }
    }
    assert!(described.len() >= 30, "only {} routes", described.len());
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        table.len(),
        ROUTES.len(),
        "a route is listed twice in ROUTES"
    );
    let missing: Vec<_> = described.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes without an isolation case (add them to ROUTES in isolation_matrix.rs): {missing:?}"
    );
    let stale: Vec<_> = table.difference(&described).collect();
    assert!(
        stale.is_empty(),
        "ROUTES lists routes the server does not describe: {stale:?}"
    );
    // A reference to another file must name a test that exists there.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api");
    for (m, p, probe) in ROUTES {
        if let Probe::Elsewhere(file, test) = probe {
            let src = std::fs::read_to_string(dir.join(file))
                .unwrap_or_else(|e| panic!("{m} {p}: cannot read {file}: {e}"));
            assert!(
                src.contains(&format!("async fn {test}(")),
                "{m} {p}: {file} has no test {test}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The test bed: the two fixture orgs, each with a small team, a member of both, and
// resources of every type and sharing case owned by the four roles that may create.

const TYPES: [&str; 6] = [
    "agents",
    "workflows",
    "documents",
    "tools",
    "knowledge-bases",
    "conversations",
];
const CREATORS: [&str; 4] = ["owner", "admin", "manager", "member"];
const VISIBILITIES: [&str; 4] = ["private", "team", "organization", "public"];
/// The member of both orgs: viewer in A, manager in B.
const DUAL: &str = "dual";
const DUAL_EMAIL: &str = "dual@both.example";

fn audit_type(ty: &str) -> &'static str {
    match ty {
        "agents" => "agent",
        "workflows" => "workflow",
        "documents" => "document",
        "tools" => "tool",
        "knowledge-bases" => "knowledge_base",
        _ => "conversation",
    }
}

#[derive(Debug, Clone, Copy)]
enum TeamRef {
    /// The fixture's team: all six roles.
    All,
    /// member, guest and the dual member.
    Small,
}

/// Who a resource is shared with directly: fixed people, or one picked per type.
#[derive(Debug, Clone, Copy)]
enum Direct {
    None,
    Fixed(&'static [&'static str]),
    Rotating,
}

struct Case {
    label: &'static str,
    visibility: &'static str,
    users: Direct,
    teams: &'static [TeamRef],
}

/// Ten cases per type (the free plan allows ten agents and ten workflows).
const CASES: [Case; 10] = [
    Case {
        label: "private",
        visibility: "private",
        users: Direct::None,
        teams: &[],
    },
    Case {
        label: "private-2",
        visibility: "private",
        users: Direct::None,
        teams: &[],
    },
    Case {
        label: "team-small",
        visibility: "team",
        users: Direct::None,
        teams: &[TeamRef::Small],
    },
    Case {
        label: "team-all",
        visibility: "team",
        users: Direct::None,
        teams: &[TeamRef::All],
    },
    Case {
        label: "team-unshared",
        visibility: "team",
        users: Direct::None,
        teams: &[],
    },
    Case {
        label: "organization",
        visibility: "organization",
        users: Direct::None,
        teams: &[],
    },
    Case {
        label: "public",
        visibility: "public",
        users: Direct::None,
        teams: &[],
    },
    Case {
        label: "direct",
        visibility: "private",
        users: Direct::Rotating,
        teams: &[],
    },
    Case {
        label: "public-shared-guest",
        visibility: "public",
        users: Direct::Fixed(&["guest"]),
        teams: &[],
    },
    Case {
        label: "org-shared-small",
        visibility: "organization",
        users: Direct::Fixed(&["viewer"]),
        teams: &[TeamRef::Small],
    },
];

const ROTATING_TARGETS: [&str; 5] = ["viewer", "guest", "member", DUAL, "manager"];

#[derive(Debug, Clone)]
struct Member {
    key: &'static str,
    user_id: String,
    role: &'static str,
    teams: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Res {
    org: usize,
    ty: &'static str,
    case: usize,
    id: String,
    name: String,
    description: String,
    owner_key: &'static str,
    owner: String,
    visibility: &'static str,
    users: BTreeSet<String>,
    teams: BTreeSet<String>,
}

struct Tenant {
    id: String,
    slug: String,
    word: &'static str,
    cap: &'static str,
    team_all: String,
    team_small: String,
    members: Vec<Member>,
}

impl Tenant {
    fn member(&self, key: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.key == key)
            .unwrap_or_else(|| panic!("no {key} in {}", self.slug))
    }
    fn path(&self, rest: &str) -> String {
        format!("/api/v1/orgs/{}{rest}", self.id)
    }
}

struct Bed {
    w: World,
    dual: (TestUser, Session),
    t: [Tenant; 2],
    res: Vec<Res>,
    /// A fact each org's owner keeps with the org's private agent.
    facts: [String; 2],
    /// A run of each org's private workflow.
    runs: [String; 2],
}

// The reference model (ARCHITECTURE §4 as the brief states it).
fn manages(role: &str) -> bool {
    matches!(role, "owner" | "admin" | "manager")
}
fn creates(role: &str) -> bool {
    matches!(role, "owner" | "admin" | "manager" | "member")
}
fn reads(m: &Member, r: &Res) -> bool {
    r.owner == m.user_id
        || (matches!(r.visibility, "organization" | "public") && m.role != "guest")
        || r.users.contains(&m.user_id)
        || r.teams.iter().any(|t| m.teams.contains(t))
        || manages(m.role)
}
fn writes(m: &Member, r: &Res) -> bool {
    manages(m.role) || (r.owner == m.user_id && creates(m.role))
}
/// Who may ask who has access: the resource's owner, or `members.manage` (owner, admin).
fn explains(m: &Member, r: &Res) -> bool {
    r.owner == m.user_id || matches!(m.role, "owner" | "admin")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Get,
    Patch,
    Delete,
    Access,
    Content,
    Messages,
    AddMessage,
    KbAdd,
    KbRemove,
    KbDocuments,
    Memory,
    Remember,
}

/// The status the model predicts for `m` (a member of `r`'s org) doing `a` to `r`.
fn expected(m: &Member, r: &Res, a: Action) -> StatusCode {
    if !reads(m, r) {
        return StatusCode::NOT_FOUND;
    }
    let write = |ok: StatusCode| {
        if writes(m, r) {
            ok
        } else {
            StatusCode::FORBIDDEN
        }
    };
    match a {
        Action::Get | Action::Content | Action::Messages | Action::KbDocuments | Action::Memory => {
            StatusCode::OK
        }
        // Whoever reads the agent keeps their own facts with it.
        Action::Remember => StatusCode::CREATED,
        // Whoever reads the conversation may post; these have no agent to answer.
        Action::AddMessage => StatusCode::UNPROCESSABLE_ENTITY,
        Action::Patch => write(StatusCode::OK),
        Action::Delete | Action::KbRemove => write(StatusCode::NO_CONTENT),
        Action::KbAdd => write(StatusCode::CREATED),
        Action::Access => {
            if explains(m, r) {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            }
        }
    }
}

impl Bed {
    fn session(&self, org: usize, key: &str) -> &Session {
        if key == DUAL {
            return &self.dual.1;
        }
        let o = if org == 0 { &self.w.a } else { &self.w.b };
        &o.person(key).s
    }

    fn of(&self, org: usize) -> impl Iterator<Item = &Res> {
        self.res.iter().filter(move |r| r.org == org)
    }

    fn find(&self, org: usize, ty: &str, label: &str) -> &Res {
        self.of(org)
            .find(|r| r.ty == ty && CASES[r.case].label == label)
            .unwrap_or_else(|| panic!("no {ty} {label} in org {org}"))
    }

    /// Ids of `ty` in `org` that `m` may read.
    fn readable(&self, org: usize, ty: &str, m: &Member) -> BTreeSet<String> {
        self.of(org)
            .filter(|r| r.ty == ty && reads(m, r))
            .map(|r| r.id.clone())
            .collect()
    }

    /// Everything of org A a member of B must never see (the dual member aside).
    fn a_secrets(&self) -> Vec<String> {
        let a = &self.w.a;
        let mut s = vec![
            a.id.clone(),
            a.slug.clone(),
            self.t[0].team_all.clone(),
            self.t[0].team_small.clone(),
            a.pending_invitation_id.clone(),
        ];
        s.extend(a.user_ids());
        s.extend(a.people.iter().map(|p| p.user.personal_org.clone()));
        s.extend(self.of(0).map(|r| r.id.clone()));
        s
    }
}

fn type_fields(ty: &str) -> Value {
    match ty {
        "agents" => json!({"model": "gpt-4o", "system_prompt": "Answer briefly."}),
        "workflows" => {
            json!({"steps": [{"kind": "agent", "name": "first", "agent_id": "0190f0a0-0000-7000-8000-000000000001", "prompt": "{{input}}"}]})
        }
        "tools" => json!({"input_schema": {"type": "object"}}),
        "knowledge-bases" => json!({"embedding_model": "e5"}),
        _ => json!({}),
    }
}

/// Creates a resource as `s` (documents by upload); returns the reply.
async fn create_resource(
    s: &Session,
    org: &str,
    ty: &str,
    name: &str,
    description: &str,
    visibility: &str,
    shared: &Value,
) -> Reply {
    let path = format!("/api/v1/orgs/{org}/{ty}");
    if ty == "documents" {
        let part = reqwest::multipart::Part::bytes(format!("{description}: the text").into_bytes())
            .file_name(format!("{}.txt", name.replace(' ', "_")))
            .mime_str("text/plain")
            .unwrap();
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("name", name.to_string())
            .text("description", description.to_string())
            .text("visibility", visibility.to_string())
            .text("shared_with", shared.to_string());
        return reply(
            s.client
                .post(s.url(&path))
                .header("x-csrf-token", &s.csrf)
                .multipart(form)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    let mut body = type_fields(ty);
    body["name"] = json!(name);
    body["description"] = json!(description);
    body["visibility"] = json!(visibility);
    body["shared_with"] = shared.clone();
    s.post(&path, body).await
}

/// Creates `r` again as its owner (after a delete) and stores the new id in it.
async fn recreate(bed: &Bed, r: &Res) -> String {
    let shared = json!({"users": r.users, "teams": r.teams});
    let c = create_resource(
        bed.session(r.org, r.owner_key),
        &bed.t[r.org].id,
        r.ty,
        &r.name,
        &r.description,
        r.visibility,
        &shared,
    )
    .await;
    assert_eq!(
        c.status,
        StatusCode::CREATED,
        "recreate {}: {}",
        r.name,
        c.text
    );
    c.body["id"].as_str().unwrap().to_string()
}

async fn add_to_team(owner: &Session, org: &str, team: &str, user: &str) {
    let r = owner
        .put(
            &format!("/api/v1/orgs/{org}/teams/{team}/members/{user}"),
            json!({}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
}

async fn bed() -> Bed {
    let w = two_orgs_with_all_roles().await;
    let dual = new_person(&w.app, DUAL_EMAIL, "Dual Person").await;
    invite_and_join(w.a.owner(), &w.a.id, DUAL_EMAIL, "viewer", &dual.1).await;
    invite_and_join(w.b.owner(), &w.b.id, DUAL_EMAIL, "manager", &dual.1).await;
    let mut tenants = Vec::new();
    for (org, word, cap, dual_role) in [
        (&w.a, "alpha", "Alpha", "viewer"),
        (&w.b, "bravo", "Bravo", "manager"),
    ] {
        let t = org
            .owner()
            .post(
                &org.path("/teams"),
                json!({"name": format!("{cap} Small Team")}),
            )
            .await;
        assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
        let small = t.body["id"].as_str().unwrap().to_string();
        let mut members = Vec::new();
        for p in &org.people {
            let mut teams = BTreeSet::from([org.team_id.clone()]);
            if matches!(p.role, "member" | "guest") {
                add_to_team(org.owner(), &org.id, &small, &p.user.id).await;
                teams.insert(small.clone());
            }
            members.push(Member {
                key: p.role,
                user_id: p.user.id.clone(),
                role: p.role,
                teams,
            });
        }
        add_to_team(org.owner(), &org.id, &small, &dual.0.id).await;
        members.push(Member {
            key: DUAL,
            user_id: dual.0.id.clone(),
            role: dual_role,
            teams: BTreeSet::from([small.clone()]),
        });
        tenants.push(Tenant {
            id: org.id.clone(),
            slug: org.slug.clone(),
            word,
            cap,
            team_all: org.team_id.clone(),
            team_small: small,
            members,
        });
    }
    let t: [Tenant; 2] = tenants.try_into().ok().unwrap();
    let mut bed = Bed {
        w,
        dual,
        t,
        res: Vec::new(),
        facts: [String::new(), String::new()],
        runs: [String::new(), String::new()],
    };
    for org in 0..2 {
        let mut specs = Vec::new();
        for (ti, ty) in TYPES.iter().enumerate() {
            for (ci, case) in CASES.iter().enumerate() {
                let tenant = &bed.t[org];
                let owner_key = CREATORS[(ti + ci) % CREATORS.len()];
                let users: Vec<&str> = match case.users {
                    Direct::None => vec![],
                    Direct::Fixed(v) => v.to_vec(),
                    Direct::Rotating => vec![ROTATING_TARGETS[ti % ROTATING_TARGETS.len()]],
                };
                let users: BTreeSet<String> = users
                    .iter()
                    .map(|k| tenant.member(k).user_id.clone())
                    .collect();
                let teams: BTreeSet<String> = case
                    .teams
                    .iter()
                    .map(|t| match t {
                        TeamRef::All => tenant.team_all.clone(),
                        TeamRef::Small => tenant.team_small.clone(),
                    })
                    .collect();
                specs.push(Res {
                    org,
                    ty,
                    case: ci,
                    id: String::new(),
                    name: format!("{} {ty} {}", tenant.cap, case.label),
                    description: format!("{} {} resource", tenant.word, case.label),
                    owner_key,
                    owner: tenant.member(owner_key).user_id.clone(),
                    visibility: case.visibility,
                    users,
                    teams,
                });
            }
        }
        let ids = futures_util::future::join_all(specs.iter().map(|r| recreate(&bed, r))).await;
        for (mut r, id) in specs.into_iter().zip(ids) {
            r.id = id;
            bed.res.push(r);
        }
        let agent = bed.find(org, "agents", "private").id.clone();
        let f = bed
            .session(org, "owner")
            .post(
                &bed.t[org].path(&format!("/agents/{agent}/memory")),
                json!({"key": "favourite colour", "value": format!("{} blue", bed.t[org].cap)}),
            )
            .await;
        assert_eq!(f.status, StatusCode::CREATED, "{}", f.text);
        bed.facts[org] = f.body["id"].as_str().unwrap().to_string();
        let workflow = bed.find(org, "workflows", "private").id.clone();
        let run = bed
            .session(org, "owner")
            .post(
                &bed.t[org].path(&format!("/workflows/{workflow}/runs")),
                json!({"input": "isolation"}),
            )
            .await;
        assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.text);
        bed.runs[org] = run.body["id"].as_str().unwrap().to_string();
    }
    bed
}

fn ids(body: &Value) -> BTreeSet<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// `q` for a query string.
fn enc(q: &str) -> String {
    q.replace('%', "%25")
        .replace(' ', "%20")
        .replace('&', "%26")
}

// ---------------------------------------------------------------------------------------
// Cross-organization requests.

/// Who calls: a signed-in session or an API token.
enum Who<'a> {
    S(&'a Session),
    T(&'a TokenClient),
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    /// A document upload with these form fields.
    Upload(Value),
}

impl Who<'_> {
    async fn call(&self, method: &Method, path: &str, body: &Body) -> Reply {
        let (client, url) = match self {
            Who::S(s) => (&s.client, s.url(path)),
            Who::T(t) => (&t.client, format!("{}{path}", t.base)),
        };
        let mut req = client.request(method.clone(), url);
        req = match self {
            Who::S(s) => req.header("x-csrf-token", &s.csrf),
            Who::T(t) => req.bearer_auth(&t.token),
        };
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(v),
            Body::Upload(meta) => {
                let part = reqwest::multipart::Part::bytes(b"intruder text".to_vec())
                    .file_name("intruder.txt")
                    .mime_str("text/plain")
                    .unwrap();
                let mut form = reqwest::multipart::Form::new().part("file", part);
                for (k, v) in meta.as_object().unwrap() {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    form = form.text(k.clone(), text);
                }
                req.multipart(form)
            }
        };
        reply(req.send().await.unwrap()).await
    }
}

#[derive(Debug, Clone)]
enum Expect {
    /// 404, and the same answer as for ids that never existed.
    NotFound,
    /// Whatever an org, id, user or team that never existed gets (the foreign one is
    /// indistinguishable from nothing), and not a success that changes anything.
    AsIfAbsent,
    /// Exactly these ids, nothing else.
    Ids(BTreeSet<String>),
    /// The public gallery: exactly these ids, which may include org A's public items.
    Gallery(BTreeSet<String>),
}

#[derive(Debug, Clone)]
struct Req {
    probe: Probe,
    method: Method,
    path: String,
    body: Body,
    expect: Expect,
}

const FAKE_ORG: &str = "01900000-0000-7000-8000-00000000a0a0";
const FAKE_RES: &str = "01900000-0000-7000-8000-00000000b0b0";
const FAKE_USER: &str = "01900000-0000-7000-8000-00000000c0c0";
const FAKE_TEAM: &str = "01900000-0000-7000-8000-00000000d0d0";

/// The values of org A in requests, and what stands for each in a control request.
fn substitutions(bed: &Bed) -> Vec<(String, String)> {
    let a = &bed.t[0];
    let mut subs = vec![
        (a.id.clone(), FAKE_ORG.to_string()),
        (a.slug.clone(), "no-such-org".to_string()),
        (a.team_all.clone(), FAKE_TEAM.to_string()),
        (a.team_small.clone(), FAKE_TEAM.to_string()),
    ];
    for m in &a.members {
        if m.key != DUAL {
            subs.push((m.user_id.clone(), FAKE_USER.to_string()));
        }
    }
    for p in &bed.w.a.people {
        subs.push((p.user.personal_org.clone(), FAKE_ORG.to_string()));
    }
    for r in bed.of(0) {
        subs.push((r.id.clone(), FAKE_RES.to_string()));
    }
    subs
}

fn substitute(s: &str, subs: &[(String, String)]) -> String {
    let mut out = s.to_string();
    for (from, to) in subs {
        if out.contains(from.as_str()) {
            out = out.replace(from.as_str(), to);
        }
    }
    out
}

/// Every request a member of B makes against org A's resources, for every probe of
/// `ROUTES`, under A's id, A's slug and B's own path. `me` is the caller's membership in B.
fn cross_requests(bed: &Bed, me: &Member, token: bool) -> Vec<Req> {
    let (a, b) = (&bed.t[0], &bed.t[1]);
    let a_paths = [a.path(""), format!("/api/v1/orgs/{}", a.slug)];
    let b_path = b.path("");
    let a_user = &a.member("member").user_id;
    let mut out = Vec::new();
    let mut push = |probe, method: Method, path: String, body: Body, expect| {
        out.push(Req {
            probe,
            method,
            path,
            body,
            expect,
        });
    };
    // A subset of A's resources is also addressed by A's slug.
    let by_slug = |r: &Res| matches!(CASES[r.case].label, "public" | "private");
    for (_, _, probe) in ROUTES {
        match *probe {
            Probe::Elsewhere(..) => {}
            Probe::List => {
                for ty in TYPES {
                    for p in &a_paths {
                        push(
                            Probe::List,
                            Method::GET,
                            format!("{p}/{ty}"),
                            Body::None,
                            Expect::NotFound,
                        );
                    }
                    // Searching B for A's names finds only B's own items that match.
                    let victim = bed.find(0, ty, "public");
                    push(
                        Probe::List,
                        Method::GET,
                        format!("{b_path}/{ty}?q={}&limit=200", enc(&victim.name)),
                        Body::None,
                        Expect::Ids(BTreeSet::new()),
                    );
                    push(
                        Probe::List,
                        Method::GET,
                        format!("{b_path}/{ty}?q={}&limit=200", a.word),
                        Body::None,
                        Expect::Ids(BTreeSet::new()),
                    );
                }
            }
            Probe::Create => {
                for ty in TYPES {
                    let body = |extra: Value| {
                        let mut v = json!({"name": "Intruder", "visibility": "organization"});
                        for (k, x) in extra.as_object().unwrap() {
                            v[k] = x.clone();
                        }
                        if ty == "documents" {
                            if let Some(s) = v.get("shared_with").cloned() {
                                v["shared_with"] = json!(s.to_string());
                            }
                            Body::Upload(v)
                        } else {
                            let mut full = type_fields(ty);
                            for (k, x) in v.as_object().unwrap() {
                                full[k] = x.clone();
                            }
                            Body::Json(full)
                        }
                    };
                    for p in &a_paths {
                        push(
                            Probe::Create,
                            Method::POST,
                            format!("{p}/{ty}"),
                            body(json!({})),
                            Expect::NotFound,
                        );
                    }
                    // Shares with A's people and teams from B's own org.
                    push(
                        Probe::Create,
                        Method::POST,
                        format!("{b_path}/{ty}"),
                        body(json!({"shared_with": {"users": [a_user]}})),
                        Expect::AsIfAbsent,
                    );
                    push(
                        Probe::Create,
                        Method::POST,
                        format!("{b_path}/{ty}"),
                        body(json!({"shared_with": {"teams": [a.team_small]}})),
                        Expect::AsIfAbsent,
                    );
                }
                // A conversation in B about an agent of A.
                let agent = &bed.find(0, "agents", "public").id;
                push(
                    Probe::Create,
                    Method::POST,
                    format!("{b_path}/conversations"),
                    Body::Json(json!({"name": "Intruder", "agent_id": agent})),
                    Expect::AsIfAbsent,
                );
            }
            Probe::Show | Probe::Update | Probe::Delete | Probe::Access => {
                let (method, suffix, body) = match *probe {
                    Probe::Show => (Method::GET, "", Body::None),
                    Probe::Update => (
                        Method::PATCH,
                        "",
                        Body::Json(json!({"name": "Pwned by B", "visibility": "public"})),
                    ),
                    Probe::Delete => (Method::DELETE, "", Body::None),
                    _ => (Method::GET, "/access", Body::None),
                };
                for r in bed.of(0) {
                    let mut bases = vec![a_paths[0].clone(), b_path.clone()];
                    if by_slug(r) {
                        bases.push(a_paths[1].clone());
                    }
                    for base in bases {
                        push(
                            *probe,
                            method.clone(),
                            format!("{base}/{}/{}{suffix}", r.ty, r.id),
                            body.clone(),
                            Expect::NotFound,
                        );
                    }
                }
                // B's own resources, with A's people and teams in the request.
                for ty in TYPES {
                    let mine = bed.find(1, ty, "private");
                    let base = format!("{b_path}/{ty}/{}", mine.id);
                    match *probe {
                        Probe::Access => push(
                            Probe::Access,
                            Method::GET,
                            format!("{base}/access?user_id={a_user}"),
                            Body::None,
                            Expect::AsIfAbsent,
                        ),
                        Probe::Update => {
                            for shares in
                                [json!({"users": [a_user]}), json!({"teams": [a.team_all]})]
                            {
                                push(
                                    Probe::Update,
                                    Method::PATCH,
                                    base.clone(),
                                    Body::Json(json!({"shared_with": shares})),
                                    Expect::AsIfAbsent,
                                );
                            }
                            if ty == "conversations" {
                                let agent = &bed.find(0, "agents", "organization").id;
                                push(
                                    Probe::Update,
                                    Method::PATCH,
                                    base.clone(),
                                    Body::Json(json!({"agent_id": agent})),
                                    Expect::AsIfAbsent,
                                );
                            }
                        }
                        _ => {}
                    }
                }
            }
            Probe::Content
            | Probe::Messages
            | Probe::AddMessage
            | Probe::KbDocuments
            | Probe::KbUpload
            | Probe::KbSearch
            | Probe::Memory
            | Probe::Remember
            | Probe::FactEdit
            | Probe::FactForget
            | Probe::Runs
            | Probe::StartRun
            | Probe::RunShow
            | Probe::RunCancel => {
                let a_doc = bed.find(0, "documents", "public").id.clone();
                let fact = format!("memory/{}", bed.facts[0]);
                let run = format!("runs/{}", bed.runs[0]);
                let cancel = format!("runs/{}/cancel", bed.runs[0]);
                let (ty, method, suffix, body) = match *probe {
                    Probe::Content => ("documents", Method::GET, "content", Body::None),
                    Probe::Messages => ("conversations", Method::GET, "messages", Body::None),
                    Probe::AddMessage => (
                        "conversations",
                        Method::POST,
                        "messages",
                        Body::Json(json!({"content": "intrusion"})),
                    ),
                    Probe::KbDocuments => ("knowledge-bases", Method::GET, "documents", Body::None),
                    Probe::KbUpload => (
                        "knowledge-bases",
                        Method::POST,
                        "documents",
                        Body::Json(json!({"document_id": a_doc})),
                    ),
                    Probe::KbSearch => (
                        "knowledge-bases",
                        Method::GET,
                        "search?q=refunds",
                        Body::None,
                    ),
                    Probe::Memory => ("agents", Method::GET, "memory", Body::None),
                    Probe::Remember => (
                        "agents",
                        Method::POST,
                        "memory",
                        Body::Json(json!({"key": "planted", "value": "by B"})),
                    ),
                    Probe::FactEdit => (
                        "agents",
                        Method::PATCH,
                        fact.as_str(),
                        Body::Json(json!({"value": "changed by B"})),
                    ),
                    Probe::FactForget => ("agents", Method::DELETE, fact.as_str(), Body::None),
                    Probe::Runs => ("workflows", Method::GET, "runs", Body::None),
                    Probe::StartRun => (
                        "workflows",
                        Method::POST,
                        "runs",
                        Body::Json(json!({"input": "intrusion"})),
                    ),
                    Probe::RunShow => ("workflows", Method::GET, run.as_str(), Body::None),
                    _ => ("workflows", Method::POST, cancel.as_str(), Body::None),
                };
                // B's own agent with A's fact: as if the fact did not exist.
                if matches!(*probe, Probe::FactEdit | Probe::FactForget) {
                    let b_agent = &bed.find(1, "agents", "private").id;
                    push(
                        *probe,
                        method.clone(),
                        format!("{b_path}/agents/{b_agent}/{suffix}"),
                        body.clone(),
                        Expect::AsIfAbsent,
                    );
                }
                // B's own workflow with A's run.
                if matches!(*probe, Probe::RunShow | Probe::RunCancel) {
                    let b_workflow = &bed.find(1, "workflows", "private").id;
                    push(
                        *probe,
                        method.clone(),
                        format!("{b_path}/workflows/{b_workflow}/{suffix}"),
                        body.clone(),
                        Expect::AsIfAbsent,
                    );
                }
                // B's own knowledge base with A's document, by body.
                if *probe == Probe::KbUpload {
                    let b_kb = &bed.find(1, "knowledge-bases", "private").id;
                    push(
                        *probe,
                        method.clone(),
                        format!("{b_path}/knowledge-bases/{b_kb}/documents"),
                        body.clone(),
                        Expect::AsIfAbsent,
                    );
                }
                for r in bed.of(0).filter(|r| r.ty == ty) {
                    let mut bases = vec![a_paths[0].clone(), b_path.clone()];
                    if by_slug(r) {
                        bases.push(a_paths[1].clone());
                    }
                    for base in bases {
                        push(
                            *probe,
                            method.clone(),
                            format!("{base}/{ty}/{}/{suffix}", r.id),
                            body.clone(),
                            Expect::NotFound,
                        );
                    }
                }
            }
            Probe::KbAdd | Probe::KbRemove => {
                let method = if *probe == Probe::KbAdd {
                    Method::PUT
                } else {
                    Method::DELETE
                };
                let body = if *probe == Probe::KbAdd {
                    Body::Json(json!({}))
                } else {
                    Body::None
                };
                let a_doc = &bed.find(0, "documents", "public").id;
                let b_doc = &bed.find(1, "documents", "public").id;
                let b_kb = &bed.find(1, "knowledge-bases", "private").id;
                for kb in bed.of(0).filter(|r| r.ty == "knowledge-bases") {
                    for base in [&a_paths[0], &b_path] {
                        push(
                            *probe,
                            method.clone(),
                            format!("{base}/knowledge-bases/{}/documents/{a_doc}", kb.id),
                            body.clone(),
                            Expect::NotFound,
                        );
                    }
                    push(
                        *probe,
                        method.clone(),
                        format!("{b_path}/knowledge-bases/{}/documents/{b_doc}", kb.id),
                        body.clone(),
                        Expect::NotFound,
                    );
                }
                // B's own knowledge base with A's document: as if the document did not exist.
                for doc in bed.of(0).filter(|r| r.ty == "documents") {
                    push(
                        *probe,
                        method.clone(),
                        format!("{b_path}/knowledge-bases/{b_kb}/documents/{}", doc.id),
                        body.clone(),
                        Expect::AsIfAbsent,
                    );
                }
            }
            Probe::Limits | Probe::Summary => {
                let suffix = if *probe == Probe::Limits {
                    "limits"
                } else {
                    "summary"
                };
                for p in &a_paths {
                    push(
                        *probe,
                        Method::GET,
                        format!("{p}/{suffix}"),
                        Body::None,
                        Expect::NotFound,
                    );
                }
            }
            Probe::AuditExport => {
                for p in &a_paths {
                    for f in ["csv", "ndjson"] {
                        push(
                            Probe::AuditExport,
                            Method::GET,
                            format!("{p}/audit/export?format={f}"),
                            Body::None,
                            Expect::NotFound,
                        );
                        push(
                            Probe::AuditExport,
                            Method::GET,
                            format!("{p}/audit/export?format={f}&resource_type=agent"),
                            Body::None,
                            Expect::NotFound,
                        );
                    }
                }
            }
            Probe::Accessible => {
                for ty in TYPES {
                    // A token sees its own org; a session all of the caller's orgs, which
                    // for people of B is B alone (their personal orgs hold nothing).
                    let mine = bed.readable(1, ty, me);
                    push(
                        Probe::Accessible,
                        Method::GET,
                        format!("/api/v1/me/accessible/{ty}?limit=200"),
                        Body::None,
                        Expect::Ids(mine),
                    );
                    push(
                        Probe::Accessible,
                        Method::GET,
                        format!(
                            "/api/v1/me/accessible/{ty}?limit=200&organization_id={}",
                            a.id
                        ),
                        Body::None,
                        if token {
                            // A token is bound to B whatever the filter says.
                            Expect::Ids(bed.readable(1, ty, me))
                        } else {
                            Expect::Ids(BTreeSet::new())
                        },
                    );
                    push(
                        Probe::Accessible,
                        Method::GET,
                        format!("/api/v1/me/accessible/{ty}?limit=200&q={}", a.word),
                        Body::None,
                        Expect::Ids(BTreeSet::new()),
                    );
                }
            }
            Probe::RemoveMember => {
                let b_viewer = &b.member("viewer").user_id;
                for base in [&a_paths[0], &a_paths[1], &b_path] {
                    // In B, someone without members.manage is refused first, as for anyone.
                    let expect = if base == &b_path && !matches!(me.role, "owner" | "admin") {
                        Expect::AsIfAbsent
                    } else {
                        Expect::NotFound
                    };
                    push(
                        Probe::RemoveMember,
                        Method::DELETE,
                        format!("{base}/members/{a_user}"),
                        Body::None,
                        expect,
                    );
                }
                // B's own member, with their resources handed to a person of A.
                push(
                    Probe::RemoveMember,
                    Method::DELETE,
                    format!("{b_path}/members/{b_viewer}?transfer_to={a_user}"),
                    Body::None,
                    Expect::AsIfAbsent,
                );
            }
            Probe::MoveToOrg => {
                // Moving one's personal workspace into A, or A (or an A person's
                // workspace) into B. A token cannot move anything at all.
                let personal = &bed
                    .w
                    .b
                    .person(if token { "owner" } else { me.key })
                    .user
                    .personal_org;
                let someone_elses = &bed.w.a.person("member").user.personal_org;
                for (from, to) in [
                    (personal, &a.id),
                    (personal, &a.slug),
                    (&a.id, &b.id),
                    (someone_elses, &b.id),
                ] {
                    push(
                        Probe::MoveToOrg,
                        Method::POST,
                        "/api/v1/me/move-to-organization".to_string(),
                        Body::Json(json!({"from_organization_id": from, "to_organization_id": to})),
                        if token {
                            Expect::AsIfAbsent
                        } else {
                            Expect::NotFound
                        },
                    );
                }
            }
            Probe::Gallery => {
                for ty in TYPES {
                    let public: BTreeSet<String> = bed
                        .res
                        .iter()
                        .filter(|r| r.ty == ty && r.visibility == "public")
                        .map(|r| r.id.clone())
                        .collect();
                    push(
                        Probe::Gallery,
                        Method::GET,
                        format!("/api/v1/public/{ty}?limit=200"),
                        Body::None,
                        Expect::Gallery(public),
                    );
                }
            }
        }
    }
    out
}

/// No trace of org A: none of its names (they all contain "alpha") and none of its ids.
fn no_trace(what: &str, text: &str, secrets: &[String]) -> Result<(), String> {
    if text.to_lowercase().contains("alpha") {
        return Err(format!("{what}: leaks a name of org A: {text}"));
    }
    for s in secrets {
        if text.contains(s.as_str()) {
            return Err(format!("{what}: leaks {s}: {text}"));
        }
    }
    Ok(())
}

/// What org `org` looks like to its owner: every resource in full (with a knowledge
/// base's documents and a conversation's messages), the summary, the limits and the log.
async fn snapshot(bed: &Bed, org: usize) -> Value {
    let t = &bed.t[org];
    let owner = bed.session(org, "owner");
    let mut out = serde_json::Map::new();
    for r in bed.of(org) {
        let got = owner.get(&t.path(&format!("/{}/{}", r.ty, r.id))).await;
        assert_eq!(
            got.status,
            StatusCode::OK,
            "{} is gone: {}",
            r.name,
            got.text
        );
        let mut v = got.body;
        if r.ty == "conversations" {
            let m = owner
                .get(&t.path(&format!("/conversations/{}/messages?limit=200", r.id)))
                .await;
            v["messages"] = m.body["items"].clone();
        }
        if r.ty == "agents" {
            let m = owner
                .get(&t.path(&format!("/agents/{}/memory", r.id)))
                .await;
            v["memory"] = m.body["items"].clone();
        }
        if r.ty == "knowledge-bases" {
            let m = owner
                .get(&t.path(&format!("/knowledge-bases/{}/documents", r.id)))
                .await;
            v["documents"] = m.body["items"].clone();
        }
        out.insert(r.id.clone(), v);
    }
    let mut lists = serde_json::Map::new();
    for ty in TYPES {
        let l = owner.get(&t.path(&format!("/{ty}?limit=200"))).await;
        lists.insert(ty.to_string(), json!(ids(&l.body)));
    }
    out.insert("lists".into(), Value::Object(lists));
    out.insert(
        "summary".into(),
        owner.get(&t.path("/summary")).await.body["resources"].clone(),
    );
    out.insert("limits".into(), owner.get(&t.path("/limits")).await.body);
    let audit = audit_rows(owner, &t.id).await;
    out.insert(
        "audit".into(),
        json!([audit.len(), audit.first().map(|r| r["id"].clone())]),
    );
    Value::Object(out)
}

#[tokio::test]
async fn members_of_another_org_reach_no_resource_of_it_by_any_route_and_change_nothing() {
    let bed = bed().await;
    let (_, b_token) = token_for(&bed.w.app, bed.w.b.owner(), &bed.t[1].id, "bravo-ci").await;
    let before = [snapshot(&bed, 0).await, snapshot(&bed, 1).await];
    let secrets = bed.a_secrets();
    let subs = substitutions(&bed);
    let b = &bed.t[1];
    let mut callers: Vec<(String, Who<'_>, &Member, bool)> = b
        .members
        .iter()
        .filter(|m| m.key != DUAL)
        .map(|m| {
            (
                format!("B {} (session)", m.key),
                Who::S(bed.session(1, m.key)),
                m,
                false,
            )
        })
        .collect();
    callers.push((
        "B owner (token)".into(),
        Who::T(&b_token),
        b.member("owner"),
        true,
    ));
    let runs = callers.iter().map(|(who, caller, me, token)| {
        let subs = &subs;
        let secrets = &secrets;
        let bed = &bed;
        async move {
            let mut errors = Vec::new();
            let mut probes = BTreeSet::new();
            let mut controls: HashMap<String, (StatusCode, String)> = HashMap::new();
            let reqs = cross_requests(bed, me, *token);
            let count = reqs.len();
            for req in reqs {
                probes.insert(format!("{:?}", req.probe));
                let res = caller.call(&req.method, &req.path, &req.body).await;
                let what = format!("{who}: {} {}", req.method, req.path);
                // The same request with A's values replaced by ones that never existed;
                // only what the request itself names may come back in the answer.
                let sent = format!("{} {:?}", req.path, req.body);
                let subs: Vec<(String, String)> = subs
                    .iter()
                    .filter(|(from, _)| sent.contains(from.as_str()))
                    .cloned()
                    .collect();
                let cpath = substitute(&req.path, &subs);
                let swap = |v: &Value| serde_json::from_str(&substitute(&v.to_string(), &subs)).unwrap();
                let cbody = match &req.body {
                    Body::None => Body::None,
                    Body::Json(v) => Body::Json(swap(v)),
                    Body::Upload(v) => Body::Upload(swap(v)),
                };
                let key = format!("{} {cpath} {cbody:?}", req.method);
                let seen = substitute(&res.text, &subs);
                let check_control = !matches!(req.expect, Expect::Ids(_) | Expect::Gallery(_));
                if check_control {
                    if !controls.contains_key(&key) {
                        let c = caller.call(&req.method, &cpath, &cbody).await;
                        controls.insert(key.clone(), (c.status, c.text));
                    }
                    let (cstatus, ctext) = &controls[&key];
                    if (res.status, &seen) != (*cstatus, ctext) {
                        errors.push(format!(
                            "{what}: {} {} differs from a request naming nothing: {cstatus} {ctext}",
                            res.status, res.text
                        ));
                    }
                }
                let verdict = match &req.expect {
                    Expect::NotFound if res.status != StatusCode::NOT_FOUND => {
                        Err(format!("{what}: expected 404, got {} {}", res.status, res.text))
                    }
                    Expect::AsIfAbsent if res.status.is_success() && req.method != Method::GET => {
                        Err(format!("{what}: a change naming org A succeeded: {} {}", res.status, res.text))
                    }
                    Expect::Ids(want) => {
                        if res.status != StatusCode::OK {
                            Err(format!("{what}: {} {}", res.status, res.text))
                        } else if ids(&res.body) != *want {
                            Err(format!("{what}: ids {:?}, expected {want:?}", ids(&res.body)))
                        } else {
                            Ok(())
                        }
                    }
                    Expect::Gallery(want) => {
                        if res.status != StatusCode::OK || ids(&res.body) != *want {
                            Err(format!("{what}: gallery {} {:?}, expected {want:?}", res.status, res.text))
                        } else {
                            Ok(())
                        }
                    }
                    _ => Ok(()),
                };
                if let Err(e) = verdict {
                    errors.push(e);
                }
                let leak = match &req.expect {
                    Expect::Gallery(public) => {
                        // A's public items are the gallery's business; nothing else of A is.
                        let others: Vec<String> =
                            secrets.iter().filter(|s| !public.contains(*s)).cloned().collect();
                        let shown = res.text.replace(&bed.w.a.name, "");
                        let mut stripped = shown;
                        for r in bed.of(0).filter(|r| r.visibility == "public") {
                            stripped = stripped
                                .replace(&r.name, "")
                                .replace(&r.name.replace(' ', "_"), "")
                                .replace(&r.description, "");
                        }
                        no_trace(&what, &stripped, &others)
                    }
                    _ => no_trace(&what, &seen, secrets),
                };
                if let Err(e) = leak {
                    errors.push(e);
                }
            }
            (who.clone(), count, probes, errors)
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let mut all_errors = Vec::new();
    let mut total = 0;
    let wanted: BTreeSet<String> = ROUTES
        .iter()
        .filter(|(_, _, p)| !matches!(p, Probe::Elsewhere(..)))
        .map(|(_, _, p)| format!("{p:?}"))
        .collect();
    for (who, count, probes, errors) in results {
        total += count;
        assert_eq!(probes, wanted, "{who} did not exercise every probe");
        all_errors.extend(errors);
    }
    assert!(total > 3000, "only {total} requests");
    assert!(
        all_errors.is_empty(),
        "{} of {total} cross-organization requests went wrong:\n{}",
        all_errors.len(),
        all_errors.join("\n")
    );
    // Neither org changed: not a name, a share, a message, a count or an audit row.
    assert_eq!(snapshot(&bed, 0).await, before[0], "org A changed");
    assert_eq!(snapshot(&bed, 1).await, before[1], "org B changed");
}

// ---------------------------------------------------------------------------------------
// Exact id sets.

fn summary_counts(bed: &Bed, org: usize, ty: &str) -> (i64, BTreeMap<String, i64>) {
    let mut by = BTreeMap::new();
    for r in bed.of(org).filter(|r| r.ty == ty) {
        *by.entry(r.visibility.to_string()).or_insert(0) += 1;
    }
    (by.values().sum(), by)
}

#[tokio::test]
async fn lists_search_accessible_gallery_audit_export_and_summary_hold_exactly_the_models_ids() {
    let bed = bed().await;
    let mut wrong = Vec::new();
    let mut checks = 0;
    for org in 0..2 {
        let t = &bed.t[org];
        let other_word = bed.t[1 - org].cap;
        let queries = [
            "team".to_string(),
            "shared".to_string(),
            "private".to_string(),
            other_word.to_string(),
            t.word.to_uppercase(),
            "%".to_string(),
            format!("{} agents public", t.cap),
        ];
        for m in &t.members {
            let s = bed.session(org, m.key);
            for ty in TYPES {
                let readable: Vec<&Res> =
                    bed.of(org).filter(|r| r.ty == ty && reads(m, r)).collect();
                let mut cases: Vec<(String, BTreeSet<String>)> = vec![(
                    String::new(),
                    readable.iter().map(|r| r.id.clone()).collect(),
                )];
                for v in VISIBILITIES {
                    cases.push((
                        format!("&visibility={v}"),
                        readable
                            .iter()
                            .filter(|r| r.visibility == v)
                            .map(|r| r.id.clone())
                            .collect(),
                    ));
                }
                for q in &queries {
                    let ql = q.to_lowercase();
                    cases.push((
                        format!("&q={}", enc(q)),
                        readable
                            .iter()
                            .filter(|r| {
                                r.name.to_lowercase().contains(&ql)
                                    || r.description.to_lowercase().contains(&ql)
                            })
                            .map(|r| r.id.clone())
                            .collect(),
                    ));
                }
                for (query, want) in cases {
                    let path = t.path(&format!("/{ty}?limit=200{query}"));
                    let got = s.get(&path).await;
                    checks += 1;
                    if got.status != StatusCode::OK {
                        wrong.push(format!("{} {}: {path}: {}", t.cap, m.key, got.text));
                        continue;
                    }
                    if ids(&got.body) != want {
                        wrong.push(format!(
                            "{} {}: {path}: got {:?}, expected {want:?}",
                            t.cap,
                            m.key,
                            ids(&got.body)
                        ));
                    }
                    // Each item says truthfully whether the caller may change it.
                    for item in got.body["items"].as_array().unwrap() {
                        if let Some(r) = bed.res.iter().find(|r| r.id == item["id"])
                            && item["can_write"] != json!(writes(m, r))
                        {
                            wrong.push(format!(
                                "{} {}: {path}: can_write of {} is {}",
                                t.cap, m.key, r.name, item["can_write"]
                            ));
                        }
                    }
                }
            }
        }
        // The summary counts every resource of the org by type and visibility, whoever
        // asks of those who may see the org's members (a viewer of A as much as its owner).
        for key in ["owner", "viewer", DUAL] {
            let got = bed.session(org, key).get(&t.path("/summary")).await;
            assert_eq!(got.status, StatusCode::OK, "{}", got.text);
            for ty in TYPES {
                let (total, by) = summary_counts(&bed, org, ty);
                let entry = &got.body["resources"][ty];
                let got_by: BTreeMap<String, i64> = entry["by_visibility"]
                    .as_object()
                    .unwrap_or_else(|| panic!("summary: {}", got.text))
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
                    .filter(|(_, n)| *n != 0)
                    .collect();
                checks += 1;
                if entry["total"] != json!(total) || got_by != by {
                    wrong.push(format!(
                        "{} summary for {key}, {ty}: {entry}, expected {total} {by:?}",
                        t.cap
                    ));
                }
            }
            assert_eq!(got.body["members"], json!(t.members.len()));
        }
        let limits = bed.session(org, "owner").get(&t.path("/limits")).await;
        assert_eq!(limits.body["agents"]["used"], json!(CASES.len()));
        assert_eq!(limits.body["workflows"]["used"], json!(CASES.len()));

        // The audit export names exactly the org's own resources.
        let own: BTreeSet<String> = bed.of(org).map(|r| r.id.clone()).collect();
        let every: Vec<&String> = bed.res.iter().map(|r| &r.id).collect();
        let foreign = &bed.t[1 - org];
        for f in ["ndjson", "csv"] {
            let e = bed
                .session(org, "owner")
                .get(&t.path(&format!("/audit/export?format={f}")))
                .await;
            assert_eq!(e.status, StatusCode::OK, "{}", e.text);
            let named: BTreeSet<String> = every
                .iter()
                .filter(|id| e.text.contains(id.as_str()))
                .map(|id| id.to_string())
                .collect();
            checks += 1;
            if named != own {
                wrong.push(format!(
                    "{} {f} export names {} resource ids, expected its {}; foreign: {:?}",
                    t.cap,
                    named.len(),
                    own.len(),
                    named.difference(&own).collect::<Vec<_>>()
                ));
            }
            for secret in [&foreign.id, &foreign.team_all, &foreign.team_small] {
                assert!(!e.text.contains(secret.as_str()), "{} {f} export", t.cap);
            }
            assert!(
                !e.text.to_lowercase().contains(foreign.word),
                "{} {f} export names the other org",
                t.cap
            );
            if f == "ndjson" {
                let rows: Vec<Value> = e
                    .text
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                let created: BTreeSet<String> = rows
                    .iter()
                    .filter(|r| {
                        r["action"]
                            .as_str()
                            .is_some_and(|a| a.ends_with(".created"))
                            && TYPES.iter().any(|ty| r["resource_type"] == audit_type(ty))
                    })
                    .map(|r| r["resource_id"].as_str().unwrap().to_string())
                    .collect();
                assert_eq!(created, own, "{} created rows", t.cap);
            }
        }
    }

    // The accessible view: every org of the caller, through that org's own rules.
    let mut people: Vec<(usize, &Member)> = Vec::new();
    for org in 0..2 {
        for m in bed.t[org].members.iter().filter(|m| m.key != DUAL) {
            people.push((org, m));
        }
    }
    for (org, m) in &people {
        let s = bed.session(*org, m.key);
        for ty in TYPES {
            let want = bed.readable(*org, ty, m);
            for (query, want) in [
                (String::new(), want.clone()),
                (format!("&organization_id={}", bed.t[*org].id), want.clone()),
                (
                    format!("&organization_id={}", bed.t[1 - *org].id),
                    BTreeSet::new(),
                ),
            ] {
                let path = format!("/api/v1/me/accessible/{ty}?limit=200{query}");
                let got = s.get(&path).await;
                checks += 1;
                if got.status != StatusCode::OK || ids(&got.body) != want {
                    wrong.push(format!(
                        "{} {}: {path}: {} {:?}, expected {want:?}",
                        bed.t[*org].cap, m.key, got.status, got.text
                    ));
                }
            }
        }
    }
    // The member of both sees A as a viewer and B as a manager, each item with its org.
    for ty in TYPES {
        let a_part = bed.readable(0, ty, bed.t[0].member(DUAL));
        let b_part = bed.readable(1, ty, bed.t[1].member(DUAL));
        let got = bed
            .dual
            .1
            .get(&format!("/api/v1/me/accessible/{ty}?limit=200"))
            .await;
        let want: BTreeSet<String> = a_part.union(&b_part).cloned().collect();
        checks += 1;
        if ids(&got.body) != want {
            wrong.push(format!(
                "dual: accessible {ty}: {:?}, expected {want:?}",
                ids(&got.body)
            ));
        }
        for item in got.body["items"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap();
            let org = if a_part.contains(id) { 0 } else { 1 };
            assert_eq!(item["organization"]["id"], json!(bed.t[org].id), "{item}");
            let r = bed.res.iter().find(|r| r.id == id).unwrap();
            assert_eq!(
                item["can_write"],
                json!(writes(bed.t[org].member(DUAL), r)),
                "{item}"
            );
        }
    }

    // The public gallery: the public items of both orgs, to anyone signed in.
    let (_, outsider) = new_person(&bed.w.app, "outsider@example.com", "Outsider").await;
    for ty in TYPES {
        let public: BTreeSet<String> = bed
            .res
            .iter()
            .filter(|r| r.ty == ty && r.visibility == "public")
            .map(|r| r.id.clone())
            .collect();
        let a_public: BTreeSet<String> = bed
            .of(0)
            .filter(|r| r.ty == ty && r.visibility == "public")
            .map(|r| r.id.clone())
            .collect();
        for (who, s) in [
            ("outsider", &outsider),
            ("A guest", bed.session(0, "guest")),
            ("B viewer", bed.session(1, "viewer")),
        ] {
            for (query, want) in [
                (String::new(), &public),
                ("&q=alpha".to_string(), &a_public),
            ] {
                let path = format!("/api/v1/public/{ty}?limit=200{query}");
                let got = s.get(&path).await;
                checks += 1;
                if got.status != StatusCode::OK || ids(&got.body) != *want {
                    wrong.push(format!(
                        "{who}: {path}: {} {}, expected {want:?}",
                        got.status, got.text
                    ));
                    continue;
                }
                for item in got.body["items"].as_array().unwrap() {
                    let r = bed.res.iter().find(|r| r.id == item["id"]).unwrap();
                    assert_eq!(
                        item["organization"]["name"],
                        json!(format!("{} Works", bed.t[r.org].cap))
                    );
                    for leak in ["owner_id", "shared_with", "organization_id", "can_write"] {
                        assert!(item.get(leak).is_none(), "gallery shows {leak}: {item}");
                    }
                }
            }
        }
    }
    assert!(checks > 1000, "only {checks} checks");
    assert!(
        wrong.is_empty(),
        "{} of {checks} set checks went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Role × type × case × action.

/// Sends `a` as `s` for resource `r` of org A; `doc` is a document every role may read.
async fn act(bed: &Bed, s: &Session, r: &Res, a: Action, doc: &str) -> Reply {
    let base = bed.t[r.org].path(&format!("/{}/{}", r.ty, r.id));
    match a {
        Action::Get => s.get(&base).await,
        Action::Patch => {
            s.send(
                Method::PATCH,
                &base,
                Some(json!({"description": r.description})),
            )
            .await
        }
        Action::Delete => s.delete(&base).await,
        Action::Access => s.get(&format!("{base}/access")).await,
        Action::Content => s.get(&format!("{base}/content")).await,
        Action::Messages => s.get(&format!("{base}/messages")).await,
        Action::AddMessage => {
            s.post(&format!("{base}/messages"), json!({"content": "hello"}))
                .await
        }
        Action::KbAdd => s.put(&format!("{base}/documents/{doc}"), json!({})).await,
        Action::KbRemove => s.delete(&format!("{base}/documents/{doc}")).await,
        Action::KbDocuments => s.get(&format!("{base}/documents")).await,
        Action::Memory => s.get(&format!("{base}/memory")).await,
        Action::Remember => {
            s.post(
                &format!("{base}/memory"),
                json!({"key": "role check", "value": "kept"}),
            )
            .await
        }
    }
}

fn actions_for(ty: &str) -> Vec<Action> {
    let mut v = vec![Action::Get, Action::Access, Action::Patch];
    match ty {
        "documents" => v.push(Action::Content),
        "conversations" => v.extend([Action::Messages, Action::AddMessage]),
        // Add, then remove: each role finds the document absent when it starts.
        "knowledge-bases" => v.extend([Action::KbAdd, Action::KbRemove, Action::KbDocuments]),
        "agents" => v.extend([Action::Memory, Action::Remember]),
        _ => {}
    }
    v
}

#[tokio::test]
async fn each_role_gets_exactly_the_models_status_for_every_type_case_and_action() {
    let mut bed = bed().await;
    let a = &bed.t[0];
    let roles: Vec<Member> = ROLES.iter().map(|r| a.member(r).clone()).collect();
    let doc = bed.find(0, "documents", "team-all").id.clone();
    let mut wrong = Vec::new();
    let mut checks = 0;

    // List membership, per role and type, and the can_write flag of each item.
    for m in &roles {
        let s = bed.session(0, m.key);
        for ty in TYPES {
            let got = s.get(&a.path(&format!("/{ty}?limit=200"))).await;
            assert_eq!(got.status, StatusCode::OK, "{}", got.text);
            let listed = ids(&got.body);
            for r in bed.of(0).filter(|r| r.ty == ty) {
                checks += 1;
                if listed.contains(&r.id) != reads(m, r) {
                    wrong.push(format!(
                        "{} list {ty}: {} is {}listed",
                        m.key,
                        r.name,
                        if listed.contains(&r.id) { "" } else { "not " }
                    ));
                }
            }
            for item in got.body["items"].as_array().unwrap() {
                if let Some(r) = bed.of(0).find(|r| r.id == item["id"])
                    && item["can_write"] != json!(writes(m, r))
                {
                    wrong.push(format!("{} list: can_write of {} wrong", m.key, r.name));
                }
            }
        }
    }

    // Get, access explanation, patch and each type's own reads and writes.
    for r in bed.of(0) {
        for m in &roles {
            let s = bed.session(0, m.key);
            for action in actions_for(r.ty) {
                let want = expected(m, r, action);
                let got = act(&bed, s, r, action, &doc).await;
                checks += 1;
                if got.status != want {
                    wrong.push(format!(
                        "{} {action:?} {} ({} owned by {}): {}, expected {want}: {}",
                        m.key, r.name, r.ty, r.owner_key, got.status, got.text
                    ));
                } else if want == StatusCode::OK && action == Action::Get {
                    assert_eq!(got.body["id"], json!(r.id));
                    assert_eq!(got.body["can_write"], json!(writes(m, r)), "{}", r.name);
                } else if !want.is_success() && !got.text.is_empty() {
                    assert!(got.body["error"]["code"].is_string(), "{}", got.text);
                }
            }
        }
        // The explanation itself: for every member of A, what the model says.
        let all = bed
            .session(0, "owner")
            .get(&a.path(&format!("/{}/{}/access", r.ty, r.id)))
            .await;
        assert_eq!(all.status, StatusCode::OK, "{}", all.text);
        let items = all.body["items"].as_array().unwrap();
        assert_eq!(items.len(), a.members.len(), "{}", all.text);
        for m in &a.members {
            let item = items
                .iter()
                .find(|i| i["user_id"] == json!(m.user_id))
                .unwrap_or_else(|| panic!("{} missing from {}", m.key, all.text));
            checks += 1;
            if item["can_read"] != json!(reads(m, r))
                || item["can_write"] != json!(reads(m, r) && writes(m, r))
            {
                wrong.push(format!("access of {} for {}: {item}", r.name, m.key));
            }
        }
        // An id under another type's path is nothing.
        for ty in TYPES.iter().filter(|t| **t != r.ty) {
            let got = bed
                .session(0, "owner")
                .get(&a.path(&format!("/{ty}/{}", r.id)))
                .await;
            checks += 1;
            if got.status != StatusCode::NOT_FOUND {
                wrong.push(format!("{} under /{ty}: {}", r.name, got.status));
            }
        }
    }

    // Delete: refusals first, then each role that may delete does, and the owner
    // recreates the resource for the next one.
    let order: Vec<Member> = roles.iter().rev().cloned().collect();
    for i in 0..bed.res.len() {
        if bed.res[i].org != 0 {
            continue;
        }
        for m in &order {
            let want = expected(m, &bed.res[i], Action::Delete);
            if want == StatusCode::NO_CONTENT {
                continue;
            }
            let got = act(
                &bed,
                bed.session(0, m.key),
                &bed.res[i],
                Action::Delete,
                &doc,
            )
            .await;
            checks += 1;
            if got.status != want {
                wrong.push(format!(
                    "{} Delete {}: {}, expected {want}",
                    m.key, bed.res[i].name, got.status
                ));
            }
        }
        for m in &order {
            let want = expected(m, &bed.res[i], Action::Delete);
            if want != StatusCode::NO_CONTENT {
                continue;
            }
            let owner = bed.session(0, "owner");
            let path = bed.t[0].path(&format!("/{}/{}", bed.res[i].ty, bed.res[i].id));
            assert_eq!(
                owner.get(&path).await.status,
                StatusCode::OK,
                "{} vanished before {} deleted it",
                bed.res[i].name,
                m.key
            );
            let got = act(
                &bed,
                bed.session(0, m.key),
                &bed.res[i],
                Action::Delete,
                &doc,
            )
            .await;
            checks += 1;
            if got.status != want {
                wrong.push(format!(
                    "{} Delete {}: {}, expected {want}",
                    m.key, bed.res[i].name, got.status
                ));
                continue;
            }
            assert_eq!(owner.get(&path).await.status, StatusCode::NOT_FOUND);
            let id = recreate(&bed, &bed.res[i]).await;
            bed.res[i].id = id;
        }
    }
    assert!(checks > 2000, "only {checks} checks");
    assert!(
        wrong.is_empty(),
        "{} of {checks} outcomes differ from the model:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
