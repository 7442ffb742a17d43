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
