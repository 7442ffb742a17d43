//! The only module that touches SQLite. Reads run on a pool of read-only connections on
//! blocking threads; writes go to one writer thread that commits jobs in batches
//! (group commit: a savepoint per job, every job answered after its batch commits).
pub mod backup;
pub mod cache;
mod conn;
pub mod guard;
pub mod lock;
mod migrate;
pub mod repo;
pub mod scope;
pub mod unscoped;
mod writer;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use r2d2_sqlite::SqliteConnectionManager;
use tokio::sync::{mpsc, oneshot};

pub use backup::{Copied, Restored, backup, restore};
pub use conn::{Conn, ReadTx, WriteTx};
pub use lock::{DataDirLock, LockError};
pub use migrate::{SchemaVersion, known_version};
pub use scope::OrgContext;
pub use writer::{BATCH_BUCKETS, BatchSizes, WriterStats};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("statement on a tenant table without the organization filter: {0}")]
    Unscoped(String),
    #[error("statement planned again on every run: {0}")]
    Replanned(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("a database task failed")]
    TaskFailed,
    /// An audit action outside the documented vocabulary (`domain::audit`).
    #[error("audit action not in the vocabulary: {0}")]
    UnknownAuditAction(String),
    /// A bookkeeping job (`Db::write_bookkeeping`) wrote a table its kind does not name.
    #[error("bookkeeping job wrote {0}, which is not bookkeeping")]
    NotBookkeeping(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// The database has migrations this binary does not know: it was made by a newer one.
    #[error(
        "database schema is version {found}, this xagent knows up to {known}; use a newer xagent"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// The schema history does not match this binary's migrations (another build, or not
    /// an xagent database at all).
    #[error("database schema does not match this xagent: {0}")]
    SchemaMismatch(String),
    /// The database needs migrating, but another process holds the data directory.
    #[error(
        "database schema is version {from} and this xagent's is {to}, but a server holds the data directory: stop it, then run `xagent migrate` (or start the new server)"
    )]
    UpgradeWhileInUse { from: i64, to: i64 },
    /// Migrating was refused because the backup before it failed; nothing was changed.
    #[error("cannot back up the database before upgrading it from version {from} to {to}: {cause}")]
    PreUpgradeBackup { from: i64, to: i64, cause: String },
    #[error("integrity check failed: {0}")]
    Corrupt(String),
    /// A file refused for a restore, with the reason.
    #[error("{0}")]
    Refused(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The writes that change no configuration, so no cache (`Db::generation`) depends on
/// them. Each names the tables it may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bookkeeping {
    /// The gateway's usage batch: events, period counters, and the alerts they raise
    /// (a notification, a webhook delivery and an audit row each).
    Usage,
    /// A session's last-seen stamp.
    SessionSeen,
    /// An API token's last-used stamp.
    TokenUsed,
    /// A member's last-active stamp.
    MemberActive,
    /// A webhook delivery attempt.
    WebhookAttempt,
}

impl Bookkeeping {
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Bookkeeping::Usage => &[
                "usage_events",
                "organization_usage",
                "member_usage",
                "notifications",
                "webhook_deliveries",
                "organization_audit_logs",
            ],
            Bookkeeping::SessionSeen => &["sessions"],
            Bookkeeping::TokenUsed => &["api_tokens"],
            Bookkeeping::MemberActive => &["organization_members"],
            Bookkeeping::WebhookAttempt => &["webhook_deliveries"],
        }
    }
}

/// Reader connections. More than a few per core only adds lock contention: SQLite work
/// is CPU-bound here (the database lives in the page cache).
const READERS: u32 = 8;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    /// Names this database in each thread's lookup connections (tests open many).
    id: u64,
    path: PathBuf,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// One permit per reader connection: requests beyond that wait here, asynchronously,
    /// instead of as parked blocking threads contending for SQLite's and malloc's locks.
    read_permits: tokio::sync::Semaphore,
    writer: mpsc::Sender<writer::Msg>,
    stats: Arc<WriterStats>,
    /// Counts write jobs other than bookkeeping (`write_bookkeeping`), bumped after each:
    /// anything cached from the database is current while this has not moved.
    generation: AtomicU64,
    /// What opening did to the schema.
    migrated: Migrated,
}

/// What `Db::open` does with an existing database whose schema is older than this binary's.
#[derive(Debug, Clone)]
pub enum Upgrade {
    /// Back it up into this directory first (`pre-upgrade-V<old>-to-V<new>-<time>.db`,
    /// integrity-checked), then migrate. A failed backup stops the upgrade.
    BackUpInto(PathBuf),
    /// Refuse to open it: another process (a server) holds the data directory, and the
    /// schema must not change under it.
    Refuse,
}

impl Upgrade {
    /// Backups into `backups/` beside the database (`DATA_DIR/backups`).
    pub fn beside(db_path: &Path) -> Upgrade {
        let dir = db_path.parent().unwrap_or(Path::new("."));
        Upgrade::BackUpInto(dir.join("backups"))
    }
}

/// What opening a database did to its schema.
#[derive(Debug, Clone, Default)]
pub struct Migrated {
    /// The schema version found (`None`: a new database).
    pub from: Option<i64>,
    /// The schema version now.
    pub to: i64,
    /// The migrations applied, e.g. `V9__agent_services`.
    pub applied: Vec<String>,
    /// The copy taken before migrating an existing database.
    pub pre_upgrade_backup: Option<Copied>,
}

/// Checks the schema on `conn` and brings it up to date: refuses a newer or foreign one,
/// backs up an older existing one (per `upgrade`) and migrates.
fn bring_up_to_date(
    conn: &mut rusqlite::Connection,
    path: &Path,
    upgrade: &Upgrade,
) -> Result<Migrated, DbError> {
    let found = migrate::inspect(conn)?;
    let mut pre_upgrade_backup = None;
    if let Some(from) = found.applied.filter(|_| found.needs_upgrade()) {
        let to = found.known;
        match upgrade {
            Upgrade::Refuse => return Err(DbError::UpgradeWhileInUse { from, to }),
            Upgrade::BackUpInto(dir) => {
                let copy = backup::pre_upgrade_backup(path, dir, from, to).map_err(|e| {
                    DbError::PreUpgradeBackup {
                        from,
                        to,
                        cause: e.to_string(),
                    }
                })?;
                tracing::info!(
                    from,
                    to,
                    backup = %copy.path.display(),
                    "database backed up before its upgrade"
                );
                pre_upgrade_backup = Some(copy);
            }
        }
    }
    let applied = migrate::run(conn)?;
    if let Some(from) = found.applied.filter(|_| !applied.is_empty()) {
        tracing::info!(from, to = found.known, migrations = ?applied, "database upgraded");
    }
    Ok(Migrated {
        from: found.applied,
        to: found.known,
        applied,
        pre_upgrade_backup,
    })
}

impl Db {
    /// Opens (creating if needed) the database, applies pending migrations (an existing
    /// database is backed up into `backups/` beside it first) and starts the writer.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        Self::open_with(path, &Upgrade::beside(path))
    }

    /// `open`, with `upgrade` saying what to do with an older existing database.
    pub fn open_with(path: &Path, upgrade: &Upgrade) -> Result<Db, DbError> {
        // SQLite gives the -wal and -shm files the database file's mode.
        create_private(path)?;
        let mut wconn = rusqlite::Connection::open(path)?;
        conn::configure_writer(&wconn)?;
        let migrated = bring_up_to_date(&mut wconn, path, upgrade)?;
        // Gather planner statistics where they are missing or stale (SQLite's advice for
        // long-lived connections; cheap when there is nothing to do).
        wconn.execute_batch("PRAGMA optimize = 0x10002;")?;
        let manager = SqliteConnectionManager::file(path).with_init(conn::configure_reader);
        let readers = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(2))
            .build(manager)?;
        let stats = Arc::new(WriterStats::default());
        let writer = writer::spawn(wconn, stats.clone())?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Ok(Db {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                path: path.to_path_buf(),
                readers,
                read_permits: tokio::sync::Semaphore::new(READERS as usize),
                writer,
                stats,
                generation: AtomicU64::new(0),
                migrated,
            }),
        })
    }

    /// The writer's counters (commits, jobs): group commit means commits <= jobs.
    pub fn writer_stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Write jobs sent to the writer and not yet taken into a batch.
    pub fn write_queue_depth(&self) -> usize {
        let w = &self.inner.writer;
        w.max_capacity().saturating_sub(w.capacity())
    }

    /// What opening did to the schema (migrations applied, the backup taken before).
    pub fn migrated(&self) -> &Migrated {
        &self.inner.migrated
    }

    /// Runs `f` in a read transaction (one consistent snapshot) on a blocking thread.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&ReadTx<'_>) -> Result<T, E> + Send + 'static,
    {
        let _permit = self
            .inner
            .read_permits
            .acquire()
            .await
            .map_err(|_| E::from(DbError::TaskFailed))?;
        let pool = self.inner.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get().map_err(DbError::from)?;
            conn::read_tx(&conn, f)
        })
        .await
        .map_err(|_| E::from(DbError::TaskFailed))?
    }

    /// Runs `f` in a read transaction right here, on the calling thread's own connection.
    /// Only for lookups by key (a token, a membership) that every request makes: they take
    /// microseconds, less than handing them to a blocking thread and back (`read`), which
    /// was a third of an authenticated request's CPU time. Anything that can scan or
    /// return many rows goes through `read`.
    pub fn lookup<T, E, F>(&self, f: F) -> Result<T, E>
    where
        E: From<DbError>,
        F: FnOnce(&ReadTx<'_>) -> Result<T, E>,
    {
        thread_local! {
            static CONNECTIONS: RefCell<HashMap<u64, rusqlite::Connection>> =
                RefCell::new(HashMap::new());
        }
        CONNECTIONS.with(|cell| {
            // `f` gets a transaction, not the Db: a nested lookup would be a bug, refused.
            let mut conns = cell.try_borrow_mut().map_err(|_| DbError::TaskFailed)?;
            let conn = match conns.entry(self.inner.id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let mut conn =
                        rusqlite::Connection::open(&self.inner.path).map_err(DbError::from)?;
                    conn::configure_reader(&mut conn).map_err(DbError::from)?;
                    v.insert(conn)
                }
            };
            conn::read_tx(conn, f)
        })
    }

    /// Runs `f` inside the writer's next batch; returns once that batch has committed.
    /// An `Err` from `f` rolls back only this job's changes.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&WriteTx<'_>) -> Result<T, E> + Send + 'static,
    {
        let out = self.submit(f).await;
        // After the commit (or the rollback): a reader that saw the old generation
        // also read before this change, so what it cached is dropped.
        self.inner.generation.fetch_add(1, Ordering::Release);
        out
    }

    /// `write` for bookkeeping that changes no configuration: it leaves `generation`
    /// alone, otherwise every such write would empty the caches that depend on it. The
    /// job may write only the tables its `kind` names; any other write fails, so a change
    /// of configuration cannot pass for bookkeeping and leave a cache stale.
    pub async fn write_bookkeeping<T, E, F>(&self, kind: Bookkeeping, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&WriteTx<'_>) -> Result<T, E> + Send + 'static,
    {
        self.submit(move |tx| f(&WriteTx(tx.0.writing_only(kind.tables()))))
            .await
    }

    /// Read it before reading what is cached, and keep that only while it is unchanged.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    async fn submit<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&WriteTx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = writer::job(f, tx);
        self.inner
            .writer
            .send(writer::Msg::Job(job))
            .await
            .map_err(|_| E::from(DbError::WriterGone))?;
        rx.await.map_err(|_| E::from(DbError::WriterGone))?
    }

    /// Stops the writer after the jobs already queued, then checkpoints the WAL into the
    /// main file (TRUNCATE) so that the single .db file is a complete copy.
    pub async fn shutdown(&self) -> Result<(), DbError> {
        let (tx, rx) = oneshot::channel();
        if self
            .inner
            .writer
            .send(writer::Msg::Shutdown(tx))
            .await
            .is_err()
        {
            return Ok(());
        }
        rx.await.map_err(|_| DbError::WriterGone)?
    }

    /// Whether a read round-trip works (readiness probe).
    pub async fn ping(&self) -> Result<(), DbError> {
        self.read(|tx| {
            tx.query_opt("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
        })
        .await
    }
}

/// Creates `path` empty and readable by its owner only, unless it exists: a database
/// holds password hashes and sealed keys, whatever the umask says.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Applies pending migrations without starting anything; returns those applied.
pub fn migrate_only(path: &Path) -> Result<Vec<String>, DbError> {
    migrate_with(path, &Upgrade::beside(path)).map(|m| m.applied)
}

/// Brings the schema up to date without starting anything (`xagent migrate`).
pub fn migrate_with(path: &Path, upgrade: &Upgrade) -> Result<Migrated, DbError> {
    create_private(path)?;
    let mut conn = rusqlite::Connection::open(path)?;
    conn::configure_writer(&conn)?;
    bring_up_to_date(&mut conn, path, upgrade)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn count(db: &Db) -> i64 {
        db.read(|tx| {
            tx.query_opt("SELECT COUNT(*) FROM instance_settings", [], |r| r.get(0))
                .map(|n| n.unwrap_or(0))
        })
        .await
        .unwrap()
    }

    fn lookup_count(db: &Db) -> Result<i64, DbError> {
        db.lookup(|tx| {
            tx.query_opt("SELECT COUNT(*) FROM instance_settings", [], |r| r.get(0))
                .map(|n| n.unwrap_or(0))
        })
    }

    #[tokio::test]
    async fn lookups_see_every_committed_write_and_keep_databases_apart() {
        let dir = tempfile::tempdir().unwrap();
        let a = Db::open(&dir.path().join("a.db")).unwrap();
        let b = Db::open(&dir.path().join("b.db")).unwrap();
        let before = lookup_count(&a).unwrap();
        a.write(|tx| {
            tx.execute(
                "INSERT INTO instance_settings (key, value, updated_at) VALUES ('x', 'v', 'now')",
                [],
            )
        })
        .await
        .unwrap();
        // Same thread, same cached connection: a new snapshot per lookup.
        assert_eq!(lookup_count(&a).unwrap(), before + 1);
        assert_eq!(lookup_count(&b).unwrap(), before);
        // A nested lookup is refused, not a panic.
        let nested = a.lookup(|_| lookup_count(&a));
        assert!(matches!(nested, Err(DbError::TaskFailed)));
        assert_eq!(lookup_count(&a).unwrap(), before + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_commit_in_batches_and_a_failing_job_sinks_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let mut handles = Vec::new();
        for i in 0..300 {
            let db = db.clone();
            handles.push(tokio::spawn(async move {
                db.write(move |tx| {
                    tx.execute(
                        "INSERT INTO instance_settings (key, value, updated_at) VALUES (?1, 'v', 'now')",
                        [format!("k{i}")],
                    )?;
                    if i % 50 == 7 {
                        // This job's insert must be rolled back, the batch's others kept.
                        return Err(DbError::Migration("planted failure".into()));
                    }
                    Ok(())
                })
                .await
            }));
        }
        let mut failed = 0;
        for h in handles {
            if h.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 6);
        assert_eq!(count(&db).await, 294);
        let stats = db.writer_stats();
        let (jobs, commits) = (
            stats.jobs.load(std::sync::atomic::Ordering::Relaxed),
            stats.commits.load(std::sync::atomic::Ordering::Relaxed),
        );
        assert_eq!(jobs, 300);
        assert!(
            commits < jobs,
            "no batching: {commits} commits for {jobs} jobs"
        );
        // Every batch is in the histogram, which adds up to the jobs; none waits now.
        let sizes = stats.batch_sizes();
        assert_eq!(sizes.jobs, 300);
        assert!(sizes.batches >= commits && sizes.batches < 300, "{sizes:?}");
        assert_eq!(
            sizes.buckets.iter().map(|(_, n)| n).sum::<u64>(),
            sizes.batches
        );
        assert!(
            sizes.buckets.iter().skip(1).any(|(_, n)| *n > 0),
            "some batch held more than one job: {sizes:?}"
        );
        assert_eq!(db.write_queue_depth(), 0);
        // Answered only after commit: a fresh reader sees every acknowledged write.
        let present: Option<String> = db
            .read(|tx| {
                tx.query_opt(
                    "SELECT value FROM instance_settings WHERE key = 'k8'",
                    [],
                    |r| r.get(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(present.as_deref(), Some("v"));
        let missing: Option<String> = db
            .read(|tx| {
                tx.query_opt(
                    "SELECT value FROM instance_settings WHERE key = 'k7'",
                    [],
                    |r| r.get(0),
                )
            })
            .await
            .unwrap();
        assert!(missing.is_none());
        db.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_not_a_dead_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let r: Result<(), DbError> = db
            .write(|tx| {
                tx.execute(
                    "INSERT INTO instance_settings (key, value, updated_at) VALUES ('p', 'v', 'now')",
                    [],
                )?;
                panic!("boom");
            })
            .await;
        assert!(r.is_err());
        assert_eq!(count(&db).await, 0);
        db.write(|tx| {
            tx.execute(
                "INSERT INTO instance_settings (key, value, updated_at) VALUES ('q', 'v', 'now')",
                [],
            )
            .map(|_| ())
        })
        .await
        .unwrap();
        assert_eq!(count(&db).await, 1);
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let r = db
            .read(|tx| {
                tx.execute(
                    "INSERT INTO instance_settings (key, value, updated_at) VALUES ('x', 'v', 'now')",
                    [],
                )
            })
            .await;
        assert!(r.is_err());
    }
}
