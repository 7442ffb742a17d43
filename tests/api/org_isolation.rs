//! Cross-tenant isolation of the organization layer: members of org B (every role, by
//! session and by API token) find nothing of org A — by A's id or slug, or with A's
//! object ids under B's own path — change nothing in it, and see nothing of it in lists
//! and exports.
use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::org_fixture::*;

/// Everything of org A that must never appear in an answer to a member of org B.
fn a_secrets(w: &World) -> Vec<String> {
    let a = &w.a;
    let mut s = vec![
        a.id.clone(),
        a.team_id.clone(),
        a.pending_invitation_id.clone(),
        a.pending_invitation_token.clone(),
    ];
    s.extend(a.user_ids());
    s.extend(a.people.iter().map(|p| p.user.personal_org.clone()));
    s
}

/// No trace of org A: no id of its objects and none of its names, slug or emails (they
/// all contain "alpha").
fn assert_no_trace(what: &str, text: &str, w: &World) {
    assert!(
        !text.to_lowercase().contains("alpha"),
        "{what} leaks a name/email/slug of org A: {text}"
    );
    for secret in a_secrets(w) {
        assert!(!text.contains(&secret), "{what} leaks {secret}: {text}");
    }
}

/// Every organization-layer request on org `r`, with ids of org A's objects.
fn requests_on(r: &str, w: &World) -> Vec<(Method, String, Option<Value>)> {
    let a = &w.a;
    let member = &a.person("member").user.id;
    let guest = &a.person("guest").user.id;
    let admin = &a.person("admin").user.id;
    let team = &a.team_id;
    let inv = &a.pending_invitation_id;
    let o = format!("/api/v1/orgs/{r}");
    vec![
        (Method::GET, o.clone(), None),
        (Method::PATCH, o.clone(), Some(json!({"name": "Pwned"}))),
        (Method::GET, format!("{o}/members"), None),
        (Method::GET, format!("{o}/members/{admin}"), None),
        (
            Method::PATCH,
            format!("{o}/members/{member}"),
            Some(json!({"role": "guest"})),
        ),
        (Method::DELETE, format!("{o}/members/{member}"), None),
        (
            Method::POST,
            format!("{o}/invitations"),
            Some(json!({"email": "intruder@bravo.example", "role": "guest"})),
        ),
        (Method::GET, format!("{o}/invitations"), None),
        (Method::DELETE, format!("{o}/invitations/{inv}"), None),
        (Method::GET, format!("{o}/teams"), None),
        (
            Method::POST,
            format!("{o}/teams"),
            Some(json!({"name": "Intruders"})),
        ),
        (Method::GET, format!("{o}/teams/{team}"), None),
        (
            Method::PATCH,
            format!("{o}/teams/{team}"),
            Some(json!({"name": "Renamed by B"})),
        ),
        (
            Method::PUT,
            format!("{o}/teams/{team}/members/{admin}"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("{o}/teams/{team}/members/{guest}"),
            None,
        ),
        (Method::DELETE, format!("{o}/teams/{team}"), None),
        (Method::GET, format!("{o}/audit"), None),
        (Method::GET, format!("{o}/audit/export?format=csv"), None),
        (Method::GET, format!("{o}/audit/export?format=ndjson"), None),
        (Method::DELETE, o.clone(), None),
    ]
}

/// What org A looks like to its owner: members with roles, team, invitations, audit size.
async fn snapshot_of_a(w: &World) -> Value {
    let a = &w.a;
    let owner = a.owner();
    let org = owner.get(&a.path("")).await;
    assert_eq!(org.status, StatusCode::OK, "org A is gone: {}", org.text);
    let team = owner.get(&a.path(&format!("/teams/{}", a.team_id))).await;
    assert_eq!(team.status, StatusCode::OK, "{}", team.text);
    let mut team_members: Vec<String> = team.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    team_members.sort();
    let invitations: Vec<Value> = owner.get(&a.path("/invitations")).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| json!([i["id"], i["email"], i["role"]]))
        .collect();
    let teams: Vec<Value> = owner.get(&a.path("/teams")).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!([t["id"], t["name"], t["description"]]))
        .collect();
    json!({
        "name": org.body["name"], "slug": org.body["slug"],
        "members": member_roles(owner, &a.id).await,
        "team_members": team_members,
        "teams": teams,
        "invitations": invitations,
        "audit_rows": audit_rows(owner, &a.id).await.len(),
    })
}

#[tokio::test]
async fn members_of_another_org_find_nothing_by_id_or_slug_and_change_nothing() {
    let w = two_orgs_with_all_roles().await;
    let before = snapshot_of_a(&w).await;
    let (_, b_token) = token_for(&w.app, w.b.owner(), &w.b.id, "bravo-ci").await;
    let mut callers: Vec<(String, Caller<'_>)> =
        w.b.people
            .iter()
            .map(|p| (format!("B {} (session)", p.role), Caller::Session(&p.s)))
            .collect();
    callers.push(("B owner (token)".into(), Caller::Token(&b_token)));

    let missing_id = "01900000-0000-7000-8000-000000000000";
    for (who, caller) in &callers {
        for (r, control) in [
            (w.a.id.as_str(), missing_id),
            (w.a.slug.as_str(), "no-such-org"),
        ] {
            let reqs = requests_on(r, &w);
            let controls = requests_on(control, &w);
            for ((method, path, body), (_, cpath, cbody)) in reqs.into_iter().zip(controls) {
                let res = caller.send(method.clone(), &path, body).await;
                let what = format!("{who}: {method} {path}");
                assert_eq!(res.status, StatusCode::NOT_FOUND, "{what}: {}", res.text);
                assert_no_trace(&what, &res.text, &w);
                // Exactly what a request on an organization that does not exist gets.
                let ctl = caller.send(method.clone(), &cpath, cbody).await;
                assert_eq!(res.status, ctl.status, "{what} vs {cpath}");
                assert_eq!(res.body, ctl.body, "{what} vs {cpath}");
            }
        }
    }
    // Org A did not change, not even by a single audit row.
    assert_eq!(snapshot_of_a(&w).await, before);
    // And the people of B cannot make org A their current one or mint a token for it.
    for p in &w.b.people {
        for r in [&w.a.id, &w.a.slug] {
            let r1 =
                p.s.put(
                    "/api/v1/me/current-organization",
                    json!({"organization_id": r}),
                )
                .await;
            assert_eq!(r1.status, StatusCode::NOT_FOUND);
            let r2 =
                p.s.post(
                    "/api/v1/me/tokens",
                    json!({"name": "x", "organization_id": r}),
                )
                .await;
            assert_eq!(r2.status, StatusCode::NOT_FOUND);
            assert_no_trace("token for A", &r2.text, &w);
        }
    }
}

#[tokio::test]
async fn ids_of_another_orgs_objects_under_ones_own_org_are_not_found() {
    let w = two_orgs_with_all_roles().await;
    let before = snapshot_of_a(&w).await;
    let (a, b) = (&w.a, &w.b);
    let a_team = &a.team_id;
    let a_member = &a.person("member").user.id;
    let a_guest = &a.person("guest").user.id;
    let b_member = &b.person("member").user.id;
    let o = b.path("");
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("{o}/teams/{a_team}"), None),
        (
            Method::PATCH,
            format!("{o}/teams/{a_team}"),
            Some(json!({"name": "Stolen", "description": "by B"})),
        ),
        (
            Method::PUT,
            format!("{o}/teams/{a_team}/members/{b_member}"),
            Some(json!({})),
        ),
        (
            Method::PUT,
            format!("{o}/teams/{a_team}/members/{a_member}"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("{o}/teams/{a_team}/members/{a_guest}"),
            None,
        ),
        (Method::DELETE, format!("{o}/teams/{a_team}"), None),
        (
            Method::PUT,
            format!("{o}/teams/{}/members/{a_member}", b.team_id),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("{o}/teams/{}/members/{a_guest}", b.team_id),
            None,
        ),
        (Method::GET, format!("{o}/members/{a_member}"), None),
        (
            Method::PATCH,
            format!("{o}/members/{a_member}"),
            Some(json!({"role": "guest"})),
        ),
        (
            Method::PATCH,
            format!("{o}/members/{a_member}"),
            Some(json!({"permissions": {"audit.view": true}})),
        ),
        (Method::DELETE, format!("{o}/members/{a_member}"), None),
        (
            Method::DELETE,
            format!("{o}/invitations/{}", a.pending_invitation_id),
            None,
        ),
    ];
    let (_, b_token) = token_for(&w.app, b.owner(), &b.id, "bravo-ci").await;
    // Callers who hold every permission these requests need in B, so that the only
    // reason left to refuse is that the object is not B's.
    let callers = [
        ("B owner", Caller::Session(b.owner())),
        ("B admin", Caller::Session(&b.person("admin").s)),
        ("B owner token", Caller::Token(&b_token)),
    ];
    for (who, caller) in &callers {
        for (method, path, body) in &requests {
            let res = caller.send(method.clone(), path, body.clone()).await;
            let what = format!("{who}: {method} {path}");
            assert_eq!(res.status, StatusCode::NOT_FOUND, "{what}: {}", res.text);
            assert_no_trace(&what, &res.text, &w);
        }
    }
    // Org A is intact: team name and members, member role, pending invitation, audit.
    let after = snapshot_of_a(&w).await;
    assert_eq!(after, before);
    assert_eq!(after["team_members"].as_array().unwrap().len(), 6);
    assert!(
        after["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i[0] == a.pending_invitation_id.as_str())
    );
    assert_eq!(
        role_of(a.owner(), &a.id, a_member).await.as_deref(),
        Some("member")
    );
    // B's own team did not gain anyone of A either.
    let bt = b
        .owner()
        .get(&b.path(&format!("/teams/{}", b.team_id)))
        .await;
    assert_no_trace("B team", &bt.text, &w);
}

fn ids(list: &Value, pick: impl Fn(&Value) -> &Value) -> BTreeSet<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| pick(i).as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn lists_and_exports_of_one_org_contain_nothing_of_the_other() {
    let w = two_orgs_with_all_roles().await;
    let (a, b) = (&w.a, &w.b);
    // Some activity in A that B's lists must not show.
    let r = a
        .owner()
        .post(&a.path("/teams"), json!({"name": "Alpha Secret Team"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (_, b_token) = token_for(&w.app, b.owner(), &b.id, "bravo-ci").await;
    let callers = [
        ("B owner", Caller::Session(b.owner())),
        ("B admin", Caller::Session(&b.person("admin").s)),
        ("B owner token", Caller::Token(&b_token)),
    ];
    let b_users: BTreeSet<String> = b.user_ids().into_iter().collect();
    for (who, c) in &callers {
        let members = c.send(Method::GET, &b.path("/members"), None).await;
        assert_eq!(members.status, StatusCode::OK);
        assert_eq!(ids(&members.body, |m| &m["user"]["id"]), b_users, "{who}");
        assert_no_trace(who, &members.text, &w);

        let teams = c.send(Method::GET, &b.path("/teams"), None).await;
        assert_eq!(
            ids(&teams.body, |t| &t["id"]),
            BTreeSet::from([b.team_id.clone()]),
            "{who}"
        );
        assert_no_trace(who, &teams.text, &w);

        let team = c
            .send(Method::GET, &b.path(&format!("/teams/{}", b.team_id)), None)
            .await;
        let team_users: BTreeSet<String> = team.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(team_users, b_users, "{who}");

        let inv = c.send(Method::GET, &b.path("/invitations"), None).await;
        assert_eq!(
            ids(&inv.body, |i| &i["id"]),
            BTreeSet::from([b.pending_invitation_id.clone()]),
            "{who}"
        );
        assert!(!inv.text.contains("token"), "invitation list shows a token");
        assert_no_trace(who, &inv.text, &w);

        let audit = c.send(Method::GET, &b.path("/audit?limit=200"), None).await;
        assert_eq!(audit.status, StatusCode::OK);
        let rows = audit.body["items"].as_array().unwrap();
        assert!(rows.len() >= 10, "B has its own history");
        for row in rows {
            if let Some(actor) = row["actor"]["id"].as_str() {
                assert!(b_users.contains(actor), "{who}: foreign actor {row}");
            }
        }
        assert_no_trace(who, &audit.text, &w);
        for f in ["csv", "ndjson"] {
            let e = c
                .send(
                    Method::GET,
                    &b.path(&format!("/audit/export?format={f}")),
                    None,
                )
                .await;
            assert_eq!(e.status, StatusCode::OK);
            assert_no_trace(who, &e.text, &w);
            let lines = e.text.lines().filter(|l| !l.is_empty()).count();
            let want = rows.len() + usize::from(f == "csv");
            assert_eq!(lines, want, "{who} {f} export");
        }
        // Filters naming A's objects find nothing in B.
        for q in [
            format!("resource_id={}", a.team_id),
            format!("actor_id={}", a.person("owner").user.id),
            format!("resource_id={}", a.id),
        ] {
            let r = c
                .send(Method::GET, &b.path(&format!("/audit?{q}")), None)
                .await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.body["items"], json!([]), "{who} {q}");
        }
        let show = c.send(Method::GET, &b.path(""), None).await;
        assert_no_trace(who, &show.text, &w);
    }
    for p in &b.people {
        let orgs = p.s.get("/api/v1/orgs").await;
        assert_no_trace("GET /orgs", &orgs.text, &w);
        let orgs: BTreeSet<String> = ids(&orgs.body, |o| &o["id"]);
        assert_eq!(
            orgs,
            BTreeSet::from([p.user.personal_org.clone(), b.id.clone()])
        );
        let me = p.s.get("/api/v1/me").await;
        assert_no_trace("GET /me", &me.text, &w);
    }
}

#[tokio::test]
async fn an_invitation_of_one_org_is_accepted_only_by_the_invited_email() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let token = &a.pending_invitation_token;
    for p in &w.b.people {
        let r = accept(&p.s, token).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}: {}", p.role, r.text);
        assert_eq!(r.code(), "invitation_email_mismatch");
        assert_no_trace("accept", &r.text, &w);
        assert_eq!(p.s.get(&a.path("")).await.status, StatusCode::NOT_FOUND);
    }
    // A member of A with another email cannot use it either.
    let r = accept(&a.person("guest").s, token).await;
    assert_eq!(r.code(), "invitation_email_mismatch");
    // Still pending; the invited person joins with it.
    let pending = a.owner().get(&a.path("/invitations")).await;
    assert!(
        pending.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == a.pending_invitation_id.as_str())
    );
    let (invited, s) = new_person(&w.app, &a.pending_invitation_email, "Invited").await;
    let r = accept(&s, token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["organization"]["id"], a.id.as_str());
    assert_eq!(
        role_of(a.owner(), &a.id, &invited.id).await.as_deref(),
        Some("member")
    );
    // Org B never saw them.
    assert_eq!(
        w.b.owner()
            .get(&w.b.path(&format!("/members/{}", invited.id)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
