//! The runtime half of the tenancy guard, in every build. Statements on tenant tables run
//! only through an organization-bound transaction (`Conn::scoped`), which binds the
//! organization itself as `?1`; before such a statement is first prepared on a thread,
//! this module reads it and refuses it unless every tenant table it names is filtered by
//! `organization_id = ?1` (directly, or through `x.organization_id = y.organization_id`
//! with a filtered `y`), and every INSERT puts `?1` in the organization_id column. A
//! statement outside a scope may not name a tenant table at all. Forgetting the filter,
//! filtering one of two joined tables, or binding another organization's id then fails
//! the statement instead of reading another organization's rows. What passes once is
//! remembered per thread, so the check costs a hash lookup per statement.
//!
//! It reads SQL as this code base writes it; it is a net against forgetting, not a proof
//! against a statement written to escape it (`... = ?1 OR 1 = 1`). The static half is
//! `tests/api/guards.rs`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

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
    "credit_notes",
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
    "kb_chunks",
    "agent_memories",
    "workflow_runs",
    "workflow_run_steps",
    "conversations",
    "messages",
    "resource_shares",
    "import_ledger",
    "sso_providers",
    "sso_logins",
];

/// How a statement is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binding {
    /// Outside any organization: tenant tables are refused.
    Plain,
    /// One organization, bound as `?1`.
    Org,
    /// Moving rows from the organization bound as `?1` to the one bound as `?2`: the
    /// only binding that may set `organization_id`, and only to `?2`.
    Move,
}

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

/// The tenant tables a text names anywhere (for the static scan of the source tree).
pub fn tenant_tables_in(sql: &str) -> Vec<&'static str> {
    let lower = sql.to_ascii_lowercase();
    TENANT_TABLES
        .iter()
        .copied()
        .filter(|t| find_word(&lower, t).next().is_some())
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A word, lower-cased: keyword, table, alias or column.
    Word(String),
    /// A parameter as written: `?1`, `?`, `:name`.
    Param(String),
    Sym(char),
}

fn tokens(sql: &str) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'\'' || c == b'"' || c == b'`' {
            // A literal or a quoted name: skipped whole (a quoted table name is refused
            // below as an unknown shape only if it matters, which it never does here).
            let q = c;
            i += 1;
            while i < b.len() {
                if b[i] == q {
                    if b.get(i + 1) == Some(&q) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Sym('\''));
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'?' || c == b':' || c == b'@' || c == b'$' {
            let start = i;
            i += 1;
            while i < b.len() && is_ident_char(b[i]) {
                i += 1;
            }
            out.push(Tok::Param(sql[start..i].to_string()));
        } else if is_ident_char(c) {
            let start = i;
            while i < b.len() && is_ident_char(b[i]) {
                i += 1;
            }
            out.push(Tok::Word(sql[start..i].to_ascii_lowercase()));
        } else {
            out.push(Tok::Sym(c as char));
            i += 1;
        }
    }
    out
}

/// Words that end a table reference (so they are never taken for its alias).
const NOT_ALIAS: &[&str] = &[
    "where",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "cross",
    "natural",
    "outer",
    "on",
    "using",
    "set",
    "group",
    "order",
    "limit",
    "having",
    "union",
    "except",
    "intersect",
    "values",
    "select",
    "default",
    "returning",
    "indexed",
    "not",
    "window",
    "as",
];

/// Words after which a table name is a table reference.
fn opens_table(w: &str) -> bool {
    matches!(w, "from" | "join" | "update" | "into")
}

fn word(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Word(w)) => Some(w.as_str()),
        _ => None,
    }
}

/// A column reference `[qualifier.]name` ending at `i` (the name's index), as (qualifier,
/// name); the qualifier is empty when there is none.
fn column_at(t: &[Tok], i: usize) -> Option<(&str, &str)> {
    let name = word(t.get(i))?;
    if i >= 2 && t[i - 1] == Tok::Sym('.') {
        return Some((word(t.get(i - 2))?, name));
    }
    Some(("", name))
}

/// What one side of an `organization_id` comparison is.
#[derive(Debug, PartialEq)]
enum Side<'a> {
    Param(&'a str),
    /// Another `[qualifier.]organization_id`.
    Org(&'a str),
    Other,
}

fn side_after(t: &[Tok], eq: usize) -> Side<'_> {
    match t.get(eq + 1) {
        Some(Tok::Param(p)) => Side::Param(p),
        Some(Tok::Word(w)) => {
            if t.get(eq + 2) == Some(&Tok::Sym('.'))
                && word(t.get(eq + 3)) == Some("organization_id")
            {
                Side::Org(w)
            } else if w == "organization_id" {
                Side::Org("")
            } else {
                Side::Other
            }
        }
        _ => Side::Other,
    }
}

fn side_before(t: &[Tok], eq: usize) -> Side<'_> {
    if eq == 0 {
        return Side::Other;
    }
    match &t[eq - 1] {
        Tok::Param(p) => Side::Param(p),
        Tok::Word(w) if w == "organization_id" => match column_at(t, eq - 1) {
            Some((q, _)) => Side::Org(q),
            None => Side::Other,
        },
        _ => Side::Other,
    }
}

/// Splits the parenthesised list opening at `open` into its top-level items (token
/// ranges); returns them with the index after the closing parenthesis.
fn paren_items(t: &[Tok], open: usize) -> Option<(Vec<std::ops::Range<usize>>, usize)> {
    if t.get(open) != Some(&Tok::Sym('(')) {
        return None;
    }
    let (mut depth, mut start, mut items) = (0usize, open + 1, Vec::new());
    for (i, tok) in t.iter().enumerate().skip(open) {
        match tok {
            Tok::Sym('(') => depth += 1,
            Tok::Sym(')') => {
                depth -= 1;
                if depth == 0 {
                    items.push(start..i);
                    return Some((items, i + 1));
                }
            }
            Tok::Sym(',') if depth == 1 => {
                items.push(start..i);
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

fn refuse(sql: &str, why: &str) -> DbError {
    tracing::error!(why, "tenancy guard refused a statement");
    DbError::Unscoped(format!(
        "{why}: {}",
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}

/// Checks one statement for `binding` (see the module comment).
pub fn check(sql: &str, binding: Binding) -> Result<(), DbError> {
    let t = tokens(sql);
    let refs = tenant_refs(sql, &t, binding)?;
    if refs.is_empty() {
        return Ok(());
    }
    inserts_bind_the_scope(sql, &t, binding)?;
    moves_only_to_the_target(sql, &t, binding)?;
    every_reference_filtered(sql, &t, &refs)
}

/// The tenant tables in table position, each with the name it goes by in the statement; on
/// a plain connection, the first one is refused.
fn tenant_refs(
    sql: &str,
    t: &[Tok],
    binding: Binding,
) -> Result<Vec<(&'static str, String)>, DbError> {
    let mut refs: Vec<(&'static str, String)> = Vec::new();
    // The depths of the FROM lists open so far: in one at the current depth, `, table` is a
    // further reference.
    let mut from_lists: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    for i in 0..t.len() {
        match &t[i] {
            Tok::Sym('(') => depth += 1,
            Tok::Sym(')') => {
                depth = depth.saturating_sub(1);
                from_lists.retain(|d| *d <= depth);
            }
            Tok::Word(w) if (w == "from" || w == "join") && from_lists.last() != Some(&depth) => {
                from_lists.push(depth);
            }
            Tok::Word(w) if w != "as" && NOT_ALIAS.contains(&w.as_str()) => {
                from_lists.retain(|d| *d < depth);
            }
            _ => {}
        }
        let in_from = from_lists.last() == Some(&depth);
        let Some(name) = word(t.get(i)) else { continue };
        let Some(table) = TENANT_TABLES.iter().copied().find(|x| *x == name) else {
            continue;
        };
        let before = i.checked_sub(1).and_then(|j| t.get(j));
        let positioned =
            word(before).is_some_and(opens_table) || (in_from && before == Some(&Tok::Sym(',')));
        if !positioned || t.get(i + 1) == Some(&Tok::Sym('.')) {
            // A column or a qualifier that happens to share a table's name.
            continue;
        }
        if binding == Binding::Plain {
            return Err(refuse(sql, "a tenant table outside an organization scope"));
        }
        let alias = match word(t.get(i + 1)) {
            Some("as") => word(t.get(i + 2)).unwrap_or(table).to_string(),
            Some(a) if !NOT_ALIAS.contains(&a) => a.to_string(),
            _ => table.to_string(),
        };
        refs.push((table, alias));
    }
    Ok(refs)
}

/// An INSERT into a tenant table puts ?1 (or, moving, ?1 or ?2) in `organization_id` in
/// every row.
fn inserts_bind_the_scope(sql: &str, t: &[Tok], binding: Binding) -> Result<(), DbError> {
    let own = match binding {
        Binding::Move => ["?1", "?2"].as_slice(),
        _ => ["?1"].as_slice(),
    };
    for i in 0..t.len() {
        if word(t.get(i)) != Some("into") {
            continue;
        }
        let Some(table) = word(t.get(i + 1)) else {
            continue;
        };
        if !TENANT_TABLES.contains(&table) {
            continue;
        }
        let Some((cols, after)) = paren_items(t, i + 2) else {
            return Err(refuse(
                sql,
                "an INSERT into a tenant table without a column list",
            ));
        };
        let Some(at) = cols
            .iter()
            .position(|r| r.len() == 1 && word(t.get(r.start)) == Some("organization_id"))
        else {
            return Err(refuse(
                sql,
                "an INSERT into a tenant table without organization_id",
            ));
        };
        let value_ok = |r: &std::ops::Range<usize>| {
            r.len() == 1 && matches!(&t[r.start], Tok::Param(p) if own.contains(&p.as_str()))
        };
        match word(t.get(after)) {
            Some("values") => {
                let mut j = after + 1;
                loop {
                    let Some((vals, next)) = paren_items(t, j) else {
                        return Err(refuse(sql, "an INSERT whose VALUES cannot be read"));
                    };
                    if !vals.get(at).is_some_and(value_ok) {
                        return Err(refuse(
                            sql,
                            "an INSERT whose organization_id is not the scope's",
                        ));
                    }
                    if t.get(next) != Some(&Tok::Sym(',')) {
                        break;
                    }
                    j = next + 1;
                }
            }
            Some("select") => {
                let mut items = Vec::new();
                let (mut d, mut start) = (0usize, after + 1);
                for (k, tok) in t.iter().enumerate().skip(after + 1) {
                    match tok {
                        Tok::Sym('(') => d += 1,
                        Tok::Sym(')') => d = d.saturating_sub(1),
                        Tok::Sym(',') if d == 0 => {
                            items.push(start..k);
                            start = k + 1;
                        }
                        Tok::Word(w) if d == 0 && w == "from" => {
                            items.push(start..k);
                            break;
                        }
                        _ => {}
                    }
                }
                if !items.get(at).is_some_and(value_ok) {
                    return Err(refuse(
                        sql,
                        "an INSERT whose organization_id is not the scope's",
                    ));
                }
            }
            _ => return Err(refuse(sql, "an INSERT whose values cannot be read")),
        }
    }

    Ok(())
}

/// `organization_id` is assigned only when moving, and only to the target (?2).
fn moves_only_to_the_target(sql: &str, t: &[Tok], binding: Binding) -> Result<(), DbError> {
    for i in 0..t.len() {
        if word(t.get(i)) != Some("organization_id") || t.get(i + 1) != Some(&Tok::Sym('=')) {
            continue;
        }
        let before = (i >= 1).then(|| &t[i - 1]);
        let assigned = matches!(before, Some(Tok::Word(w)) if w == "set")
            || (before == Some(&Tok::Sym(',')) && in_set_clause(t, i));
        if assigned && !(binding == Binding::Move && side_after(t, i + 1) == Side::Param("?2")) {
            return Err(refuse(sql, "organization_id changed outside a move"));
        }
    }

    Ok(())
}

/// Every reference to a tenant table is compared with ?1, directly or through names that
/// are.
fn every_reference_filtered(
    sql: &str,
    t: &[Tok],
    refs: &[(&'static str, String)],
) -> Result<(), DbError> {
    // Names compared with ?1 directly, and names compared with each other.
    let mut direct: HashMap<&str, usize> = HashMap::new();
    let mut links: Vec<(&str, &str)> = Vec::new();
    for (i, tok) in t.iter().enumerate() {
        if *tok != Tok::Sym('=') || matches!(t.get(i + 1), Some(Tok::Sym('='))) {
            continue;
        }
        let (l, r) = (side_before(t, i), side_after(t, i));
        match (l, r) {
            (Side::Org(a), Side::Param("?1")) | (Side::Param("?1"), Side::Org(a)) => {
                *direct.entry(a).or_default() += 1;
            }
            (Side::Org(a), Side::Org(b)) => links.push((a, b)),
            _ => {}
        }
    }
    // A name is filtered when compared with ?1, or with a filtered name; an unqualified
    // `organization_id = ?1` counts for one reference without an alias.
    let mut filtered: HashSet<&str> = direct.keys().copied().filter(|k| !k.is_empty()).collect();
    loop {
        let before = filtered.len();
        for (a, b) in &links {
            if filtered.contains(a) && !b.is_empty() {
                filtered.insert(b);
            }
            if filtered.contains(b) && !a.is_empty() {
                filtered.insert(a);
            }
        }
        if filtered.len() == before {
            break;
        }
    }
    let mut bare = direct.get("").copied().unwrap_or(0);
    let is_insert_target = |table: &str| {
        t.windows(2)
            .any(|w| word(Some(&w[0])) == Some("into") && word(Some(&w[1])) == Some(table))
    };
    // A name used by several references (the same alias in two subqueries) needs a filter
    // for each.
    let mut uses: Vec<(&str, bool, usize)> = Vec::new();
    for (table, alias) in refs {
        if is_insert_target(table) && alias == table {
            continue;
        }
        match uses.iter_mut().find(|(n, _, _)| *n == alias.as_str()) {
            Some(u) => u.2 += 1,
            None => uses.push((alias.as_str(), alias == table, 1)),
        }
    }
    for (name, unaliased, n) in uses {
        let credits = if filtered.contains(name) {
            direct.get(name).copied().unwrap_or(0)
                + links
                    .iter()
                    .filter(|(a, b)| {
                        (*a == name && filtered.contains(b)) || (*b == name && filtered.contains(a))
                    })
                    .count()
        } else {
            0
        };
        let mut missing = n.saturating_sub(credits);
        if unaliased {
            let used = missing.min(bare);
            bare -= used;
            missing -= used;
        }
        if missing > 0 {
            return Err(refuse(
                sql,
                &format!("`{name}` is not filtered by the scope's organization"),
            ));
        }
    }
    Ok(())
}

/// Whether the `organization_id` at `i` is in a SET list (`SET a = 1, organization_id = ?`).
fn in_set_clause(t: &[Tok], i: usize) -> bool {
    for k in (0..i).rev() {
        match word(t.get(k)) {
            Some("set") => return true,
            Some("where" | "select" | "from" | "values" | "on") => return false,
            _ => {}
        }
    }
    false
}

thread_local! {
    static PASSED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// `check`, remembered per thread once it passed: statements are a fixed set of strings.
pub(super) fn check_cached(sql: &str, binding: Binding) -> Result<(), DbError> {
    let mut h = DefaultHasher::new();
    sql.hash(&mut h);
    binding.hash(&mut h);
    let key = h.finish();
    if PASSED.with(|p| p.borrow().contains(&key)) {
        return Ok(());
    }
    check(sql, binding)?;
    PASSED.with(|p| p.borrow_mut().insert(key));
    Ok(())
}

/// The table a statement writes (INSERT/REPLACE INTO, UPDATE, DELETE FROM), if any.
pub fn written_table(sql: &str) -> Option<String> {
    let t = tokens(sql);
    let first = word(t.first())?;
    match first {
        "insert" | "replace" => {
            let i = t.iter().position(|x| word(Some(x)) == Some("into"))?;
            word(t.get(i + 1)).map(str::to_string)
        }
        "update" => {
            let mut i = 1;
            if word(t.get(1)) == Some("or") {
                i = 3;
            }
            word(t.get(i)).map(str::to_string)
        }
        "delete" => word(t.get(2)).map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str, b: Binding) -> bool {
        matches!(check(sql, b), Err(DbError::Unscoped(_)))
    }

    #[test]
    fn scoped_statements_without_the_filter_are_refused() {
        for bad in [
            "SELECT id FROM agents WHERE id = ?1",
            "SELECT * FROM teams",
            "UPDATE agents SET name = ?2 WHERE id = ?1",
            "DELETE FROM organization_members WHERE user_id = ?2",
            "INSERT INTO agents (id, name) VALUES (?2, ?3)",
            // Another value than the scope's.
            "SELECT id FROM agents WHERE organization_id = ?2",
            "INSERT INTO teams (id, organization_id, name) VALUES (?1, ?2, ?3)",
            // One of two joined tables filtered.
            "SELECT a.id FROM agents a JOIN resource_shares s ON s.resource_id = a.id WHERE a.organization_id = ?1",
            "SELECT a.id FROM agents a, tools t WHERE a.organization_id = ?1 AND t.id = a.id",
            // The same alias twice, filtered once.
            "SELECT (SELECT COUNT(*) FROM team_members tm WHERE tm.team_id = ?2), (SELECT COUNT(*) FROM team_members tm WHERE tm.organization_id = ?1)",
            // A filter on a name nothing goes by.
            "SELECT t.id FROM teams t WHERE x.organization_id = ?1",
            // Moving rows outside a move.
            "UPDATE agents SET organization_id = ?2 WHERE organization_id = ?1",
            "UPDATE agents SET name = ?3, organization_id = ?2 WHERE organization_id = ?1",
        ] {
            assert!(refused(bad, Binding::Org), "accepted: {bad}");
        }
    }

    #[test]
    fn scoped_statements_with_the_filter_pass() {
        for good in [
            "SELECT id FROM agents WHERE organization_id = ?1 AND id = ?2",
            "select * from teams t where t.organization_id=?1",
            "SELECT t.id, (SELECT COUNT(*) FROM team_members tm WHERE tm.organization_id = t.organization_id AND tm.team_id = t.id) FROM teams t WHERE t.organization_id = ?1",
            "INSERT INTO teams (id, organization_id, name) VALUES (?2, ?1, ?3)",
            "INSERT INTO member_usage (organization_id, user_id) VALUES (?1, ?2), (?1, ?3) ON CONFLICT (organization_id, user_id) DO UPDATE SET requests = requests + 1",
            "INSERT INTO resource_shares (organization_id, resource_id) SELECT ?1, id FROM agents WHERE organization_id = ?1",
            "UPDATE agents SET name = ?2 WHERE organization_id = ?1 AND id = ?3",
            "DELETE FROM team_members WHERE organization_id = ?1 AND team_id IN (SELECT id FROM teams WHERE organization_id = ?1)",
            "SELECT a.id FROM agents AS a WHERE ?1 = a.organization_id",
            "SELECT tools, name FROM agents WHERE organization_id = ?1",
            "SELECT id FROM users WHERE email = ?2",
            "SELECT 'teams' FROM users",
        ] {
            assert!(
                check(good, Binding::Org).is_ok(),
                "refused: {good}: {:?}",
                check(good, Binding::Org)
            );
        }
    }

    #[test]
    fn moves_set_the_target_and_nothing_else() {
        assert!(
            check(
                "UPDATE agents SET organization_id = ?2 WHERE organization_id = ?1 AND user_id = ?3",
                Binding::Move
            )
            .is_ok()
        );
        assert!(refused(
            "UPDATE agents SET organization_id = ?3 WHERE organization_id = ?1",
            Binding::Move
        ));
    }

    #[test]
    fn outside_a_scope_tenant_tables_are_refused_and_others_pass() {
        assert!(refused(
            "SELECT id FROM agents WHERE organization_id = ?1",
            Binding::Plain
        ));
        assert!(refused(
            "SELECT u.id FROM users u JOIN organization_members m ON m.user_id = u.id",
            Binding::Plain
        ));
        for good in [
            "SELECT id FROM users WHERE email = ?1",
            "UPDATE users SET current_organization_id = ?2 WHERE id = ?1",
            "SELECT agent_id FROM sessions",
        ] {
            assert!(check(good, Binding::Plain).is_ok(), "refused: {good}");
        }
    }

    /// A time as the repository stores it (it reads the organization back).
    const NOW: &str = "2026-01-01T00:00:00.000000Z";

    /// An organization with its owner, through the real repository, and the owner's context.
    async fn org_with_owner(db: &crate::db::Db) -> crate::db::OrgContext {
        db.write(|tx| {
            let user = crate::domain::UserId::new();
            tx.execute(
                "INSERT INTO users (id, email, name, password_hash, is_superuser, created_at, updated_at)
                 VALUES (?1, 'g@example.com', 'G', 'x', 0, ?2, ?2)",
                [user.to_string(), NOW.to_string()],
            )?;
            crate::db::repo::orgs::create_with_owner(
                tx,
                &crate::db::repo::orgs::NewOrg {
                    id: crate::domain::OrgId::new(),
                    name: &crate::domain::OrgName::parse("Guarded").unwrap(),
                    slug: &crate::domain::Slug::parse("guarded").unwrap(),
                    kind: crate::domain::OrgKind::Team,
                    plan: "free",
                    owner: user,
                    now: NOW,
                },
            )
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn planted_statements_fail_through_the_real_database_and_scoped_ones_run() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("t.db")).unwrap();
        let ctx = org_with_owner(&db).await;

        // A tenant table outside a scope, even with a filter written by hand.
        let plain = db
            .read(|tx| {
                tx.query_vec(
                    "SELECT id FROM agents WHERE organization_id = ?1",
                    ["someone else's"],
                    |r| r.get::<_, String>(0),
                )
            })
            .await;
        assert!(matches!(plain, Err(DbError::Unscoped(_))), "{plain:?}");
        // In a scope, without the filter, and with one joined table unfiltered.
        let c2 = ctx.clone();
        let unfiltered = db
            .write(move |tx| {
                tx.scoped(&c2)
                    .execute("DELETE FROM teams WHERE id = ?2", &[&"x"])
            })
            .await;
        assert!(
            matches!(unfiltered, Err(DbError::Unscoped(_))),
            "{unfiltered:?}"
        );
        let c2 = ctx.clone();
        let half = db
            .read(move |tx| {
                tx.scoped(&c2).query_vec(
                    "SELECT m.user_id FROM organization_members m JOIN team_members tm ON tm.user_id = m.user_id
                     WHERE m.organization_id = ?1",
                    &[],
                    |r| r.get::<_, String>(0),
                )
            })
            .await;
        assert!(matches!(half, Err(DbError::Unscoped(_))), "{half:?}");
        // Scoped and filtered: runs, with the organization bound by the scope.
        let c2 = ctx.clone();
        let members = db
            .read(move |tx| {
                tx.scoped(&c2).query_vec(
                    "SELECT user_id FROM organization_members WHERE organization_id = ?1",
                    &[],
                    |r| r.get::<_, String>(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(members, vec![ctx.user_id().to_string()]);
        db.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_bookkeeping_job_cannot_write_what_its_kind_does_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("t.db")).unwrap();
        let ctx = org_with_owner(&db).await;
        let before = db.generation();
        let c2 = ctx.clone();
        let wrong = db
            .write_bookkeeping(crate::db::Bookkeeping::SessionSeen, move |tx| {
                crate::db::repo::orgs::touch_member(tx, &c2, "later")
            })
            .await;
        assert!(
            matches!(&wrong, Err(DbError::NotBookkeeping(t)) if t == "organization_members"),
            "{wrong:?}"
        );
        let c2 = ctx.clone();
        db.write_bookkeeping(crate::db::Bookkeeping::MemberActive, move |tx| {
            crate::db::repo::orgs::touch_member(tx, &c2, "later")
        })
        .await
        .unwrap();
        assert_eq!(
            db.generation(),
            before,
            "bookkeeping leaves cached data current"
        );
        db.shutdown().await.unwrap();
    }

    #[test]
    fn the_written_table_is_found() {
        assert_eq!(
            written_table("INSERT OR REPLACE INTO a (x) VALUES (?1)").as_deref(),
            Some("a")
        );
        assert_eq!(written_table("UPDATE b SET x = 1").as_deref(), Some("b"));
        assert_eq!(written_table("DELETE FROM c WHERE 1").as_deref(), Some("c"));
        assert_eq!(written_table("SELECT 1 FROM d"), None);
    }
}
