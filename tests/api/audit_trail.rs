//! Audit completeness: every change in an organization leaves exactly one row naming who,
//! what, from where; a refused or rolled-back change leaves none; filters, cursor pages
//! and exports return exactly the matching rows.
use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;
use crate::org_fixture::*;

fn row_ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// The rows added to org A's log since `before` (read by A's owner), newest first.
async fn new_rows(w: &World, before: &[Value]) -> Vec<Value> {
    let old: BTreeSet<String> = row_ids(before).into_iter().collect();
    audit_rows(w.a.owner(), &w.a.id)
        .await
        .into_iter()
        .filter(|r| !old.contains(r["id"].as_str().unwrap()))
        .collect()
}

struct Expect<'a> {
    actor: &'a Person,
    action: &'a str,
    resource_type: &'a str,
    resource_id: &'a str,
}

/// Exactly one new row, and it says who did what to which resource, from where.
async fn exactly_one_row(w: &World, before: &mut Vec<Value>, e: Expect<'_>) -> Value {
    let added = new_rows(w, before).await;
    assert_eq!(
        added.len(),
        1,
        "{} must leave exactly one audit row, found {added:#?}",
        e.action
    );
    let row = added[0].clone();
    assert_eq!(row["action"], e.action, "{row}");
    assert_eq!(row["actor"]["id"], e.actor.user.id.as_str(), "{row}");
    assert_eq!(row["actor"]["email"], e.actor.user.email.as_str(), "{row}");
    assert_eq!(row["resource_type"], e.resource_type, "{row}");
    assert_eq!(row["resource_id"], e.resource_id, "{row}");
    assert_eq!(row["ip"], "127.0.0.1", "{row}");
    assert_eq!(row["user_agent"], e.actor.ua.as_str(), "{row}");
    let at = chrono::DateTime::parse_from_rfc3339(row["at"].as_str().unwrap()).unwrap();
    let age = chrono::Utc::now().signed_duration_since(at);
    assert!(
        age >= chrono::Duration::zero() - chrono::Duration::seconds(1)
            && age < chrono::Duration::seconds(60),
        "at {at} is not now"
    );
    *before = audit_rows(w.a.owner(), &w.a.id).await;
    row
}

fn ok(r: &Reply, status: StatusCode) {
    assert_eq!(r.status, status, "{}", r.text);
}

#[tokio::test]
async fn every_change_leaves_exactly_one_audit_row_naming_actor_ip_and_user_agent() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let (owner, admin, manager) = (a.person("owner"), a.person("admin"), a.person("manager"));
    let (member, viewer, guest) = (a.person("member"), a.person("viewer"), a.person("guest"));
    let mut secrets = vec![
        PASSWORD.to_string(),
        a.pending_invitation_token.clone(),
        w.b.pending_invitation_token.clone(),
    ];
    secrets.extend(a.people.iter().map(|p| p.s.csrf.clone()));
    let mut before = audit_rows(&owner.s, &a.id).await;

    // Organization settings.
    let r = admin
        .s
        .send(
            Method::PATCH,
            &a.path(""),
            Some(json!({"name": "Alpha Works Renamed", "settings": {"invitation_ttl_days": 5}})),
        )
        .await;
    ok(&r, StatusCode::OK);
    let row = exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: admin,
            action: "organization.updated",
            resource_type: "organization",
            resource_id: &a.id,
        },
    )
    .await;
    assert_eq!(row["details"]["before"]["name"], "Alpha Works");
    assert_eq!(row["details"]["after"]["name"], "Alpha Works Renamed");
    assert_eq!(
        row["details"]["after"]["settings"]["invitation_ttl_days"],
        5
    );

    // Member role, then permission overrides.
    let m = a.path(&format!("/members/{}", member.user.id));
    let r = admin
        .s
        .send(Method::PATCH, &m, Some(json!({"role": "viewer"})))
        .await;
    ok(&r, StatusCode::OK);
    let row = exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: admin,
            action: "member.role_changed",
            resource_type: "member",
            resource_id: &member.user.id,
        },
    )
    .await;
    assert_eq!(row["details"]["before"], "member");
    assert_eq!(row["details"]["after"], "viewer");
    let r = admin
        .s
        .send(
            Method::PATCH,
            &m,
            Some(json!({"permissions": {"audit.view": true}})),
        )
        .await;
    ok(&r, StatusCode::OK);
    let row = exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: admin,
            action: "member.permissions_changed",
            resource_type: "member",
            resource_id: &member.user.id,
        },
    )
    .await;
    assert_eq!(row["details"]["after"], json!({"audit.view": true}));

    // Invite, cancel.
    let r = manager
        .s
        .post(
            &a.path("/invitations"),
            json!({"email": "someone@alpha.example", "role": "guest"}),
        )
        .await;
    ok(&r, StatusCode::CREATED);
    secrets.push(r.body["token"].as_str().unwrap().to_string());
    let inv = r.body["id"].as_str().unwrap().to_string();
    let row = exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: manager,
            action: "member.invited",
            resource_type: "invitation",
            resource_id: &inv,
        },
    )
    .await;
    assert_eq!(row["details"]["email"], "someone@alpha.example");
    assert_eq!(row["details"]["role"], "guest");
    let r = manager
        .s
        .delete(&a.path(&format!("/invitations/{inv}")))
        .await;
    ok(&r, StatusCode::NO_CONTENT);
    exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: manager,
            action: "invitation.cancelled",
            resource_type: "invitation",
            resource_id: &inv,
        },
    )
    .await;

    // Accept: the joining person is the actor.
    let (joiner_u, joiner_s) = new_person(&w.app, "joiner@alpha.example", "Joiner").await;
    let joiner = Person {
        role: "member",
        ua: user_agent_for(&joiner_u.email),
        user: joiner_u,
        s: joiner_s,
    };
    let (inv, token) = invite(&owner.s, &a.id, &joiner.user.email, "member").await;
    secrets.push(token.clone());
    exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: owner,
            action: "member.invited",
            resource_type: "invitation",
            resource_id: &inv,
        },
    )
    .await;
    ok(&accept(&joiner.s, &token).await, StatusCode::OK);
    let row = exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: &joiner,
            action: "member.joined",
            resource_type: "member",
            resource_id: &joiner.user.id,
        },
    )
    .await;
    assert_eq!(row["details"]["role"], "member");

    // Teams.
    let r = manager
        .s
        .post(
            &a.path("/teams"),
            json!({"name": "Audited", "description": "d"}),
        )
        .await;
    ok(&r, StatusCode::CREATED);
    let team = r.body["id"].as_str().unwrap().to_string();
    let row = exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: manager,
            action: "team.created",
            resource_type: "team",
            resource_id: &team,
        },
    )
    .await;
    assert_eq!(row["details"]["name"], "Audited");
    let r = manager
        .s
        .send(
            Method::PATCH,
            &a.path(&format!("/teams/{team}")),
            Some(json!({"name": "Audited Again"})),
        )
        .await;
    ok(&r, StatusCode::OK);
    let row = exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: manager,
            action: "team.updated",
            resource_type: "team",
            resource_id: &team,
        },
    )
    .await;
    assert_eq!(row["details"]["before"]["name"], "Audited");
    assert_eq!(row["details"]["after"]["name"], "Audited Again");
    let tm = a.path(&format!("/teams/{team}/members/{}", viewer.user.id));
    ok(&manager.s.put(&tm, json!({})).await, StatusCode::CREATED);
    let row = exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: manager,
            action: "team.member_added",
            resource_type: "team",
            resource_id: &team,
        },
    )
    .await;
    assert_eq!(row["details"]["user_id"], viewer.user.id.as_str());
    // Adding again changes nothing and is not audited.
    ok(&manager.s.put(&tm, json!({})).await, StatusCode::OK);
    assert!(new_rows(&w, &before).await.is_empty());
    ok(&manager.s.delete(&tm).await, StatusCode::NO_CONTENT);
    let row = exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: manager,
            action: "team.member_removed",
            resource_type: "team",
            resource_id: &team,
        },
    )
    .await;
    assert_eq!(row["details"]["user_id"], viewer.user.id.as_str());
    ok(
        &manager.s.delete(&a.path(&format!("/teams/{team}"))).await,
        StatusCode::NO_CONTENT,
    );
    exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: manager,
            action: "team.deleted",
            resource_type: "team",
            resource_id: &team,
        },
    )
    .await;

    // Remove, leave.
    ok(
        &admin
            .s
            .delete(&a.path(&format!("/members/{}", guest.user.id)))
            .await,
        StatusCode::NO_CONTENT,
    );
    exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: admin,
            action: "member.removed",
            resource_type: "member",
            resource_id: &guest.user.id,
        },
    )
    .await;
    ok(
        &viewer
            .s
            .delete(&a.path(&format!("/members/{}", viewer.user.id)))
            .await,
        StatusCode::NO_CONTENT,
    );
    exactly_one_row(
        &w,
        &mut before,
        Expect {
            actor: viewer,
            action: "member.left",
            resource_type: "member",
            resource_id: &viewer.user.id,
        },
    )
    .await;

    // An API token for the org: audited without its secret.
    let r = member
        .s
        .post(
            "/api/v1/me/tokens",
            json!({"name": "member-ci", "organization_id": a.id}),
        )
        .await;
    ok(&r, StatusCode::CREATED);
    secrets.push(r.body["token"].as_str().unwrap().to_string());

    // No row anywhere in the log carries a secret.
    let all = audit_rows(&owner.s, &a.id).await;
    let export = owner.s.get(&a.path("/audit/export?format=ndjson")).await;
    for secret in &secrets {
        for row in &all {
            assert!(
                !row.to_string().contains(secret.as_str()),
                "audit row carries a secret: {row}"
            );
        }
        assert!(!export.text.contains(secret.as_str()));
    }
    for row in &all {
        let keys = row["details"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        for k in keys {
            assert!(
                !k.contains("token") && !k.contains("password") && !k.contains("hash"),
                "details key {k} in {row}"
            );
        }
    }
}

#[tokio::test]
async fn refused_and_rolled_back_changes_leave_no_audit_row() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let (owner, admin, manager, viewer) = (
        &a.person("owner").s,
        &a.person("admin").s,
        &a.person("manager").s,
        &a.person("viewer").s,
    );
    let owner_id = &a.person("owner").user.id;
    let member_id = &a.person("member").user.id;
    let before = audit_rows(owner, &a.id).await;
    let patch = |id: &str| a.path(&format!("/members/{id}"));
    let (stranger, stranger_s) = new_person(&w.app, "stranger@example.com", "Stranger").await;
    let (_, token) = invite(owner, &a.id, "invited@alpha.example", "guest").await;
    let before_with_invite = audit_rows(owner, &a.id).await;
    assert_eq!(before_with_invite.len(), before.len() + 1);
    let before = before_with_invite;

    let attempts: Vec<(&str, Reply, StatusCode, &str)> = vec![
        (
            "last owner steps down",
            owner
                .send(
                    Method::PATCH,
                    &patch(owner_id),
                    Some(json!({"role": "admin"})),
                )
                .await,
            StatusCode::CONFLICT,
            "last_owner",
        ),
        (
            "last owner leaves",
            owner.delete(&patch(owner_id)).await,
            StatusCode::CONFLICT,
            "last_owner",
        ),
        (
            "admin demotes owner",
            admin
                .send(
                    Method::PATCH,
                    &patch(owner_id),
                    Some(json!({"role": "admin"})),
                )
                .await,
            StatusCode::FORBIDDEN,
            "owner_protected",
        ),
        (
            "role change with a grant above own (rolled back)",
            admin
                .send(
                    Method::PATCH,
                    &patch(member_id),
                    Some(json!({"role": "viewer", "permissions": {"billing.manage": true}})),
                )
                .await,
            StatusCode::FORBIDDEN,
            "permission_above_own",
        ),
        (
            "unknown permission",
            admin
                .send(
                    Method::PATCH,
                    &patch(member_id),
                    Some(json!({"permissions": {"nope.nope": true}})),
                )
                .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "viewer creates a team",
            viewer
                .post(&a.path("/teams"), json!({"name": "Nope"}))
                .await,
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
        (
            "duplicate team name",
            manager
                .post(&a.path("/teams"), json!({"name": a.team_name}))
                .await,
            StatusCode::CONFLICT,
            "team_name_taken",
        ),
        (
            "empty team name",
            manager.post(&a.path("/teams"), json!({"name": "  "})).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "bad settings",
            admin
                .send(
                    Method::PATCH,
                    &a.path(""),
                    Some(json!({"settings": {"invitation_ttl_days": 0}})),
                )
                .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "taken slug",
            admin
                .send(
                    Method::PATCH,
                    &a.path(""),
                    Some(json!({"slug": w.b.slug, "name": "Half Changed"})),
                )
                .await,
            StatusCode::CONFLICT,
            "slug_taken",
        ),
        (
            "manager invites an admin",
            manager
                .post(
                    &a.path("/invitations"),
                    json!({"email": "x@alpha.example", "role": "admin"}),
                )
                .await,
            StatusCode::FORBIDDEN,
            "role_above_own",
        ),
        (
            "invite a member",
            manager
                .post(
                    &a.path("/invitations"),
                    json!({"email": a.person("guest").user.email, "role": "guest"}),
                )
                .await,
            StatusCode::CONFLICT,
            "already_member",
        ),
        (
            "accept with another email",
            accept(&stranger_s, &token).await,
            StatusCode::FORBIDDEN,
            "invitation_email_mismatch",
        ),
        (
            "accept an unknown token",
            accept(&stranger_s, "no-such-token").await,
            StatusCode::NOT_FOUND,
            "invitation_invalid",
        ),
        (
            "add a non-member to a team",
            manager
                .put(
                    &a.path(&format!("/teams/{}/members/{}", a.team_id, stranger.id)),
                    json!({}),
                )
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "remove a non-member",
            admin.delete(&patch(&stranger.id)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (what, r, status, code) in &attempts {
        assert_eq!(r.status, *status, "{what}: {}", r.text);
        assert_eq!(r.code(), *code, "{what}: {}", r.text);
    }
    let added = new_rows(&w, &before).await;
    assert!(added.is_empty(), "refused changes were audited: {added:#?}");
    assert_eq!(
        role_of(owner, &a.id, member_id).await.as_deref(),
        Some("member")
    );
    assert_eq!(owner.get(&a.path("")).await.body["name"], "Alpha Works");
}

/// Some history in org A by several actors: teams made, renamed, members added.
async fn some_history(w: &World) {
    let a = &w.a;
    for (i, role) in ["owner", "admin", "manager"].iter().enumerate() {
        let s = &a.person(role).s;
        let r = s
            .post(&a.path("/teams"), json!({"name": format!("History {i}")}))
            .await;
        ok(&r, StatusCode::CREATED);
        let id = r.body["id"].as_str().unwrap().to_string();
        for p in ["member", "viewer"] {
            let r = s
                .put(
                    &a.path(&format!("/teams/{id}/members/{}", a.person(p).user.id)),
                    json!({}),
                )
                .await;
            ok(&r, StatusCode::CREATED);
        }
    }
}

fn ids_of(body: &Value) -> Vec<String> {
    row_ids(body["items"].as_array().unwrap())
}

#[tokio::test]
async fn audit_filters_select_exactly_the_matching_rows() {
    let w = two_orgs_with_all_roles().await;
    some_history(&w).await;
    let a = &w.a;
    let owner = a.owner();
    let all = audit_rows(owner, &a.id).await;
    assert!(all.len() > 20);
    let pick = |f: &dyn Fn(&Value) -> bool| -> Vec<String> {
        all.iter()
            .filter(|r| f(r))
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let admin_id = a.person("admin").user.id.clone();
    let mid_at = all[all.len() / 2]["at"].as_str().unwrap().to_string();
    let late_at = all[3]["at"].as_str().unwrap().to_string();
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            "action=team.created".into(),
            pick(&|r| r["action"] == "team.created"),
        ),
        (
            "action=team.member_added".into(),
            pick(&|r| r["action"] == "team.member_added"),
        ),
        (
            format!("actor_id={admin_id}"),
            pick(&|r| r["actor"]["id"] == admin_id.as_str()),
        ),
        (
            "resource_type=team".into(),
            pick(&|r| r["resource_type"] == "team"),
        ),
        (
            format!("resource_id={}", a.team_id),
            pick(&|r| r["resource_id"] == a.team_id.as_str()),
        ),
        (
            format!("action=team.created&actor_id={admin_id}"),
            pick(&|r| r["action"] == "team.created" && r["actor"]["id"] == admin_id.as_str()),
        ),
        (
            format!("since={mid_at}"),
            pick(&|r| r["at"].as_str().unwrap() >= mid_at.as_str()),
        ),
        (
            format!("until={mid_at}"),
            pick(&|r| r["at"].as_str().unwrap() < mid_at.as_str()),
        ),
        (
            format!("since={mid_at}&until={late_at}&resource_type=team"),
            pick(&|r| {
                let at = r["at"].as_str().unwrap();
                at >= mid_at.as_str() && at < late_at.as_str() && r["resource_type"] == "team"
            }),
        ),
    ];
    for (q, want) in cases {
        let r = owner.get(&a.path(&format!("/audit?limit=200&{q}"))).await;
        ok(&r, StatusCode::OK);
        assert_eq!(ids_of(&r.body), want, "filter {q}");
        assert!(r.body["next_cursor"].is_null());
        // The export applies the same filter.
        let e = owner
            .get(&a.path(&format!("/audit/export?format=ndjson&{q}")))
            .await;
        ok(&e, StatusCode::OK);
        let got: Vec<String> = e
            .text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(got, want, "export filter {q}");
    }
    assert!(
        pick(&|r| r["action"] == "team.created").len() == 4,
        "fixture team + three"
    );
    // The action filter takes the documented vocabulary only: a typo is an error, not an
    // empty log.
    for bad in [
        "action=no.such",
        "action=auth.login",
        "since=yesterday",
        "until=2024-13-45",
        "limit=0",
        "limit=201",
        "cursor=%%%",
        "cursor=bm90LWEtbnVtYmVy",
    ] {
        let r = owner.get(&a.path(&format!("/audit?{bad}"))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    let r = owner.get(&a.path("/audit/export?format=xml")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cursor_pages_walk_every_row_once_newest_first() {
    let w = two_orgs_with_all_roles().await;
    some_history(&w).await;
    let a = &w.a;
    let owner = a.owner();
    let all = audit_rows(owner, &a.id).await;
    for filter in ["", "&action=team.member_added"] {
        let want: Vec<String> = all
            .iter()
            .filter(|r| filter.is_empty() || r["action"] == "team.member_added")
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let mut got: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => a.path(&format!("/audit?limit=2{filter}&cursor={c}")),
                None => a.path(&format!("/audit?limit=2{filter}")),
            };
            let r = owner.get(&path).await;
            ok(&r, StatusCode::OK);
            let items = r.body["items"].as_array().unwrap();
            pages += 1;
            assert!(items.len() <= 2);
            got.extend(items.iter().cloned());
            match r.body["next_cursor"].as_str() {
                Some(c) => {
                    assert_eq!(items.len(), 2, "only the last page is short");
                    cursor = Some(c.to_string());
                }
                None => break,
            }
            assert!(pages < 200, "pagination does not end");
        }
        let ids = row_ids(&got);
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "duplicates across pages");
        assert_eq!(ids, want, "pages{filter} differ from the full list");
        assert_eq!(pages, want.len().div_ceil(2).max(1));
        for pair in got.windows(2) {
            assert!(
                pair[0]["at"].as_str().unwrap() >= pair[1]["at"].as_str().unwrap(),
                "not newest first: {} then {}",
                pair[0]["at"],
                pair[1]["at"]
            );
        }
    }
}

/// RFC 4180 fields of a CSV document, records ending in CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            _ => field.push(c),
        }
    }
    assert!(field.is_empty() && record.is_empty(), "unterminated record");
    records
}

#[tokio::test]
async fn csv_export_has_a_header_one_line_per_row_and_defuses_formulas() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let owner = a.owner();
    let r = a
        .person("manager")
        .s
        .post(&a.path("/teams"), json!({"name": "=HYPERLINK(\"x\")"}))
        .await;
    ok(&r, StatusCode::CREATED);
    let team = r.body["id"].as_str().unwrap().to_string();
    // Formula-looking User-Agents end up in a cell of their own.
    let formulas = ["=HYPERLINK(\"x\")", "+1+1", "-2+3", "@SUM(A1)"];
    for (i, ua) in formulas.iter().enumerate() {
        let r = reply(
            owner
                .client
                .patch(owner.url(&a.path(&format!("/teams/{team}"))))
                .header("x-csrf-token", &owner.csrf)
                .header("user-agent", *ua)
                .json(&json!({"description": format!("v{i}")}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        ok(&r, StatusCode::OK);
    }
    let list = audit_rows(owner, &a.id).await;
    let csv = owner.get(&a.path("/audit/export?format=csv")).await;
    ok(&csv, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let records = parse_csv(&csv.text);
    assert_eq!(
        records[0],
        [
            "id",
            "at",
            "actor_id",
            "actor_email",
            "action",
            "resource_type",
            "resource_id",
            "ip",
            "user_agent",
            "details"
        ]
    );
    assert_eq!(
        records.len(),
        list.len() + 1,
        "a header and one line per row"
    );
    assert_eq!(csv.text.matches("\r\n").count(), list.len() + 1);
    for (rec, row) in records[1..].iter().zip(&list) {
        assert_eq!(rec.len(), 10);
        assert_eq!(rec[0], row["id"].as_str().unwrap());
        assert_eq!(rec[1], row["at"].as_str().unwrap());
        assert_eq!(rec[2], row["actor"]["id"].as_str().unwrap_or(""));
        assert_eq!(rec[4], row["action"].as_str().unwrap());
        assert_eq!(rec[6], row["resource_id"].as_str().unwrap_or(""));
        for cell in rec {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "formula-looking cell {cell:?} in {rec:?}"
            );
        }
        let ua = row["user_agent"].as_str().unwrap_or("");
        if ua.starts_with(['=', '+', '-', '@']) {
            assert_eq!(rec[8], format!("'{ua}"), "user agent cell is defused");
        } else {
            assert_eq!(rec[8], ua);
            assert_eq!(
                serde_json::from_str::<Value>(&rec[9]).unwrap(),
                row["details"],
                "details cell is the JSON of the row"
            );
        }
    }
    let defused = records[1..]
        .iter()
        .filter(|r| r[8].starts_with('\''))
        .count();
    assert_eq!(defused, formulas.len());
    let created = records[1..]
        .iter()
        .find(|r| r[4] == "team.created" && r[6] == team)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&created[9]).unwrap()["name"],
        "=HYPERLINK(\"x\")"
    );
}

#[tokio::test]
async fn ndjson_export_is_the_list_line_by_line() {
    let w = two_orgs_with_all_roles().await;
    some_history(&w).await;
    let a = &w.a;
    let list = audit_rows(a.owner(), &a.id).await;
    let e = a.owner().get(&a.path("/audit/export?format=ndjson")).await;
    ok(&e, StatusCode::OK);
    assert!(
        e.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/x-ndjson")
    );
    assert!(e.text.ends_with('\n'));
    let lines: Vec<Value> = e
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, list);
    // The default format is NDJSON too.
    let d = a.owner().get(&a.path("/audit/export")).await;
    assert_eq!(d.text, e.text);
}

#[tokio::test]
async fn the_audit_ip_is_the_peer_not_a_forwarded_for_header_from_an_untrusted_peer() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let owner = a.person("owner");
    let before = audit_rows(&owner.s, &a.id).await;
    let r = reply(
        owner
            .s
            .client
            .post(owner.s.url(&a.path("/teams")))
            .header("x-csrf-token", &owner.s.csrf)
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"name": "Forwarded"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    ok(&r, StatusCode::CREATED);
    let added = new_rows(&w, &before).await;
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["ip"], "127.0.0.1");
    assert_eq!(added[0]["user_agent"], owner.ua.as_str());
}

/// `"a.b_c"`-shaped string literals of a source file (audit actions, permissions, ...).
fn dotted_literals(src: &str) -> BTreeSet<String> {
    let dotted = |s: &str| {
        !s.is_empty()
            && s.split('.').count() > 1
            && s.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
    };
    src.split('"')
        .filter(|s| dotted(s))
        .map(str::to_string)
        .collect()
}

/// The vocabulary is a contract integrations filter on: every action the services can
/// write is in the one list in code, and the OpenAPI enum and the README table are that
/// list, no more and no less. (The writer also refuses any other action at run time.)
#[test]
fn every_audit_action_the_code_writes_is_in_the_vocabulary_the_openapi_document_and_the_readme() {
    use xagent::db::repo::resources::ResourceKind;
    use xagent::domain::audit::{INSTANCE_AUDIT_ACTIONS, ORG_AUDIT_ACTIONS};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let org: BTreeSet<String> = ORG_AUDIT_ACTIONS.iter().map(|a| a.to_string()).collect();
    let instance: BTreeSet<String> = INSTANCE_AUDIT_ACTIONS
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        org.len(),
        ORG_AUDIT_ACTIONS.len(),
        "an action is listed twice"
    );
    assert!(org.is_disjoint(&instance), "an action is in both logs");
    let all: BTreeSet<String> = org.union(&instance).cloned().collect();

    // What the services spell out: literals, and `<type>.<verb>` for every resource type.
    let permissions: BTreeSet<String> = xagent::domain::PERMISSIONS
        .iter()
        .map(|p| p.to_string())
        .collect();
    let mut written = BTreeSet::new();
    // Services may be folders of files (`services/metering/`).
    let files = crate::common::files_under(&root.join("src/services"));
    for path in files {
        let src = std::fs::read_to_string(path).unwrap();
        written.extend(
            dotted_literals(&src)
                .into_iter()
                .filter(|l| !permissions.contains(l)),
        );
        for verb in src.split("let action = format!(\"{}.").skip(1) {
            let verb: String = verb
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            for kind in ResourceKind::ALL {
                written.insert(format!("{}.{verb}", kind.share_type()));
            }
        }
    }
    let unlisted: Vec<_> = written.difference(&all).collect();
    assert!(
        unlisted.is_empty(),
        "written but not in domain::audit (add them there, to the README table and to the \
         OpenAPI enum): {unlisted:?}"
    );
    let never: Vec<_> = all.difference(&written).collect();
    assert!(never.is_empty(), "listed but never written: {never:?}");

    // The OpenAPI enum of organization actions, used by the entry and both filters.
    let doc: Value = serde_json::from_str(&xagent::http::api::openapi::DOCUMENT).unwrap();
    let schemas = &doc["components"]["schemas"];
    let listed: Vec<&str> = schemas["AuditAction"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(listed, ORG_AUDIT_ACTIONS, "OpenAPI AuditAction enum");
    assert_eq!(
        schemas["AuditEntry"]["properties"]["action"]["$ref"],
        "#/components/schemas/AuditAction"
    );
    for path in [
        "/api/v1/orgs/{org}/audit",
        "/api/v1/orgs/{org}/audit/export",
    ] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let action = params.iter().find(|p| p["name"] == "action").unwrap();
        assert!(
            action["schema"]
                .to_string()
                .contains("#/components/schemas/AuditAction"),
            "{path}: {action}"
        );
    }

    // The README table: a row for each action, and none for anything else.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("### Audit actions")
        .nth(1)
        .expect("README has an Audit actions section");
    let section = section.split("\n#").next().unwrap();
    let mut in_table = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap();
        in_table.extend(first.split('`').skip(1).step_by(2).map(str::to_string));
    }
    assert_eq!(in_table, all, "README audit actions table");
}
