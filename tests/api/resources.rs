//! Resources: CRUD for the six types, visibility and sharing, search, limits, uploads,
//! the accessible view, the public gallery and the access explanation.
use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

struct Org {
    app: TestApp,
    org: String,
    owner: Session,
    admin: Session,
    member: Session,
    other: Session,
    viewer: Session,
    guest: Session,
    ids: std::collections::BTreeMap<&'static str, String>,
    team: String,
}

async fn join(
    app: &TestApp,
    owner: &Session,
    org: &str,
    email: &'static str,
    role: &str,
) -> (Session, String) {
    let u = app.create_user(email, email).await;
    let inv = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": email, "role": role}),
        )
        .await;
    let s = app.login(email).await;
    assert_eq!(
        s.post(
            "/api/v1/invitations/accept",
            json!({"token": inv.body["token"]})
        )
        .await
        .status,
        StatusCode::OK
    );
    (s, u.id)
}

async fn org() -> Org {
    let mock = mock_llm::MockLlm::start().await;
    let app = TestApp::spawn_with(|c| env_mock(c, &mock)).await;
    let o = app.create_user("owner@example.com", "Owner").await;
    let owner = app.login("owner@example.com").await;
    let org = owner
        .post("/api/v1/orgs", json!({"name": "Res", "slug": "res"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids = std::collections::BTreeMap::new();
    ids.insert("owner", o.id);
    let (admin, id) = join(&app, &owner, &org, "admin@example.com", "admin").await;
    ids.insert("admin", id);
    let (member, id) = join(&app, &owner, &org, "member@example.com", "member").await;
    ids.insert("member", id);
    let (other, id) = join(&app, &owner, &org, "other@example.com", "member").await;
    ids.insert("other", id);
    let (viewer, id) = join(&app, &owner, &org, "viewer@example.com", "viewer").await;
    ids.insert("viewer", id);
    let (guest, id) = join(&app, &owner, &org, "guest@example.com", "guest").await;
    ids.insert("guest", id);
    let team = owner
        .post(
            &format!("/api/v1/orgs/{org}/teams"),
            json!({"name": "Core"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for who in ["other", "guest"] {
        let r = owner
            .put(
                &format!("/api/v1/orgs/{org}/teams/{team}/members/{}", ids[who]),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    Org {
        app,
        org,
        owner,
        admin,
        member,
        other,
        viewer,
        guest,
        ids,
        team,
    }
}

fn idset(r: &Reply) -> BTreeSet<String> {
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn agents_are_created_read_updated_and_deleted_with_their_fields() {
    let o = org().await;
    let path = format!("/api/v1/orgs/{}/agents", o.org);
    let r = o
        .member
        .post(
            &path,
            json!({"name": "Researcher", "description": "finds things", "model": "gpt-4o",
                   "system_prompt": "Be precise.", "tools": ["search"],
                   "personality_traits": [{"trait": "curious", "value": "high"}],
                   "skills": [{"skill": "sql", "level": "expert"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["visibility"], "private");
    assert_eq!(r.body["type"], "agent");
    assert_eq!(r.body["model"], "gpt-4o");
    assert_eq!(r.body["personality_traits"][0]["trait"], "curious");
    assert_eq!(r.body["skills"][0]["level"], "expert");
    assert_eq!(r.body["owner_id"], o.ids["member"].as_str());
    assert_eq!(r.body["can_write"], true);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.headers["etag"], "\"1\"");

    let got = o.member.get(&format!("{path}/{id}")).await;
    assert_eq!(got.body["system_prompt"], "Be precise.");
    let up = o
        .member
        .send(
            Method::PATCH,
            &format!("{path}/{id}"),
            Some(json!({"name": "Researcher 2", "version": 1})),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.text);
    assert_eq!(up.body["version"], 2);
    let stale = o
        .member
        .send(
            Method::PATCH,
            &format!("{path}/{id}"),
            Some(json!({"name": "lost", "version": 1})),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.code(), "version_conflict");
    assert_eq!(
        o.member.get(&format!("{path}/{id}")).await.body["name"],
        "Researcher 2"
    );
    let bad = o
        .member
        .send(
            Method::PATCH,
            &format!("{path}/{id}"),
            Some(json!({"colour": "red"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let owner_set = o
        .member
        .send(
            Method::PATCH,
            &format!("{path}/{id}"),
            Some(json!({"organization_id": "x"})),
        )
        .await;
    assert_eq!(owner_set.status, StatusCode::BAD_REQUEST);
    // A version belongs to a change; on create it is refused, and nothing is made.
    let versioned = o
        .member
        .post(&path, json!({"name": "Versioned", "version": 3}))
        .await;
    assert_eq!(
        versioned.status,
        StatusCode::BAD_REQUEST,
        "{}",
        versioned.text
    );
    assert_eq!(
        o.member.get(&path).await.body["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        o.member.delete(&format!("{path}/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        o.member.get(&format!("{path}/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn visibility_and_sharing_decide_who_reads_and_who_writes() {
    let o = org().await;
    let path = format!("/api/v1/orgs/{}/workflows", o.org);
    let mk = |vis: &'static str, shared: Value| json!({"name": format!("wf {vis}"), "visibility": vis, "shared_with": shared, "steps": [{"kind": "condition", "name": "a", "if": {"left": "{{input}}", "op": "equals", "right": "x"}, "goto": 2}]});
    let private = o.member.post(&path, mk("private", json!({}))).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let orgwide = o
        .member
        .post(&path, mk("organization", json!({})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let team = o
        .member
        .post(&path, mk("team", json!({"teams": [o.team]})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let direct = o
        .member
        .post(&path, mk("private", json!({"users": [o.ids["viewer"]]})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let public = o.member.post(&path, mk("public", json!({}))).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let all: BTreeSet<String> = [&private, &orgwide, &team, &direct, &public]
        .into_iter()
        .cloned()
        .collect();
    let set = |v: &[&String]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

    assert_eq!(idset(&o.member.get(&path).await), all, "the owner sees all");
    assert_eq!(
        idset(&o.admin.get(&path).await),
        all,
        "workflows.manage sees all"
    );
    assert_eq!(idset(&o.owner.get(&path).await), all);
    assert_eq!(
        idset(&o.other.get(&path).await),
        set(&[&orgwide, &team, &public])
    );
    assert_eq!(
        idset(&o.viewer.get(&path).await),
        set(&[&orgwide, &direct, &public])
    );
    assert_eq!(
        idset(&o.guest.get(&path).await),
        set(&[&team]),
        "guests see only what is shared with them or their teams"
    );

    // Reading is not writing.
    let r = o
        .other
        .send(
            Method::PATCH,
            &format!("{path}/{orgwide}"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        o.other.get(&format!("{path}/{private}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        o.other.delete(&format!("{path}/{private}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        o.admin
            .send(
                Method::PATCH,
                &format!("{path}/{private}"),
                Some(json!({"name": "by admin"}))
            )
            .await
            .status,
        StatusCode::OK
    );
    // Viewers read but do not create.
    let v = o.viewer.post(&path, mk("private", json!({}))).await;
    assert_eq!(v.status, StatusCode::FORBIDDEN);
    // Filters.
    assert_eq!(
        idset(
            &o.member
                .get(&format!("{path}?visibility=organization"))
                .await
        ),
        set(&[&orgwide])
    );
    // Shares must name members and teams of this organization.
    let bad = o
        .member
        .post(
            &path,
            mk(
                "private",
                json!({"users": ["0190a0b0-0000-7000-8000-000000000000"]}),
            ),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn search_matches_name_and_description_within_what_is_visible() {
    let o = org().await;
    let path = format!("/api/v1/orgs/{}/tools", o.org);
    let schema = json!({"type": "object", "properties": {"q": {"type": "string"}}});
    for (name, desc, vis) in [
        ("Weather", "forecasts", "organization"),
        ("Wiki", "weather history", "private"),
        ("Calc", "50%_off", "organization"),
    ] {
        let r = o.member.post(&path, json!({"name": name, "description": desc, "visibility": vis, "input_schema": schema})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let names = |r: &Reply| {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        names(&o.member.get(&format!("{path}?q=weather")).await),
        ["Weather", "Wiki"].map(String::from).into()
    );
    assert_eq!(
        names(&o.other.get(&format!("{path}?q=weather")).await),
        ["Weather"].map(String::from).into()
    );
    assert_eq!(
        names(&o.member.get(&format!("{path}?q=%25_")).await),
        ["Calc"].map(String::from).into(),
        "% and _ are literal"
    );
    let bad_schema = o
        .member
        .post(
            &path,
            json!({"name": "x", "input_schema": {"type": "object", "properties": 5}}),
        )
        .await;
    assert_eq!(bad_schema.status, StatusCode::BAD_REQUEST);
    let not_object = o
        .member
        .post(
            &path,
            json!({"name": "x", "input_schema": {"type": "string"}}),
        )
        .await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn workflow_steps_are_validated() {
    let o = org().await;
    let path = format!("/api/v1/orgs/{}/workflows", o.org);
    for steps in [
        json!("x"),
        json!([1]),
        json!([{"name": "a"}]),
        json!([{"kind": "agent", "agent_id": "not-an-id", "prompt": "p"}]),
        json!([{"kind": "agent", "agent_id": "0190f0a0-0000-7000-8000-000000000001"}]),
        json!([{"kind": "condition", "if": {"left": "a", "op": "equals", "right": "b"}, "goto": 1}]),
        json!([{"kind": "tool", "tool_id": "0190f0a0-0000-7000-8000-000000000001", "extra": 1}]),
    ] {
        let r = o
            .member
            .post(&path, json!({"name": "wf", "steps": steps}))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{steps}");
        assert!(r.body["error"]["fields"]["steps"].is_string());
    }
}

#[tokio::test]
async fn plan_limits_hold_under_parallel_creates() {
    let o = org().await;
    let path = format!("/api/v1/orgs/{}/agents", o.org);
    let mut handles = Vec::new();
    for i in 0..25 {
        let client = o.member.client.clone();
        let (url, csrf) = (o.member.url(&path), o.member.csrf.clone());
        handles.push(tokio::spawn(async move {
            client
                .post(url)
                .header("x-csrf-token", csrf)
                .json(&json!({"name": format!("a{i}")}))
                .send()
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    let mut limited = 0;
    for h in handles {
        let res = reply(h.await.unwrap()).await;
        match res.status {
            StatusCode::CREATED => created += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(res.code(), "plan_limit");
                assert!(
                    res.body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("10")
                );
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (created, limited),
        (10, 15),
        "the free plan allows 10 agents"
    );
    let limits = o
        .member
        .get(&format!("/api/v1/orgs/{}/limits", o.org))
        .await;
    assert_eq!(limits.body["agents"], json!({"used": 10, "max": 10}));
    assert_eq!(limits.body["users"]["used"], 6);
    let summary = o
        .member
        .get(&format!("/api/v1/orgs/{}/summary", o.org))
        .await;
    assert_eq!(summary.body["resources"]["agents"]["total"], 10);
    assert_eq!(
        summary.body["resources"]["agents"]["by_visibility"]["private"],
        10
    );
    assert_eq!(summary.body["members"], 6);
}

async fn upload(s: &Session, org: &str, name: &str, bytes: Vec<u8>, mime: &str) -> Reply {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(mime)
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("visibility", "organization");
    reply(
        s.client
            .post(s.url(&format!("/api/v1/orgs/{org}/documents")))
            .header("x-csrf-token", &s.csrf)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn documents_are_uploaded_sniffed_stored_and_downloaded() {
    let o = org().await;
    let text = upload(
        &o.member,
        &o.org,
        "notes.md",
        b"# Notes\nhello".to_vec(),
        "text/markdown",
    )
    .await;
    assert_eq!(text.status, StatusCode::CREATED, "{}", text.text);
    assert_eq!(text.body["content_type"], "text/markdown");
    assert_eq!(text.body["size_bytes"], 13);
    let id = text.body["id"].as_str().unwrap();
    let got = o
        .other
        .client
        .get(
            o.other
                .url(&format!("/api/v1/orgs/{}/documents/{id}/content", o.org)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert!(
        got.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("notes.md")
    );
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"# Notes\nhello");

    let pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF".to_vec();
    let ok = upload(&o.member, &o.org, "a.pdf", pdf.clone(), "application/pdf").await;
    assert_eq!(ok.body["content_type"], "application/pdf");
    let lie = upload(&o.member, &o.org, "a.png", pdf, "image/png").await;
    assert_eq!(lie.status, StatusCode::BAD_REQUEST);
    assert_eq!(lie.code(), "content_type_mismatch");
    let exe = upload(
        &o.member,
        &o.org,
        "x.exe",
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec(),
        "application/octet-stream",
    )
    .await;
    assert_eq!(exe.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(exe.code(), "unsupported_content_type");
    let empty = upload(&o.member, &o.org, "e.txt", Vec::new(), "text/plain").await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    // The free plan's per-document limit is 10 MiB.
    let big = upload(
        &o.member,
        &o.org,
        "big.txt",
        vec![b'a'; 10 * 1024 * 1024 + 1],
        "text/plain",
    )
    .await;
    assert_eq!(big.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(big.code(), "plan_limit");
    let limits = o
        .member
        .get(&format!("/api/v1/orgs/{}/limits", o.org))
        .await;
    assert_eq!(
        limits.body["storage_bytes"]["used"].as_i64().unwrap(),
        13 + ok.body["size_bytes"].as_i64().unwrap()
    );
}

#[tokio::test]
async fn knowledge_bases_hold_documents_and_conversations_hold_messages() {
    let o = org().await;
    let doc = upload(&o.member, &o.org, "kb.txt", b"facts".to_vec(), "text/plain").await;
    let doc_id = doc.body["id"].as_str().unwrap().to_string();
    let kb = o
        .member
        .post(
            &format!("/api/v1/orgs/{}/knowledge-bases", o.org),
            json!({"name": "KB", "embedding_model": "e5"}),
        )
        .await;
    let kb_id = kb.body["id"].as_str().unwrap().to_string();
    let add = o
        .member
        .put(
            &format!(
                "/api/v1/orgs/{}/knowledge-bases/{kb_id}/documents/{doc_id}",
                o.org
            ),
            json!({}),
        )
        .await;
    assert_eq!(add.status, StatusCode::CREATED);
    let got = o
        .member
        .get(&format!("/api/v1/orgs/{}/knowledge-bases/{kb_id}", o.org))
        .await;
    assert_eq!(got.body["documents"], json!([doc_id]));

    let agent = o
        .member
        .post(
            &format!("/api/v1/orgs/{}/agents", o.org),
            json!({"name": "A", "model": "gpt-test"}),
        )
        .await
        .body["id"]
        .clone();
    let conv = o
        .member
        .post(
            &format!("/api/v1/orgs/{}/conversations", o.org),
            json!({"name": "Chat", "agent_id": agent}),
        )
        .await;
    assert_eq!(conv.status, StatusCode::CREATED, "{}", conv.text);
    let cid = conv.body["id"].as_str().unwrap().to_string();
    let mpath = format!("/api/v1/orgs/{}/conversations/{cid}/messages", o.org);
    let posted = o.member.post(&mpath, json!({"content": "hi"})).await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.text);
    assert_eq!(posted.body["reply"]["content"], "Hello from the mock");
    // Only the question is the poster's to write; the reply is the agent's.
    assert_eq!(
        o.member
            .post(&mpath, json!({"role": "assistant", "content": "x"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let msgs = o.member.get(&mpath).await;
    let roles: Vec<_> = msgs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, ["user", "assistant"]);
    // A private conversation is invisible to others, messages included.
    assert_eq!(o.other.get(&mpath).await.status, StatusCode::NOT_FOUND);
    let bad_agent = o
        .member
        .post(
            &format!("/api/v1/orgs/{}/conversations", o.org),
            json!({"name": "x", "agent_id": "nope"}),
        )
        .await;
    assert_eq!(bad_agent.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn another_organization_sees_nothing_but_the_public_gallery() {
    let o = org().await;
    o.app.create_user("stranger@example.com", "Stranger").await;
    let stranger = o.app.login("stranger@example.com").await;
    let path = format!("/api/v1/orgs/{}/agents", o.org);
    let public = o.member.post(&path, json!({"name": "Shared helper", "visibility": "public", "system_prompt": "hi", "shared_with": {"users": [o.ids["viewer"]]}})).await;
    let pid = public.body["id"].as_str().unwrap().to_string();
    let private = o
        .member
        .post(&path, json!({"name": "Secret plan"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for p in [
        path.clone(),
        format!("{path}/{pid}"),
        format!("{path}/{private}"),
        format!("/api/v1/orgs/{}/limits", o.org),
        format!("/api/v1/orgs/{}/summary", o.org),
        format!("{path}/{pid}/access"),
    ] {
        let r = stranger.get(&p).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
        assert!(!r.text.contains("Secret") && !r.text.contains("Shared helper"));
    }
    assert_eq!(
        stranger
            .send(
                Method::PATCH,
                &format!("{path}/{pid}"),
                Some(json!({"name": "x"}))
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stranger.delete(&format!("{path}/{pid}")).await.status,
        StatusCode::NOT_FOUND
    );
    let gallery = stranger.get("/api/v1/public/agents").await;
    assert_eq!(idset(&gallery), [pid.clone()].into());
    let item = &gallery.body["items"][0];
    assert_eq!(item["organization"]["name"], "Res");
    for leak in [
        "owner_id",
        "shared_with",
        "organization_id",
        "version",
        "tools",
        "config",
    ] {
        assert!(item.get(leak).is_none(), "gallery leaks {leak}");
    }
    assert!(!gallery.text.contains(&o.ids["viewer"]) && !gallery.text.contains(&o.ids["member"]));
    assert!(idset(&stranger.get("/api/v1/me/accessible/agents").await).is_empty());
}

#[tokio::test]
async fn the_accessible_view_spans_the_callers_organizations() {
    let o = org().await;
    let a1 = o
        .member
        .post(
            &format!("/api/v1/orgs/{}/agents", o.org),
            json!({"name": "in team org"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let me = o.member.get("/api/v1/me").await;
    let personal = me.body["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["organization"]["kind"] == "personal")
        .unwrap()["organization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a2 = o
        .member
        .post(
            &format!("/api/v1/orgs/{personal}/agents"),
            json!({"name": "mine"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let _hidden = o
        .other
        .post(
            &format!("/api/v1/orgs/{}/agents", o.org),
            json!({"name": "not yours"}),
        )
        .await;
    let all = o.member.get("/api/v1/me/accessible/agents").await;
    assert_eq!(idset(&all), [a1.clone(), a2.clone()].into());
    let orgs: BTreeSet<_> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["organization"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(orgs, [o.org.clone(), personal.clone()].into());
    let one = o
        .member
        .get(&format!(
            "/api/v1/me/accessible/agents?organization_id={personal}"
        ))
        .await;
    assert_eq!(idset(&one), [a2].into());
    let paged = o.member.get("/api/v1/me/accessible/agents?limit=1").await;
    assert_eq!(paged.body["items"].as_array().unwrap().len(), 1);
    assert!(paged.body["next_cursor"].is_string());
}

#[tokio::test]
async fn access_is_explained_for_admins_and_owners_only() {
    let o = org().await;
    let path = format!("/api/v1/orgs/{}/agents", o.org);
    let id = o.member.post(&path, json!({"name": "A", "visibility": "team", "shared_with": {"teams": [o.team], "users": [o.ids["viewer"]]}})).await.body["id"].as_str().unwrap().to_string();
    let all = o.admin.get(&format!("{path}/{id}/access")).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let by_user = |uid: &str| {
        all.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["user_id"] == uid)
            .unwrap()
            .clone()
    };
    let member = by_user(&o.ids["member"]);
    assert_eq!(
        (member["can_read"].as_bool(), member["can_write"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(member["reasons"].to_string().contains("owner"));
    let other = by_user(&o.ids["other"]);
    assert_eq!(other["can_read"], true);
    assert_eq!(other["can_write"], false);
    assert!(other["reasons"].to_string().contains("team Core"));
    let viewer = by_user(&o.ids["viewer"]);
    assert!(viewer["reasons"].to_string().contains("shared directly"));
    let admin = by_user(&o.ids["admin"]);
    assert!(admin["reasons"].to_string().contains("agents.manage"));
    let one = o
        .member
        .get(&format!("{path}/{id}/access?user_id={}", o.ids["guest"]))
        .await;
    assert_eq!(one.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(one.body["items"][0]["can_read"], true);
    let denied = o.other.get(&format!("{path}/{id}/access")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_removed_members_resources_go_to_the_chosen_member_or_the_remover() {
    let o = org().await;
    let path = format!("/api/v1/orgs/{}/agents", o.org);
    let private = o
        .other
        .post(&path, json!({"name": "other's private"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let shared = o
        .other
        .post(
            &path,
            json!({"name": "other's shared", "visibility": "organization"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = o
        .admin
        .delete(&format!(
            "/api/v1/orgs/{}/members/{}?transfer_to={}",
            o.org, o.ids["other"], o.ids["member"]
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    for id in [&private, &shared] {
        let got = o.member.get(&format!("{path}/{id}")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body["owner_id"], o.ids["member"].as_str());
        assert_eq!(got.body["can_write"], true);
    }
    // Default heir: the remover.
    let mine = o.member.post(&path, json!({"name": "member's"})).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = o
        .admin
        .delete(&format!(
            "/api/v1/orgs/{}/members/{}",
            o.org, o.ids["member"]
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        o.admin.get(&format!("{path}/{mine}")).await.body["owner_id"],
        o.ids["admin"].as_str()
    );
    let log = o
        .owner
        .get(&format!(
            "/api/v1/orgs/{}/audit?action=member.removed",
            o.org
        ))
        .await;
    assert_eq!(
        log.body["items"][0]["details"]["resources_transferred"]["agents"],
        3
    );
    // The heir must be a member, and not the one leaving.
    let bad = o
        .admin
        .delete(&format!(
            "/api/v1/orgs/{}/members/{}?transfer_to=0190a0b0-0000-7000-8000-000000000000",
            o.org, o.ids["viewer"]
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        o.owner
            .get(&format!(
                "/api/v1/orgs/{}/members/{}",
                o.org, o.ids["viewer"]
            ))
            .await
            .status,
        StatusCode::OK,
        "nothing changed"
    );
}

#[tokio::test]
async fn resources_move_from_the_personal_workspace_into_an_organization() {
    let o = org().await;
    let me = o.member.get("/api/v1/me").await;
    let personal = me.body["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["organization"]["kind"] == "personal")
        .unwrap()["organization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = o
        .member
        .post(
            &format!("/api/v1/orgs/{personal}/agents"),
            json!({"name": "mine", "model": "gpt-test", "personality_traits": [{"trait": "calm"}]}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let conv = o
        .member
        .post(
            &format!("/api/v1/orgs/{personal}/conversations"),
            json!({"name": "c", "agent_id": agent}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let posted = o
        .member
        .post(
            &format!("/api/v1/orgs/{personal}/conversations/{conv}/messages"),
            json!({"content": "hello"}),
        )
        .await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.text);
    let doc = upload(
        &o.member,
        &personal,
        "n.txt",
        b"text".to_vec(),
        "text/plain",
    )
    .await
    .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Someone else's workspace is not found.
    let foreign = o
        .viewer
        .post(
            "/api/v1/me/move-to-organization",
            json!({"from_organization_id": personal, "to_organization_id": o.org}),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    // A viewer of the target may not create there, so their own agents cannot move in.
    let vme = o.viewer.get("/api/v1/me").await;
    let vpersonal = vme.body["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["organization"]["kind"] == "personal")
        .unwrap()["organization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let made = o
        .viewer
        .post(
            &format!("/api/v1/orgs/{vpersonal}/agents"),
            json!({"name": "viewer's"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED);
    let refused = o
        .viewer
        .post(
            "/api/v1/me/move-to-organization",
            json!({"from_organization_id": vpersonal, "to_organization_id": o.org}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        o.viewer
            .get(&format!("/api/v1/orgs/{vpersonal}/agents"))
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing moved"
    );
    let r = o
        .member
        .post(
            "/api/v1/me/move-to-organization",
            json!({"from_organization_id": personal, "to_organization_id": o.org}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["moved"]["agents"], 1);
    assert_eq!(r.body["moved"]["conversations"], 1);
    assert_eq!(
        o.member
            .get(&format!("/api/v1/orgs/{personal}/agents/{agent}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let moved = o
        .member
        .get(&format!("/api/v1/orgs/{}/agents/{agent}", o.org))
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(moved.body["personality_traits"][0]["trait"], "calm");
    let msgs = o
        .member
        .get(&format!(
            "/api/v1/orgs/{}/conversations/{conv}/messages",
            o.org
        ))
        .await;
    assert_eq!(msgs.body["items"][0]["content"], "hello");
    let bytes = o
        .member
        .client
        .get(
            o.member
                .url(&format!("/api/v1/orgs/{}/documents/{doc}/content", o.org)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bytes.bytes().await.unwrap().as_ref(), b"text");
    // Moving from a team organization is refused.
    let back = o
        .member
        .post(
            "/api/v1/me/move-to-organization",
            json!({"from_organization_id": o.org, "to_organization_id": personal}),
        )
        .await;
    assert_eq!(back.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn guests_see_neither_counts_nor_usage_of_the_organization() {
    let o = org().await;
    o.member
        .post(
            &format!("/api/v1/orgs/{}/agents", o.org),
            json!({"name": "private one"}),
        )
        .await;
    for p in ["limits", "summary"] {
        let r = o.guest.get(&format!("/api/v1/orgs/{}/{p}", o.org)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{p}");
    }
    let home = reply(
        o.guest
            .client
            .get(o.guest.url("/o/res"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(!home.text.contains("resource-counts"));
    let home = reply(
        o.member
            .client
            .get(o.member.url("/o/res"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(home.text.contains("resource-counts"));
    // Members see counts but not spending; the owner sees both.
    assert!(
        o.member
            .get(&format!("/api/v1/orgs/{}/summary", o.org))
            .await
            .body["usage"]
            .is_null()
    );
    assert!(
        o.owner
            .get(&format!("/api/v1/orgs/{}/summary", o.org))
            .await
            .body["usage"]["period"]
            .is_string()
    );
}

/// A share names a team by its id however the id is spelled (as the team's path does):
/// it is kept once, in the id's usual form, and it lets the team's members read.
#[tokio::test]
async fn a_team_share_counts_whatever_the_spelling_of_the_teams_id() {
    let o = org().await;
    let path = format!("/api/v1/orgs/{}/agents", o.org);
    let (upper, simple) = (o.team.to_uppercase(), o.team.replace('-', ""));
    let made = o
        .member
        .post(
            &path,
            json!({"name": "For Core", "shared_with": {"teams": [upper, simple]}}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    assert_eq!(made.body["shared_with"]["teams"], json!([o.team]));
    let id = made.body["id"].as_str().unwrap();
    let read = o.guest.get(&format!("{path}/{id}")).await;
    assert_eq!(
        read.status,
        StatusCode::OK,
        "the guest is in Core: {}",
        read.text
    );
}
