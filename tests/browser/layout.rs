//! Every main page, filled with data, at a desktop width and a phone width: nothing pushes
//! the page sideways, tables keep the screen's width (scrolling inside their own box on a
//! phone), and every button looks like a button. Screenshots go to target/screenshots for
//! a person to look at.
use super::*;

/// A desktop screen and a phone held upright.
const WIDTHS: [(u32, &str); 2] = [(1400, "desktop"), (390, "phone")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_main_page_fits_a_desktop_and_a_phone_screen() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let mock = common::mock_llm::MockLlm::start().await;
    let app = TestApp::spawn().await;
    let ada = app.create_user(ADA_EMAIL, ADA_NAME).await;
    let bob = app.create_user("bob@example.com", "Bob Babbage").await;
    let world = populate(&app, &mock.base, &bob).await;
    let pages = world.pages(&ada);

    let b = Browser::launch(&app).await;
    b.sign_in(&ada).await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let mut problems = Vec::new();
    for (width, label) in WIDTHS {
        b.set_viewport(width, 900).await;
        for (name, path) in &pages {
            b.goto(path).await;
            b.wait_for("main").await;
            let m = b.measure().await;
            assert_eq!(
                m["innerWidth"].as_u64(),
                Some(u64::from(width)),
                "the viewport is {width} px wide"
            );
            let page_problems = layout_problems(&m, width);
            if !page_problems.is_empty() {
                problems.push(format!("{name} ({path}) at {width} px: {page_problems:?}"));
            }
            let png = b.full_page_screenshot(width).await;
            std::fs::write(shots.join(format!("{name}-{label}.png")), png).unwrap();
        }
    }
    // The sign-in page, signed out.
    b.client.delete_all_cookies().await.unwrap();
    for (width, label) in WIDTHS {
        b.set_viewport(width, 900).await;
        b.goto("/login").await;
        b.wait_for("#email").await;
        let page_problems = layout_problems(&b.measure().await, width);
        if !page_problems.is_empty() {
            problems.push(format!("login at {width} px: {page_problems:?}"));
        }
        let png = b.full_page_screenshot(width).await;
        std::fs::write(shots.join(format!("login-{label}.png")), png).unwrap();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    b.close().await;
    app.stop().await;
}

/// What is wrong with a page's measurements (see `Browser::measure`) at `width`.
fn layout_problems(m: &Value, width: u32) -> Vec<String> {
    let mut out = Vec::new();
    let scroll = m["scrollWidth"].as_u64().unwrap_or(0);
    if scroll > u64::from(width) {
        out.push(format!(
            "the page is {scroll} px wide, pushed by {}",
            m["wide"]
        ));
    }
    for key in ["unstyledButtons", "unwrappedTables"] {
        if m[key].as_array().is_some_and(|a| !a.is_empty()) {
            out.push(format!("{key}: {}", m[key]));
        }
    }
    // A table on a desktop fills the box it sits in.
    if width >= 1000
        && let Some(narrow) = m["narrowTables"].as_array()
        && !narrow.is_empty()
    {
        out.push(format!("tables narrower than their box: {narrow:?}"));
    }
    out
}

/// Ids of what `populate` made.
struct World {
    org: String,
    bob_id: String,
    team: String,
    resources: Vec<(&'static str, String)>,
    invite_token: String,
}

impl World {
    /// The pages to look at: (screenshot name, address).
    fn pages(&self, ada: &TestUser) -> Vec<(String, String)> {
        let o = format!("/o/{}", self.org);
        let mut pages = vec![
            (
                "personal-home".to_string(),
                format!("/o/{}", ada.personal_slug),
            ),
            ("account".into(), "/account".into()),
            ("new-org".into(), "/orgs/new".into()),
            ("org-home".into(), o.clone()),
            ("members".into(), format!("{o}/members")),
            ("member".into(), format!("{o}/members/{}", self.bob_id)),
            ("teams".into(), format!("{o}/teams")),
            ("team".into(), format!("{o}/teams/{}", self.team)),
            ("settings".into(), format!("{o}/settings")),
            ("audit".into(), format!("{o}/audit")),
            ("llm".into(), format!("{o}/llm")),
            ("usage".into(), format!("{o}/usage")),
            ("billing".into(), format!("{o}/billing")),
            ("gallery".into(), "/gallery/agents".into()),
            ("invite".into(), format!("/invite/{}", self.invite_token)),
            ("not-found".into(), format!("{o}/agents/no-such-agent")),
        ];
        for (kind, id) in &self.resources {
            pages.push((format!("{kind}-list"), format!("{o}/{kind}")));
            pages.push((format!("{kind}-item"), format!("{o}/{kind}/{id}")));
            pages.push((format!("{kind}-access"), format!("{o}/{kind}/{id}/access")));
        }
        pages
    }
}

/// An organization with something on every page: Bob as a member, an open invitation, a
/// team, one resource of each kind (long names and texts included), a provider, gateway
/// calls for the usage page and the audit entries all of that leaves.
async fn populate(app: &TestApp, llm_base: &str, bob: &TestUser) -> World {
    let owner = app.login(ADA_EMAIL).await;
    let org = owner
        .post(
            "/api/v1/orgs",
            json!({"name": "Analytical Engines and Difference Machines of London", "slug": "engines"}),
        )
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.text);
    let org_id = org.body["id"].as_str().unwrap().to_string();
    let api = |p: &str| format!("/api/v1/orgs/{org_id}{p}");

    let inv = owner
        .post(
            &api("/invitations"),
            json!({"email": bob.email, "role": "member"}),
        )
        .await;
    assert_eq!(inv.status, StatusCode::CREATED, "{}", inv.text);
    let bob_s = app.login(&bob.email).await;
    let joined = bob_s
        .post(
            "/api/v1/invitations/accept",
            json!({"token": inv.body["token"]}),
        )
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    let open = owner
        .post(
            &api("/invitations"),
            json!({"email": "a.very.long.address.of.someone@departments.example.org", "role": "viewer"}),
        )
        .await;
    assert_eq!(open.status, StatusCode::CREATED, "{}", open.text);

    let team = owner
        .post(&api("/teams"), json!({"name": "Numerical methods"}))
        .await;
    assert_eq!(team.status, StatusCode::CREATED, "{}", team.text);
    let team_id = team.body["id"].as_str().unwrap().to_string();
    let added = owner
        .put(
            &api(&format!("/teams/{team_id}/members/{}", bob.id)),
            json!({}),
        )
        .await;
    assert!(added.status.is_success(), "{}", added.text);

    let long = "An assistant that reads the engine's punched cards and explains each \
                operation in plain words, step by step, for new operators. "
        .repeat(3);
    let agent = owner
        .post(
            &api("/agents"),
            json!({"name": "Card reader", "description": long, "visibility": "public",
                   "model": "gpt-test", "system_prompt": long}),
        )
        .await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.text);
    let agent_id = agent.body["id"].as_str().unwrap().to_string();
    let workflow = owner
        .post(
            &api("/workflows"),
            json!({"name": "Nightly tables", "description": long, "visibility": "organization",
                   "steps": [{"kind": "agent", "name": "compute", "agent_id": agent_id, "prompt": "Compute {{input}}"}]}),
        )
        .await;
    assert_eq!(workflow.status, StatusCode::CREATED, "{}", workflow.text);
    let tool = owner
        .post(
            &api("/tools"),
            json!({"name": "Logarithm table lookup", "description": long, "visibility": "team",
                   "shared_with": {"teams": [team_id]},
                   "input_schema": {"type": "object", "properties": {"x": {"type": "number"}}}}),
        )
        .await;
    assert_eq!(tool.status, StatusCode::CREATED, "{}", tool.text);
    let part = reqwest::multipart::Part::bytes(long.clone().into_bytes())
        .file_name("operators-handbook-with-a-rather-long-file-name.txt")
        .mime_str("text/plain")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("visibility", "organization");
    let doc = owner
        .client
        .post(owner.url(&api("/documents")))
        .header("x-csrf-token", &owner.csrf)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status(), StatusCode::CREATED);
    let doc: Value = doc.json().await.unwrap();
    let doc_id = doc["id"].as_str().unwrap().to_string();
    let kb = owner
        .post(
            &api("/knowledge-bases"),
            json!({"name": "Operators' handbook", "description": long, "visibility": "organization"}),
        )
        .await;
    assert_eq!(kb.status, StatusCode::CREATED, "{}", kb.text);
    let kb_id = kb.body["id"].as_str().unwrap().to_string();
    let linked = owner
        .put(
            &api(&format!("/knowledge-bases/{kb_id}/documents/{doc_id}")),
            json!({}),
        )
        .await;
    assert!(linked.status.is_success(), "{}", linked.text);
    let conv = owner
        .post(
            &api("/conversations"),
            json!({"name": "Questions about cards", "agent_id": agent_id}),
        )
        .await;
    assert_eq!(conv.status, StatusCode::CREATED, "{}", conv.text);
    let conv_id = conv.body["id"].as_str().unwrap().to_string();
    let p = owner
        .put(
            &api("/llm/providers/openai"),
            json!({"api_key": "sk-layout-0000-WXYZ9876", "base_url": llm_base}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);

    let m = owner
        .post(
            &api(&format!("/conversations/{conv_id}/messages")),
            json!({"content": long}),
        )
        .await;
    assert_eq!(m.status, StatusCode::CREATED, "{}", m.text);

    let made = owner
        .post(
            "/api/v1/me/tokens",
            json!({"name": "layout", "organization_id": org_id}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let token = common::TokenClient::new(&app.base, made.body["token"].as_str().unwrap());
    for _ in 0..2 {
        let r = token
            .send(
                reqwest::Method::POST,
                "/v1/chat/completions",
                Some(json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    World {
        org: "engines".into(),
        bob_id: bob.id.clone(),
        team: team_id,
        resources: vec![
            ("agents", agent_id),
            (
                "workflows",
                workflow.body["id"].as_str().unwrap().to_string(),
            ),
            ("tools", tool.body["id"].as_str().unwrap().to_string()),
            ("documents", doc_id),
            ("knowledge-bases", kb_id),
            ("conversations", conv_id),
        ],
        invite_token: open.body["token"].as_str().unwrap().to_string(),
    }
}

impl Browser {
    /// Makes the page area `width` × `height` CSS pixels, whatever the window's frame takes.
    async fn set_viewport(&self, width: u32, height: u32) {
        // The window's frame takes some of its size: grow the window by what is missing.
        let (mut w, mut h) = (width, height);
        for _ in 0..3 {
            self.client.set_window_size(w, h).await.unwrap();
            let inner = self
                .client
                .execute("return [window.innerWidth, window.innerHeight];", vec![])
                .await
                .unwrap();
            let iw = inner[0].as_u64().unwrap_or(0) as u32;
            let ih = inner[1].as_u64().unwrap_or(0) as u32;
            if iw == width && ih == height {
                return;
            }
            w = (w + width).saturating_sub(iw);
            h = (h + height).saturating_sub(ih);
        }
    }

    /// The page's width, what makes it wider than the screen, buttons without the button
    /// style, tables outside a scrolling box and tables narrower than their box.
    async fn measure(&self) -> Value {
        self.client
            .execute(
                r#"
const vw = window.innerWidth;
const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
  + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '');
const wide = [];
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.right > vw + 0.5 && getComputedStyle(el).position !== 'absolute') {
    let inside = false;
    for (let p = el.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') { inside = true; break; }
    }
    if (!inside) wide.push(describe(el) + ' right=' + Math.round(r.right));
  }
}
const unstyledButtons = [...document.querySelectorAll('main button, main input[type=submit], main input[type=button]')]
  .filter(el => !el.classList.contains('btn') && el.offsetParent !== null)
  .map(el => describe(el) + ' "' + (el.textContent || el.value).trim() + '"');
const unwrappedTables = [...document.querySelectorAll('main table')]
  .filter(t => !t.closest('.table-wrap') || !t.classList.contains('table'))
  .map(describe);
const narrowTables = [...document.querySelectorAll('main .table-wrap > table')]
  .filter(t => t.offsetParent !== null && t.getBoundingClientRect().width + 1 < t.parentElement.clientWidth)
  .map(t => describe(t) + ' ' + Math.round(t.getBoundingClientRect().width) + '/' + t.parentElement.clientWidth);
return {
  innerWidth: vw,
  scrollWidth: document.documentElement.scrollWidth,
  wide: wide.slice(0, 8),
  unstyledButtons, unwrappedTables, narrowTables,
};
"#,
                vec![],
            )
            .await
            .unwrap()
    }

    /// A screenshot of the whole page at `width`, however long it is (up to 6000 px).
    async fn full_page_screenshot(&self, width: u32) -> Vec<u8> {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(900)
            .clamp(400, 6000) as u32;
        self.set_viewport(width, height).await;
        let png = self.client.screenshot().await.unwrap();
        self.set_viewport(width, 900).await;
        png
    }
}
