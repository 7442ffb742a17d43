//! Fixture for the organization-layer tests: two team organizations, "Alpha" and "Bravo",
//! each with one signed-in member per role, a team and a pending invitation. Every person
//! signs in with a client that sends a User-Agent of its own, so audit rows can be told
//! apart by it.
#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// The six roles, highest first (ARCHITECTURE §3).
pub const ROLES: [&str; 6] = ["owner", "admin", "manager", "member", "viewer", "guest"];

pub struct Person {
    pub role: &'static str,
    pub user: TestUser,
    pub s: Session,
    /// The User-Agent every request of this person carries.
    pub ua: String,
}

pub struct Org {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub team_id: String,
    pub team_name: String,
    /// One per role, in `ROLES` order.
    pub people: Vec<Person>,
    /// A pending invitation (role member) nobody accepted.
    pub pending_invitation_id: String,
    pub pending_invitation_token: String,
    pub pending_invitation_email: String,
}

impl Org {
    pub fn person(&self, role: &str) -> &Person {
        self.people
            .iter()
            .find(|p| p.role == role)
            .unwrap_or_else(|| panic!("no {role} in {}", self.slug))
    }

    pub fn owner(&self) -> &Session {
        &self.person("owner").s
    }

    /// `/api/v1/orgs/{id}` followed by `rest`.
    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/orgs/{}{rest}", self.id)
    }

    pub fn user_ids(&self) -> Vec<String> {
        self.people.iter().map(|p| p.user.id.clone()).collect()
    }
}

pub struct World {
    pub app: TestApp,
    pub a: Org,
    pub b: Org,
}

/// The User-Agent of the person with `email`.
pub fn user_agent_for(email: &str) -> String {
    format!("org-tests/1.0 ({email})")
}

/// Signs in with a client that sends `ua` as its User-Agent on every request.
pub async fn login_with_agent(app: &TestApp, email: &str, ua: &str) -> Session {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(ua.to_string())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let res = client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "login of {email}");
    let body: Value = res.json().await.unwrap();
    Session {
        client,
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
        base: app.base.clone(),
        login: body,
    }
}

/// A new user, signed in with their own User-Agent.
pub async fn new_person(app: &TestApp, email: &str, name: &str) -> (TestUser, Session) {
    let user = app.create_user(email, name).await;
    let s = login_with_agent(app, email, &user_agent_for(email)).await;
    (user, s)
}

/// `inviter` invites `email` into `org` with `role`; returns (invitation id, token).
pub async fn invite(inviter: &Session, org: &str, email: &str, role: &str) -> (String, String) {
    let r = inviter
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "invite {email}: {}", r.text);
    (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["token"].as_str().unwrap().to_string(),
    )
}

pub async fn accept(s: &Session, token: &str) -> Reply {
    s.post("/api/v1/invitations/accept", json!({"token": token}))
        .await
}

/// `inviter` invites the user of `joiner` with `role` and `joiner` accepts.
pub async fn invite_and_join(
    inviter: &Session,
    org: &str,
    email: &str,
    role: &str,
    joiner: &Session,
) {
    let (_, token) = invite(inviter, org, email, role).await;
    let r = accept(joiner, &token).await;
    assert_eq!(r.status, StatusCode::OK, "accept by {email}: {}", r.text);
    assert_eq!(r.body["role"], role);
}

/// A team organization whose owner is `owner`; returns (id, slug).
pub async fn create_org(owner: &Session, name: &str, slug: &str) -> (String, String) {
    let r = owner
        .post("/api/v1/orgs", json!({"name": name, "slug": slug}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "create {slug}: {}", r.text);
    (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["slug"].as_str().unwrap().to_string(),
    )
}

async fn build_org(app: &TestApp, word: &str, cap: &str) -> Org {
    let people_fut = ROLES.map(|role| {
        let email = format!("{role}@{word}.example");
        let name = format!("{cap} {role}");
        async move { (role, email.clone(), new_person(app, &email, &name).await) }
    });
    let made = futures_util::future::join_all(people_fut).await;
    let mut people = Vec::new();
    for (role, email, (user, s)) in made {
        people.push(Person {
            role,
            user,
            s,
            ua: user_agent_for(&email),
        });
    }
    let name = format!("{cap} Works");
    let (id, slug) = create_org(&people[0].s, &name, &format!("{word}-works")).await;
    // On the team plan, so that role and isolation tests are not bounded by the free
    // plan's member limit (that limit has its own test).
    set_plan(app, &id, "team");
    for p in &people[1..] {
        invite_and_join(&people[0].s, &id, &p.user.email, p.role, &p.s).await;
    }
    let team_name = format!("{cap} Team");
    let t = people[0]
        .s
        .post(
            &format!("/api/v1/orgs/{id}/teams"),
            json!({"name": team_name, "description": format!("{cap} team description")}),
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
    let team_id = t.body["id"].as_str().unwrap().to_string();
    for p in &people {
        let r = people[0]
            .s
            .put(
                &format!("/api/v1/orgs/{id}/teams/{team_id}/members/{}", p.user.id),
                json!({}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
    }
    let pending_invitation_email = format!("pending@{word}.example");
    let (pending_invitation_id, pending_invitation_token) =
        invite(&people[0].s, &id, &pending_invitation_email, "member").await;
    Org {
        id,
        slug,
        name,
        team_id,
        team_name,
        people,
        pending_invitation_id,
        pending_invitation_token,
        pending_invitation_email,
    }
}

/// Org A ("Alpha Works", slug `alpha-works`) and org B ("Bravo Works", `bravo-works`),
/// each with owner, admin, manager, member, viewer and guest (`<role>@alpha.example`,
/// `<role>@bravo.example`), a team with all six in it, and a pending invitation.
pub async fn two_orgs_with_all_roles() -> World {
    two_orgs_in(TestApp::spawn().await).await
}

/// The two fixture organizations in an app started by the caller (e.g. with settings).
pub async fn two_orgs_in(app: TestApp) -> World {
    let a = build_org(&app, "alpha", "Alpha").await;
    let b = build_org(&app, "bravo", "Bravo").await;
    World { app, a, b }
}

/// Who makes a request: a signed-in session or an API token.
pub enum Caller<'a> {
    Session(&'a Session),
    Token(&'a TokenClient),
}

impl Caller<'_> {
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        match self {
            Caller::Session(s) => s.send(method, path, body).await,
            Caller::Token(t) => t.send(method, path, body).await,
        }
    }
}

/// An API token of the session's user for `org`.
pub async fn token_for(app: &TestApp, s: &Session, org: &str, name: &str) -> (String, TokenClient) {
    let r = s
        .post(
            "/api/v1/me/tokens",
            json!({"name": name, "organization_id": org}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_string(),
        TokenClient::new(&app.base, r.body["token"].as_str().unwrap()),
    )
}

/// Every audit row of the org, newest first, as the API lists them (read by `s`).
pub async fn audit_rows(s: &Session, org: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/orgs/{org}/audit?limit=200&cursor={c}"),
            None => format!("/api/v1/orgs/{org}/audit?limit=200"),
        };
        let r = s.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        out.extend(r.body["items"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// The members of the org as (user id, role), read by `s`.
pub async fn member_roles(s: &Session, org: &str) -> Vec<(String, String)> {
    let r = s
        .get(&format!("/api/v1/orgs/{org}/members?limit=200"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user"]["id"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The role of `user` in `org`, as `s` sees it (None when not a member).
pub async fn role_of(s: &Session, org: &str, user: &str) -> Option<String> {
    member_roles(s, org)
        .await
        .into_iter()
        .find(|(id, _)| id == user)
        .map(|(_, r)| r)
}

/// Puts an organization on a plan, directly in the database file (the instance-admin API
/// for plans is not part of these tests).
pub fn set_plan(app: &TestApp, org_id: &str, plan: &str) {
    let c = rusqlite::Connection::open(app.data_dir().join("xagent.db")).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let n = c
        .execute(
            "UPDATE organizations SET plan = ?1 WHERE id = ?2",
            [plan, org_id],
        )
        .unwrap();
    assert_eq!(n, 1);
}
