//! Schema migrations (refinery), embedded in the binary and applied at start.
use super::DbError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// refinery's table of applied migrations.
const HISTORY: &str = "refinery_schema_history";

/// The newest schema version this binary's migrations make.
pub fn known_version() -> i64 {
    static KNOWN: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *KNOWN.get_or_init(|| {
        embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0)
    })
}

/// A database's schema version against this binary's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// The newest migration applied to the database; `None` for a new, empty database.
    pub applied: Option<i64>,
    /// The newest migration this binary has (`known_version`).
    pub known: i64,
}

impl SchemaVersion {
    /// An existing database that this binary's migrations will change.
    pub fn needs_upgrade(&self) -> bool {
        self.applied.is_some_and(|v| v < self.known)
    }
}

/// Reads the schema history of the database on `conn` without changing anything, and
/// refuses what migrating it would refuse, in words of our own: a database newer than
/// this binary (it has migrations this binary does not), one whose applied migrations
/// differ from this binary's of the same version (another build), and one that has tables
/// but no schema history (not an xagent database).
pub(super) fn inspect(conn: &rusqlite::Connection) -> Result<SchemaVersion, DbError> {
    let known = known_version();
    let has_history: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [HISTORY],
        |r| r.get(0),
    )?;
    if !has_history {
        let tables: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 {
            return Err(DbError::SchemaMismatch(format!(
                "it has {tables} tables but no {HISTORY}: not an xagent database"
            )));
        }
        return Ok(SchemaVersion {
            applied: None,
            known,
        });
    }
    let mut st = conn.prepare(&format!(
        "SELECT version, name, checksum FROM {HISTORY} ORDER BY version"
    ))?;
    let applied: Vec<(i64, String, String)> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            ))
        })?
        .collect::<Result<_, _>>()?;
    let newest = applied.last().map(|(v, _, _)| *v);
    if let Some(found) = newest.filter(|v| *v > known) {
        return Err(DbError::SchemaTooNew { found, known });
    }
    let runner = embedded::migrations::runner();
    for (version, name, checksum) in &applied {
        let ours = runner
            .get_migrations()
            .iter()
            .find(|m| i64::from(m.version()) == *version);
        match ours {
            Some(m) if m.name() == name && m.checksum().to_string() == *checksum => {}
            Some(m) => {
                return Err(DbError::SchemaMismatch(format!(
                    "its migration V{version}__{name} differs from this xagent's V{version}__{} (made by another build)",
                    m.name()
                )));
            }
            None => {
                return Err(DbError::SchemaMismatch(format!(
                    "it has migration V{version}__{name}, which this xagent does not have (made by another build)"
                )));
            }
        }
    }
    Ok(SchemaVersion {
        applied: newest,
        known,
    })
}

/// The newest migration recorded in the database on `conn`, without judging it (`None`:
/// no schema history). For labelling copies; `inspect` is the check.
pub(super) fn recorded_version(conn: &rusqlite::Connection) -> Result<Option<i64>, DbError> {
    let has_history: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [HISTORY],
        |r| r.get(0),
    )?;
    if !has_history {
        return Ok(None);
    }
    Ok(
        conn.query_row(&format!("SELECT MAX(version) FROM {HISTORY}"), [], |r| {
            r.get(0)
        })?,
    )
}

/// Applies pending migrations; returns the names of those applied.
pub(super) fn run(conn: &mut rusqlite::Connection) -> Result<Vec<String>, DbError> {
    let report = embedded::migrations::runner()
        .run(conn)
        .map_err(|e| DbError::Migration(e.to_string()))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect())
}

#[cfg(test)]
mod tests {
    use refinery::Target;

    use super::{DbError, embedded, inspect, known_version};

    fn at(version: Option<i32>) -> rusqlite::Connection {
        let mut c = rusqlite::Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        if let Some(v) = version {
            embedded::migrations::runner()
                .set_target(Target::Version(v))
                .run(&mut c)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        c
    }

    #[test]
    fn the_schema_version_is_read_from_the_history_and_only_an_older_existing_one_needs_upgrading()
    {
        let new = inspect(&at(None)).unwrap();
        assert_eq!((new.applied, new.known), (None, known_version()));
        assert!(!new.needs_upgrade());
        let old = inspect(&at(Some(3))).unwrap();
        assert_eq!(old.applied, Some(3));
        assert!(old.needs_upgrade());
        let current = inspect(&at(Some(i32::MAX))).unwrap();
        assert_eq!(current.applied, Some(known_version()));
        assert!(!current.needs_upgrade());
    }

    #[test]
    fn a_newer_a_foreign_and_a_history_less_database_are_refused_in_our_words() {
        let c = at(Some(i32::MAX));
        let next = known_version() + 1;
        c.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (?1, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
            [next],
        )
        .unwrap();
        let err = inspect(&c).unwrap_err();
        assert!(
            matches!(err, DbError::SchemaTooNew { found, known } if found == next && known == next - 1)
        );
        assert_eq!(
            err.to_string(),
            format!(
                "database schema is version {next}, this xagent knows up to {}; use a newer xagent",
                next - 1
            )
        );

        let c = at(Some(2));
        c.execute(
            "UPDATE refinery_schema_history SET checksum = '12345' WHERE version = 2",
            [],
        )
        .unwrap();
        let err = inspect(&c).unwrap_err().to_string();
        assert!(
            err.contains("V2__") && err.contains("another build"),
            "{err}"
        );

        let c = at(None);
        c.execute_batch("CREATE TABLE notes (body TEXT);").unwrap();
        let err = inspect(&c).unwrap_err().to_string();
        assert!(err.contains("not an xagent database"), "{err}");
    }

    /// Shares written in another spelling of their id before V8 come out in the normal
    /// form, once, with the share that was already in it kept.
    #[test]
    fn v8_rewrites_share_principals_in_the_normal_form() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        embedded::migrations::runner()
            .set_target(Target::Version(7))
            .run(&mut c)
            .unwrap_or_else(|e| panic!("{e}"));
        c.execute_batch("PRAGMA foreign_keys = OFF")
            .unwrap_or_else(|e| panic!("{e}"));
        let id = "0192f3a4-5b6c-7d8e-9f01-23456789abcd";
        for (resource, principal) in [
            ("r1", id.to_uppercase()),
            ("r2", id.replace('-', "")),
            ("r3", id.to_string()),
            ("r3", id.to_uppercase()),
        ] {
            c.execute(
                "INSERT INTO resource_shares (organization_id, resource_type, resource_id, \
                 principal_type, principal_id, created_at) \
                 VALUES ('o', 'agent', ?1, 'team', ?2, '2026-01-01T00:00:00.000000Z')",
                [resource, principal.as_str()],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        embedded::migrations::runner()
            .run(&mut c)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut st = c
            .prepare("SELECT resource_id, principal_id FROM resource_shares ORDER BY 1")
            .unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<(String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let want: Vec<(String, String)> = ["r1", "r2", "r3"]
            .iter()
            .map(|r| ((*r).to_string(), id.to_string()))
            .collect();
        assert_eq!(rows, want);
    }
}
