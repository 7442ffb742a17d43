//! Per-connection settings and the transaction wrappers every query goes through.
use std::ops::Deref;

use rusqlite::config::DbConfig;
use rusqlite::{CachedStatement, Connection, Params, Row, StatementStatus, ToSql};

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

/// A connection inside a transaction. Every statement goes through the tenancy guard
/// (`guard`): here, outside an organization scope, one that names a tenant table fails;
/// `scoped` gives the organization-bound form that may.
#[derive(Clone, Copy)]
pub struct Conn<'a> {
    inner: &'a Connection,
    guarded: bool,
    /// The tables a bookkeeping job may write (`Db::write_bookkeeping`); `None` for any.
    writes: Option<&'static [&'static str]>,
}

impl<'a> Conn<'a> {
    pub(super) fn new(inner: &'a Connection) -> Self {
        Self {
            inner,
            guarded: true,
            writes: None,
        }
    }

    /// The same connection, allowed to write only `tables`.
    pub(super) fn writing_only(self, tables: &'static [&'static str]) -> Self {
        Self {
            writes: Some(tables),
            ..self
        }
    }

    /// The deliberate bypass for queries that are cross-tenant by design (the membership
    /// check, "my organizations", the public gallery). Only `db` can call it.
    pub(in crate::db) fn unscoped(&self) -> Conn<'a> {
        Conn {
            guarded: false,
            ..*self
        }
    }

    /// This transaction bound to `ctx`'s organization: its statements get the
    /// organization as `?1` and must filter every tenant table by it.
    pub(in crate::db) fn scoped(&self, ctx: &super::OrgContext) -> Scoped<'a> {
        Scoped {
            conn: *self,
            orgs: [ctx.org_id().to_string(), String::new()],
            binding: guard::Binding::Org,
        }
    }

    /// Bound to two organizations of one person: statements get `from` as `?1` and `to`
    /// as `?2`, and may set `organization_id` to `?2` (moving what they own).
    pub(in crate::db) fn moving(
        &self,
        from: &super::OrgContext,
        to: &super::OrgContext,
    ) -> Scoped<'a> {
        Scoped {
            conn: *self,
            orgs: [from.org_id().to_string(), to.org_id().to_string()],
            binding: guard::Binding::Move,
        }
    }

    fn prepare(&self, sql: &str, binding: guard::Binding) -> Result<CachedStatement<'a>, DbError> {
        if self.guarded {
            guard::check_cached(sql, binding)?;
        }
        if let Some(allowed) = self.writes
            && let Some(table) = guard::written_table(sql)
            && !allowed.contains(&table.as_str())
        {
            return Err(DbError::NotBookkeeping(table));
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

    fn opt<T, P: Params>(
        &self,
        sql: &str,
        binding: guard::Binding,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, DbError> {
        let mut stmt = self.prepare(sql, binding)?;
        let mut rows = stmt.query(params)?;
        let out = match rows.next()? {
            Some(row) => Some(f(row)?),
            None => None,
        };
        drop(rows);
        Self::check_replanned(&stmt, sql)?;
        Ok(out)
    }

    fn vec<T, P: Params>(
        &self,
        sql: &str,
        binding: guard::Binding,
        params: P,
        mut f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, DbError> {
        let mut stmt = self.prepare(sql, binding)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(f(row)?);
        }
        drop(rows);
        Self::check_replanned(&stmt, sql)?;
        Ok(out)
    }

    fn exec<P: Params>(
        &self,
        sql: &str,
        binding: guard::Binding,
        params: P,
    ) -> Result<usize, DbError> {
        let mut stmt = self.prepare(sql, binding)?;
        let n = stmt.execute(params)?;
        Self::check_replanned(&stmt, sql)?;
        Ok(n)
    }

    pub(in crate::db) fn query_opt<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, DbError> {
        self.opt(sql, guard::Binding::Plain, params, f)
    }

    pub(in crate::db) fn query_vec<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, DbError> {
        self.vec(sql, guard::Binding::Plain, params, f)
    }

    pub(in crate::db) fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize, DbError> {
        self.exec(sql, guard::Binding::Plain, params)
    }
}

/// A transaction bound to one organization (or, for a move, to two): see `Conn::scoped`.
/// The repository passes only its own parameters, numbered from `?2` (`?3` for a move);
/// the organization is bound here, from the context that proved the membership.
pub(in crate::db) struct Scoped<'a> {
    conn: Conn<'a>,
    orgs: [String; 2],
    binding: guard::Binding,
}

impl Scoped<'_> {
    fn all<'p>(&'p self, params: &[&'p dyn ToSql]) -> Vec<&'p dyn ToSql> {
        let mut all: Vec<&dyn ToSql> = Vec::with_capacity(params.len() + 2);
        all.push(&self.orgs[0]);
        if self.binding == guard::Binding::Move {
            all.push(&self.orgs[1]);
        }
        all.extend_from_slice(params);
        all
    }

    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, DbError> {
        self.conn
            .opt(sql, self.binding, self.all(params).as_slice(), f)
    }

    pub fn query_vec<T>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, DbError> {
        self.conn
            .vec(sql, self.binding, self.all(params).as_slice(), f)
    }

    pub fn execute(&self, sql: &str, params: &[&dyn ToSql]) -> Result<usize, DbError> {
        self.conn
            .exec(sql, self.binding, self.all(params).as_slice())
    }

    /// Calls `f` on each row without collecting them (a large scan, such as every vector
    /// of an organization at start).
    pub fn for_each(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        mut f: impl FnMut(&Row<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), DbError> {
        let all = self.all(params);
        let mut stmt = self.conn.prepare(sql, self.binding)?;
        let mut rows = stmt.query(all.as_slice())?;
        while let Some(row) = rows.next()? {
            f(row)?;
        }
        drop(rows);
        Conn::check_replanned(&stmt, sql)?;
        Ok(())
    }
}

/// A read transaction: one snapshot, read-only connection.
pub struct ReadTx<'a>(pub(super) Conn<'a>);

/// The writer's transaction (inside this job's savepoint). Reads here see the job's writes.
pub struct WriteTx<'a>(pub(super) Conn<'a>);

impl WriteTx<'_> {
    /// Runs `f` in a savepoint of this job: an `Err` undoes what `f` wrote and nothing
    /// else of the job (one refused item of a larger job).
    pub fn savepoint<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let exec = |sql: &str| {
            self.0
                .inner
                .prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map(|_| ())
                .map_err(DbError::from)
        };
        exec("SAVEPOINT part")?;
        match f(self) {
            Ok(v) => {
                exec("RELEASE part")?;
                Ok(v)
            }
            Err(e) => {
                exec("ROLLBACK TO part")?;
                exec("RELEASE part")?;
                Err(e)
            }
        }
    }
}

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
        let c = Conn::new(conn).unscoped();
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
