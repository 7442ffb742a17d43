//! The runtime half of the tenancy guard. In debug builds (every test run) each statement
//! is checked before it is prepared: one that names a tenant table must bind
//! `organization_id` (a `organization_id = ?` predicate, or the column of an INSERT).
//! A missing filter then fails the statement, and the test that reached it, instead of
//! silently reading another organization's rows. The static half is `tests/api/guards.rs`.

use super::DbError;

/// Tables whose rows belong to one organization. Reached only through the tenancy layer.
pub const TENANT_TABLES: &[&str] = &[
    "organization_members",
    "organization_invitations",
    "organization_keys",
    "teams",
    "team_members",
    "organization_llm_policy",
    "organization_llm_settings",
    "user_llm_settings",
    "organization_quotas",
    "organization_usage",
    "member_usage",
    "notifications",
    "webhook_deliveries",
    "usage_events",
    "invoices",
    "organization_audit_logs",
    "agents",
    "agent_personality_traits",
    "agent_skills",
    "workflows",
    "uploaded_documents",
    "document_contents",
    "tools",
    "knowledge_bases",
    "knowledge_base_documents",
    "document_chunks",
    "conversations",
    "messages",
    "resource_shares",
];

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Byte offsets of `word` in `text` as a whole identifier.
fn find_word<'a>(text: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(word).filter_map(move |(i, _)| {
        let bytes = text.as_bytes();
        let before_ok = i == 0 || !is_ident_char(bytes[i - 1]);
        let end = i + word.len();
        let after_ok = end >= bytes.len() || !is_ident_char(bytes[end]);
        (before_ok && after_ok).then_some(i)
    })
}

/// The tenant tables a statement names.
pub fn tenant_tables_in(sql: &str) -> Vec<&'static str> {
    let lower = sql.to_ascii_lowercase();
    TENANT_TABLES
        .iter()
        .copied()
        .filter(|t| find_word(&lower, t).next().is_some())
        .collect()
}

/// Whether the statement binds organization_id to a parameter somewhere.
fn binds_organization(lower: &str) -> bool {
    find_word(lower, "organization_id").any(|i| {
        let rest = lower[i + "organization_id".len()..].trim_start();
        match rest.strip_prefix('=') {
            Some(r) => {
                let r = r.trim_start();
                r.starts_with('?') || r.starts_with(':')
            }
            None => false,
        }
    })
}

/// Whether statements are checked (debug builds, which is every test run).
pub fn enabled() -> bool {
    cfg!(debug_assertions)
}

/// Checks one statement; `Err(Unscoped)` when it names a tenant table without the filter.
pub fn check(sql: &str) -> Result<(), DbError> {
    let tables = tenant_tables_in(sql);
    if tables.is_empty() {
        return Ok(());
    }
    let lower = sql.to_ascii_lowercase();
    let scoped = if lower.trim_start().starts_with("insert") {
        // The column list must carry organization_id (its value comes from the context).
        let head = lower.split(" values").next().unwrap_or(&lower);
        find_word(head, "organization_id").next().is_some()
    } else {
        binds_organization(&lower)
    };
    if scoped {
        Ok(())
    } else {
        tracing::error!(tables = ?tables, "tenant-table statement without organization filter");
        Err(DbError::Unscoped(
            sql.split_whitespace().collect::<Vec<_>>().join(" "),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_without_the_filter_are_refused() {
        for bad in [
            "SELECT id FROM agents WHERE id = ?1",
            "SELECT * FROM teams",
            "UPDATE agents SET name = ?1 WHERE id = ?2",
            "DELETE FROM organization_members WHERE user_id = ?1",
            "INSERT INTO agents (id, name) VALUES (?1, ?2)",
            "SELECT a.id FROM users u JOIN agents a ON a.user_id = u.id WHERE a.organization_id IS NOT NULL",
        ] {
            assert!(
                matches!(check(bad), Err(DbError::Unscoped(_))),
                "accepted: {bad}"
            );
        }
    }

    #[tokio::test]
    async fn a_planted_unscoped_query_fails_through_the_real_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("t.db")).unwrap();
        let unscoped = db
            .read(|tx| tx.query_vec("SELECT id FROM agents", [], |r| r.get::<_, String>(0)))
            .await;
        assert!(
            matches!(unscoped, Err(DbError::Unscoped(_))),
            "{unscoped:?}"
        );
        let write = db
            .write(|tx| tx.execute("DELETE FROM agents WHERE id = ?1", ["x"]))
            .await;
        assert!(matches!(write, Err(DbError::Unscoped(_))));
        let scoped = db
            .read(|tx| {
                tx.query_vec(
                    "SELECT id FROM agents WHERE organization_id = ?1",
                    ["o"],
                    |r| r.get::<_, String>(0),
                )
            })
            .await;
        assert_eq!(scoped.unwrap(), Vec::<String>::new());
        db.shutdown().await.unwrap();
    }

    #[test]
    fn scoped_statements_and_other_tables_pass() {
        for good in [
            "SELECT id FROM agents WHERE organization_id = ?1 AND id = ?2",
            "select * from teams t where t.organization_id=?",
            "UPDATE agents SET name = ?1 WHERE organization_id = :org AND id = ?2",
            "INSERT INTO agents (id, organization_id, name) VALUES (?1, ?2, ?3)",
            "SELECT id FROM users WHERE email = ?1",
            "SELECT agent_id FROM sessions",
        ] {
            assert!(check(good).is_ok(), "refused: {good}");
        }
    }
}
