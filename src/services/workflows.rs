//! Workflow runs (the seed's WorkflowEngine): a run takes the workflow's steps as they
//! were when it started and works through them in the background, as the member who
//! started it. Agent steps ask an agent through the one model path (metered as
//! `workflow.step`), tool steps call the tool's URL with input checked against its JSON
//! Schema, condition steps jump ahead. Every change of state is written before the next
//! step starts, so a restart finds each run where it stood: a step that was under way is
//! tried once more when repeating it is harmless, otherwise the run ends `interrupted`
//! naming the step.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::knowledge::Knowledge;
use super::models::Models;
use super::upstream::{self, Origin};
use super::{Actor, Services, fresh_context};
use crate::db::OrgContext;
use crate::db::repo::audit::{self, Entry};
use crate::db::repo::resources::{self as repo, Fields, Resource, ResourceKind};
use crate::db::repo::runs::{self, Run, RunStep};
use crate::db::scope::SystemScope;
use crate::db::unscoped::unscoped_unfinished_runs;
use crate::domain::resources::{StepSpec, parse_steps};
use crate::domain::{Invalid, Micros, OrgId, Permission, ResourceId, RunStatus, StepStatus};
use crate::domain::{as_stored, fmt_time, new_id};
use crate::error::{AppError, Result};

/// Queued and running runs one organization may have at a time.
pub const MAX_UNFINISHED: i64 = 20;
/// Runs worked on at once, over all organizations.
const CONCURRENCY: usize = 4;
/// How long the runner sleeps when nobody wakes it.
const IDLE: Duration = Duration::from_secs(30);
/// The largest run input, as JSON.
pub const MAX_INPUT: usize = 64 * 1024;
/// A tool's time limit when its configuration names none, and the longest it may name.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(15);
pub const MAX_TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest tool answer read; a larger one fails the step.
pub const TOOL_RESPONSE_LIMIT: usize = 1 << 20;

/// The runner's wake-up call, the cancel signals of the runs under way, and the port
/// this server listens on (a tool may not point back at it).
#[derive(Default)]
pub struct Runner {
    wake: Notify,
    cancels: Mutex<HashMap<String, Arc<Notify>>>,
    own_port: OnceLock<u16>,
}

impl Runner {
    pub fn new() -> Arc<Runner> {
        Arc::new(Runner::default())
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The port the server listens on, told once it is bound.
    pub fn listening_on(&self, port: u16) {
        let _ = self.own_port.set(port);
    }

    fn cancel_signal(&self, run: &str) -> Arc<Notify> {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(run.to_string())
            .or_default()
            .clone()
    }

    fn signal_cancel(&self, run: &str) {
        // notify_one keeps a permit, so a run between steps sees it at its next step.
        self.cancel_signal(run).notify_one();
    }

    fn forget(&self, run: &str) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(run);
    }
}

/// What the runner works with.
#[derive(Clone)]
pub struct Engine {
    pub svc: Services,
    pub models: Arc<Models>,
    pub knowledge: Arc<Knowledge>,
    pub runner: Arc<Runner>,
}

/// A run as the API shows it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub run: Run,
    pub steps: Vec<RunStep>,
}

/// The workflow when the caller may read it (404 otherwise).
fn readable_workflow(
    c: &crate::db::Conn<'_>,
    ctx: &OrgContext,
    id: ResourceId,
) -> Result<Resource> {
    repo::find_visible(c, ctx, ResourceKind::Workflow, id)?.ok_or_else(AppError::not_found)
}

/// Who sees a workflow's runs: those who may change the workflow see all of them, other
/// readers their own.
fn sees_all_runs(ctx: &OrgContext, w: &Resource) -> bool {
    super::resources::can_write(ctx, w)
}

/// Starts a run of `workflow` with `input`: checked, stored as queued with the steps as
/// they are now, audited in the same transaction; the runner picks it up.
pub async fn start(
    e: &Engine,
    ctx: &OrgContext,
    actor: &Actor,
    workflow: ResourceId,
    input: Value,
) -> Result<Run> {
    if input.to_string().len() > MAX_INPUT {
        return Err(AppError::invalid(vec![Invalid::new(
            "input",
            "Keep the run's input under 64 KiB.",
        )]));
    }
    let (ctx, actor2, now) = (ctx.clone(), actor.clone(), e.svc.now());
    let run = e
        .svc
        .db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            let w = readable_workflow(tx, &me, workflow)?;
            let Fields::Workflow(f) = &w.fields else {
                return Err(AppError::not_found());
            };
            // After the lookup: another organization's workflow is 404 whatever one's role.
            super::require(&me, Permission::LlmUse)?;
            if f.steps.is_empty() {
                return Err(AppError::Unprocessable {
                    code: "no_steps",
                    message: "This workflow has no steps to run yet.".into(),
                });
            }
            parse_steps(&f.steps).map_err(|why| AppError::Unprocessable {
                code: "invalid_steps",
                message: why,
            })?;
            if runs::unfinished_count(tx, &me)? >= MAX_UNFINISHED {
                return Err(AppError::TooManyRequests {
                    code: "too_many_runs",
                    message: format!(
                        "This organization already has {MAX_UNFINISHED} runs waiting or under way; wait for some to finish."
                    ),
                    retry_after_secs: None,
                });
            }
            let run = Run {
                id: new_id().to_string(),
                workflow_id: workflow,
                user_id: Some(me.user_id()),
                status: RunStatus::Queued,
                input,
                steps: f.steps.clone(),
                current_step: None,
                output: None,
                error: None,
                cancel_requested: false,
                created_at: as_stored(now),
                started_at: None,
                finished_at: None,
            };
            let at = fmt_time(run.created_at);
            runs::insert(tx, &me, &run, &at)?;
            audit::append(
                tx,
                &me,
                &actor2.entry(
                    "workflow.run_started",
                    "workflow",
                    Some(workflow.to_string()),
                    json!({"run_id": run.id, "steps": run.steps.len()}),
                ),
                &at,
            )?;
            Ok(run)
        })
        .await?;
    e.runner.wake();
    Ok(run)
}

/// A workflow's runs the caller may see, newest first.
pub async fn list(
    svc: &Services,
    ctx: &OrgContext,
    workflow: ResourceId,
    before: Option<(String, String)>,
    limit: i64,
) -> Result<Vec<RunView>> {
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let w = readable_workflow(tx, &ctx, workflow)?;
            let starter = (!sees_all_runs(&ctx, &w)).then(|| ctx.user_id());
            let before = before.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
            let rows = runs::list(tx, &ctx, workflow, starter, before, limit)?;
            rows.into_iter()
                .map(|run| {
                    let steps = runs::steps(tx, &ctx, &run.id)?;
                    Ok(RunView { run, steps })
                })
                .collect::<Result<Vec<_>>>()
        })
        .await
}

/// One run the caller may see (404 otherwise).
pub async fn get(
    svc: &Services,
    ctx: &OrgContext,
    workflow: ResourceId,
    run_id: &str,
) -> Result<RunView> {
    let (ctx, run_id) = (ctx.clone(), run_id.to_string());
    svc.db
        .read(move |tx| {
            let w = readable_workflow(tx, &ctx, workflow)?;
            let run = runs::get(tx, &ctx, workflow, &run_id)?
                .filter(|r| sees_all_runs(&ctx, &w) || r.user_id == Some(ctx.user_id()))
                .ok_or_else(AppError::not_found)?;
            let steps = runs::steps(tx, &ctx, &run.id)?;
            Ok(RunView { run, steps })
        })
        .await
}

/// Stops a run: a queued one at once, a running one after its current step's call is
/// abandoned. The one who started it or whoever may change the workflow may cancel; a
/// finished run is 409 `run_finished`.
pub async fn cancel(
    e: &Engine,
    ctx: &OrgContext,
    actor: &Actor,
    workflow: ResourceId,
    run_id: &str,
) -> Result<RunView> {
    let (ctx2, actor2, id, now) = (
        ctx.clone(),
        actor.clone(),
        run_id.to_string(),
        e.svc.now_str(),
    );
    e.svc
        .db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx2)?;
            let w = readable_workflow(tx, &me, workflow)?;
            let run = runs::get(tx, &me, workflow, &id)?
                .filter(|r| sees_all_runs(&me, &w) || r.user_id == Some(me.user_id()))
                .ok_or_else(AppError::not_found)?;
            if run.status.is_finished() {
                return Err(AppError::Conflict {
                    code: "run_finished",
                    message: format!("This run has already ended ({}).", run.status.as_str()),
                });
            }
            if run.status == RunStatus::Queued {
                runs::finish(
                    tx,
                    &me,
                    &id,
                    RunStatus::Cancelled,
                    None,
                    Some("cancelled before it started"),
                    &now,
                )?;
            } else {
                runs::request_cancel(tx, &me, &id)?;
            }
            audit::append(
                tx,
                &me,
                &actor2.entry(
                    "workflow.run_cancelled",
                    "workflow",
                    Some(workflow.to_string()),
                    json!({"run_id": id, "was": run.status.as_str()}),
                ),
                &now,
            )?;
            Ok::<_, AppError>(())
        })
        .await?;
    e.runner.signal_cancel(run_id);
    get(&e.svc, ctx, workflow, run_id).await
}

/// The runner: works on queued and interrupted-by-restart runs, a few at a time, then
/// waits to be woken (or for a while).
pub async fn run_forever(e: Engine) {
    // Run ids by task, so that a task that panics frees its place (its run stays
    // unfinished and is picked up again).
    let mut active: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let queue = e
            .svc
            .db
            .read(|tx| Ok::<_, AppError>(unscoped_unfinished_runs(tx)?))
            .await;
        match queue {
            Ok(q) => {
                let busy: HashSet<String> = active.values().cloned().collect();
                for (org, id) in q.into_iter().filter(|(_, id)| !busy.contains(id)) {
                    if active.len() >= CONCURRENCY {
                        break;
                    }
                    let e = e.clone();
                    let run = id.clone();
                    let task = tasks.spawn(async move {
                        if let Err(err) = work(&e, org, &run).await {
                            tracing::error!(%org, run = %run, error = %err, "a workflow run could not go on");
                        }
                        e.runner.forget(&run);
                    });
                    active.insert(task.id(), id);
                }
            }
            Err(err) => tracing::error!(error = %err, "reading the workflow queue"),
        }
        tokio::select! {
            () = e.runner.wake.notified() => {}
            done = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match done {
                    Some(Ok((id, ()))) => Some(id),
                    Some(Err(err)) => Some(err.id()),
                    None => None,
                };
                if let Some(id) = id {
                    active.remove(&id);
                }
            }
            () = tokio::time::sleep(IDLE) => {}
        }
    }
}

/// What ended a step that did not succeed.
enum Stop {
    Failed(String),
    Cancelled,
}

/// How far a run got.
struct Progress {
    outputs: Vec<Option<String>>,
    input_tokens: i64,
    output_tokens: i64,
    cost: Micros,
}

/// Works on one run until it ends (or the server stops).
async fn work(e: &Engine, org: OrgId, id: &str) -> Result<()> {
    let system = {
        let id = id.to_string();
        e.svc
            .db
            .read(move |tx| {
                let Some(sys) = SystemScope::new("workflow-runner").in_org(tx, org)? else {
                    return Ok::<_, AppError>(None);
                };
                let run = runs::by_id(tx, &sys, &id)?;
                let steps = runs::steps(tx, &sys, &id)?;
                Ok(run.map(|r| (sys, r, steps)))
            })
            .await?
    };
    let Some((sys, run, done)) = system else {
        return Ok(());
    };
    if run.status.is_finished() {
        return Ok(());
    }
    let cancel = e.runner.cancel_signal(id);
    let finish =
        |status: RunStatus, output: Option<String>, error: Option<String>, p: &Progress| {
            finish_run(e, &sys, &run, status, output, error, p.totals())
        };
    let specs = match parse_steps(&run.steps) {
        Ok(s) => s,
        Err(why) => {
            let p = Progress::new(0);
            return finish(RunStatus::Failed, None, Some(why), &p).await;
        }
    };
    let mut p = Progress::new(specs.len());
    for s in &done {
        if s.status == StepStatus::Succeeded
            && let Some(slot) = usize::try_from(s.position - 1)
                .ok()
                .and_then(|i| p.outputs.get_mut(i))
        {
            slot.clone_from(&s.output);
        }
        p.input_tokens += s.input_tokens;
        p.output_tokens += s.output_tokens;
        p.cost = p.cost.saturating_add(s.cost_micros);
    }
    // The member the run acts as, with their permissions as they are now.
    let ctx = match run.user_id {
        Some(user) => super::orgs::context(&e.svc, user, org.to_string())
            .await
            .ok(),
        None => None,
    };
    let Some(ctx) = ctx else {
        let why = "the member who started this run is no longer in the organization".to_string();
        return finish(RunStatus::Failed, None, Some(why), &p).await;
    };
    {
        let (sys, id, now) = (sys.clone(), id.to_string(), e.svc.now_str());
        let running = e
            .svc
            .db
            .write(move |tx| Ok::<_, AppError>(runs::set_running(tx, &sys, &id, &now)?))
            .await?;
        if !running {
            return Ok(());
        }
    }
    // Where to go on from: after the last step that ended; a step found under way was
    // cut off by a stop of the server.
    let mut next = 1usize;
    let mut attempts = 1;
    if let Some(last) = done.iter().max_by_key(|s| s.position) {
        next = usize::try_from(last.position).unwrap_or(1).max(1);
        if last.status == StepStatus::Running {
            let again = match specs.get(next - 1) {
                Some(spec) => repeatable(e, &ctx, spec).await,
                None => false,
            };
            if last.attempts >= 2 || !again {
                let why = format!(
                    "the server stopped during step {next} ({}); it was not repeated",
                    step_label(&run.steps, next)
                );
                mark_step(e, &sys, id, last, StepStatus::Interrupted, &why).await?;
                return finish(RunStatus::Interrupted, None, Some(why), &p).await;
            }
            attempts = last.attempts + 1;
        } else {
            next = goto_after(&specs, last, &p).unwrap_or(next + 1);
        }
    }
    let mut output = None;
    while next <= specs.len() {
        if cancel_requested(e, &sys, id).await? {
            return finish(RunStatus::Cancelled, None, Some("cancelled".into()), &p).await;
        }
        let spec = &specs[next - 1];
        let started = Instant::now();
        let mut step = RunStep {
            position: next as i64,
            kind: spec.kind().to_string(),
            status: StepStatus::Running,
            attempts,
            input: None,
            output: None,
            error: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_micros: Micros::ZERO,
            started_at: as_stored(e.svc.now()),
            finished_at: None,
            duration_ms: None,
        };
        step.input = Some(step_input(spec, &run.input, &p.outputs));
        {
            let (sys, id, step) = (sys.clone(), id.to_string(), step.clone());
            e.svc
                .db
                .write(move |tx| Ok::<_, AppError>(runs::start_step(tx, &sys, &id, &step)?))
                .await?;
        }
        attempts = 1;
        let outcome = tokio::select! {
            r = run_step(e, &ctx, spec, &run.input, &p.outputs, &mut step) => r,
            () = cancel.notified() => Err(Stop::Cancelled),
        };
        step.finished_at = Some(as_stored(e.svc.now()));
        step.duration_ms = Some(started.elapsed().as_millis() as i64);
        p.input_tokens += step.input_tokens;
        p.output_tokens += step.output_tokens;
        p.cost = p.cost.saturating_add(step.cost_micros);
        let jump = match outcome {
            Ok(jump) => {
                step.status = StepStatus::Succeeded;
                p.outputs[next - 1].clone_from(&step.output);
                if spec.kind() != "condition" {
                    output = step.output.clone();
                }
                jump
            }
            Err(stop) => {
                let (step_status, run_status, why) = match stop {
                    Stop::Failed(why) => (StepStatus::Failed, RunStatus::Failed, why),
                    Stop::Cancelled => (
                        StepStatus::Cancelled,
                        RunStatus::Cancelled,
                        "cancelled".to_string(),
                    ),
                };
                step.status = step_status;
                step.error = Some(why.clone());
                save_step(e, &sys, id, &step).await?;
                let why = if run_status == RunStatus::Failed {
                    format!(
                        "step {next} ({}) failed: {why}",
                        step_label(&run.steps, next)
                    )
                } else {
                    why
                };
                return finish(run_status, None, Some(why), &p).await;
            }
        };
        save_step(e, &sys, id, &step).await?;
        match jump {
            Some(to) => {
                for skipped in next + 1..to {
                    skip_step(e, &sys, id, skipped, &specs[skipped - 1]).await?;
                }
                next = to;
            }
            None => next += 1,
        }
    }
    if output.is_none() {
        output = done
            .iter()
            .rev()
            .filter(|s| s.status == StepStatus::Succeeded && s.kind != "condition")
            .find_map(|s| s.output.clone());
    }
    finish(RunStatus::Succeeded, output, None, &p).await
}

impl Progress {
    fn totals(&self) -> (i64, i64, Micros) {
        (self.input_tokens, self.output_tokens, self.cost)
    }

    fn new(n: usize) -> Self {
        Progress {
            outputs: vec![None; n],
            input_tokens: 0,
            output_tokens: 0,
            cost: Micros::ZERO,
        }
    }
}

/// After a finished step: where a condition that held jumps to.
fn goto_after(specs: &[StepSpec], last: &RunStep, p: &Progress) -> Option<usize> {
    let n = usize::try_from(last.position).ok().filter(|n| *n >= 1)?;
    match specs.get(n - 1)? {
        StepSpec::Condition { goto, .. } if p.outputs.get(n - 1)?.as_deref() == Some("true") => {
            Some(*goto)
        }
        _ => Some(n + 1),
    }
}

/// Whether a step cut off by a stop may simply be run again: asking an agent or testing a
/// condition may; calling a tool only with a method that is safe to repeat.
async fn repeatable(e: &Engine, ctx: &OrgContext, spec: &StepSpec) -> bool {
    let StepSpec::Tool { tool_id, .. } = spec else {
        return true;
    };
    let Some(id) = ResourceId::parse(tool_id) else {
        return true;
    };
    let ctx = ctx.clone();
    let tool = e
        .svc
        .db
        .read(move |tx| Ok::<_, AppError>(repo::find_visible(tx, &ctx, ResourceKind::Tool, id)?))
        .await;
    match tool {
        Ok(Some(Resource {
            fields: Fields::Tool(t),
            ..
        })) => ToolCall::from_config(&t.config).is_ok_and(|c| c.idempotent()),
        _ => true,
    }
}

fn step_label(steps: &[Value], n: usize) -> String {
    steps
        .get(n - 1)
        .map(crate::domain::resources::step_name)
        .unwrap_or_default()
}

async fn cancel_requested(e: &Engine, sys: &OrgContext, id: &str) -> Result<bool> {
    let (sys, id) = (sys.clone(), id.to_string());
    e.svc
        .db
        .read(move |tx| {
            Ok::<_, AppError>(runs::by_id(tx, &sys, &id)?.is_none_or(|r| r.cancel_requested))
        })
        .await
}

async fn save_step(e: &Engine, sys: &OrgContext, id: &str, step: &RunStep) -> Result<()> {
    let (sys, id, step) = (sys.clone(), id.to_string(), step.clone());
    e.svc
        .db
        .write(move |tx| Ok::<_, AppError>(runs::finish_step(tx, &sys, &id, &step)?))
        .await
}

async fn mark_step(
    e: &Engine,
    sys: &OrgContext,
    id: &str,
    step: &RunStep,
    status: StepStatus,
    why: &str,
) -> Result<()> {
    let mut s = step.clone();
    s.status = status;
    s.error = Some(why.to_string());
    s.finished_at = Some(as_stored(e.svc.now()));
    save_step(e, sys, id, &s).await
}

async fn skip_step(
    e: &Engine,
    sys: &OrgContext,
    id: &str,
    n: usize,
    spec: &StepSpec,
) -> Result<()> {
    let now = as_stored(e.svc.now());
    let step = RunStep {
        position: n as i64,
        kind: spec.kind().to_string(),
        status: StepStatus::Skipped,
        attempts: 0,
        input: None,
        output: None,
        error: None,
        input_tokens: 0,
        output_tokens: 0,
        cost_micros: Micros::ZERO,
        started_at: now,
        finished_at: Some(now),
        duration_ms: Some(0),
    };
    let (sys2, id2, s2) = (sys.clone(), id.to_string(), step.clone());
    e.svc
        .db
        .write(move |tx| Ok::<_, AppError>(runs::start_step(tx, &sys2, &id2, &s2)?))
        .await?;
    save_step(e, sys, id, &step).await
}

/// Ends the run and audits its end in the same transaction.
async fn finish_run(
    e: &Engine,
    sys: &OrgContext,
    run: &Run,
    status: RunStatus,
    output: Option<String>,
    error: Option<String>,
    (input_tokens, output_tokens, cost): (i64, i64, Micros),
) -> Result<()> {
    let (sys, now) = (sys.clone(), e.svc.now_str());
    let (id, workflow, user) = (run.id.clone(), run.workflow_id, run.user_id);
    let details = json!({
        "run_id": run.id,
        "status": status.as_str(),
        "started_by": user.map(|u| u.to_string()),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_micros": cost,
        "error": error,
    });
    e.svc
        .db
        .write(move |tx| {
            if runs::finish(
                tx,
                &sys,
                &id,
                status,
                output.as_deref(),
                error.as_deref(),
                &now,
            )? {
                audit::append(
                    tx,
                    &sys,
                    &Entry {
                        actor_id: None,
                        actor_email: None,
                        action: "workflow.run_finished",
                        resource_type: "workflow",
                        resource_id: Some(workflow.to_string()),
                        ip: None,
                        user_agent: None,
                        details,
                    },
                    &now,
                )?;
            }
            Ok::<_, AppError>(())
        })
        .await
}

/// What a step is given, as stored with it: the rendered prompt, the tool input, or the
/// condition's two sides.
fn step_input(spec: &StepSpec, input: &Value, outputs: &[Option<String>]) -> String {
    match spec {
        StepSpec::Agent { prompt, .. } => render_text(prompt, input, outputs),
        StepSpec::Tool { input: t, .. } => render_json(t, input, outputs).to_string(),
        StepSpec::Condition {
            left, op, right, ..
        } => format!(
            "{} {} {}",
            render_text(left, input, outputs),
            op.as_str(),
            render_text(right, input, outputs)
        ),
    }
}

/// Runs one step; `Some(n)` when the run goes on with step `n` instead of the next.
async fn run_step(
    e: &Engine,
    ctx: &OrgContext,
    spec: &StepSpec,
    input: &Value,
    outputs: &[Option<String>],
    step: &mut RunStep,
) -> std::result::Result<Option<usize>, Stop> {
    match spec {
        StepSpec::Agent { agent_id, prompt } => {
            let agent = ResourceId::parse(agent_id)
                .ok_or_else(|| Stop::Failed("the step names no agent".into()))?;
            let question = render_text(prompt, input, outputs);
            if question.trim().is_empty() {
                return Err(Stop::Failed("the prompt is empty once filled in".into()));
            }
            let answer = super::chat::ask_agent(
                &e.svc,
                &e.models,
                &e.knowledge,
                ctx,
                agent,
                &question,
                crate::domain::usage::WORKFLOW_STEP,
            )
            .await
            .map_err(|err| Stop::Failed(refusal(&err)))?;
            step.input_tokens = answer.tokens.input;
            step.output_tokens = answer.tokens.output;
            step.cost_micros = answer.cost;
            step.output = Some(answer.content);
            Ok(None)
        }
        StepSpec::Tool {
            tool_id,
            input: template,
        } => {
            let body = render_json(template, input, outputs);
            let out = call_tool(e, ctx, tool_id, &body)
                .await
                .map_err(Stop::Failed)?;
            step.output = Some(out);
            Ok(None)
        }
        StepSpec::Condition {
            left,
            op,
            right,
            goto,
        } => {
            let holds = op.holds(
                &render_text(left, input, outputs),
                &render_text(right, input, outputs),
            );
            step.output = Some(holds.to_string());
            Ok(holds.then_some(*goto))
        }
    }
}

/// A refused or failed model call in a step's words: the gateway's code and message.
fn refusal(e: &AppError) -> String {
    format!("{}: {}", e.code(), e.public_message())
}

/// How a tool is called, from its configuration: `url` (http or https), `method` (POST
/// unless set), `headers` (names to text values), `timeout_secs` (1 to 120).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub url: reqwest::Url,
    pub method: reqwest::Method,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

impl ToolCall {
    pub fn from_config(
        config: &serde_json::Map<String, Value>,
    ) -> std::result::Result<Self, String> {
        let url = config
            .get("url")
            .and_then(Value::as_str)
            .ok_or("the tool has no \"url\" in its configuration")?;
        let url = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or("the tool's \"url\" is not an http or https address")?;
        let method = match config.get("method").and_then(Value::as_str) {
            None => reqwest::Method::POST,
            Some(m) => match m.to_ascii_uppercase().as_str() {
                "GET" => reqwest::Method::GET,
                "POST" => reqwest::Method::POST,
                "PUT" => reqwest::Method::PUT,
                "PATCH" => reqwest::Method::PATCH,
                "DELETE" => reqwest::Method::DELETE,
                _ => {
                    return Err(format!(
                        "the tool's method {m:?} is not GET, POST, PUT, PATCH or DELETE"
                    ));
                }
            },
        };
        let mut headers = Vec::new();
        if let Some(h) = config.get("headers") {
            let h = h
                .as_object()
                .ok_or("the tool's \"headers\" are not an object")?;
            for (k, v) in h {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("the tool's header {k:?} is not text"))?;
                if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                    || reqwest::header::HeaderValue::from_str(v).is_err()
                {
                    return Err(format!("the tool's header {k:?} cannot be sent"));
                }
                headers.push((k.clone(), v.to_string()));
            }
        }
        let timeout = match config.get("timeout_secs") {
            None => DEFAULT_TOOL_TIMEOUT,
            Some(t) => t
                .as_u64()
                .filter(|t| (1..=MAX_TOOL_TIMEOUT.as_secs()).contains(t))
                .map(Duration::from_secs)
                .ok_or("the tool's \"timeout_secs\" is not a whole number from 1 to 120")?,
        };
        Ok(ToolCall {
            url,
            method,
            headers,
            timeout,
        })
    }

    /// Whether sending the call twice does no more than sending it once.
    pub fn idempotent(&self) -> bool {
        matches!(
            self.method,
            reqwest::Method::GET | reqwest::Method::PUT | reqwest::Method::DELETE
        )
    }
}

/// Whether `url` points at this server: its public address, or a local address on the
/// port it listens on.
fn is_this_server(e: &Engine, url: &reqwest::Url) -> bool {
    let port = url.port_or_known_default();
    if let Ok(base) = reqwest::Url::parse(&e.svc.base_url)
        && base.host_str().map(str::to_ascii_lowercase)
            == url.host_str().map(str::to_ascii_lowercase)
        && base.port_or_known_default() == port
    {
        return true;
    }
    let Some(own) = e.runner.own_port.get() else {
        return false;
    };
    if port != Some(*own) {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        None => false,
    }
}

/// Calls a tool the member may read with `body` checked against its input schema; the
/// answer's text.
async fn call_tool(
    e: &Engine,
    ctx: &OrgContext,
    tool_id: &str,
    body: &Value,
) -> std::result::Result<String, String> {
    let id = ResourceId::parse(tool_id).ok_or("the step names no tool")?;
    let tool = {
        let ctx = ctx.clone();
        e.svc
            .db
            .read(move |tx| {
                Ok::<_, AppError>(repo::find_visible(tx, &ctx, ResourceKind::Tool, id)?)
            })
            .await
            .map_err(|err| refusal(&err))?
    };
    let Some(Resource {
        fields: Fields::Tool(t),
        name,
        ..
    }) = tool
    else {
        return Err("the tool does not exist or you cannot read it".into());
    };
    let call = ToolCall::from_config(&t.config)?;
    if !t.input_schema.is_empty() {
        let schema = Value::Object(t.input_schema.clone());
        let validator = jsonschema::validator_for(&schema)
            .map_err(|_| format!("the input schema of {name} is not a valid JSON Schema"))?;
        let problems: Vec<String> = validator
            .iter_errors(body)
            .take(3)
            .map(|err| {
                let at = err.instance_path().to_string();
                if at.is_empty() {
                    err.to_string()
                } else {
                    format!("{at}: {err}")
                }
            })
            .collect();
        if !problems.is_empty() {
            return Err(format!(
                "the input does not match the tool's schema: {}",
                problems.join("; ")
            ));
        }
    }
    if is_this_server(e, &call.url) {
        return Err("the tool's address is this server itself, which a tool may not call".into());
    }
    let client = e
        .svc
        .upstream
        .client_for(call.url.as_str(), Origin::Tenant)
        .map_err(|r| r.0)?;
    let query = matches!(call.method, reqwest::Method::GET | reqwest::Method::DELETE);
    let mut url = call.url.clone();
    if query && let Some(o) = body.as_object() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in o {
            pairs.append_pair(k, &as_text(v));
        }
    }
    let mut req = client.request(call.method.clone(), url);
    for (k, v) in &call.headers {
        req = req.header(k, v);
    }
    if !query {
        req = req.json(body);
    }
    let secs = call.timeout.as_secs();
    let read = async {
        let resp = req.send().await.map_err(|err| {
            if let Some(r) = upstream::refusal_in(&err) {
                r.0
            } else if err.is_connect() {
                format!("could not connect to {}", host_of(&call.url))
            } else {
                format!("the request to {} failed", host_of(&call.url))
            }
        })?;
        let status = resp.status();
        if status.is_redirection() {
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("elsewhere")
                .chars()
                .take(200)
                .collect::<String>();
            return Err(format!(
                "the tool answered {} with a redirect to {to}, which is not followed",
                status.as_u16()
            ));
        }
        let mut text = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|_| "the tool's answer broke off".to_string())?;
            if text.len() + piece.len() > TOOL_RESPONSE_LIMIT {
                return Err("the tool answered with more than 1 MiB".to_string());
            }
            text.extend_from_slice(&piece);
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        if !status.is_success() {
            let said: String = text.chars().take(300).collect();
            return Err(format!("the tool answered {}: {said}", status.as_u16()));
        }
        Ok(text)
    };
    match tokio::time::timeout(call.timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(format!("the tool did not answer within {secs} s")),
    }
}

fn host_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => "the tool".into(),
    }
}

/// The value a placeholder names: `input`, `input.a.b`, `steps.N.output`.
fn lookup(path: &str, input: &Value, outputs: &[Option<String>]) -> Option<Value> {
    let mut parts = path.split('.');
    match parts.next()? {
        "input" => {
            let mut v = input;
            for key in parts {
                v = match v {
                    Value::Object(o) => o.get(key)?,
                    Value::Array(a) => a.get(key.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            Some(v.clone())
        }
        "steps" => {
            let n: usize = parts.next()?.parse().ok()?;
            if parts.next()? != "output" || parts.next().is_some() || n == 0 {
                return None;
            }
            Some(Value::String(
                outputs.get(n - 1)?.clone().unwrap_or_default(),
            ))
        }
        _ => None,
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// Fills `{{input}}`, `{{input.field}}` and `{{steps.N.output}}` in; anything else
/// between braces stays as written.
pub fn render_text(t: &str, input: &Value, outputs: &[Option<String>]) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = after[..close].trim();
        match lookup(name, input, outputs) {
            Some(v) => out.push_str(&as_text(&v)),
            None if name.starts_with("input.") => {}
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// A tool input template filled in: a text that is one placeholder becomes the value
/// itself (a number stays a number), other texts are filled in as text.
pub fn render_json(t: &Value, input: &Value, outputs: &[Option<String>]) -> Value {
    match t {
        Value::String(s) => {
            let whole = s.trim();
            if let Some(name) = whole.strip_prefix("{{").and_then(|r| r.strip_suffix("}}"))
                && !name.contains("{{")
                && let Some(v) = lookup(name.trim(), input, outputs)
            {
                return v;
            }
            Value::String(render_text(s, input, outputs))
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| render_json(v, input, outputs)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), render_json(v, input, outputs)))
                .collect(),
        ),
        v => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_in_the_input_its_fields_and_earlier_outputs() {
        let input = json!({"city": "Lyon", "n": 3, "tags": ["a", "b"]});
        let outputs = vec![Some("sunny".to_string()), None];
        assert_eq!(
            render_text(
                "Weather in {{input.city}}: {{ steps.1.output }}; {{steps.2.output}}.",
                &input,
                &outputs
            ),
            "Weather in Lyon: sunny; ."
        );
        assert_eq!(render_text("{{input}}", &json!("plain"), &outputs), "plain");
        assert_eq!(
            render_text("{{input.tags.1}} {{input.missing}}|", &input, &outputs),
            "b |"
        );
        assert_eq!(
            render_text("{{other}} {{ open", &input, &outputs),
            "{{other}} {{ open"
        );
        assert_eq!(
            render_json(
                &json!({"count": "{{input.n}}", "text": "n={{input.n}}", "list": ["{{steps.1.output}}"]}),
                &input,
                &outputs
            ),
            json!({"count": 3, "text": "n=3", "list": ["sunny"]})
        );
    }

    #[test]
    fn tool_configuration_is_read_with_defaults_and_refused_when_wrong() {
        let ok = |v: Value| ToolCall::from_config(v.as_object().unwrap());
        let c = ok(json!({"url": "https://tools.example.com/run"})).unwrap();
        assert_eq!(c.method, reqwest::Method::POST);
        assert_eq!(c.timeout, DEFAULT_TOOL_TIMEOUT);
        assert!(!c.idempotent());
        let c = ok(json!({"url": "http://t.example/x", "method": "get", "timeout_secs": 5, "headers": {"x-key": "v"}})).unwrap();
        assert!(c.idempotent());
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.headers, vec![("x-key".to_string(), "v".to_string())]);
        assert!(ok(json!({})).unwrap_err().contains("no \"url\""));
        assert!(ok(json!({"url": "file:///etc/passwd"})).is_err());
        assert!(ok(json!({"url": "http://t.example", "method": "TRACE"})).is_err());
        assert!(ok(json!({"url": "http://t.example", "timeout_secs": 121})).is_err());
        assert!(ok(json!({"url": "http://t.example", "headers": {"bad name": "v"}})).is_err());
    }
}
