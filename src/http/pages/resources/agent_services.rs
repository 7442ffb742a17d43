//! What the agent services add to an item's page: a reply's model, cost and passages, a
//! knowledge base's indexing status per document, an agent's memory, a workflow's runs;
//! and the page forms that remember facts and start or cancel runs.
use super::*;
use crate::db::repo::resources::{Fields, Message};
use crate::domain::resources::MemoryMode;
use crate::domain::{IndexStatus, Micros};
use crate::http::views::{CitationLink, MemoryRow, RunRow, RunStepRow};
use crate::services::workflows::{self, RunView};
use crate::services::{knowledge, memory};

/// Runs a workflow's page shows.
const RUNS_SHOWN: i64 = 20;
/// The longest step input or output a page shows before cutting it.
const SHOWN_CHARS: usize = 4000;

fn cut(s: &str) -> String {
    if s.chars().count() <= SHOWN_CHARS {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(SHOWN_CHARS).collect();
        out.push_str(" …");
        out
    }
}

fn tokens_and_cost(input: i64, output: i64, cost: Micros) -> String {
    format!("{input} in / {output} out · ${}", cost.money())
}

/// A message as the conversation shows it; `docs` are the documents the reader may open.
pub(super) fn message_row(
    ctx: &OrgContext,
    m: Message,
    author: String,
    docs: &[ChoiceOption],
) -> MessageRow {
    let meta = match &m.model {
        Some(model) => format!(
            "{model} · {}",
            tokens_and_cost(m.input_tokens, m.output_tokens, m.cost_micros)
        ),
        None => String::new(),
    };
    let citations = m
        .citations
        .iter()
        .map(|c| {
            let id = c.document_id.to_string();
            match docs.iter().find(|d| d.id == id) {
                Some(d) => CitationLink {
                    href: Some(format!("/o/{}/documents/{id}", ctx.org().slug)),
                    label: format!("{}, passage {}", d.label, c.position + 1),
                },
                None => CitationLink {
                    href: None,
                    label: format!("a document you cannot open, passage {}", c.position + 1),
                },
            }
        })
        .collect();
    MessageRow {
        author,
        partial: !m.complete,
        role: m.role,
        content: m.content,
        at: time_at(m.created_at),
        meta,
        citations,
    }
}

/// The indexing status of each document row.
pub(super) async fn kb_statuses(
    s: &AppState,
    ctx: &OrgContext,
    kb: crate::domain::ResourceId,
    rows: &mut [KbDocumentRow],
) -> Result<()> {
    let docs = knowledge::documents(&s.svc, ctx, kb).await?;
    for row in rows {
        if let Some(d) = docs.iter().find(|d| d.document_id.to_string() == row.id) {
            row.status = knowledge::status_text(d);
            row.state = match d.status {
                IndexStatus::Queued => "queued",
                IndexStatus::Indexing => "indexing",
                IndexStatus::Ready => "ready",
                IndexStatus::Failed => "failed",
            }
            .into();
        }
    }
    Ok(())
}

/// An agent's memory mode in words and the facts the viewer sees.
pub(super) async fn memory_rows(
    s: &AppState,
    ctx: &OrgContext,
    view: &View,
) -> Result<(String, Vec<MemoryRow>)> {
    let Fields::Agent(a) = &view.resource.fields else {
        return Ok((String::new(), Vec::new()));
    };
    let mode = match a.memory {
        MemoryMode::Off => "off: replies see no remembered facts",
        MemoryMode::PerUser => "each member's own facts",
        MemoryMode::Organization => "facts shared by everyone who may use this agent",
    };
    let facts = memory::list(&s.svc, ctx, view.resource.id).await?;
    let rows = facts
        .into_iter()
        .map(|f| MemoryRow {
            id: f.id,
            key: f.key,
            value: f.value,
            scope: if f.user_id.is_some() {
                "you".into()
            } else {
                "everyone who may use the agent".into()
            },
            source_href: f
                .source_conversation_id
                .map(|c| format!("/o/{}/conversations/{c}", ctx.org().slug)),
            updated: time_at(f.updated_at),
        })
        .collect();
    Ok((mode.to_string(), rows))
}

fn run_row(v: &RunView, names: &Names) -> RunRow {
    let r = &v.run;
    let (i, o): (i64, i64) = v.steps.iter().fold((0, 0), |(i, o), s| {
        (i + s.input_tokens, o + s.output_tokens)
    });
    let cost: Micros = v.steps.iter().map(|s| s.cost_micros).sum();
    RunRow {
        id: r.id.clone(),
        status: r.status.as_str().into(),
        at: time_at(r.created_at),
        by: names.of(r.user_id),
        meta: tokens_and_cost(i, o, cost),
        input: cut(&match &r.input {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        }),
        output: cut(r.output.as_deref().unwrap_or_default()),
        error: r.error.clone().unwrap_or_default(),
        cancellable: !r.status.is_finished(),
        steps: v
            .steps
            .iter()
            .map(|s| RunStepRow {
                index: s.position,
                name: usize::try_from(s.position - 1)
                    .ok()
                    .and_then(|i| r.steps.get(i))
                    .map(crate::domain::resources::step_name)
                    .unwrap_or_default(),
                kind: s.kind.clone(),
                status: s.status.as_str().into(),
                input: cut(s.input.as_deref().unwrap_or_default()),
                output: cut(s.output.as_deref().unwrap_or_default()),
                error: s.error.clone().unwrap_or_default(),
                meta: format!(
                    "{}{}",
                    tokens_and_cost(s.input_tokens, s.output_tokens, s.cost_micros),
                    s.duration_ms
                        .map(|d| format!(" · {d} ms"))
                        .unwrap_or_default()
                ),
            })
            .collect(),
    }
}

/// A workflow's latest runs the viewer may see.
pub(super) async fn run_rows(
    s: &AppState,
    ctx: &OrgContext,
    workflow: crate::domain::ResourceId,
    names: &Names,
) -> Result<Vec<RunRow>> {
    let runs = workflows::list(&s.svc, ctx, workflow, None, RUNS_SHOWN).await?;
    Ok(runs.iter().map(|v| run_row(v, names)).collect())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RunForm {
    input: String,
}

/// The run form's text: JSON when it reads as JSON, otherwise the text itself.
fn run_input(text: &str) -> serde_json::Value {
    let t = text.trim();
    if t.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(t).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

pub(super) async fn start_run(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<RunForm>,
) -> Result<Response> {
    let kind = ResourceKind::Workflow;
    let workflow = resource_id(&id)?;
    let result = workflows::start(
        &s.engine(),
        &ctx,
        &user.actor(),
        workflow,
        run_input(&f.input),
    )
    .await;
    let url = item_url(&ctx, kind, &id);
    match result {
        Ok(_) => Ok(see_other(&format!("{url}?done=run_started#runs"))),
        Err(e) => {
            let errors = form_errors(&e, &["input"], "input").or_else(|| {
                (e.status() == StatusCode::TOO_MANY_REQUESTS)
                    .then(|| FormErrors::one("input", e.public_message()))
            });
            let Some(errors) = errors else {
                return Err(e);
            };
            let mut page = item_page(&s, &user, &ctx, kind, id).await?;
            page.run_input = f.input;
            page.run_errors = errors;
            Ok(shown_at(render_status(e.status(), &page)?, &url))
        }
    }
}

pub(super) async fn cancel_run(
    State(s): State<AppState>,
    Path((_, id, run)): Path<(String, String, String)>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    let workflow = resource_id(&id)?;
    let run = uuid::Uuid::parse_str(&run).map_err(|_| AppError::not_found())?;
    let url = item_url(&ctx, ResourceKind::Workflow, &id);
    match workflows::cancel(&s.engine(), &ctx, &user.actor(), workflow, &run.to_string()).await {
        Ok(_) => Ok(see_other(&format!("{url}?done=run_cancelled#runs"))),
        Err(e @ AppError::Conflict { .. }) => {
            let mut page = item_page(&s, &user, &ctx, ResourceKind::Workflow, id).await?;
            page.error = Some(e.public_message());
            Ok(shown_at(render_status(e.status(), &page)?, &url))
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct FactForm {
    key: String,
    value: String,
}

pub(super) async fn remember(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<FactForm>,
) -> Result<Response> {
    let kind = ResourceKind::Agent;
    let agent = resource_id(&id)?;
    let url = item_url(&ctx, kind, &id);
    match memory::put(&s.svc, &ctx, agent, &f.key, &f.value).await {
        Ok(_) => Ok(see_other(&format!("{url}?done=remembered#memory"))),
        Err(e) => {
            let Some(errors) = form_errors(&e, &["key", "value"], "value") else {
                return Err(e);
            };
            let mut page = item_page(&s, &user, &ctx, kind, id).await?;
            page.memory_key = f.key;
            page.memory_value = f.value;
            page.memory_errors = errors;
            Ok(shown_at(render_status(e.status(), &page)?, &url))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct FactValue {
    value: String,
}

pub(super) async fn change_fact(
    State(s): State<AppState>,
    Path((_, id, fact)): Path<(String, String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<FactValue>,
) -> Result<Response> {
    let kind = ResourceKind::Agent;
    let agent = resource_id(&id)?;
    let url = item_url(&ctx, kind, &id);
    match memory::update(&s.svc, &ctx, agent, fact, None, Some(f.value.clone())).await {
        Ok(_) => Ok(see_other(&format!("{url}?done=fact_saved#memory"))),
        Err(e) => {
            let Some(errors) = form_errors(&e, &["value"], "value") else {
                return Err(e);
            };
            let mut page = item_page(&s, &user, &ctx, kind, id).await?;
            page.memory_errors = errors;
            Ok(shown_at(render_status(e.status(), &page)?, &url))
        }
    }
}

pub(super) async fn forget_fact(
    State(s): State<AppState>,
    Path((_, id, fact)): Path<(String, String, String)>,
    OrgForm(OrgCtx { ctx, .. }, _): OrgForm<Empty>,
) -> Result<Response> {
    let agent = resource_id(&id)?;
    memory::delete(&s.svc, &ctx, agent, fact).await?;
    Ok(see_other(&format!(
        "{}?done=forgotten#memory",
        item_url(&ctx, ResourceKind::Agent, &id)
    )))
}
