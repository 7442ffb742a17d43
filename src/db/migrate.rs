//! Schema migrations (refinery), embedded in the binary and applied at start.
use super::DbError;

mod embedded {
    refinery::embed_migrations!("migrations");
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

    use super::embedded;

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
