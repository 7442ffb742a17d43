//! Copies of the database file: the online backup (SQLite's backup API), the checks a
//! copy passes before it carries its final name, the backup taken before an upgrade, and
//! restoring a copy in place of the data directory's database.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::lock::DataDirLock;
use super::migrate::{self, SchemaVersion};
use super::{DbError, create_private};

/// What a written copy holds.
#[derive(Debug, Clone)]
pub struct Copied {
    pub path: PathBuf,
    pub bytes: u64,
    /// The schema version recorded in the copy (`None`: no migration applied).
    pub schema_version: Option<i64>,
}

/// A time as it appears in the names of backup files: `20260314T091500Z` (UTC).
pub fn stamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A consistent online copy of the database at `src` into `dest`, safe while a server
/// writes to `src`.
///
/// All pages are copied in one backup step, which is one read transaction on the source:
/// in WAL mode that snapshot never blocks the writer, and nothing the writer commits
/// meanwhile can restart the copy. (Copying a few pages per step, as before, restarts
/// from the first page after every commit by another connection, so on a busy server the
/// backup never finished.) The copy goes to a temporary file beside `dest`, passes
/// `PRAGMA integrity_check` and is synced, and only then is renamed into place: `dest` is
/// either complete and checked, or absent.
pub fn backup(src: &Path, dest: &Path) -> Result<Copied, DbError> {
    if dest.exists() {
        return Err(DbError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", dest.display()),
        )));
    }
    let from = open_source(src)?;
    let partial = with_suffix(dest, ".partial");
    let _ = std::fs::remove_file(&partial);
    let result = copy_snapshot(&from, &partial).and_then(|schema_version| {
        std::fs::rename(&partial, dest)?;
        sync_parent(dest)?;
        Ok(Copied {
            path: dest.to_path_buf(),
            bytes: std::fs::metadata(dest)?.len(),
            schema_version,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// A read-only connection to `src` for copying it.
fn open_source(src: &Path) -> Result<rusqlite::Connection, DbError> {
    let from = rusqlite::Connection::open_with_flags(
        src,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )?;
    from.busy_timeout(Duration::from_secs(10))?;
    Ok(from)
}

/// How long a copy waits, in all, for a source that stays locked. In WAL mode a reader
/// is refused only for moments (a WAL restart, recovery after a crash), never by a
/// writer, so this is far more than a busy server needs.
const LOCKED_FOR_AT_MOST: Duration = Duration::from_secs(60);

/// Copies every page of `from` into a new file at `to_path`, makes it a standalone
/// database (no WAL), checks its integrity and syncs it. Returns the schema version
/// recorded in the copy.
fn copy_snapshot(from: &rusqlite::Connection, to_path: &Path) -> Result<Option<i64>, DbError> {
    create_private(to_path)?;
    let mut to = rusqlite::Connection::open(to_path)?;
    {
        let backup = rusqlite::backup::Backup::new(from, &mut to)?;
        let deadline = Instant::now() + LOCKED_FOR_AT_MOST;
        loop {
            // -1: every page in one step, from one snapshot, so commits made meanwhile by
            // other connections cannot restart it.
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                // Not expected with -1; the next step goes on where this one stopped.
                rusqlite::backup::StepResult::More => {}
                // The source was locked beyond its busy timeout: a checkpoint restarting
                // the WAL, or recovery. Wait and try again, within reason.
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    return Err(DbError::Io(std::io::Error::other(format!(
                        "the database stayed locked for {} s",
                        LOCKED_FOR_AT_MOST.as_secs()
                    ))));
                }
            }
        }
    }
    // The copy is a standalone file: no WAL beside it.
    to.execute_batch("PRAGMA journal_mode=DELETE;")?;
    check_integrity(&to)?;
    let version = migrate::recorded_version(&to)?;
    drop(to);
    std::fs::File::open(to_path)?.sync_all()?;
    Ok(version)
}

/// `PRAGMA integrity_check` is `ok`, or the error names its first findings.
fn check_integrity(conn: &rusqlite::Connection) -> Result<(), DbError> {
    let mut st = conn.prepare("PRAGMA integrity_check(5)")?;
    let found: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if found.len() == 1 && found[0] == "ok" {
        Ok(())
    } else {
        Err(DbError::Corrupt(found.join("; ")))
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Makes a rename or a new file in `path`'s directory durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

/// Creates `dir` and its missing parents, readable by their owner only (backups hold
/// password hashes and sealed keys).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// The copy taken before migrating an existing database from `schema.applied` to
/// `schema.known`: `backups/pre-upgrade-V<old>-to-V<new>-<time>.db`.
pub(super) fn pre_upgrade_backup(
    db_path: &Path,
    backups: &Path,
    from: i64,
    to: i64,
) -> Result<Copied, DbError> {
    create_private_dir(backups)?;
    let dest = backups.join(format!(
        "pre-upgrade-V{from}-to-V{to}-{}.db",
        stamp(chrono::Utc::now())
    ));
    backup(db_path, &dest)
}

/// What `restore` did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The file restored, its size and schema version.
    pub from: PathBuf,
    pub bytes: u64,
    pub schema: SchemaVersion,
    /// Where the database it replaced went (`None`: there was none).
    pub replaced: Option<PathBuf>,
}

/// Puts a copy of `file` in place of the database at `db_path`, whose data directory
/// `_lock` proves this process holds (no server runs on it).
///
/// Nothing changes unless the copy of `file` passes the checks: an SQLite file, `PRAGMA
/// integrity_check` ok, an xagent schema history no newer than this binary's migrations
/// and matching them (an older one is accepted: the next start backs it up and migrates
/// it). The copy is made with the backup API into `xagent.db.restoring` and synced; the
/// current database, checkpointed first, is kept as `xagent.db.replaced-<time>` (with its
/// `-wal` and `-shm` when they could not be folded into it); then the copy is renamed
/// over `xagent.db` and the directory synced.
pub fn restore(file: &Path, db_path: &Path, _lock: &DataDirLock) -> Result<Restored, DbError> {
    let refuse = |why: String| Err(DbError::Refused(format!("{}: {why}", file.display())));
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) => return refuse(e.to_string()),
    };
    if !meta.is_file() {
        return refuse("not a regular file".into());
    }
    if !has_sqlite_header(file)? {
        return refuse("not an SQLite database".into());
    }
    if let (Ok(a), Ok(b)) = (file.canonicalize(), db_path.canonicalize())
        && a == b
    {
        return refuse("that is the data directory's own database".into());
    }
    let partial = with_suffix(db_path, ".restoring");
    let _ = std::fs::remove_file(&partial);
    let checked = open_source(file)
        .and_then(|from| copy_snapshot(&from, &partial))
        .and_then(|_| {
            let copy = rusqlite::Connection::open(&partial)?;
            migrate::inspect(&copy)
        })
        .map_err(|e| match e {
            DbError::Sqlite(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
                ) =>
            {
                DbError::Corrupt(e.to_string())
            }
            other => other,
        })
        .and_then(|schema| match schema.applied {
            Some(_) => Ok(schema),
            None => Err(DbError::Refused(
                "an empty database, with no xagent schema".into(),
            )),
        });
    let schema = match checked {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return refuse(e.to_string());
        }
    };
    let replaced = match set_aside(db_path) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, db_path)?;
    sync_parent(db_path)?;
    Ok(Restored {
        from: file.to_path_buf(),
        bytes: meta.len(),
        schema,
        replaced,
    })
}

fn has_sqlite_header(file: &Path) -> Result<bool, DbError> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut f = std::fs::File::open(file)?;
    Ok(f.read_exact(&mut head).is_ok() && &head == b"SQLite format 3\0")
}

/// Keeps the database at `db_path` as `<db_path>.replaced-<time>`, leaving `db_path`
/// itself in place (a hard link) while that is safe, so that the rename that follows
/// replaces it in one step. Its WAL is checkpointed into it first; when that cannot be
/// done (a damaged database), the `-wal` and `-shm` files move along under the matching
/// names, so the set aside copy is the database as it was, and no stale WAL stays beside
/// the restored one, where SQLite would apply it.
fn set_aside(db_path: &Path) -> Result<Option<PathBuf>, DbError> {
    if !db_path.exists() {
        for side in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(db_path, side));
        }
        return Ok(None);
    }
    let checkpointed = checkpoint(db_path).is_ok();
    let now = stamp(chrono::Utc::now());
    let mut aside = with_suffix(db_path, &format!(".replaced-{now}"));
    let mut n = 1;
    while aside.exists() {
        aside = with_suffix(db_path, &format!(".replaced-{now}-{n}"));
        n += 1;
    }
    for side in ["-wal", "-shm"] {
        let from = with_suffix(db_path, side);
        if from.exists() {
            std::fs::rename(&from, with_suffix(&aside, side))?;
        }
    }
    if !checkpointed || std::fs::hard_link(db_path, &aside).is_err() {
        std::fs::rename(db_path, &aside)?;
    }
    sync_parent(db_path)?;
    Ok(Some(aside))
}

/// Folds the WAL of the database at `path` into its main file (nothing else uses it:
/// the caller holds the data directory). Closing the last connection removes the WAL.
fn checkpoint(path: &Path) -> Result<(), DbError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Err(DbError::Io(std::io::Error::other("checkpoint was blocked")));
    }
    conn.close().map_err(|(_, e)| DbError::from(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(path: &Path) -> Vec<i64> {
        let c = rusqlite::Connection::open(path).unwrap();
        let mut st = c
            .prepare("SELECT version FROM refinery_schema_history ORDER BY 1")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_restore_keeps_the_replaced_database_with_its_wal_contents_and_leaves_no_wal_beside_the_new_one()
     {
        let live_dir = tempfile::tempdir().unwrap();
        let live_db = live_dir.path().join("xagent.db");
        crate::db::migrate_only(&live_db).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy.db");
        backup(&live_db, &copy).unwrap();
        // What a crash leaves: a write still only in the WAL (an open connection that
        // does not checkpoint), the database and its -wal copied as they are.
        let live = rusqlite::Connection::open(&live_db).unwrap();
        live.execute_batch(
            "PRAGMA wal_autocheckpoint = 0; \
             INSERT INTO instance_settings (key, value, updated_at) VALUES ('kept', 'v', 'now');",
        )
        .unwrap();
        let db = dir.path().join("xagent.db");
        std::fs::copy(&live_db, &db).unwrap();
        std::fs::copy(with_suffix(&live_db, "-wal"), with_suffix(&db, "-wal")).unwrap();
        drop(live);
        assert!(std::fs::metadata(with_suffix(&db, "-wal")).unwrap().len() > 0);
        let lock = DataDirLock::try_acquire(dir.path()).unwrap();
        let done = restore(&copy, &db, &lock).unwrap();
        let aside = done.replaced.unwrap();
        assert!(!with_suffix(&db, "-wal").exists());
        let old = rusqlite::Connection::open(&aside).unwrap();
        let kept: i64 = old
            .query_row(
                "SELECT COUNT(*) FROM instance_settings WHERE key = 'kept'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kept, 1);
        let new = rusqlite::Connection::open(&db).unwrap();
        let none: i64 = new
            .query_row(
                "SELECT COUNT(*) FROM instance_settings WHERE key = 'kept'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(none, 0);
        assert_eq!(done.schema.applied, Some(migrate::known_version()));
        assert_eq!(history(&db).last().copied(), Some(migrate::known_version()));
    }

    #[test]
    fn an_empty_database_is_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.db");
        rusqlite::Connection::open(&empty)
            .unwrap()
            .execute_batch("PRAGMA user_version = 1;")
            .unwrap();
        let db = dir.path().join("xagent.db");
        let lock = DataDirLock::try_acquire(dir.path()).unwrap();
        let err = restore(&empty, &db, &lock).unwrap_err().to_string();
        assert!(err.contains("empty database"), "{err}");
        assert!(!db.exists());
        assert!(!with_suffix(&db, ".restoring").exists());
    }
}
