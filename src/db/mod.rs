//! The only module that touches SQLite. Reads run on a pool of read-only connections on
//! blocking threads; writes go to one writer thread that commits jobs in batches
//! (group commit: a savepoint per job, every job answered after its batch commits).
mod conn;
pub mod guard;
mod migrate;
pub mod repo;
pub mod scope;
pub mod unscoped;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use r2d2_sqlite::SqliteConnectionManager;
use tokio::sync::{mpsc, oneshot};

pub use conn::{Conn, ReadTx, WriteTx};
pub use scope::OrgContext;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("statement on a tenant table without the organization filter: {0}")]
    Unscoped(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("a database task failed")]
    TaskFailed,
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl DbError {
    /// The constraint a failed statement broke, when it was a UNIQUE or PRIMARY KEY.
    pub fn unique_violation(&self) -> bool {
        matches!(self, DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    readers: r2d2::Pool<SqliteConnectionManager>,
    writer: mpsc::Sender<writer::Msg>,
}

impl Db {
    /// Opens (creating if needed) the database, applies pending migrations and starts the writer.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let mut wconn = rusqlite::Connection::open(path)?;
        conn::configure_writer(&wconn)?;
        migrate::run(&mut wconn)?;
        let manager = SqliteConnectionManager::file(path).with_init(conn::configure_reader);
        let readers = r2d2::Pool::builder()
            .max_size(16)
            .min_idle(Some(2))
            .build(manager)?;
        let writer = writer::spawn(wconn)?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                readers,
                writer,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in a read transaction (one consistent snapshot) on a blocking thread.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&ReadTx<'_>) -> Result<T, E> + Send + 'static,
    {
        let pool = self.inner.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get().map_err(DbError::from)?;
            conn::read_tx(&conn, f)
        })
        .await
        .map_err(|_| E::from(DbError::TaskFailed))?
    }

    /// Runs `f` inside the writer's next batch; returns once that batch has committed.
    /// An `Err` from `f` rolls back only this job's changes.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
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

/// A consistent online copy of the database at `src` into `dest`, through SQLite's
/// backup API, safe while a server writes to `src`.
pub fn backup(src: &Path, dest: &Path) -> Result<(), DbError> {
    if dest.exists() {
        return Err(DbError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", dest.display()),
        )));
    }
    let from = rusqlite::Connection::open_with_flags(
        src,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )?;
    from.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut to = rusqlite::Connection::open(dest)?;
    {
        let backup = rusqlite::backup::Backup::new(&from, &mut to)?;
        backup.run_to_completion(256, std::time::Duration::from_millis(5), None)?;
    }
    // The copy is a standalone file: no WAL beside it.
    to.execute_batch("PRAGMA journal_mode=DELETE;")?;
    let ok: String = to.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if ok != "ok" {
        return Err(DbError::Migration(format!("backup integrity check: {ok}")));
    }
    drop(to);
    std::fs::File::open(dest)?.sync_all()?;
    Ok(())
}

/// Applies pending migrations without starting anything (`xagent migrate`).
pub fn migrate_only(path: &Path) -> Result<Vec<String>, DbError> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn::configure_writer(&conn)?;
    migrate::run(&mut conn)
}
