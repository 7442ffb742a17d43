//! Workflow runs and their steps. A run keeps the steps it started with, so editing the
//! workflow does not change a run under way.
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde_json::Value;

use super::{json_at, opt_time_at, opt_uuid_at, time_at, uuid_at, word_at};
use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{Micros, ResourceId, RunStatus, StepStatus, UserId};

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub workflow_id: ResourceId,
    /// Who started it; the run acts as them.
    pub user_id: Option<UserId>,
    pub status: RunStatus,
    pub input: Value,
    pub steps: Vec<Value>,
    /// The step (from 1) under way or last reached.
    pub current_step: Option<i64>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunStep {
    /// Counts from 1, as `{{steps.N.output}}` does.
    pub position: i64,
    pub kind: String,
    pub status: StepStatus,
    pub attempts: i64,
    pub input: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: Micros,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

const RUN_COLUMNS: &str = "id, workflow_id, user_id, status, input, steps, current_step, output, \
                           error, cancel_requested, created_at, started_at, finished_at";

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        workflow_id: ResourceId::from_uuid(uuid_at(r, 1)?),
        user_id: opt_uuid_at(r, 2)?.map(UserId::from_uuid),
        status: word_at(r, 3)?,
        input: json_at(r, 4)?,
        steps: json_at(r, 5)?,
        current_step: r.get(6)?,
        output: r.get(7)?,
        error: r.get(8)?,
        cancel_requested: r.get::<_, i64>(9)? != 0,
        created_at: time_at(r, 10)?,
        started_at: opt_time_at(r, 11)?,
        finished_at: opt_time_at(r, 12)?,
    })
}

const STEP_COLUMNS: &str = "position, kind, status, attempts, input, output, error, input_tokens, \
                            output_tokens, cost_micros, started_at, finished_at, duration_ms";

fn step_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunStep> {
    Ok(RunStep {
        position: r.get(0)?,
        kind: r.get(1)?,
        status: word_at(r, 2)?,
        attempts: r.get(3)?,
        input: r.get(4)?,
        output: r.get(5)?,
        error: r.get(6)?,
        input_tokens: r.get(7)?,
        output_tokens: r.get(8)?,
        cost_micros: r.get(9)?,
        started_at: time_at(r, 10)?,
        finished_at: opt_time_at(r, 11)?,
        duration_ms: r.get(12)?,
    })
}

pub fn insert(tx: &WriteTx<'_>, ctx: &OrgContext, run: &Run, now: &str) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO workflow_runs (organization_id, id, workflow_id, user_id, status, input, steps,
                                    created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            run.id,
            run.workflow_id,
            run.user_id.map(|u| u.to_string()),
            run.status.as_str(),
            run.input.to_string(),
            Value::Array(run.steps.clone()).to_string(),
            now
        ],
    )?;
    Ok(())
}

/// A run of `workflow` (by the run's id).
pub fn get(
    c: &Conn<'_>,
    ctx: &OrgContext,
    workflow: ResourceId,
    id: &str,
) -> Result<Option<Run>, DbError> {
    c.scoped(ctx).query_opt(
        &format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs
             WHERE organization_id = ?1 AND workflow_id = ?2 AND id = ?3"
        ),
        params![workflow, id],
        run_from_row,
    )
}

/// A run by its id alone, for the runner.
pub fn by_id(c: &Conn<'_>, ctx: &OrgContext, id: &str) -> Result<Option<Run>, DbError> {
    c.scoped(ctx).query_opt(
        &format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE organization_id = ?1 AND id = ?2"),
        params![id],
        run_from_row,
    )
}

/// The newest runs of a workflow first, older than `before` (created_at, id); only
/// `starter`'s when given.
pub fn list(
    c: &Conn<'_>,
    ctx: &OrgContext,
    workflow: ResourceId,
    starter: Option<UserId>,
    before: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<Run>, DbError> {
    let (at, id) = before.unwrap_or(("~", ""));
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs
             WHERE organization_id = ?1 AND workflow_id = ?2
               AND (?3 IS NULL OR user_id = ?3) AND (created_at, id) < (?4, ?5)
             ORDER BY created_at DESC, id DESC LIMIT ?6"
        ),
        params![workflow, starter.map(|u| u.to_string()), at, id, limit],
        run_from_row,
    )
}

pub fn steps(c: &Conn<'_>, ctx: &OrgContext, run: &str) -> Result<Vec<RunStep>, DbError> {
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {STEP_COLUMNS} FROM workflow_run_steps
             WHERE organization_id = ?1 AND run_id = ?2 ORDER BY position"
        ),
        params![run],
        step_from_row,
    )
}

/// Queued or running runs of the organization: how many a member may still start.
pub fn unfinished_count(c: &Conn<'_>, ctx: &OrgContext) -> Result<i64, DbError> {
    Ok(c.scoped(ctx)
        .query_opt(
            "SELECT COUNT(*) FROM workflow_runs
             WHERE organization_id = ?1 AND status IN ('queued', 'running')",
            &[],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

/// Marks a queued (or resumed) run running; false when it has finished meanwhile.
pub fn set_running(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: &str,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE workflow_runs SET status = 'running', started_at = COALESCE(started_at, ?3)
         WHERE organization_id = ?1 AND id = ?2 AND status IN ('queued', 'running')",
        params![id, now],
    )? == 1)
}

/// Records a step as started (a retry replaces the earlier attempt's row).
pub fn start_step(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    run: &str,
    step: &RunStep,
) -> Result<(), DbError> {
    let s = tx.scoped(ctx);
    s.execute(
        "INSERT OR REPLACE INTO workflow_run_steps
             (organization_id, run_id, position, kind, status, attempts, input, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            run,
            step.position,
            step.kind,
            step.status.as_str(),
            step.attempts,
            step.input,
            crate::domain::fmt_time(step.started_at)
        ],
    )?;
    s.execute(
        "UPDATE workflow_runs SET current_step = ?3 WHERE organization_id = ?1 AND id = ?2",
        params![run, step.position],
    )?;
    Ok(())
}

/// A step's end: its status, output or error, tokens and cost.
pub fn finish_step(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    run: &str,
    step: &RunStep,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "UPDATE workflow_run_steps
         SET status = ?4, output = ?5, error = ?6, input_tokens = ?7, output_tokens = ?8,
             cost_micros = ?9, finished_at = ?10, duration_ms = ?11, input = COALESCE(?12, input)
         WHERE organization_id = ?1 AND run_id = ?2 AND position = ?3",
        params![
            run,
            step.position,
            step.status.as_str(),
            step.output,
            step.error,
            step.input_tokens,
            step.output_tokens,
            step.cost_micros,
            step.finished_at.map(crate::domain::fmt_time),
            step.duration_ms,
            step.input
        ],
    )?;
    Ok(())
}

/// Ends a run that has not ended; false when it had.
pub fn finish(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: &str,
    status: RunStatus,
    output: Option<&str>,
    error: Option<&str>,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE workflow_runs SET status = ?3, output = ?4, error = ?5, finished_at = ?6
         WHERE organization_id = ?1 AND id = ?2 AND status IN ('queued', 'running')",
        params![id, status.as_str(), output, error, now],
    )? == 1)
}

/// Asks an unfinished run to stop; false when it has finished.
pub fn request_cancel(tx: &WriteTx<'_>, ctx: &OrgContext, id: &str) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE workflow_runs SET cancel_requested = 1
         WHERE organization_id = ?1 AND id = ?2 AND status IN ('queued', 'running')",
        params![id],
    )? == 1)
}
