//! Organization administration: renaming and re-slugging, settings and their validation,
//! the invitation lifetime, and deleting an organization with everything in it.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use xagent::db::repo::audit;

use crate::common::*;
use crate::org_fixture::*;

async fn patch_org(s: &Session, org: &str, body: Value) -> Reply {
    s.send(Method::PATCH, &format!("/api/v1/orgs/{org}"), Some(body))
        .await
}

#[tokio::test]
async fn a_new_slug_moves_the_organization_and_a_taken_slug_is_409() {
    let w = two_orgs_with_all_roles().await;
    let (a, admin) = (&w.a, &w.a.person("admin").s);
    let r = patch_org(admin, &a.slug, json!({"slug": "alpha-renamed"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["slug"], "alpha-renamed");
    assert_eq!(r.body["id"], a.id.as_str());
    assert_eq!(
        admin.get("/api/v1/orgs/alpha-renamed").await.body["id"],
        a.id.as_str()
    );
    let old = admin.get(&format!("/api/v1/orgs/{}", a.slug)).await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(admin.get(&a.path("")).await.status, StatusCode::OK);
    let listed = a.person("guest").s.get("/api/v1/orgs").await;
    assert!(
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == a.id.as_str() && o["slug"] == "alpha-renamed")
    );

    // Another organization's slug (team or personal) is taken.
    for taken in [
        w.b.slug.clone(),
        w.b.person("owner").user.personal_slug.clone(),
    ] {
        let r = patch_org(admin, &a.id, json!({"slug": taken, "name": "Half Done"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{taken}: {}", r.text);
        assert_eq!(r.code(), "slug_taken");
    }
    let now = admin.get(&a.path("")).await;
    assert_eq!(
        now.body["name"], "Alpha Works",
        "nothing of a refused change stays"
    );
    assert_eq!(now.body["slug"], "alpha-renamed");
    // Keeping one's own slug is no conflict; the old slug is free again.
    let r = patch_org(admin, &a.id, json!({"slug": "alpha-renamed"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r =
        w.b.owner()
            .post("/api/v1/orgs", json!({"name": "Reuse", "slug": a.slug}))
            .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    for bad in ["Bad Slug", "admin", "-x", "a_b", "ab"] {
        let r = patch_org(admin, &a.id, json!({"slug": bad})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert!(r.body["error"]["fields"]["slug"].is_string(), "{}", r.text);
    }
    let r = patch_org(admin, &a.id, json!({"name": "   "})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["error"]["fields"]["name"].is_string(), "{}", r.text);
    let r = patch_org(admin, &a.id, json!({"colour": "red"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = patch_org(admin, &a.id, json!({"name": "Alpha Works Two"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "Alpha Works Two");
    assert_eq!(r.body["role"], "admin");
}

#[tokio::test]
async fn settings_accept_known_keys_in_range_and_refuse_the_rest() {
    let w = two_orgs_with_all_roles().await;
    let (a, owner) = (&w.a, w.a.owner());
    let defaults = owner.get(&a.path("")).await.body["settings"].clone();
    for bad in [
        json!({"colour": "red"}),
        json!({"invitation_ttl_days": 0}),
        json!({"invitation_ttl_days": 91}),
        json!({"invitation_ttl_days": -1}),
        json!({"invitation_ttl_days": 1.5}),
        json!({"invitation_ttl_days": "7"}),
        json!({"invitation_ttl_days": null}),
        json!({"audit_retention_days": 0}),
        json!({"audit_retention_days": 36_501}),
        json!({"invitation_ttl_days": 3, "unknown": true}),
        json!([1]),
        json!("x"),
    ] {
        let r = patch_org(owner, &a.id, json!({"settings": bad})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_eq!(r.code(), "validation_failed", "{bad}");
        assert!(
            r.body["error"]["fields"]["settings"].is_string(),
            "{}",
            r.text
        );
    }
    assert_eq!(
        owner.get(&a.path("")).await.body["settings"],
        defaults,
        "refused settings changed nothing"
    );

    let r = patch_org(
        owner,
        &a.id,
        json!({"settings": {"invitation_ttl_days": 90, "audit_retention_days": 30}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["settings"]["invitation_ttl_days"], 90);
    assert_eq!(r.body["settings"]["audit_retention_days"], 30);
    // Partial updates keep the other keys.
    let r = patch_org(
        owner,
        &a.id,
        json!({"settings": {"audit_retention_days": null}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let shown = owner.get(&a.path("")).await.body["settings"].clone();
    assert_eq!(shown["invitation_ttl_days"], 90);
    assert!(shown["audit_retention_days"].is_null());
    let r = patch_org(
        owner,
        &a.id,
        json!({"settings": {"invitation_ttl_days": 1}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["settings"]["invitation_ttl_days"], 1);
}

fn days_from_now(expires_at: &str) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(expires_at).unwrap();
    let d = t.signed_duration_since(chrono::Utc::now());
    d.num_seconds() as f64 / 86_400.0
}

#[tokio::test]
async fn the_invitation_lifetime_setting_decides_when_new_invitations_expire() {
    let w = two_orgs_with_all_roles().await;
    let (a, owner) = (&w.a, w.a.owner());
    let r = owner
        .post(
            &a.path("/invitations"),
            json!({"email": "seven@alpha.example", "role": "guest"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let first = r.body["expires_at"].as_str().unwrap().to_string();
    let d = days_from_now(&first);
    assert!(
        (6.99..=7.0).contains(&d),
        "default lifetime 7 days, got {d}"
    );
    for ttl in [3, 30, 90, 1] {
        let r = patch_org(
            owner,
            &a.id,
            json!({"settings": {"invitation_ttl_days": ttl}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = owner
            .post(
                &a.path("/invitations"),
                json!({"email": format!("ttl{ttl}@alpha.example"), "role": "guest"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let d = days_from_now(r.body["expires_at"].as_str().unwrap());
        let ttl = f64::from(ttl);
        assert!(
            (ttl - 0.01..=ttl).contains(&d),
            "ttl {ttl}: expires in {d} days"
        );
    }
    // Invitations made before keep their expiry.
    let list = owner.get(&a.path("/invitations")).await;
    let seven = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == "seven@alpha.example")
        .unwrap()
        .clone();
    assert_eq!(seven["expires_at"], first.as_str());
    // Another organization's setting is its own.
    let r =
        w.b.owner()
            .post(
                &w.b.path("/invitations"),
                json!({"email": "other@bravo.example", "role": "guest"}),
            )
            .await;
    let d = days_from_now(r.body["expires_at"].as_str().unwrap());
    assert!((6.99..=7.0).contains(&d), "org B still 7 days, got {d}");
}

/// Rows of `table` belonging to `org`, read from the database file directly.
async fn rows_in(app: &TestApp, table: &'static str, org: &str) -> i64 {
    let db = app.data_dir().join("xagent.db");
    let org = org.to_string();
    tokio::task::spawn_blocking(move || {
        let c =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        c.query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE organization_id = ?1"),
            [org],
            |r| r.get(0),
        )
        .unwrap()
    })
    .await
    .unwrap()
}

const TENANT_TABLES: [&str; 6] = [
    "organization_members",
    "organization_invitations",
    "teams",
    "team_members",
    "api_tokens",
    "organization_audit_logs",
];

#[tokio::test]
async fn deleting_an_organization_takes_it_away_from_everyone_with_everything_in_it() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let owner = a.person("owner");
    let (_, member_token) = token_for(&w.app, &a.person("member").s, &a.id, "member-ci").await;
    let (_, owner_token) = token_for(&w.app, &owner.s, &a.id, "owner-ci").await;
    let (_, personal_token) =
        token_for(&w.app, &owner.s, &owner.user.personal_org, "personal-ci").await;
    for t in TENANT_TABLES {
        assert!(rows_in(&w.app, t, &a.id).await > 0, "{t} has rows of A");
    }
    let b_before = audit_rows(w.b.owner(), &w.b.id).await;
    let b_members = member_roles(w.b.owner(), &w.b.id).await;

    let r = a.person("admin").s.delete(&a.path("")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "owner_required");
    let r = owner.s.delete(&a.path("")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    for p in &a.people {
        let orgs = p.s.get("/api/v1/orgs").await;
        let ids: Vec<&str> = orgs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![p.user.personal_org.as_str()], "{}", p.role);
        for path in [
            a.path(""),
            a.path("/members"),
            a.path("/teams"),
            a.path("/audit"),
            format!("/api/v1/orgs/{}", a.slug),
        ] {
            let r = p.s.get(&path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{} {path}", p.role);
        }
        let me = p.s.get("/api/v1/me").await;
        assert_ne!(me.body["current_organization_id"], a.id.as_str());
    }
    for t in [&member_token, &owner_token] {
        for path in [a.path(""), "/api/v1/me".to_string()] {
            let r = t.get(&path).await;
            assert!(
                r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::NOT_FOUND,
                "token of the deleted org on {path}: {} {}",
                r.status,
                r.text
            );
        }
    }
    assert_eq!(
        personal_token.get("/api/v1/me").await.status,
        StatusCode::OK
    );
    // The pending invitation went with it.
    let (_, s) = new_person(&w.app, &a.pending_invitation_email, "Too Late").await;
    let r = accept(&s, &a.pending_invitation_token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "invitation_invalid");

    // Nothing of it is left in the database, its audit log included ...
    for t in TENANT_TABLES {
        assert_eq!(
            rows_in(&w.app, t, &a.id).await,
            0,
            "{t} still has rows of A"
        );
    }
    // ... while the instance log records who deleted it.
    let rows = w
        .app
        .db
        .read(|tx| audit::recent_instance(tx, 50))
        .await
        .unwrap();
    let deleted: Vec<_> = rows
        .iter()
        .filter(|r| r.action == "organization.deleted")
        .collect();
    assert_eq!(deleted.len(), 1, "{rows:#?}");
    assert_eq!(deleted[0].resource_id.as_deref(), Some(a.id.as_str()));
    assert_eq!(deleted[0].actor_id.as_deref(), Some(owner.user.id.as_str()));
    assert_eq!(deleted[0].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(deleted[0].user_agent.as_deref(), Some(owner.ua.as_str()));
    assert_eq!(deleted[0].details["name"], "Alpha Works");

    // Org B is untouched.
    assert_eq!(audit_rows(w.b.owner(), &w.b.id).await, b_before);
    assert_eq!(member_roles(w.b.owner(), &w.b.id).await, b_members);
}

#[tokio::test]
async fn only_an_owner_deletes_and_never_a_personal_organization() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    for p in &a.people[1..] {
        let r = p.s.delete(&a.path("")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}: {}", p.role, r.text);
        assert_eq!(r.code(), "owner_required", "{}", p.role);
    }
    for p in &a.people {
        let r =
            p.s.delete(&format!("/api/v1/orgs/{}", p.user.personal_org))
                .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}: {}", p.role, r.text);
        assert_eq!(r.code(), "personal_organization");
        assert_eq!(
            p.s.get(&format!("/api/v1/orgs/{}", p.user.personal_org))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(a.owner().get(&a.path("")).await.status, StatusCode::OK);
    assert_eq!(member_roles(a.owner(), &a.id).await.len(), 6);
    // An owner's API token for org A cannot reach org B, whose owner is someone else.
    let (_, t) = token_for(&w.app, a.owner(), &a.id, "owner-ci").await;
    let r = t
        .send(Method::DELETE, &format!("/api/v1/orgs/{}", w.b.id), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(w.b.owner().get(&w.b.path("")).await.status, StatusCode::OK);
}

/// Walks a list with `?limit=2` and returns the ids in order, checking page shape.
async fn walk_pages(s: &Session, path: &str, id: impl Fn(&Value) -> String) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=2&cursor={c}"),
            None => format!("{path}?limit=2"),
        };
        let r = s.get(&url).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.text);
        let items = r.body["items"].as_array().unwrap();
        assert!(
            items.len() <= 2,
            "{path}: limit=2 gave {} items",
            items.len()
        );
        out.extend(items.iter().map(&id));
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("{path}: pagination does not end");
}

/// API.md, General: lists take `?limit=` (default 50, max 200) and `?cursor=`.
#[tokio::test]
async fn the_member_team_and_invitation_lists_page_with_limit_and_cursor() {
    let w = two_orgs_with_all_roles().await;
    let (a, owner) = (&w.a, w.a.owner());
    for i in 0..3 {
        let r = owner
            .post(&a.path("/teams"), json!({"name": format!("Extra {i}")}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        invite(owner, &a.id, &format!("extra{i}@alpha.example"), "guest").await;
    }
    let mut failures = Vec::new();
    for (list, field) in [
        ("/members", "/user/id"),
        ("/teams", "/id"),
        ("/invitations", "/id"),
    ] {
        let path = a.path(list);
        let full = owner.get(&path).await;
        let all: Vec<String> = full.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.pointer(field).unwrap().as_str().unwrap().to_string())
            .collect();
        assert!(all.len() >= 4, "{list}");
        let one = owner.get(&format!("{path}?limit=1")).await;
        let n = one.body["items"].as_array().map_or(0, Vec::len);
        if n != 1 || !one.body["next_cursor"].is_string() {
            failures.push(format!(
                "{list}?limit=1 gave {n} items, next_cursor {}",
                one.body["next_cursor"]
            ));
            continue;
        }
        let big = owner.get(&format!("{path}?limit=201")).await;
        if big.status != StatusCode::BAD_REQUEST {
            failures.push(format!("{list}?limit=201 gave {}", big.status));
        }
        let walked = walk_pages(owner, &path, |i| {
            i.pointer(field).unwrap().as_str().unwrap().to_string()
        })
        .await;
        if walked != all {
            failures.push(format!("{list}: pages {walked:?} != list {all:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
