//! The single writer: one connection, one thread, group commit.
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::DbError;
use super::conn::{Conn, WriteTx};

/// Jobs taken into one transaction at most; bounds the latency of the first job in a batch.
const MAX_BATCH: usize = 128;

/// Called with the outcome of the batch's COMMIT; delivers the job's result to its caller.
type Finish = Box<dyn FnOnce(Result<(), &DbError>) + Send>;
/// Runs inside the job's savepoint; says whether the job succeeded (else it is rolled back).
pub(super) type Job = Box<dyn FnOnce(&WriteTx<'_>) -> (bool, Finish) + Send>;

pub(super) enum Msg {
    Job(Job),
    Shutdown(oneshot::Sender<Result<(), DbError>>),
}

pub(super) fn job<T, E, F>(f: F, reply: oneshot::Sender<Result<T, E>>) -> Job
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    F: FnOnce(&WriteTx<'_>) -> Result<T, E> + Send + 'static,
{
    Box::new(move |tx| {
        let result = f(tx);
        let ok = result.is_ok();
        let finish: Finish = Box::new(move |commit| {
            let out = match commit {
                Ok(()) => result,
                Err(e) => Err(E::from(DbError::Migration(format!("commit failed: {e}")))),
            };
            let _ = reply.send(out);
        });
        (ok, finish)
    })
}

/// Upper bounds of the batch-size buckets: powers of two up to `MAX_BATCH`.
pub const BATCH_BUCKETS: [u64; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// Counters of the writer's work, for metrics and tests. Plain atomics: the writer bumps
/// them once per batch, a scrape reads them.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed (each holds one or more jobs).
    pub commits: AtomicU64,
    /// Jobs run.
    pub jobs: AtomicU64,
    /// Batches taken, by the first bucket of `BATCH_BUCKETS` their size fits.
    batches: [AtomicU64; BATCH_BUCKETS.len()],
}

/// The batch sizes so far, as a histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSizes {
    /// (upper bound, batches of that bucket only — not cumulative).
    pub buckets: Vec<(u64, u64)>,
    pub batches: u64,
    /// Jobs in all of them.
    pub jobs: u64,
}

impl WriterStats {
    fn record_batch(&self, size: usize) {
        let size = size as u64;
        self.jobs.fetch_add(size, Ordering::Relaxed);
        let at = BATCH_BUCKETS
            .iter()
            .position(|le| size <= *le)
            .unwrap_or(BATCH_BUCKETS.len() - 1);
        self.batches[at].fetch_add(1, Ordering::Relaxed);
    }

    pub fn batch_sizes(&self) -> BatchSizes {
        let buckets: Vec<(u64, u64)> = BATCH_BUCKETS
            .iter()
            .zip(&self.batches)
            .map(|(le, n)| (*le, n.load(Ordering::Relaxed)))
            .collect();
        BatchSizes {
            batches: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            jobs: self.jobs.load(Ordering::Relaxed),
        }
    }
}

pub(super) fn spawn(
    conn: Connection,
    stats: Arc<WriterStats>,
) -> Result<mpsc::Sender<Msg>, DbError> {
    let (tx, rx) = mpsc::channel::<Msg>(4096);
    std::thread::Builder::new()
        .name("xagent-db-writer".into())
        .spawn(move || run(conn, rx, stats))?;
    Ok(tx)
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Msg>, stats: Arc<WriterStats>) {
    let mut shutdown: Option<oneshot::Sender<Result<(), DbError>>> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Vec::new();
        match first {
            Msg::Job(j) => batch.push(j),
            Msg::Shutdown(reply) => {
                shutdown = Some(reply);
            }
        }
        while shutdown.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Job(j)) => batch.push(j),
                Ok(Msg::Shutdown(reply)) => shutdown = Some(reply),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            stats.record_batch(batch.len());
            if commit_batch(&conn, batch) {
                stats.commits.fetch_add(1, Ordering::Relaxed);
            }
        }
        if shutdown.is_some() {
            break;
        }
    }
    // Nothing else may be queued: refuse late jobs by dropping the receiver.
    rx.close();
    while let Ok(Msg::Job(j)) = rx.try_recv() {
        let _ = commit_batch(&conn, vec![j]);
    }
    let _ = conn.execute_batch("PRAGMA optimize;");
    let result = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|_| ())
        .map_err(DbError::from);
    if let Err(e) = &result {
        tracing::error!(error = %e, "final WAL checkpoint failed");
    }
    if let Some(reply) = shutdown {
        let _ = reply.send(result);
    }
}

/// A statement without results through the statement cache (the savepoint statements run
/// once per job; parsing them each time showed in profiles).
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs the jobs in one transaction; true when it committed.
fn commit_batch(conn: &Connection, batch: Vec<Job>) -> bool {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = DbError::from(e);
        tracing::error!(error = %err, "cannot begin write transaction");
        // The jobs never ran; dropping them closes their reply channels, so each caller
        // gets an error instead of waiting.
        drop(batch);
        return false;
    }
    let mut finishes = Vec::with_capacity(batch.len());
    for job in batch {
        let (_, finish) = run_job_in_savepoint(conn, job);
        finishes.push(finish);
    }
    let commit = conn.execute_batch("COMMIT").map_err(DbError::from);
    if let Err(e) = &commit {
        tracing::error!(error = %e, "batch commit failed; rolling back");
        let _ = conn.execute_batch("ROLLBACK");
    }
    let outcome = commit.as_ref().map(|_| ());
    for finish in finishes {
        finish(outcome);
    }
    commit.is_ok()
}

fn run_job_in_savepoint(conn: &Connection, job: Job) -> (bool, Finish) {
    if let Err(e) = exec_cached(conn, "SAVEPOINT job") {
        let err = DbError::from(e);
        tracing::error!(error = %err, "cannot open savepoint");
        return (false, Box::new(|_: Result<(), &DbError>| {}));
    }
    let tx = WriteTx(Conn::new(conn));
    let (ok, finish) = match catch_unwind(AssertUnwindSafe(|| job(&tx))) {
        Ok(pair) => pair,
        Err(_) => {
            tracing::error!("a write job panicked; its changes are rolled back");
            // Dropping the job's reply channel tells the caller the write failed.
            (false, Box::new(|_: Result<(), &DbError>| {}) as Finish)
        }
    };
    let end = if ok {
        exec_cached(conn, "RELEASE job")
    } else {
        conn.execute_batch("ROLLBACK TO job; RELEASE job")
    };
    if let Err(e) = end {
        tracing::error!(error = %e, "cannot close savepoint");
    }
    (ok, finish)
}
