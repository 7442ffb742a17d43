//! Per-connection settings and the transaction wrappers every query goes through.
use std::ops::Deref;

use rusqlite::config::DbConfig;
use rusqlite::{CachedStatement, Connection, Params, Row, StatementStatus};

use super::{DbError, guard};

const COMMON_PRAGMAS: &str = "PRAGMA foreign_keys = ON;
    PRAGMA busy_timeout = 5000;
    PRAGMA synchronous = FULL;
    PRAGMA temp_store = MEMORY;
    PRAGMA cache_size = -16000;";

/// Prepared statements kept per connection. rusqlite's default (16) is fewer than the
/// statements one request runs (membership, teams, the list, its shares, ...), and
/// re-preparing the visibility query costs more than running it.
const STATEMENT_CACHE: usize = 256;

/// Plans must not depend on bound values. Otherwise SQLite marks a statement for
/// re-planning whenever a parameter it looked at is re-bound (values compared with the
/// STAT4 samples `PRAGMA optimize` gathers, any `LIKE ?`), and the cached statements of
/// the hot paths (token, membership, lists) were parsed and planned again on every
/// request: a fifth of a list request's CPU time.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

pub(super) fn configure_writer(conn: &Connection) -> Result<(), DbError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    stable_plans(conn)?;
    // WAL first: it is persistent, and the other pragmas are per connection.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Migration(format!(
            "cannot enable WAL (journal_mode={mode})"
        )));
    }
    conn.execute_batch(COMMON_PRAGMAS)?;
    Ok(())
}

pub(super) fn configure_reader(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    stable_plans(conn)?;
    conn.execute_batch(COMMON_PRAGMAS)?;
    // Readers cannot write even by mistake: every write goes through the writer.
    conn.execute_batch("PRAGMA query_only = ON;")
}

pub(super) fn read_tx<T, E, F>(conn: &Connection, f: F) -> Result<T, E>
where
    E: From<DbError>,
    F: FnOnce(&ReadTx<'_>) -> Result<T, E>,
{
    conn.prepare_cached("BEGIN")
        .and_then(|mut s| s.execute([]))
        .map_err(DbError::from)?;
    let out = f(&ReadTx(Conn::new(conn)));
    // A read transaction has nothing to keep; ending it releases the snapshot.
    let _ = conn
        .prepare_cached("ROLLBACK")
        .and_then(|mut s| s.execute([]));
    out
}

/// A connection inside a transaction. Every statement is checked by the tenancy guard in
/// debug builds (tests): one that names a tenant table without binding organization_id fails.
#[derive(Clone, Copy)]
pub struct Conn<'a> {
    inner: &'a Connection,
    guarded: bool,
}

impl<'a> Conn<'a> {
    pub(super) fn new(inner: &'a Connection) -> Self {
        Self {
            inner,
            guarded: cfg!(debug_assertions),
        }
    }

    /// The deliberate bypass for queries that are cross-tenant by design (the membership
    /// check, "my organizations", the public gallery). Only `db` can call it.
    pub(in crate::db) fn unscoped(&self) -> Conn<'a> {
        Conn {
            inner: self.inner,
            guarded: false,
        }
    }

    fn prepare(&self, sql: &str) -> Result<CachedStatement<'a>, DbError> {
        if self.guarded {
            guard::check(sql)?;
        }
        Ok(self.inner.prepare_cached(sql)?)
    }

    /// Debug builds (tests) refuse a cached statement that SQLite plans again on every
    /// run (see `stable_plans`). A schema change re-plans a statement once, which is fine.
    fn check_replanned(stmt: &CachedStatement<'_>, sql: &str) -> Result<(), DbError> {
        if cfg!(debug_assertions) {
            let runs = stmt.get_status(StatementStatus::Run);
            if runs >= 2 && stmt.get_status(StatementStatus::RePrepare) >= runs {
                return Err(DbError::Replanned(sql.to_string()));
            }
        }
        Ok(())
    }

    pub(in crate::db) fn query_opt<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, DbError> {
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.query(params)?;
        let out = match rows.next()? {
            Some(row) => Some(f(row)?),
            None => None,
        };
        drop(rows);
        Self::check_replanned(&stmt, sql)?;
        Ok(out)
    }

    pub(in crate::db) fn query_vec<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        mut f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, DbError> {
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(f(row)?);
        }
        drop(rows);
        Self::check_replanned(&stmt, sql)?;
        Ok(out)
    }

    pub(in crate::db) fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize, DbError> {
        let mut stmt = self.prepare(sql)?;
        let n = stmt.execute(params)?;
        Self::check_replanned(&stmt, sql)?;
        Ok(n)
    }
}

/// A read transaction: one snapshot, read-only connection.
pub struct ReadTx<'a>(pub(super) Conn<'a>);

/// The writer's transaction (inside this job's savepoint). Reads here see the job's writes.
pub struct WriteTx<'a>(pub(super) Conn<'a>);

impl<'a> Deref for ReadTx<'a> {
    type Target = Conn<'a>;
    fn deref(&self) -> &Conn<'a> {
        &self.0
    }
}

impl<'a> Deref for WriteTx<'a> {
    type Target = Conn<'a>;
    fn deref(&self) -> &Conn<'a> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(conn: &Connection) {
        conn.execute_batch(
            "CREATE TABLE t (a TEXT, b TEXT, name TEXT); CREATE INDEX t_ab ON t (a, b);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT i % 37, i, 'x' || i FROM n;
             ANALYZE;",
        )
        .unwrap();
    }

    fn run_twice(conn: &Connection, sql: &str) -> Result<(), DbError> {
        let c = Conn {
            inner: conn,
            guarded: false,
        };
        for (a, b) in [("1", "%2%"), ("3", "%4%")] {
            c.query_vec(sql, rusqlite::params![a, b], |r| r.get::<_, String>(0))?;
        }
        Ok(())
    }

    const BY_INDEX: &str = "SELECT name FROM t WHERE a = ?1 AND b > ?2";
    const SEARCH: &str = "SELECT name FROM t WHERE a = ?1 AND name LIKE ?2";

    #[test]
    fn statements_are_planned_once_per_connection() {
        let conn = Connection::open_in_memory().unwrap();
        stable_plans(&conn).unwrap();
        table(&conn);
        let samples: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_stat4", [], |r| r.get(0))
            .unwrap();
        assert!(samples > 0, "the bundled SQLite gathers STAT4 samples");
        run_twice(&conn, BY_INDEX).unwrap();
        run_twice(&conn, SEARCH).unwrap();
    }

    #[test]
    fn a_statement_planned_again_is_refused_in_tests() {
        let conn = Connection::open_in_memory().unwrap();
        table(&conn);
        assert!(matches!(
            run_twice(&conn, BY_INDEX),
            Err(DbError::Replanned(_))
        ));
        assert!(matches!(
            run_twice(&conn, SEARCH),
            Err(DbError::Replanned(_))
        ));
    }
}
