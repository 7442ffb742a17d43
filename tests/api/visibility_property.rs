//! Visibility as a property: for random people, roles, teams, memberships in a second org
//! and random agents with random owners, visibility and shares — then random role
//! changes, removals and permission overrides — what each person lists, finds in the
//! accessible view and the public gallery, and can open, is exactly what a small model of
//! ARCHITECTURE §4 says. One server for all cases (a fixed seed, `PROPTEST_CASES`
//! cases, 24 by default); every case makes fresh people and organizations.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

const ROLES: [&str; 6] = ["owner", "admin", "manager", "member", "viewer", "guest"];
const VISIBILITIES: [&str; 4] = ["private", "team", "organization", "public"];
const MAX_USERS: usize = 6;
const MAX_TEAMS: usize = 3;

#[derive(Debug, Clone)]
struct AgentSpec {
    org: usize,
    /// Picks the owner among the org's members who may create agents.
    owner_pick: usize,
    visibility: usize,
    /// Shares with people (by index, members of the org only).
    users: Vec<bool>,
    /// Shares with teams (by index among the org's teams).
    teams: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Scenario {
    users: usize,
    /// Roles in org 0 of users 1.. (user 0 made the org and is its owner).
    roles: Vec<usize>,
    /// Who made org 1 (its owner).
    second_owner: usize,
    /// Roles in org 1 of the others (None: not a member).
    second_roles: Vec<Option<usize>>,
    /// Teams: (org, people in it — members of that org only).
    teams: Vec<(usize, Vec<bool>)>,
    agents: Vec<AgentSpec>,
    /// After the agents exist, what happens to users 1.. in org 0: a new role (0..6) or
    /// removal (6); removal hands their agents to the owner who removes them.
    changes: Vec<Option<usize>>,
    /// Then, for users 1.. still in org 0: overrides of agents.manage and agents.create
    /// (grant or deny), and whether org.view is denied.
    overrides: Vec<(Option<bool>, Option<bool>, bool)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let agent = (
        0usize..2,
        0usize..MAX_USERS,
        0usize..4,
        vec(prop::bool::weighted(0.25), MAX_USERS),
        vec(prop::bool::weighted(0.4), MAX_TEAMS),
    )
        .prop_map(|(org, owner_pick, visibility, users, teams)| AgentSpec {
            org,
            owner_pick,
            visibility,
            users,
            teams,
        });
    (
        3usize..=MAX_USERS,
        vec(0usize..6, MAX_USERS - 1),
        0usize..MAX_USERS,
        vec(prop::option::weighted(0.6, 0usize..6), MAX_USERS),
        vec((0usize..2, vec(any::<bool>(), MAX_USERS)), 0..=MAX_TEAMS),
        vec(agent, 1..=9),
        vec(
            prop_oneof![
                3 => Just(None),
                2 => (0usize..ROLES.len()).prop_map(Some),
                1 => Just(Some(ROLES.len())),
            ],
            MAX_USERS - 1,
        ),
        vec(
            (
                prop::option::weighted(0.25, any::<bool>()),
                prop::option::weighted(0.2, any::<bool>()),
                prop::bool::weighted(0.08),
            ),
            MAX_USERS - 1,
        ),
    )
        .prop_map(
            |(users, roles, second_owner, second_roles, teams, agents, changes, overrides)| {
                Scenario {
                    users,
                    roles,
                    second_owner: second_owner % users,
                    second_roles,
                    teams,
                    agents,
                    changes,
                    overrides,
                }
            },
        )
}

/// One person's membership in one org, as the model sees it.
#[derive(Debug, Clone)]
struct Seat {
    role: &'static str,
    teams: BTreeSet<String>,
    /// Overrides of agents.manage and agents.create.
    manage: Option<bool>,
    create: Option<bool>,
    /// org.view (denied: the org is closed to them).
    view: bool,
}

impl Seat {
    fn new(role: &'static str) -> Self {
        Seat {
            role,
            teams: BTreeSet::new(),
            manage: None,
            create: None,
            view: true,
        }
    }
    fn manages(&self) -> bool {
        self.manage.unwrap_or(manages(self.role))
    }
    fn creates(&self) -> bool {
        self.create.unwrap_or(creates(self.role))
    }
}

#[derive(Debug, Clone)]
struct Agent {
    org: usize,
    id: String,
    owner: usize,
    visibility: &'static str,
    users: BTreeSet<usize>,
    teams: BTreeSet<String>,
}

fn creates(role: &str) -> bool {
    matches!(role, "owner" | "admin" | "manager" | "member")
}

fn manages(role: &str) -> bool {
    matches!(role, "owner" | "admin" | "manager")
}

/// ARCHITECTURE §4: may person `u` (seated as `seat`) read `a`?
fn reads(u: usize, seat: &Seat, a: &Agent) -> bool {
    a.owner == u
        || (matches!(a.visibility, "organization" | "public") && seat.role != "guest")
        || a.users.contains(&u)
        || a.teams.iter().any(|t| seat.teams.contains(t))
        || seat.manages()
}

fn writes(u: usize, seat: &Seat, a: &Agent) -> bool {
    seat.manages() || (a.owner == u && seat.creates())
}

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(why()))
    }
}

fn ok_reply(r: &Reply, want: StatusCode, what: &str) -> Result<(), TestCaseError> {
    check(r.status == want, || {
        format!("{what}: {} {}, expected {want}", r.status, r.text)
    })
}

fn ids(r: &Reply) -> BTreeSet<String> {
    r.body["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn run_case(app: &TestApp, case: usize, sc: &Scenario) -> Result<(), TestCaseError> {
    let tag = format!("prop-k{case}-");
    // People, made and signed in concurrently.
    let made = futures_util::future::join_all((0..sc.users).map(|i| async move {
        let email = format!("u{i}@case{case}.prop.example");
        let user = app.create_user(&email, &format!("User {i}")).await;
        let s = app.login(&email).await;
        (user, s)
    }))
    .await;
    let people: Vec<&TestUser> = made.iter().map(|(u, _)| u).collect();
    let sessions: Vec<&Session> = made.iter().map(|(_, s)| s).collect();

    // seats[org][person]
    let mut seats: [Vec<Option<Seat>>; 2] = [vec![None; sc.users], vec![None; sc.users]];
    let mut orgs = Vec::new();
    for (org, maker) in [(0, 0), (1, sc.second_owner)] {
        let r = sessions[maker]
            .post(
                "/api/v1/orgs",
                json!({"name": format!("Case {case} org {org}"), "slug": format!("case-{case}-org-{org}")}),
            )
            .await;
        ok_reply(&r, StatusCode::CREATED, "create org")?;
        let id = r.body["id"].as_str().unwrap_or_default().to_string();
        seats[org][maker] = Some(Seat::new("owner"));
        for i in (0..sc.users).filter(|i| *i != maker) {
            let role = if org == 0 {
                Some(ROLES[sc.roles[i - 1]])
            } else {
                sc.second_roles[i].map(|r| ROLES[r])
            };
            let Some(role) = role else { continue };
            let inv = sessions[maker]
                .post(
                    &format!("/api/v1/orgs/{id}/invitations"),
                    json!({"email": people[i].email, "role": role}),
                )
                .await;
            ok_reply(&inv, StatusCode::CREATED, "invite")?;
            let acc = sessions[i]
                .post(
                    "/api/v1/invitations/accept",
                    json!({"token": inv.body["token"]}),
                )
                .await;
            ok_reply(&acc, StatusCode::OK, "accept")?;
            seats[org][i] = Some(Seat::new(role));
        }
        orgs.push((id, maker));
    }

    // Teams, with the people of that org the scenario puts in them.
    let mut teams: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for (n, (org, who)) in sc.teams.iter().enumerate() {
        let (org_id, maker) = &orgs[*org];
        let t = sessions[*maker]
            .post(
                &format!("/api/v1/orgs/{org_id}/teams"),
                json!({"name": format!("Team {n}")}),
            )
            .await;
        ok_reply(&t, StatusCode::CREATED, "create team")?;
        let team = t.body["id"].as_str().unwrap_or_default().to_string();
        for i in 0..sc.users {
            if !who[i] {
                continue;
            }
            let Some(seat) = seats[*org][i].as_mut() else {
                continue;
            };
            let r = sessions[*maker]
                .put(
                    &format!(
                        "/api/v1/orgs/{org_id}/teams/{team}/members/{}",
                        people[i].id
                    ),
                    json!({}),
                )
                .await;
            check(r.status.is_success(), || format!("team member: {}", r.text))?;
            seat.teams.insert(team.clone());
        }
        teams[*org].push(team);
    }

    // Agents, each created by an owner who may create them.
    let mut agents = Vec::new();
    for (n, spec) in sc.agents.iter().enumerate() {
        let org = spec.org;
        let creators: Vec<usize> = (0..sc.users)
            .filter(|i| seats[org][*i].as_ref().is_some_and(|s| creates(s.role)))
            .collect();
        let owner = creators[spec.owner_pick % creators.len()];
        let users: BTreeSet<usize> = (0..sc.users)
            .filter(|i| spec.users[*i] && seats[org][*i].is_some())
            .collect();
        let team_ids: BTreeSet<String> = teams[org]
            .iter()
            .enumerate()
            .filter(|(k, _)| spec.teams[*k])
            .map(|(_, t)| t.clone())
            .collect();
        let visibility = VISIBILITIES[spec.visibility];
        let r = sessions[owner]
            .post(
                &format!("/api/v1/orgs/{}/agents", orgs[org].0),
                json!({
                    "name": format!("{tag}a{n}"),
                    "visibility": visibility,
                    "shared_with": {
                        "users": users.iter().map(|i| people[*i].id.clone()).collect::<Vec<_>>(),
                        "teams": team_ids,
                    },
                }),
            )
            .await;
        ok_reply(&r, StatusCode::CREATED, "create agent")?;
        agents.push(Agent {
            org,
            id: r.body["id"].as_str().unwrap_or_default().to_string(),
            owner,
            visibility,
            users,
            teams: team_ids,
        });
    }

    // Roles change and people leave after the fact; owners keep what they own (and
    // may no longer be allowed to change it), a removed person's agents pass to user 0.
    let org0 = &orgs[0].0;
    for i in 1..sc.users {
        let Some(change) = sc.changes[i - 1] else {
            continue;
        };
        let path = format!("/api/v1/orgs/{org0}/members/{}", people[i].id);
        if change == ROLES.len() {
            let r = sessions[0].delete(&path).await;
            ok_reply(&r, StatusCode::NO_CONTENT, &format!("remove u{i}"))?;
            seats[0][i] = None;
            for a in agents.iter_mut().filter(|a| a.org == 0 && a.owner == i) {
                a.owner = 0;
            }
        } else {
            let role = ROLES[change];
            let r = sessions[0]
                .send(reqwest::Method::PATCH, &path, Some(json!({"role": role})))
                .await;
            ok_reply(&r, StatusCode::OK, &format!("u{i} becomes {role}"))?;
            if let Some(seat) = seats[0][i].as_mut() {
                seat.role = role;
            }
        }
    }

    for i in 1..sc.users {
        let Some(seat) = seats[0][i].as_mut() else {
            continue;
        };
        let (manage, create, deny_view) = sc.overrides[i - 1];
        let mut permissions = serde_json::Map::new();
        if let Some(m) = manage {
            permissions.insert("agents.manage".into(), json!(m));
        }
        if let Some(c) = create {
            permissions.insert("agents.create".into(), json!(c));
        }
        if deny_view {
            permissions.insert("org.view".into(), json!(false));
        }
        if permissions.is_empty() {
            continue;
        }
        let r = sessions[0]
            .send(
                reqwest::Method::PATCH,
                &format!("/api/v1/orgs/{org0}/members/{}", people[i].id),
                Some(json!({ "permissions": permissions })),
            )
            .await;
        ok_reply(
            &r,
            StatusCode::OK,
            &format!("overrides of u{i}: {permissions:?}"),
        )?;
        seat.manage = manage;
        seat.create = create;
        seat.view = !deny_view;
    }
    /// What opening org `org` gives person `u` before any visibility rule: not a member
    /// 404; org.view denied 403 (they know their org; it is closed to them).
    fn closed(seat: Option<&Seat>) -> Option<StatusCode> {
        match seat {
            None => Some(StatusCode::NOT_FOUND),
            Some(s) if !s.view => Some(StatusCode::FORBIDDEN),
            Some(_) => None,
        }
    }

    // Every person, against the model.
    for u in 0..sc.users {
        let s = sessions[u];
        let mut accessible = BTreeSet::new();
        for org in 0..2 {
            let path = format!("/api/v1/orgs/{}/agents?limit=200", orgs[org].0);
            let got = s.get(&path).await;
            if let Some(status) = closed(seats[org][u].as_ref()) {
                ok_reply(&got, status, &format!("u{u} lists org {org}"))?;
                continue;
            }
            let Some(seat) = &seats[org][u] else {
                continue;
            };
            ok_reply(&got, StatusCode::OK, &path)?;
            let want: BTreeSet<String> = agents
                .iter()
                .filter(|a| a.org == org && reads(u, seat, a))
                .map(|a| a.id.clone())
                .collect();
            let listed = ids(&got);
            check(listed == want, || {
                format!(
                    "u{u} ({}) lists in org {org}: {listed:?}, expected {want:?}",
                    seat.role
                )
            })?;
            for item in got.body["items"].as_array().into_iter().flatten() {
                if let Some(a) = agents.iter().find(|a| a.id == item["id"]) {
                    check(item["can_write"] == json!(writes(u, seat, a)), || {
                        format!("u{u} ({}): can_write of {item}", seat.role)
                    })?;
                }
            }
            accessible.extend(want);
        }
        let got = s.get("/api/v1/me/accessible/agents?limit=200").await;
        ok_reply(&got, StatusCode::OK, "accessible")?;
        let seen = ids(&got);
        check(seen == accessible, || {
            format!("u{u} accessible: {seen:?}, expected {accessible:?}")
        })?;
        // Opening each agent: under its own org, and under the other one.
        for a in &agents {
            let readable = seats[a.org][u].as_ref().is_some_and(|s| reads(u, s, a));
            let got = s
                .get(&format!("/api/v1/orgs/{}/agents/{}", orgs[a.org].0, a.id))
                .await;
            let want = match closed(seats[a.org][u].as_ref()) {
                Some(status) => status,
                None if readable => StatusCode::OK,
                None => StatusCode::NOT_FOUND,
            };
            ok_reply(&got, want, &format!("u{u} opens {} of org {}", a.id, a.org))?;
            if seats[1 - a.org][u].is_some() {
                let other = s
                    .get(&format!(
                        "/api/v1/orgs/{}/agents/{}",
                        orgs[1 - a.org].0,
                        a.id
                    ))
                    .await;
                let want = closed(seats[1 - a.org][u].as_ref()).unwrap_or(StatusCode::NOT_FOUND);
                ok_reply(
                    &other,
                    want,
                    &format!("u{u} opens {} under the other org", a.id),
                )?;
            }
        }
    }
    // The gallery holds exactly this case's public agents, of both orgs.
    let got = sessions[0]
        .get(&format!("/api/v1/public/agents?limit=200&q={tag}"))
        .await;
    ok_reply(&got, StatusCode::OK, "gallery")?;
    let want: BTreeSet<String> = agents
        .iter()
        .filter(|a| a.visibility == "public")
        .map(|a| a.id.clone())
        .collect();
    let seen = ids(&got);
    check(seen == want, || {
        format!("gallery: {seen:?}, expected {want:?}")
    })?;
    Ok(())
}

#[test]
fn what_each_person_sees_matches_the_visibility_model_for_random_orgs() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(TestApp::spawn());
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let config = Config {
        cases,
        max_shrink_iters: 48,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    let counter = AtomicUsize::new(0);
    let result = runner.run(&scenario(), |sc| {
        let case = counter.fetch_add(1, Ordering::SeqCst);
        rt.block_on(run_case(&app, case, &sc))
    });
    drop(app);
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A direct share is a grant to a member; it ends with the membership, as team
/// memberships do. Otherwise someone removed and invited back later, in any role (here
/// a guest), reads again what was shared with them before, and every reader of the
/// resource sees the id of a person who is no longer in the organization.
#[tokio::test]
async fn a_removed_members_direct_shares_end_with_the_membership() {
    let w = crate::org_fixture::two_orgs_with_all_roles().await;
    let a = &w.a;
    let (author, leaver) = (a.person("member"), a.person("viewer"));
    let team = a
        .owner()
        .post(&a.path("/teams"), json!({"name": "Leavers"}))
        .await;
    let team = team.body["id"].as_str().unwrap().to_string();
    let r = a
        .owner()
        .put(
            &a.path(&format!("/teams/{team}/members/{}", leaver.user.id)),
            json!({}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let mut agents = Vec::new();
    for shared in [json!({"users": [leaver.user.id]}), json!({"teams": [team]})] {
        let r = author
            .s
            .post(
                &a.path("/agents"),
                json!({"name": "Private plan", "shared_with": shared}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        agents.push(r.body["id"].as_str().unwrap().to_string());
    }
    for id in &agents {
        let r = leaver.s.get(&a.path(&format!("/agents/{id}"))).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = a
        .owner()
        .delete(&a.path(&format!("/members/{}", leaver.user.id)))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // The team forgot them; the direct share must too.
    let t = a.owner().get(&a.path(&format!("/teams/{team}"))).await;
    assert_eq!(t.body["members"], json!([]), "{}", t.text);
    let got = a
        .owner()
        .get(&a.path(&format!("/agents/{}", agents[0])))
        .await;
    assert_eq!(
        got.body["shared_with"]["users"],
        json!([]),
        "a removed member is still listed as sharing the agent: {}",
        got.text
    );
    // Back as a guest, they see only what is shared with them now.
    crate::org_fixture::invite_and_join(a.owner(), &a.id, &leaver.user.email, "guest", &leaver.s)
        .await;
    for id in &agents {
        let r = leaver.s.get(&a.path(&format!("/agents/{id}"))).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "a share from before the removal came back with the new membership: {}",
            r.text
        );
    }
    assert!(
        ids(&leaver.s.get(&a.path("/agents")).await).is_empty(),
        "the guest lists agents shared with their former membership"
    );
}
