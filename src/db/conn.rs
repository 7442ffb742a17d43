//! Per-connection settings and the transaction wrappers every query goes through.
use std::ops::Deref;

use rusqlite::{Connection, Params, Row};

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

pub(super) fn configure_writer(conn: &Connection) -> Result<(), DbError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
    conn.execute_batch(COMMON_PRAGMAS)?;
    // Readers cannot write even by mistake: every write goes through the writer.
    conn.execute_batch("PRAGMA query_only = ON;")
}

pub(super) fn read_tx<T, E, F>(conn: &Connection, f: F) -> Result<T, E>
where
    E: From<DbError>,
    F: FnOnce(&ReadTx<'_>) -> Result<T, E>,
{
    conn.execute_batch("BEGIN").map_err(DbError::from)?;
    let out = f(&ReadTx(Conn::new(conn)));
    // A read transaction has nothing to keep; ending it releases the snapshot.
    let _ = conn.execute_batch("ROLLBACK");
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

    fn prepare(&self, sql: &str) -> Result<rusqlite::CachedStatement<'a>, DbError> {
        if self.guarded {
            guard::check(sql)?;
        }
        Ok(self.inner.prepare_cached(sql)?)
    }

    pub(in crate::db) fn query_opt<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, DbError> {
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.query(params)?;
        match rows.next()? {
            Some(row) => Ok(Some(f(row)?)),
            None => Ok(None),
        }
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
        Ok(out)
    }

    pub(in crate::db) fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize, DbError> {
        let mut stmt = self.prepare(sql)?;
        Ok(stmt.execute(params)?)
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

impl<'a> WriteTx<'a> {
    /// Reads inside the write transaction, for read-then-write rules (limits, last owner).
    pub fn as_read(&self) -> ReadTx<'a> {
        ReadTx(self.0)
    }
}
