//! The tenancy guards. Static: SQL naming a tenant table appears only under src/db/.
//! Runtime: every statement on a tenant table runs in an organization scope and filters
//! by it (src/db/guard.rs; its unit tests run planted unscoped queries through the real Db).
use std::path::{Path, PathBuf};

use xagent::db::guard::{TENANT_TABLES, tenant_tables_in};

/// String literals of a Rust source file (plain and raw), roughly but without misses for
/// the way SQL is written here.
fn string_literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'\'' => {
                // char literal or lifetime: skip an escaped or plain char literal
                if bytes.get(i + 2) == Some(&b'\'') {
                    i += 3;
                    continue;
                }
                if bytes.get(i + 1) == Some(&b'\\')
                    && let Some(end) = src[i + 2..].find('\'')
                {
                    i += end + 3;
                    continue;
                }
                i += 1;
            }
            b'r' if bytes.get(i + 1) == Some(&b'#') || bytes.get(i + 1) == Some(&b'"') => {
                let hashes = bytes[i + 1..].iter().take_while(|b| **b == b'#').count();
                if bytes.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = i + 2 + hashes;
                let close = format!("\"{}", "#".repeat(hashes));
                let end = src[start..].find(&close).map_or(src.len(), |e| start + e);
                out.push(src[start..end].to_string());
                i = end + close.len();
            }
            b'"' => {
                let mut j = i + 1;
                let mut s = String::new();
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' {
                        j += 1;
                    }
                    if j < bytes.len() {
                        s.push(bytes[j] as char);
                    }
                    j += 1;
                }
                out.push(s);
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn looks_like_sql(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    // Statement shapes, not single words: a route like "/teams/{id}/delete" is no SQL.
    (has("select") && has("from"))
        || (has("insert") && has("into"))
        || (has("update") && has("set"))
        || (has("delete") && has("from"))
        || has("join")
}

/// Files outside `<root>/db/` with SQL naming a tenant table, as "path: table".
fn violations(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != root.join("db") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            for lit in string_literals(&src) {
                if looks_like_sql(&lit) {
                    for t in tenant_tables_in(&lit) {
                        found.push(format!("{}: {t}", path.display()));
                    }
                }
            }
        }
    }
    found
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_sql_on_tenant_tables_outside_the_db_module() {
    let v = violations(&src_dir());
    assert!(v.is_empty(), "tenant-table SQL outside src/db: {v:#?}");
    // The scan really read the tree: the db module itself is full of such SQL.
    let db_only = violations(&src_dir().join("db").join("repo"));
    assert!(
        !db_only.is_empty(),
        "the scanner found no SQL even in src/db/repo"
    );
}

#[test]
fn the_static_guard_catches_a_planted_violation() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("src");
    std::fs::create_dir_all(root.join("http")).unwrap();
    std::fs::create_dir_all(root.join("db")).unwrap();
    std::fs::write(
        root.join("http").join("planted.rs"),
        "fn f(c: &Conn) { c.query(\"SELECT id, name FROM agents WHERE id = ?1\", []); }\n\
         fn g() { let _ = r#\"DELETE FROM team_members WHERE user_id = ?\"#; }\n\
         fn ok() { let _ = \"agents.create\"; let _ = \"/o/{org}/teams/{id}/delete\"; let _ = 'x'; }\n",
    )
    .unwrap();
    std::fs::write(
        root.join("db").join("fine.rs"),
        "const Q: &str = \"SELECT id FROM agents WHERE organization_id = ?1\";\n",
    )
    .unwrap();
    let v = violations(&root);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v.iter().any(|s| s.ends_with("planted.rs: agents")));
    assert!(v.iter().any(|s| s.ends_with("planted.rs: team_members")));
}

#[test]
fn the_runtime_guard_refuses_unscoped_sql_in_every_build() {
    use xagent::db::guard::{Binding, check};
    assert!(
        check(
            "SELECT * FROM agents WHERE organization_id = ?1",
            Binding::Plain
        )
        .is_err()
    );
    assert!(check("SELECT * FROM agents WHERE id = ?2", Binding::Org).is_err());
    assert!(
        check(
            "SELECT * FROM agents WHERE organization_id = ?1 AND id = ?2",
            Binding::Org
        )
        .is_ok()
    );
    // Every tenant table is known to the guard and exists in the schema the migrations
    // build (read from a real migrated database, so a dropped table is gone).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.db");
    xagent::db::migrate_only(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in TENANT_TABLES {
        assert!(tables.iter().any(|n| n == t), "{t} not in the schema");
    }
    // And the other way round: a table with an organization_id column is a tenant table
    // the guard must know, unless it is one of the deliberate identity tables (or one of
    // FTS5's shadow tables, which SQLite keeps for a tenant table's index).
    // sso_domains routes an email domain to one organization instance-wide (like a slug).
    const NOT_TENANT: &[&str] = &["api_tokens", "sso_domains"];
    for name in &tables {
        let has_org = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{name}') WHERE name = 'organization_id'"
            ))
            .unwrap()
            .exists([])
            .unwrap();
        if has_org && !NOT_TENANT.contains(&name.as_str()) {
            assert!(
                TENANT_TABLES.contains(&name.as_str()),
                "{name} has organization_id but is not in guard::TENANT_TABLES"
            );
        }
    }
}
