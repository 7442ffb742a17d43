//! Roles × actions: what each of the six default roles may do in the organization layer,
//! as one table (a changed default fails here loudly), and the guard rails of
//! ARCHITECTURE §3 with their exact statuses and error codes.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;
use crate::org_fixture::*;

const ACTIONS: [&str; 19] = [
    "get org",
    "patch org",
    "delete org",
    "list members",
    "get member",
    "patch member role",
    "remove member",
    "invite",
    "list invitations",
    "cancel invitation",
    "list teams",
    "create team",
    "get team",
    "patch team",
    "delete team",
    "add team member",
    "remove team member",
    "audit list",
    "audit export",
];

/// The expected status of each action (columns in `ACTIONS` order) for each role.
#[rustfmt::skip]
const MATRIX: [(&str, [u16; 19]); 6] = [
    //           get  patch del  lsM  getM role rmM  inv  lsI  cnI  lsT  mkT  getT patT delT addT rmT  aud  exp
    ("owner",   [200, 200, 204, 200, 200, 200, 204, 201, 200, 204, 200, 201, 200, 200, 204, 201, 204, 200, 200]),
    ("admin",   [200, 200, 403, 200, 200, 200, 204, 201, 200, 204, 200, 201, 200, 200, 204, 201, 204, 200, 200]),
    ("manager", [200, 403, 403, 200, 200, 403, 403, 201, 200, 204, 200, 201, 200, 200, 204, 201, 204, 403, 403]),
    ("member",  [200, 403, 403, 200, 200, 403, 403, 403, 403, 403, 200, 403, 200, 403, 403, 403, 403, 403, 403]),
    ("viewer",  [200, 403, 403, 200, 200, 403, 403, 403, 403, 403, 200, 403, 200, 403, 403, 403, 403, 403, 403]),
    ("guest",   [200, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403]),
];

/// The error code a refusal of `action` must carry.
fn refusal_code(action: &str) -> &'static str {
    if action == "delete org" {
        "owner_required"
    } else {
        "permission_denied"
    }
}

/// Makes sure `target` is a guest member of the org (re-inviting after a removal).
async fn ensure_guest_member(org: &Org, target: &TestUser, target_s: &Session) {
    let owner = org.owner();
    match role_of(owner, &org.id, &target.id).await.as_deref() {
        Some("guest") => {}
        Some(_) => {
            let r = owner
                .send(
                    Method::PATCH,
                    &org.path(&format!("/members/{}", target.id)),
                    Some(json!({"role": "guest"})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        None => invite_and_join(owner, &org.id, &target.email, "guest", target_s).await,
    }
}

#[tokio::test]
async fn each_role_gets_exactly_the_statuses_of_the_default_permission_table() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let owner = a.owner();
    let (target, target_s) = new_person(&w.app, "target@alpha.example", "Alpha Target").await;
    ensure_guest_member(a, &target, &target_s).await;
    let owner_id = a.person("owner").user.id.clone();

    let mut got: Vec<(&str, Vec<Reply>)> = Vec::new();
    for person in &a.people {
        let role = person.role;
        let s = &person.s;
        let mut row: Vec<Reply> = Vec::new();

        row.push(s.get(&a.path("")).await);
        row.push(
            s.send(
                Method::PATCH,
                &a.path(""),
                Some(json!({"settings": {"invitation_ttl_days": 7}})),
            )
            .await,
        );
        // Delete: a throwaway organization in which the person has the same role.
        let throwaway = if role == "owner" {
            create_org(s, "Throwaway", "throwaway-owner").await.0
        } else {
            let (id, _) = create_org(owner, "Throwaway", &format!("throwaway-{role}")).await;
            invite_and_join(owner, &id, &person.user.email, role, s).await;
            id
        };
        row.push(s.delete(&format!("/api/v1/orgs/{throwaway}")).await);
        row.push(s.get(&a.path("/members")).await);
        row.push(s.get(&a.path(&format!("/members/{owner_id}"))).await);

        ensure_guest_member(a, &target, &target_s).await;
        row.push(
            s.send(
                Method::PATCH,
                &a.path(&format!("/members/{}", target.id)),
                Some(json!({"role": "viewer"})),
            )
            .await,
        );
        ensure_guest_member(a, &target, &target_s).await;
        row.push(s.delete(&a.path(&format!("/members/{}", target.id))).await);
        ensure_guest_member(a, &target, &target_s).await;

        row.push(
            s.post(
                &a.path("/invitations"),
                json!({"email": format!("invitee-{role}@alpha.example"), "role": "guest"}),
            )
            .await,
        );
        row.push(s.get(&a.path("/invitations")).await);
        let (inv, _) = invite(
            owner,
            &a.id,
            &format!("cancel-{role}@alpha.example"),
            "guest",
        )
        .await;
        row.push(s.delete(&a.path(&format!("/invitations/{inv}"))).await);

        row.push(s.get(&a.path("/teams")).await);
        row.push(
            s.post(
                &a.path("/teams"),
                json!({"name": format!("Made by {role}")}),
            )
            .await,
        );
        row.push(s.get(&a.path(&format!("/teams/{}", a.team_id))).await);
        row.push(
            s.send(
                Method::PATCH,
                &a.path(&format!("/teams/{}", a.team_id)),
                Some(json!({"description": format!("touched by {role}")})),
            )
            .await,
        );
        let doomed = owner
            .post(&a.path("/teams"), json!({"name": format!("Doomed {role}")}))
            .await;
        assert_eq!(doomed.status, StatusCode::CREATED, "{}", doomed.text);
        row.push(
            s.delete(&a.path(&format!("/teams/{}", doomed.body["id"].as_str().unwrap())))
                .await,
        );
        let team_member = a.path(&format!("/teams/{}/members/{}", a.team_id, target.id));
        let _ = owner.delete(&team_member).await;
        row.push(s.put(&team_member, json!({})).await);
        let put = owner.put(&team_member, json!({})).await;
        assert!(put.status.is_success(), "{}", put.text);
        row.push(s.delete(&team_member).await);

        row.push(s.get(&a.path("/audit")).await);
        row.push(s.get(&a.path("/audit/export?format=csv")).await);
        assert_eq!(row.len(), ACTIONS.len());
        got.push((role, row));
    }

    let mut wrong = Vec::new();
    for ((role, expected), (got_role, replies)) in MATRIX.iter().zip(&got) {
        assert_eq!(role, got_role);
        for ((action, want), reply) in ACTIONS.iter().zip(expected).zip(replies) {
            if reply.status.as_u16() != *want {
                wrong.push(format!(
                    "{role} × {action}: expected {want}, got {} {}",
                    reply.status.as_u16(),
                    reply.text.chars().take(200).collect::<String>()
                ));
            } else if *want == 403 && reply.code() != refusal_code(action) {
                wrong.push(format!(
                    "{role} × {action}: expected code {}, got {:?}",
                    refusal_code(action),
                    reply.code()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "role matrix mismatches:\n{}",
        wrong.join("\n")
    );
}

/// The organization-layer permissions each role holds by default.
#[rustfmt::skip]
const ORG_LAYER_DEFAULTS: [(&str, &[&str]); 6] = [
    ("owner",   &["org.view", "org.update", "org.delete", "members.view", "members.invite", "members.manage", "teams.view", "teams.manage", "audit.view"]),
    ("admin",   &["org.view", "org.update", "members.view", "members.invite", "members.manage", "teams.view", "teams.manage", "audit.view"]),
    ("manager", &["org.view", "members.view", "members.invite", "teams.view", "teams.manage"]),
    ("member",  &["org.view", "members.view", "teams.view"]),
    ("viewer",  &["org.view", "members.view", "teams.view"]),
    ("guest",   &["org.view"]),
];

fn org_layer(perms: &Value) -> Vec<String> {
    let layer = ["org.", "members.", "teams.", "audit."];
    let mut out: Vec<String> = perms
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .filter(|p| layer.iter().any(|l| p.starts_with(l)))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn the_roles_endpoint_and_each_members_permissions_match_the_default_table() {
    let w = two_orgs_with_all_roles().await;
    let roles = w.a.owner().get("/api/v1/roles").await;
    assert_eq!(roles.status, StatusCode::OK);
    let items = roles.body["items"].as_array().unwrap();
    let listed: Vec<&str> = items.iter().map(|i| i["role"].as_str().unwrap()).collect();
    assert_eq!(listed, ROLES, "roles, highest first");
    for (role, want) in ORG_LAYER_DEFAULTS {
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        let item = items.iter().find(|i| i["role"] == role).unwrap();
        assert_eq!(org_layer(&item["permissions"]), want, "/roles for {role}");
        // What the member is told about themselves in the org is the same set.
        let me = w.a.person(role).s.get(&w.a.path("")).await;
        assert_eq!(me.body["role"], role);
        assert_eq!(
            org_layer(&me.body["permissions"]),
            want,
            "GET org as {role}"
        );
    }
}

async fn patch_member(s: &Session, org: &Org, user: &str, body: Value) -> Reply {
    s.send(
        Method::PATCH,
        &org.path(&format!("/members/{user}")),
        Some(body),
    )
    .await
}

fn refused(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
}

#[tokio::test]
async fn only_owners_make_owners_and_nobody_grants_a_role_above_their_own() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let (owner, admin, manager) = (
        &a.person("owner").s,
        &a.person("admin").s,
        &a.person("manager").s,
    );
    let member = &a.person("member").user;
    let admin_u = &a.person("admin").user;
    let viewer_u = &a.person("viewer").user;

    // Admin: cannot make an owner, neither by role change nor by invitation.
    let r = patch_member(admin, a, &member.id, json!({"role": "owner"})).await;
    refused(&r, StatusCode::FORBIDDEN, "owner_required");
    let r = admin
        .post(
            &a.path("/invitations"),
            json!({"email": "boss@alpha.example", "role": "owner"}),
        )
        .await;
    refused(&r, StatusCode::FORBIDDEN, "owner_required");

    // Manager: invites up to manager, not admin.
    let r = manager
        .post(
            &a.path("/invitations"),
            json!({"email": "new-admin@alpha.example", "role": "admin"}),
        )
        .await;
    refused(&r, StatusCode::FORBIDDEN, "role_above_own");
    let r = manager
        .post(
            &a.path("/invitations"),
            json!({"email": "new-manager@alpha.example", "role": "manager"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // A manager given members.manage still cannot grant above manager, nor touch an admin.
    let r = patch_member(
        owner,
        a,
        &a.person("manager").user.id,
        json!({"permissions": {"members.manage": true}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = patch_member(manager, a, &member.id, json!({"role": "admin"})).await;
    refused(&r, StatusCode::FORBIDDEN, "role_above_own");
    let r = patch_member(manager, a, &admin_u.id, json!({"role": "viewer"})).await;
    refused(&r, StatusCode::FORBIDDEN, "role_above_own");
    let r = manager
        .delete(&a.path(&format!("/members/{}", admin_u.id)))
        .await;
    refused(&r, StatusCode::FORBIDDEN, "role_above_own");
    let r = patch_member(manager, a, &viewer_u.id, json!({"role": "manager"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["role"], "manager");

    // Nothing refused changed anything.
    assert_eq!(
        role_of(owner, &a.id, &member.id).await.as_deref(),
        Some("member")
    );
    assert_eq!(
        role_of(owner, &a.id, &admin_u.id).await.as_deref(),
        Some("admin")
    );
    let pending: Vec<String> = owner.get(&a.path("/invitations")).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap().to_string())
        .collect();
    assert!(!pending.contains(&"boss@alpha.example".to_string()));
    assert!(!pending.contains(&"new-admin@alpha.example".to_string()));

    // An owner can make an owner.
    let r = patch_member(owner, a, &member.id, json!({"role": "owner"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["role"], "owner");
    let r = owner
        .post(
            &a.path("/invitations"),
            json!({"email": "boss@alpha.example", "role": "owner"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn an_admin_can_neither_change_nor_remove_an_owner() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let admin = &a.person("admin").s;
    let owner_id = &a.person("owner").user.id;
    let r = patch_member(admin, a, owner_id, json!({"role": "admin"})).await;
    refused(&r, StatusCode::FORBIDDEN, "owner_protected");
    let r = patch_member(
        admin,
        a,
        owner_id,
        json!({"permissions": {"audit.view": false}}),
    )
    .await;
    refused(&r, StatusCode::FORBIDDEN, "owner_protected");
    let r = admin.delete(&a.path(&format!("/members/{owner_id}"))).await;
    refused(&r, StatusCode::FORBIDDEN, "owner_protected");
    let me = a
        .owner()
        .get(&a.path(&format!("/members/{owner_id}")))
        .await;
    assert_eq!(me.body["role"], "owner");
    assert_eq!(me.body["permissions"], json!({}));
}

#[tokio::test]
async fn permissions_above_your_own_and_unknown_paths_are_refused() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let (owner, admin) = (&a.person("owner").s, &a.person("admin").s);
    let member = &a.person("member").user;
    let r = patch_member(
        admin,
        a,
        &member.id,
        json!({"permissions": {"billing.manage": true}}),
    )
    .await;
    refused(&r, StatusCode::FORBIDDEN, "permission_above_own");
    let r = patch_member(
        admin,
        a,
        &member.id,
        json!({"permissions": {"org.delete": true}}),
    )
    .await;
    refused(&r, StatusCode::FORBIDDEN, "permission_above_own");
    // org.delete belongs to owners; not even an owner can hand it out.
    let r = patch_member(
        owner,
        a,
        &member.id,
        json!({"permissions": {"org.delete": true}}),
    )
    .await;
    refused(&r, StatusCode::FORBIDDEN, "owner_required");
    let r = patch_member(
        owner,
        a,
        &member.id,
        json!({"permissions": {"members.destroy": true}}),
    )
    .await;
    refused(&r, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(
        r.body["error"]["fields"]["permissions"].is_string(),
        "{}",
        r.text
    );
    let r = patch_member(
        owner,
        a,
        &member.id,
        json!({"permissions": {"audit.view": "yes"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // A role change together with a refused grant is refused as a whole.
    let r = patch_member(
        admin,
        a,
        &member.id,
        json!({"role": "viewer", "permissions": {"billing.manage": true}}),
    )
    .await;
    refused(&r, StatusCode::FORBIDDEN, "permission_above_own");
    let m = owner.get(&a.path(&format!("/members/{}", member.id))).await;
    assert_eq!(m.body["role"], "member", "the role change was rolled back");
    assert_eq!(m.body["permissions"], json!({}));
    // Denying is always allowed, and granting what you hold too.
    let r = patch_member(
        admin,
        a,
        &member.id,
        json!({"permissions": {"audit.view": true, "teams.view": false}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["permissions"],
        json!({"audit.view": true, "teams.view": false})
    );
}

#[tokio::test]
async fn two_owners_may_demote_each_other_but_the_last_owner_stays() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let (first, second) = (&a.person("owner"), &a.person("admin"));
    let r = patch_member(&first.s, a, &second.user.id, json!({"role": "owner"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The second owner demotes the first.
    let r = patch_member(&second.s, a, &first.user.id, json!({"role": "admin"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["role"], "admin");
    // The demoted one is an admin now, and admins do not touch owners.
    let r = patch_member(&first.s, a, &second.user.id, json!({"role": "admin"})).await;
    refused(&r, StatusCode::FORBIDDEN, "owner_protected");
    // The remaining owner can neither demote nor remove themselves.
    let r = patch_member(&second.s, a, &second.user.id, json!({"role": "admin"})).await;
    refused(&r, StatusCode::CONFLICT, "last_owner");
    let r = second
        .s
        .delete(&a.path(&format!("/members/{}", second.user.id)))
        .await;
    refused(&r, StatusCode::CONFLICT, "last_owner");
    let owners: Vec<String> = member_roles(&second.s, &a.id)
        .await
        .into_iter()
        .filter(|(_, r)| r == "owner")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(owners, vec![second.user.id.clone()]);
}

#[tokio::test]
async fn the_single_owner_can_neither_step_down_nor_leave() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let owner = &a.person("owner");
    let r = patch_member(&owner.s, a, &owner.user.id, json!({"role": "admin"})).await;
    refused(&r, StatusCode::CONFLICT, "last_owner");
    let r = owner
        .s
        .delete(&a.path(&format!("/members/{}", owner.user.id)))
        .await;
    refused(&r, StatusCode::CONFLICT, "last_owner");
    assert_eq!(
        role_of(&owner.s, &a.id, &owner.user.id).await.as_deref(),
        Some("owner")
    );
}

#[tokio::test]
async fn overrides_grant_and_deny_single_permissions_with_immediate_effect() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let owner = a.owner();
    let member = &a.person("member");
    assert_eq!(
        member.s.get(&a.path("/audit")).await.status,
        StatusCode::FORBIDDEN
    );
    let r = patch_member(
        owner,
        a,
        &member.user.id,
        json!({"permissions": {"audit.view": true}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let audit = member.s.get(&a.path("/audit")).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    assert!(!audit.body["items"].as_array().unwrap().is_empty());
    let export = member.s.get(&a.path("/audit/export?format=ndjson")).await;
    assert_eq!(export.status, StatusCode::OK);
    let show = member.s.get(&a.path("")).await;
    assert!(
        show.body["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "audit.view")
    );

    // Denying members.view to the member closes the member list at once.
    let r = patch_member(
        owner,
        a,
        &member.user.id,
        json!({"permissions": {"members.view": false}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let list = member.s.get(&a.path("/members")).await;
    refused(&list, StatusCode::FORBIDDEN, "permission_denied");
    let one = member
        .s
        .get(&a.path(&format!("/members/{}", member.user.id)))
        .await;
    refused(&one, StatusCode::FORBIDDEN, "permission_denied");
    // The overrides replace each other: audit.view is gone again.
    assert_eq!(
        member.s.get(&a.path("/audit")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(member.s.get(&a.path("")).await.status, StatusCode::OK);
    let r = patch_member(owner, a, &member.user.id, json!({"permissions": {}})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        member.s.get(&a.path("/members")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_removed_member_loses_the_organization_at_once_by_session_and_by_token() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let member = &a.person("member");
    let (token_id, token) = token_for(&w.app, &member.s, &a.id, "member-ci").await;
    assert_eq!(token.get(&a.path("")).await.status, StatusCode::OK);
    assert_eq!(token.get(&a.path("/teams")).await.status, StatusCode::OK);
    assert_eq!(
        member.s.get(&a.path("/members")).await.status,
        StatusCode::OK
    );

    let r = a
        .person("admin")
        .s
        .delete(&a.path(&format!("/members/{}", member.user.id)))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    for path in [
        a.path(""),
        a.path("/members"),
        a.path("/teams"),
        a.path(&format!("/teams/{}", a.team_id)),
        format!("/api/v1/orgs/{}", a.slug),
    ] {
        let r = member.s.get(&path).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "session {path}: {}",
            r.text
        );
        let r = token.get(&path).await;
        // The token is revoked with the membership (401); it must never answer.
        assert!(
            r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::NOT_FOUND,
            "token {path}: {} {}",
            r.status,
            r.text
        );
    }
    let orgs = member.s.get("/api/v1/orgs").await;
    assert!(
        !orgs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == a.id.as_str())
    );
    let tokens = member.s.get("/api/v1/me/tokens").await;
    let t = tokens.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == token_id.as_str())
        .unwrap()
        .clone();
    assert!(t["revoked_at"].is_string(), "token not revoked: {t}");
    // The team lost them too.
    let team = a
        .owner()
        .get(&a.path(&format!("/teams/{}", a.team_id)))
        .await;
    assert!(
        !team.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == member.user.id.as_str())
    );
}

#[tokio::test]
async fn a_demoted_admin_loses_members_manage_at_once() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let admin = &a.person("admin");
    let viewer = &a.person("viewer").user;
    assert_eq!(admin.s.get(&a.path("/audit")).await.status, StatusCode::OK);
    let r = patch_member(a.owner(), a, &admin.user.id, json!({"role": "member"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = patch_member(&admin.s, a, &viewer.id, json!({"role": "guest"})).await;
    refused(&r, StatusCode::FORBIDDEN, "permission_denied");
    let r = admin
        .s
        .delete(&a.path(&format!("/members/{}", viewer.id)))
        .await;
    refused(&r, StatusCode::FORBIDDEN, "permission_denied");
    let r = admin.s.get(&a.path("/audit")).await;
    refused(&r, StatusCode::FORBIDDEN, "permission_denied");
    let r = admin
        .s
        .send(
            Method::PATCH,
            &a.path(""),
            Some(json!({"name": "Hijacked"})),
        )
        .await;
    refused(&r, StatusCode::FORBIDDEN, "permission_denied");
    let show = admin.s.get(&a.path("")).await;
    assert_eq!(show.body["role"], "member");
    assert!(
        !show.body["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "members.manage")
    );
    assert_eq!(
        role_of(a.owner(), &a.id, &viewer.id).await.as_deref(),
        Some("viewer")
    );
}

#[tokio::test]
async fn every_role_may_leave_but_the_last_owner_may_not() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    for p in a.people.iter().rev() {
        let r =
            p.s.delete(&a.path(&format!("/members/{}", p.user.id)))
                .await;
        if p.role == "owner" {
            refused(&r, StatusCode::CONFLICT, "last_owner");
            continue;
        }
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "{} leaves: {}",
            p.role,
            r.text
        );
        assert_eq!(p.s.get(&a.path("")).await.status, StatusCode::NOT_FOUND);
    }
    let left = member_roles(a.owner(), &a.id).await;
    assert_eq!(
        left,
        vec![(a.person("owner").user.id.clone(), "owner".to_string())]
    );
}

#[tokio::test]
async fn invitation_rules_hold() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let owner = a.owner();
    // Someone who is a member already.
    let r = owner
        .post(
            &a.path("/invitations"),
            json!({"email": a.person("viewer").user.email, "role": "member"}),
        )
        .await;
    refused(&r, StatusCode::CONFLICT, "already_member");
    // A personal organization has no other members.
    let personal = &a.person("owner").user.personal_org;
    let r = owner
        .post(
            &format!("/api/v1/orgs/{personal}/invitations"),
            json!({"email": "friend@alpha.example", "role": "member"}),
        )
        .await;
    refused(&r, StatusCode::CONFLICT, "personal_organization");

    // Someone else's invitation.
    let (newbie, newbie_s) = new_person(&w.app, "newbie@alpha.example", "Newbie").await;
    let (_, token) = invite(owner, &a.id, &newbie.email, "member").await;
    let r = accept(&a.person("guest").s, &token).await;
    refused(&r, StatusCode::FORBIDDEN, "invitation_email_mismatch");
    let r = accept(w.b.owner(), &token).await;
    refused(&r, StatusCode::FORBIDDEN, "invitation_email_mismatch");
    assert_eq!(
        w.b.owner().get(&a.path("")).await.status,
        StatusCode::NOT_FOUND
    );
    // Unknown, then used.
    let r = accept(&newbie_s, "xa_inv_not-a-real-token").await;
    refused(&r, StatusCode::NOT_FOUND, "invitation_invalid");
    let r = accept(&newbie_s, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["role"], "member");
    assert_eq!(r.body["organization"]["id"], a.id.as_str());
    let r = accept(&newbie_s, &token).await;
    refused(&r, StatusCode::NOT_FOUND, "invitation_invalid");

    // Cancelled.
    let (late, late_s) = new_person(&w.app, "late@alpha.example", "Late").await;
    let (inv, token) = invite(owner, &a.id, &late.email, "viewer").await;
    let r = owner.delete(&a.path(&format!("/invitations/{inv}"))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = accept(&late_s, &token).await;
    refused(&r, StatusCode::NOT_FOUND, "invitation_invalid");
    let r = owner.delete(&a.path(&format!("/invitations/{inv}"))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "cancelling twice");
    // Replaced by a newer invitation of the same email.
    let (_, old) = invite(owner, &a.id, &late.email, "viewer").await;
    let (_, new) = invite(owner, &a.id, &late.email, "member").await;
    let r = accept(&late_s, &old).await;
    refused(&r, StatusCode::NOT_FOUND, "invitation_invalid");
    // Expired (moved into the past directly in the database).
    let (inv, token) = invite(owner, &a.id, &late.email, "viewer").await;
    let db = w.app.data_dir().join("xagent.db");
    let inv2 = inv.clone();
    tokio::task::spawn_blocking(move || {
        let c = rusqlite::Connection::open(db).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        let n = c
            .execute(
                "UPDATE organization_invitations SET expires_at = '2000-01-01T00:00:00.000000Z'
                 WHERE id = ?1",
                [&inv2],
            )
            .unwrap();
        assert_eq!(n, 1);
    })
    .await
    .unwrap();
    let r = accept(&late_s, &token).await;
    refused(&r, StatusCode::NOT_FOUND, "invitation_invalid");
    let listed = owner.get(&a.path("/invitations")).await;
    assert!(
        !listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == inv.as_str()),
        "expired invitations are not pending"
    );
    let r = accept(&late_s, &new).await;
    refused(&r, StatusCode::NOT_FOUND, "invitation_invalid");
    assert_eq!(late_s.get(&a.path("")).await.status, StatusCode::NOT_FOUND);

    // An API token cannot accept invitations.
    let (_, t) = token_for(&w.app, &newbie_s, &newbie.personal_org, "ci").await;
    let (_, token) = invite(owner, &a.id, "another@alpha.example", "guest").await;
    let r = t
        .send(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await;
    refused(&r, StatusCode::FORBIDDEN, "session_required");
}

#[tokio::test]
async fn only_organization_members_join_teams() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let outsider = &w.b.person("member").user;
    let (stranger, _) = new_person(&w.app, "stranger@example.com", "Stranger").await;
    for id in [&outsider.id, &stranger.id, &"not-a-uuid".to_string()] {
        let r = a
            .owner()
            .put(
                &a.path(&format!("/teams/{}/members/{id}", a.team_id)),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.text);
    }
    let team = a
        .owner()
        .get(&a.path(&format!("/teams/{}", a.team_id)))
        .await;
    assert_eq!(team.body["members"].as_array().unwrap().len(), 6);
    // Adding twice is idempotent: 201 then 200.
    let (late, late_s) = new_person(&w.app, "late@alpha.example", "Late").await;
    invite_and_join(a.owner(), &a.id, &late.email, "viewer", &late_s).await;
    let path = a.path(&format!("/teams/{}/members/{}", a.team_id, late.id));
    assert_eq!(
        a.owner().put(&path, json!({})).await.status,
        StatusCode::CREATED
    );
    let again = a.owner().put(&path, json!({})).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["added"], false);
}

/// ARCHITECTURE §3: `has_permission` is the one check, and a member can carry deny
/// overrides. A member whose `org.view` is denied must not read the organization.
#[tokio::test]
async fn a_denied_org_view_closes_the_organization_to_that_member() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let guest = a.person("guest");
    let r = patch_member(
        a.owner(),
        a,
        &guest.user.id,
        json!({"permissions": {"org.view": false}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let show = guest.s.get(&a.path("")).await;
    refused(&show, StatusCode::FORBIDDEN, "permission_denied");
}

/// Same rule for `org.delete`: the owner's effective permissions (as GET org shows them)
/// lack it after a deny override, so deleting must be refused.
#[tokio::test]
async fn an_owner_whose_org_delete_is_denied_cannot_delete_the_organization() {
    let w = two_orgs_with_all_roles().await;
    let a = &w.a;
    let (first, second) = (a.person("owner"), a.person("admin"));
    let r = patch_member(&first.s, a, &second.user.id, json!({"role": "owner"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = patch_member(
        &second.s,
        a,
        &first.user.id,
        json!({"permissions": {"org.delete": false}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let show = first.s.get(&a.path("")).await;
    assert!(
        !show.body["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "org.delete"),
        "{}",
        show.text
    );
    let r = first.s.delete(&a.path("")).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "an owner without org.delete deleted the organization: {}",
        r.text
    );
    assert_eq!(second.s.get(&a.path("")).await.status, StatusCode::OK);
}
