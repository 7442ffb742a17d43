//! Backups taken by the server itself: the schedule (`--backup-interval`, `--backup-keep`,
//! `--backup-dir`), the status that the console and the metrics read (`Backups::status`),
//! and a consistent copy on demand (`temp_copy`, for a download).
//!
//! Every copy is SQLite's online backup on a connection of its own, on a blocking thread:
//! one read snapshot, which never blocks the writer (`db::backup`).
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::db::{self, Copied};
use crate::error::AppError;

use super::Services;

/// What the scheduled backups have done since the server started. A snapshot: read it
/// with `Backups::status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackupStatus {
    /// Where scheduled backups are written.
    pub dir: PathBuf,
    /// Seconds between scheduled backups; `None`: none are scheduled.
    pub interval_secs: Option<u64>,
    /// How many scheduled backups are kept.
    pub keep: usize,
    /// The last backup that was written and checked.
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_file: Option<PathBuf>,
    /// Its size in bytes, and how long it took.
    pub last_size: Option<u64>,
    pub last_duration_ms: Option<u64>,
    /// The last failure and what it was (an I/O or SQLite message; never a secret).
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub successes_total: u64,
    pub failures_total: u64,
}

/// The server's backup schedule and its status; one per server, in `Services::backups`.
pub struct Backups {
    status: Mutex<BackupStatus>,
    interval: Option<Duration>,
    keep: usize,
    dir: PathBuf,
    /// One copy at a time (scheduled or `temp_copy`); the permit lives on the blocking
    /// thread that copies, so shutdown (`wait_idle`) waits for a copy under way even when
    /// its task was dropped.
    running: Arc<Semaphore>,
}

impl Backups {
    pub fn new(config: &Config) -> Self {
        let dir = config.backup_dir();
        let keep = config.backup_keep.max(1);
        Backups {
            status: Mutex::new(BackupStatus {
                dir: dir.clone(),
                interval_secs: config.backup_interval.map(|d| d.as_secs()),
                keep,
                ..BackupStatus::default()
            }),
            interval: config.backup_interval,
            keep,
            dir,
            running: Arc::new(Semaphore::new(1)),
        }
    }

    /// A copy of the current status.
    pub fn status(&self) -> BackupStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Returns once no backup is being written (at shutdown, before the final checkpoint,
    /// which a copy's read snapshot would hold up).
    pub async fn wait_idle(&self) {
        let _ = self.running.acquire().await;
    }

    fn record(&self, at: DateTime<Utc>, took: Duration, outcome: &Result<Copied, String>) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(copy) => {
                s.successes_total += 1;
                s.last_success_at = Some(at);
                s.last_file = Some(copy.path.clone());
                s.last_size = Some(copy.bytes);
                s.last_duration_ms = Some(took.as_millis() as u64);
            }
            Err(e) => {
                s.failures_total += 1;
                s.last_failure_at = Some(at);
                s.last_error = Some(e.clone());
            }
        }
    }
}

/// Takes a scheduled backup every `--backup-interval` (the first one interval after the
/// start); returns at once when none is configured. A failure is logged and counted, and
/// the next one is tried at the next tick.
pub async fn run_scheduled(svc: Services) {
    let Some(every) = svc.backups.interval else {
        return;
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _ = back_up_now(&svc).await;
    }
}

/// Writes one backup the way the schedule does: `DIR/xagent-<UTC time>.db`, checked with
/// `PRAGMA integrity_check`, then deletes the oldest of those files beyond `--backup-keep`
/// (only files named that way). Counted in the status, logged either way.
pub async fn back_up_now(svc: &Services) -> Result<Copied, AppError> {
    let backups = &svc.backups;
    let permit = backups
        .running
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| AppError::Internal("backups stopped".into()))?;
    let (src, dir, keep) = (
        svc.db.path().to_path_buf(),
        backups.dir.clone(),
        backups.keep,
    );
    let started = Instant::now();
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        write_scheduled(&src, &dir, keep)
    })
    .await
    .unwrap_or_else(|_| Err("the backup task failed".into()));
    let at = Utc::now();
    let took = started.elapsed();
    backups.record(at, took, &outcome);
    svc.metrics.record_backup(outcome.is_ok(), at);
    match outcome {
        Ok(copy) => {
            tracing::info!(
                file = %copy.path.display(),
                bytes = copy.bytes,
                ms = took.as_millis() as u64,
                "backup written"
            );
            Ok(copy)
        }
        Err(e) => {
            tracing::error!(
                dir = %backups.dir.display(),
                error = %e,
                "backup failed"
            );
            Err(AppError::Internal(format!("backup failed: {e}")))
        }
    }
}

/// The name of a scheduled backup taken at `at`.
pub fn scheduled_name(at: DateTime<Utc>) -> String {
    format!("xagent-{}.db", db::backup::stamp(at))
}

/// Whether `name` is that of a scheduled backup (`xagent-YYYYMMDDTHHMMSSZ.db`): only
/// those are ever pruned.
pub fn is_scheduled_name(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix("xagent-")
        .and_then(|s| s.strip_suffix(".db"))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

fn write_scheduled(src: &Path, dir: &Path, keep: usize) -> Result<Copied, String> {
    db::backup::create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Names have one-second resolution: a second backup within the same second waits
    // for the next one rather than failing or overwriting.
    let mut dest = dir.join(scheduled_name(Utc::now()));
    if dest.exists() {
        std::thread::sleep(Duration::from_millis(
            1000 - u64::from(Utc::now().timestamp_subsec_millis()).min(999),
        ));
        dest = dir.join(scheduled_name(Utc::now()));
    }
    let copy = db::backup(src, &dest).map_err(|e| e.to_string())?;
    if let Err(e) = prune(dir, keep) {
        // The backup itself is fine; an old file stays until the next prune.
        tracing::warn!(dir = %dir.display(), error = %e, "pruning old backups failed");
    }
    Ok(copy)
}

/// Deletes the oldest scheduled backups in `dir` beyond the newest `keep`; returns them.
pub fn prune(dir: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_scheduled_name(n))
        .collect();
    // The time in the name sorts as text.
    names.sort_unstable();
    let excess = names.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for name in names.into_iter().take(excess) {
        let path = dir.join(name);
        std::fs::remove_file(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

/// A consistent copy of the live database in a private file of the data directory
/// (`.xagent-download-<id>.db`, mode 0600), for handing out (a "download a backup now"
/// endpoint). The file is deleted when this is dropped; to stream it, `open` it first: on
/// Unix the open file stays readable after the name is gone.
#[derive(Debug)]
pub struct TempCopy {
    copy: Copied,
}

impl TempCopy {
    pub fn path(&self) -> &Path {
        &self.copy.path
    }
    pub fn bytes(&self) -> u64 {
        self.copy.bytes
    }
    /// The schema version of the copy.
    pub fn schema_version(&self) -> Option<i64> {
        self.copy.schema_version
    }
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        std::fs::File::open(&self.copy.path)
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.copy.path);
    }
}

/// The prefix of `TempCopy` files; any left by a crash are removed at start
/// (`remove_stale_temp_copies`).
const TEMP_PREFIX: &str = ".xagent-download-";

/// Writes a `TempCopy` (checked with `PRAGMA integrity_check`, like every backup). Not
/// counted in the scheduled backups' status; it waits for a backup under way, so copies
/// are written one at a time.
pub async fn temp_copy(svc: &Services) -> Result<TempCopy, AppError> {
    let permit = svc
        .backups
        .running
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| AppError::Internal("backups stopped".into()))?;
    let src = svc.db.path().to_path_buf();
    let dir = src.parent().unwrap_or(Path::new(".")).to_path_buf();
    let dest = dir.join(format!("{TEMP_PREFIX}{}.db", uuid::Uuid::new_v4().simple()));
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        db::backup(&src, &dest)
    })
    .await
    .map_err(|_| AppError::Internal("the backup task failed".into()))?
    .map(|copy| TempCopy { copy })
    .map_err(|e| AppError::Internal(format!("backup failed: {e}")))
}

/// Removes `TempCopy` files that a stopped server left in `data_dir` (only a server that
/// holds the data directory calls this).
pub fn remove_stale_temp_copies(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let stale = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX));
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_scheduled_backups_match_and_they_sort_by_time() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let a = scheduled_name(at("2026-03-14T09:15:00Z"));
        let b = scheduled_name(at("2026-03-14T10:00:00Z"));
        assert_eq!(a, "xagent-20260314T091500Z.db");
        assert!(is_scheduled_name(&a) && a < b);
        for other in [
            "xagent-20260314T091500Z.db.partial",
            "xagent-20260314T0915Z.db",
            "xagent-2026031XT091500Z.db",
            "pre-upgrade-V7-to-V9-20260314T091500Z.db",
            "xagent-latest.db",
            "my-notes.txt",
        ] {
            assert!(!is_scheduled_name(other), "{other}");
        }
    }

    #[test]
    fn pruning_keeps_the_newest_and_touches_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "xagent-20260101T000000Z.db",
            "xagent-20260102T000000Z.db",
            "xagent-20260103T000000Z.db",
            "xagent-20260104T000000Z.db",
            "pre-upgrade-V1-to-V2-20250101T000000Z.db",
            "my-copy.db",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let removed = prune(dir.path(), 2).unwrap();
        assert_eq!(
            removed,
            vec![dir.path().join(names[0]), dir.path().join(names[1])]
        );
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "my-copy.db",
                "pre-upgrade-V1-to-V2-20250101T000000Z.db",
                "xagent-20260103T000000Z.db",
                "xagent-20260104T000000Z.db"
            ]
        );
    }
}
