//! The agent services in the browser: a reply streams into the conversation page as it
//! arrives and stays with its cost; a workflow runs from its page and its history shows
//! each step; an agent's memory is kept and forgotten from its page.
use super::*;

/// Ada's organization with the mock as its provider, an agent answering with `model` and
/// a conversation with it; (org id, agent id, conversation id).
async fn chat_setup(app: &TestApp, model: &str) -> (String, String, String) {
    app.create_user(ADA_EMAIL, ADA_NAME).await;
    let owner = app.login(ADA_EMAIL).await;
    let org = engines(&owner).await;
    let agent = owner
        .post(
            &format!("/api/v1/orgs/{org}/agents"),
            json!({"name": "Card reader", "visibility": "organization", "model": model,
                   "system_prompt": "Explain the cards.", "memory": "per_user"}),
        )
        .await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.text);
    let agent = agent.body["id"].as_str().unwrap().to_string();
    let conv = owner
        .post(
            &format!("/api/v1/orgs/{org}/conversations"),
            json!({"name": "About cards", "agent_id": agent}),
        )
        .await;
    assert_eq!(conv.status, StatusCode::CREATED, "{}", conv.text);
    let conv = conv.body["id"].as_str().unwrap().to_string();
    (org, agent, conv)
}

#[tokio::test]
async fn a_reply_streams_into_the_conversation_page_and_stays_there_with_its_cost() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let mock = common::mock_llm::MockLlm::start().await;
    let app = TestApp::spawn_with(|c| common::env_mock(c, &mock)).await;
    // 40 pieces, 50 ms apart: two seconds in which the page shows part of the reply.
    let (_, _, conv) = chat_setup(&app, "stream-slow").await;
    let ada = Browser::launch(&app).await;
    ada.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    ada.wait_for("#sign-out").await;
    ada.goto(&format!("/o/engines/conversations/{conv}")).await;
    ada.wait_for_text("#chat-model", "Answered by the agent with stream-slow.")
        .await;
    ada.type_into("#message-content", "What does card 7 do?")
        .await;
    ada.wait_for("#add-message-btn")
        .await
        .click()
        .await
        .unwrap();
    // Part of the reply is on the page before the rest has arrived.
    ada.wait_until(
        ".message-streaming .message-body",
        |t| t.contains("tok0") && !t.contains("tok39"),
        "holding the first pieces but not the last",
    )
    .await;
    ada.wait_for(".message-done").await;
    let reply = ada.text_of(".message-done .message-body").await;
    let expected: String = (0..40).map(|i| format!("tok{i} ")).collect();
    assert_eq!(reply.trim_end(), expected.trim_end());
    ada.wait_until_text_contains(
        ".message-done .message-cost",
        "stream-slow · 11 in / 40 out",
    )
    .await;
    assert_eq!(
        ada.path().await,
        format!("/o/engines/conversations/{conv}"),
        "the page was left"
    );
    assert_eq!(
        ada.client
            .find(Locator::Css("#message-content"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(""),
        "the box was not emptied"
    );

    // What streamed was stored: a reload shows both messages with the reply's cost.
    ada.goto(&format!("/o/engines/conversations/{conv}")).await;
    ada.wait_for("#messages li.message-assistant").await;
    let items = ada
        .client
        .find_all(Locator::Css("#messages li"))
        .await
        .unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        ada.text_of("#messages li.message-user .message-body").await,
        "What does card 7 do?"
    );
    assert_eq!(
        ada.text_of("#messages li.message-assistant .message-body")
            .await
            .trim_end(),
        expected.trim_end()
    );
    assert!(
        ada.text_of("#messages li.message-assistant .message-cost")
            .await
            .starts_with("stream-slow · 11 in / 40 out · $")
    );
    ada.close().await;
}

#[tokio::test]
async fn a_refused_turn_is_said_under_the_message_box_which_keeps_the_text() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    // No provider configured: the turn is refused with no_provider_key.
    let app = TestApp::spawn().await;
    let (_, _, conv) = chat_setup(&app, "gpt-test").await;
    let ada = Browser::launch(&app).await;
    ada.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    ada.wait_for("#sign-out").await;
    ada.goto(&format!("/o/engines/conversations/{conv}")).await;
    ada.type_into("#message-content", "Anyone there?").await;
    ada.wait_for("#add-message-btn")
        .await
        .click()
        .await
        .unwrap();
    ada.wait_for("#message-content[aria-invalid='true']").await;
    let error = ada.text_of("#message-content-error").await;
    assert!(error.contains("key"), "{error}");
    assert!(
        ada.absent("#messages li").await,
        "a refused turn left a message"
    );
    assert_eq!(
        ada.client
            .find(Locator::Css("#message-content"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Anyone there?")
    );
    ada.close().await;
}

#[tokio::test]
async fn a_workflow_runs_from_its_page_and_an_agent_keeps_and_forgets_facts_on_its_page() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let mock = common::mock_llm::MockLlm::start().await;
    let app = TestApp::spawn_with(|c| common::env_mock(c, &mock)).await;
    let (org, agent, _) = chat_setup(&app, "gpt-test").await;
    let owner = app.login(ADA_EMAIL).await;
    let wf = owner
        .post(
            &format!("/api/v1/orgs/{org}/workflows"),
            json!({"name": "Explain", "visibility": "organization",
                   "steps": [{"kind": "agent", "name": "explain", "agent_id": agent,
                              "prompt": "Explain card {{input.card}}"}]}),
        )
        .await;
    assert_eq!(wf.status, StatusCode::CREATED, "{}", wf.text);
    let wf = wf.body["id"].as_str().unwrap().to_string();

    let ada = Browser::launch(&app).await;
    ada.fill_sign_in(ADA_EMAIL, PASSWORD).await;
    ada.wait_for("#sign-out").await;
    ada.goto(&format!("/o/engines/workflows/{wf}")).await;
    ada.wait_for("#runs-empty").await;
    ada.type_into("#run-input", "{\"card\": 7}").await;
    ada.wait_for("#start-run-btn").await.click().await.unwrap();
    // The history refreshes itself until the run has ended.
    ada.wait_until_text_contains("#run-history .run-status", "succeeded")
        .await;
    assert_eq!(
        ada.text_of("#run-history .step-output").await,
        "Hello from the mock"
    );
    assert!(
        ada.text_of("#run-history .run-step")
            .await
            .contains("1. explain")
    );
    let asked = mock
        .requests()
        .iter()
        .filter(|r| r.path == "/chat/completions")
        .map(|r| r.body["messages"].as_array().unwrap().last().unwrap()["content"].clone())
        .collect::<Vec<_>>();
    assert_eq!(asked, vec![json!("Explain card 7")]);

    // Memory: remembered from the agent's page, then forgotten.
    ada.goto(&format!("/o/engines/agents/{agent}")).await;
    ada.wait_for("#memory-empty").await;
    assert!(
        ada.text_of("#memory-mode")
            .await
            .contains("each member's own facts")
    );
    ada.type_into("#memory-key", "favourite card").await;
    ada.type_into("#memory-value", "the seventh").await;
    ada.wait_for("#remember-btn").await.click().await.unwrap();
    ada.wait_until_text_contains("#memory-facts", "favourite card")
        .await;
    let value = ada
        .wait_for("#memory-facts .fact-edit input[name=value]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("the seventh"));
    let facts = owner
        .get(&format!("/api/v1/orgs/{org}/agents/{agent}/memory"))
        .await;
    assert_eq!(facts.body["items"][0]["key"], "favourite card");
    // Edited in place.
    let field = format!("#fact-{}", facts.body["items"][0]["id"].as_str().unwrap());
    let input = ada.wait_for(&field).await;
    input.clear().await.unwrap();
    input.send_keys("the eighth").await.unwrap();
    ada.wait_for(".fact-edit button")
        .await
        .click()
        .await
        .unwrap();
    ada.wait_for_text("#resource-notice", "Fact saved.").await;
    let facts = owner
        .get(&format!("/api/v1/orgs/{org}/agents/{agent}/memory"))
        .await;
    assert_eq!(facts.body["items"][0]["value"], "the eighth");
    ada.client
        .execute("window.confirm = () => true;", vec![])
        .await
        .unwrap();
    ada.wait_for("#memory-facts button.btn-danger")
        .await
        .click()
        .await
        .unwrap();
    ada.wait_for("#memory-empty").await;
    let facts = owner
        .get(&format!("/api/v1/orgs/{org}/agents/{agent}/memory"))
        .await;
    assert_eq!(facts.body["items"], json!([]));
    ada.close().await;
}
