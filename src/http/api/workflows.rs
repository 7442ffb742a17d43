//! Workflow runs (API.md "Agent services"): start a run, list and read runs with their
//! steps, cancel one. Routes are the `{type}` shape of the resources, for workflows only.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::items;
use super::ok;
use super::pagination::{Page, encode_cursor, time_key};
use super::resources::{kind, only};
use crate::db::repo::resources::ResourceKind;
use crate::db::repo::runs::RunStep;
use crate::domain::resources::step_name;
use crate::domain::{Micros, RunStatus, StepStatus, Word};
use crate::error::{AppError, Result};
use crate::http::extract::{ApiJson, ApiQuery, OrgCtx, resource_id};
use crate::http::state::AppState;
use crate::services::workflows::{self, RunView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/orgs/{org}/{type}/{id}/runs",
            get(list_runs).post(start_run),
        )
        .route("/api/v1/orgs/{org}/{type}/{id}/runs/{run_id}", get(get_run))
        .route(
            "/api/v1/orgs/{org}/{type}/{id}/runs/{run_id}/cancel",
            post(cancel_run),
        )
}

/// What a run starts with.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// the run's input, any JSON (text or an object); `{{input}}` and `{{input.field}}`
    /// in step templates read it
    #[serde(default)]
    input: Value,
}

/// One step of a run.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StepOut {
    /// counts from 1, as `{{steps.N.output}}` does
    index: i64,
    #[schema(schema_with = step_kind)]
    kind: String,
    name: String,
    #[schema(value_type = String)]
    status: StepStatus,
    attempts: i64,
    /// the prompt, tool input or condition as filled in
    input: Option<String>,
    output: Option<String>,
    error: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    #[schema(value_type = i64)]
    cost_micros: Micros,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
}

fn step_kind() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["agent", "tool", "condition"]))
        .into()
}

fn run_status() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(RunStatus::ALL.iter().map(|s| s.as_str())))
        .into()
}

/// A run and its steps.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunOut {
    id: String,
    workflow_id: String,
    #[schema(schema_with = run_status)]
    status: RunStatus,
    /// who started it
    started_by: Option<String>,
    input: Value,
    /// the last agent or tool step's output, once the run succeeded
    output: Option<String>,
    /// why it failed, was cancelled or interrupted, naming the step
    error: Option<String>,
    /// the step under way or last reached (from 1)
    current_step: Option<i64>,
    /// steps in the workflow when the run started
    step_count: usize,
    cancel_requested: bool,
    input_tokens: i64,
    output_tokens: i64,
    #[schema(value_type = i64)]
    cost_micros: Micros,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    steps: Vec<StepOut>,
}

fn step_out(defs: &[Value], s: &RunStep) -> StepOut {
    StepOut {
        index: s.position,
        kind: s.kind.clone(),
        name: usize::try_from(s.position - 1)
            .ok()
            .and_then(|i| defs.get(i))
            .map(step_name)
            .unwrap_or_default(),
        status: s.status,
        attempts: s.attempts,
        input: s.input.clone(),
        output: s.output.clone(),
        error: s.error.clone(),
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        cost_micros: s.cost_micros,
        started_at: s.started_at,
        finished_at: s.finished_at,
        duration_ms: s.duration_ms,
    }
}

impl From<&RunView> for RunOut {
    fn from(v: &RunView) -> Self {
        let r = &v.run;
        RunOut {
            id: r.id.clone(),
            workflow_id: r.workflow_id.to_string(),
            status: r.status,
            started_by: r.user_id.map(|u| u.to_string()),
            input: r.input.clone(),
            output: r.output.clone(),
            error: r.error.clone(),
            current_step: r.current_step,
            step_count: r.steps.len(),
            cancel_requested: r.cancel_requested,
            input_tokens: v.steps.iter().map(|s| s.input_tokens).sum(),
            output_tokens: v.steps.iter().map(|s| s.output_tokens).sum(),
            cost_micros: v.steps.iter().map(|s| s.cost_micros).sum(),
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            steps: v.steps.iter().map(|s| step_out(&r.steps, s)).collect(),
        }
    }
}

/// A run id in a path: a UUID, or 404.
fn run_id(s: &str) -> Result<String> {
    uuid::Uuid::parse_str(s)
        .map(|u| u.to_string())
        .map_err(|_| AppError::not_found())
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/{type}/{id}/runs",
    tag = "agent-services",
    summary = "Start a run of the workflow in the background",
    description = "Needs `llm.use` and a workflow the caller can read; the run acts as the caller and takes the steps as they are now. Agent steps are metered as `workflow.step`. At most 20 runs of an organization wait or run at a time (429 `too_many_runs`).",
    params(OrgPath, IdPath),
    request_body = StartBody,
    responses(
        (status = 202, description = "Queued", body = RunOut),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn start_run(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
    ApiJson(b): ApiJson<StartBody>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Workflow)?;
    let workflow = resource_id(&id)?;
    let run = workflows::start(&s.engine(), &ctx, &user.actor(), workflow, b.input).await?;
    let view = RunView {
        run,
        steps: Vec::new(),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(RunOut::from(&view))).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/{type}/{id}/runs",
    tag = "agent-services",
    summary = "The workflow's runs, newest first",
    description = "Whoever may change the workflow sees every run; other readers see the runs they started.",
    params(OrgPath, IdPath, PageQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<RunOut>),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn list_runs(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Workflow)?;
    let limit = page.limit()? as i64;
    let before = page.after()?.and_then(|c| {
        c.split_once('|')
            .map(|(a, b)| (a.to_string(), b.to_string()))
    });
    let mut rows = workflows::list(&s.svc, &ctx, resource_id(&id)?, before, limit + 1).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|v| encode_cursor(&time_key(v.run.created_at, &v.run.id)))
    } else {
        None
    };
    let out: Vec<RunOut> = rows.iter().map(RunOut::from).collect();
    Ok(items(&out, next))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/{type}/{id}/runs/{run_id}",
    tag = "agent-services",
    summary = "A run with each step's input, output, tokens, cost and time",
    params(OrgPath, IdPath, ("run_id" = String, Path, format = "uuid")),
    responses(
        (status = 200, description = "Success", body = RunOut),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn get_run(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id, run)): Path<(String, String, String, String)>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Workflow)?;
    let view = workflows::get(&s.svc, &ctx, resource_id(&id)?, &run_id(&run)?).await?;
    Ok(ok(&RunOut::from(&view)))
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/{type}/{id}/runs/{run_id}/cancel",
    tag = "agent-services",
    summary = "Stop a run",
    description = "A queued run ends at once; a running one as soon as its current step's call is abandoned. The one who started it or whoever may change the workflow may cancel; a finished run is 409 `run_finished`.",
    params(OrgPath, IdPath, ("run_id" = String, Path, format = "uuid")),
    responses(
        (status = 200, description = "Cancelled or being cancelled", body = RunOut),
        (status = 409, response = Conflict),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn cancel_run(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, ty, id, run)): Path<(String, String, String, String)>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Workflow)?;
    let view = workflows::cancel(
        &s.engine(),
        &ctx,
        &user.actor(),
        resource_id(&id)?,
        &run_id(&run)?,
    )
    .await?;
    Ok(ok(&RunOut::from(&view)))
}
