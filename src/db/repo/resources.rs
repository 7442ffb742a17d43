//! Shareable resources (agents, workflows, documents, tools, knowledge bases,
//! conversations): one generic set of queries over six tables, always inside one
//! organization and, for reads, through the visibility predicate of ARCHITECTURE §4.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, Type, Value as SqlValue};
use rusqlite::{Row, ToSql, params, params_from_iter};
use serde::de::DeserializeOwned;

use super::{opt_uuid_at, time_at, uuid_at};
use crate::db::scope::{has_permission, member_permissions};
use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::resources::{Cell, ColumnReader};
pub use crate::domain::resources::{Checked, Fields, ResourceKind, Skill, Trait};
use crate::domain::{
    MessageId, OrgId, PermissionSet, Principal, ResourceId, Role, TeamId, UserId, Visibility,
};

/// The members and teams a resource is shared with, each once, users first, each by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedWith(std::collections::BTreeSet<Principal>);

impl SharedWith {
    /// Adds a principal; false when it was there already.
    pub fn insert(&mut self, p: Principal) -> bool {
        self.0.insert(p)
    }

    pub fn contains(&self, p: Principal) -> bool {
        self.0.contains(&p)
    }

    pub fn iter(&self) -> impl Iterator<Item = Principal> + '_ {
        self.0.iter().copied()
    }

    pub fn users(&self) -> impl Iterator<Item = UserId> + '_ {
        self.iter().filter_map(|p| match p {
            Principal::User(u) => Some(u),
            Principal::Team(_) => None,
        })
    }

    pub fn teams(&self) -> impl Iterator<Item = TeamId> + '_ {
        self.iter().filter_map(|p| match p {
            Principal::Team(t) => Some(t),
            Principal::User(_) => None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub id: ResourceId,
    pub kind: ResourceKind,
    pub organization_id: OrgId,
    pub owner_id: Option<UserId>,
    pub name: String,
    pub description: String,
    pub visibility: Visibility,
    pub shared_with: SharedWith,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The type's own fields (`model`, `steps`, ...).
    pub fields: Fields,
}

/// Run-time built parameters as a scoped statement takes them.
fn dyn_params(args: &[SqlValue]) -> Vec<&dyn ToSql> {
    args.iter().map(|a| a as &dyn ToSql).collect()
}

const COMMON: &str = "a.id, a.organization_id, a.user_id, a.name, a.description, a.visibility, a.version, a.created_at, a.updated_at";
const COMMON_N: usize = 9;

fn select_list(kind: ResourceKind) -> String {
    let mut s = COMMON.to_string();
    for c in kind.columns() {
        s.push_str(", a.");
        s.push_str(c);
    }
    s
}

/// `select_list` plus the resource's shares as one `type:id,...` column (organization
/// bound as ?1): one index probe per returned row instead of a second statement.
fn select_list_with_shares(kind: ResourceKind) -> String {
    format!(
        "{}, (SELECT group_concat(s.principal_type || ':' || s.principal_id, ','
                                  ORDER BY s.principal_type, s.principal_id)
              FROM resource_shares s
              WHERE s.organization_id = ?1 AND s.resource_type = '{}' AND s.resource_id = a.id)",
        select_list(kind),
        kind.share_type()
    )
}

/// `from_row` for `select_list_with_shares`; a share that names no user or team is a
/// conversion error.
fn from_row_with_shares(kind: ResourceKind, r: &Row<'_>) -> rusqlite::Result<Resource> {
    let mut res = from_row(kind, r)?;
    let at = COMMON_N + kind.columns().len();
    let shares: Option<String> = r.get(at)?;
    for share in shares.as_deref().unwrap_or("").split(',') {
        let Some((kind, id)) = share.split_once(':') else {
            continue;
        };
        let p = Principal::parse(kind, id).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                at,
                Type::Text,
                format!("share with unknown principal {share:?}").into(),
            )
        })?;
        res.shared_with.insert(p);
    }
    Ok(res)
}

fn visibility_of(s: &str) -> Visibility {
    match s {
        "team" => Visibility::Team,
        "organization" => Visibility::Organization,
        "public" => Visibility::Public,
        _ => Visibility::Private,
    }
}

fn from_row(kind: ResourceKind, r: &Row<'_>) -> rusqlite::Result<Resource> {
    let vis: String = r.get(5)?;
    let fields = Fields::read(
        kind,
        &mut Columns {
            row: r,
            at: COMMON_N,
        },
    )?;
    Ok(Resource {
        id: ResourceId::from_uuid(uuid_at(r, 0)?),
        kind,
        organization_id: OrgId::from_uuid(uuid_at(r, 1)?),
        owner_id: opt_uuid_at(r, 2)?.map(UserId::from_uuid),
        name: r.get(3)?,
        description: r.get(4)?,
        visibility: visibility_of(&vis),
        shared_with: SharedWith::default(),
        version: r.get(6)?,
        created_at: time_at(r, 7)?,
        updated_at: time_at(r, 8)?,
        fields,
    })
}

/// The kind's own columns of a row, from `at` on.
struct Columns<'r, 's> {
    row: &'r Row<'s>,
    at: usize,
}

impl Columns<'_, '_> {
    fn next<T: FromSql>(&mut self) -> rusqlite::Result<T> {
        self.at += 1;
        self.row.get(self.at - 1)
    }
}

impl ColumnReader for Columns<'_, '_> {
    type Error = rusqlite::Error;
    fn text(&mut self) -> rusqlite::Result<String> {
        self.next()
    }
    fn opt_text(&mut self) -> rusqlite::Result<Option<String>> {
        self.next()
    }
    fn int(&mut self) -> rusqlite::Result<i64> {
        self.next()
    }
    fn json<T: DeserializeOwned>(&mut self) -> rusqlite::Result<T> {
        let text: String = self.next()?;
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(self.at - 1, Type::Text, Box::new(e))
        })
    }
}

fn sql_value(cell: Cell) -> SqlValue {
    match cell {
        Cell::Null => SqlValue::Null,
        Cell::Text(s) => SqlValue::Text(s),
        Cell::Int(n) => SqlValue::Integer(n),
    }
}

/// The rules of the read predicate of ARCHITECTURE §4 that depend on the row, as SQL over
/// resource alias `a` for the reader `user` (a parameter or a column). The predicate is
/// made of them, and the access explanation evaluates each one for every member, so a
/// reason and the verdict come from the same text.
mod rules {
    /// The reader owns the resource.
    pub fn owner(user: &str) -> String {
        format!("a.user_id = {user}")
    }

    /// Everyone in the organization but guests may read it.
    pub const ORGANIZATION_VISIBLE: &str = "a.visibility IN ('organization', 'public')";

    /// Shares of the resource, as `s`.
    pub fn shares_of(share_type: &str) -> String {
        format!(
            "s.organization_id = ?1 AND s.resource_type = '{share_type}' AND s.resource_id = a.id"
        )
    }

    /// A share with the reader themselves.
    pub fn with_user(user: &str) -> String {
        format!("(s.principal_type = 'user' AND s.principal_id = {user})")
    }

    /// A share with one of the reader's teams.
    pub fn with_their_team(user: &str) -> String {
        format!(
            "(s.principal_type = 'team' AND s.principal_id IN (
                SELECT tm.team_id FROM team_members tm
                WHERE tm.organization_id = ?1 AND tm.user_id = {user}))"
        )
    }
}

/// Who the read predicate is evaluated for, as SQL: the reader's id and the two flags that
/// depend on the reader alone.
struct Reader<'a> {
    user: &'a str,
    /// True when the reader holds `<type>.manage`.
    manage: &'a str,
    /// True when the reader's role is not guest.
    not_guest: &'a str,
}

/// A reader's own queries: ?2 = user, ?3 = 1 when the user holds `<type>.manage`, ?4 = 1
/// when the user is not a guest (see `read_flags`).
const THE_CALLER: Reader<'static> = Reader {
    user: "?2",
    manage: "?3 = 1",
    not_guest: "?4 = 1",
};

/// The read predicate for resource alias `a` of type `kind` (organization bound as ?1).
fn visibility_predicate(kind: ResourceKind, reader: &Reader<'_>) -> String {
    format!(
        "a.organization_id = ?1 AND (
            {manage}
            OR {owner}
            OR ({not_guest} AND {organization})
            OR EXISTS (
                SELECT 1 FROM resource_shares s
                WHERE {shares}
                  AND ({with_user}
                    OR {with_team})))",
        manage = reader.manage,
        not_guest = reader.not_guest,
        owner = rules::owner(reader.user),
        organization = rules::ORGANIZATION_VISIBLE,
        shares = rules::shares_of(kind.share_type()),
        with_user = rules::with_user(reader.user),
        with_team = rules::with_their_team(reader.user),
    )
}

/// What the read predicate says about one active member and one resource, rule by rule.
#[derive(Debug, Clone)]
pub struct ReaderFacts {
    pub user_id: UserId,
    pub role: Role,
    pub permissions: PermissionSet,
    /// The predicate's verdict with `<type>.manage` left out: that permission comes from
    /// the role and the overrides, which SQL does not resolve. `can_read` adds it.
    pub readable_by_rules: bool,
    pub owner: bool,
    pub organization_visible: bool,
    pub shared_directly: bool,
    /// Names of the member's teams the resource is shared with, in team id order.
    pub via_teams: Vec<String>,
}

impl ReaderFacts {
    /// The `<type>.manage` flag the member's own queries bind.
    pub fn manages(&self, kind: ResourceKind) -> bool {
        self.permissions.contains(kind.manage_permission())
    }

    /// Whether the member's own queries find the resource.
    pub fn can_read(&self, kind: ResourceKind) -> bool {
        self.manages(kind) || self.readable_by_rules
    }
}

/// The read predicate and its rules for every active member (or only `user`) and the
/// resource, in one statement, members in the order they joined.
pub fn reader_facts(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: ResourceId,
    only: Option<UserId>,
) -> Result<Vec<ReaderFacts>, DbError> {
    let not_guest = format!("m.role <> '{}'", Role::Guest.as_str());
    let member = Reader {
        user: "m.user_id",
        manage: "1 = 0",
        not_guest: &not_guest,
    };
    let shares = rules::shares_of(kind.share_type());
    let sql = format!(
        "SELECT m.user_id, m.role, m.permissions,
                CASE WHEN {predicate} THEN 1 ELSE 0 END,
                CASE WHEN {owner} THEN 1 ELSE 0 END,
                CASE WHEN {organization} THEN 1 ELSE 0 END,
                CASE WHEN EXISTS (SELECT 1 FROM resource_shares s WHERE {shares} AND {with_user})
                     THEN 1 ELSE 0 END,
                t.name, s.principal_id
         FROM organization_members m
         JOIN {table} a ON a.organization_id = ?1 AND a.id = ?2
         LEFT JOIN resource_shares s ON {shares} AND {with_team}
         LEFT JOIN teams t ON t.organization_id = ?1 AND t.id = s.principal_id
         WHERE m.organization_id = ?1 AND m.status = 'active'{one}
         ORDER BY m.joined_at, m.user_id, s.principal_id",
        predicate = visibility_predicate(kind, &member),
        owner = rules::owner(member.user),
        organization = rules::ORGANIZATION_VISIBLE,
        with_user = rules::with_user(member.user),
        with_team = rules::with_their_team(member.user),
        table = kind.table(),
        one = if only.is_some() {
            " AND m.user_id = ?3"
        } else {
            ""
        },
    );
    let mut args = vec![SqlValue::Text(id.to_string())];
    if let Some(u) = only {
        args.push(SqlValue::Text(u.to_string()));
    }
    // One row per member and team share that reaches them (or one row without a team).
    let rows = c.scoped(ctx).query_vec(&sql, &dyn_params(&args), |r| {
        let role: String = r.get(1)?;
        let overrides: String = r.get(2)?;
        let team: Option<String> = r.get(7)?;
        let team_id: Option<String> = r.get(8)?;
        // A role this build does not know is no membership (as in the membership check).
        let Some(role) = Role::parse(&role) else {
            return Ok(None);
        };
        let facts = ReaderFacts {
            user_id: UserId::from_uuid(uuid_at(r, 0)?),
            role,
            permissions: member_permissions(role, &overrides),
            readable_by_rules: r.get(3)?,
            owner: r.get(4)?,
            organization_visible: r.get(5)?,
            shared_directly: r.get(6)?,
            via_teams: Vec::new(),
        };
        // A team that is gone keeps its id as its name.
        Ok(Some((facts, team.or(team_id))))
    })?;
    let mut out: Vec<ReaderFacts> = Vec::new();
    for (facts, team) in rows.into_iter().flatten() {
        match out.last_mut() {
            Some(last) if last.user_id == facts.user_id => last.via_teams.extend(team),
            _ => {
                let mut facts = facts;
                facts.via_teams.extend(team);
                out.push(facts);
            }
        }
    }
    Ok(out)
}

/// The read flags the predicate needs: ?3 manage, ?4 not a guest.
fn read_flags(ctx: &OrgContext, kind: ResourceKind) -> (bool, bool) {
    (
        has_permission(ctx, kind.manage_permission()),
        ctx.role() != Role::Guest,
    )
}

/// Filters and position of a list page.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub visibility: Option<Visibility>,
    /// Substring of name or description (case-insensitive for ASCII).
    pub q: Option<String>,
    /// The (created_at, id) the previous page ended at, as a cursor holds them: the
    /// stored text, which the keyset compares with the stored columns.
    pub after: Option<(String, String)>,
    pub limit: i64,
}

impl ListQuery {
    pub fn first(limit: i64) -> Self {
        Self {
            limit,
            ..Default::default()
        }
    }
}

/// `%` and `_` in a search term are literal.
fn like_pattern(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// What the context's user may read of `kind` in its organization, newest first.
///
/// Two plans for the same rule. Most members can see much of the organization, so the
/// organization's rows are walked newest first and the predicate stops after `limit`
/// hits. A guest (without `<type>.manage`) sees only what they own or what is shared with
/// them or their teams; walking the organization would cost its size, so their candidates
/// are collected from the owner and share indexes instead (bounded by their shares).
pub fn list_visible(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
    q: &ListQuery,
) -> Result<Vec<Resource>, DbError> {
    let (manage, not_guest) = read_flags(ctx, kind);
    let filter = if !manage && !not_guest {
        format!(
            "a.organization_id = ?1 AND a.id IN (
                SELECT o.id FROM {table} o WHERE o.organization_id = ?1 AND o.user_id = ?2
                UNION
                SELECT s.resource_id FROM resource_shares s
                WHERE s.organization_id = ?1 AND s.principal_type = 'user' AND s.principal_id = ?2
                  AND s.resource_type = '{share}'
                UNION
                SELECT s.resource_id FROM resource_shares s
                WHERE s.organization_id = ?1 AND s.principal_type = 'team' AND s.resource_type = '{share}'
                  AND s.principal_id IN (SELECT tm.team_id FROM team_members tm
                                         WHERE tm.organization_id = ?1 AND tm.user_id = ?2))
             AND ?3 = ?3 AND ?4 = ?4",
            table = kind.table(),
            share = kind.share_type()
        )
    } else {
        visibility_predicate(kind, &THE_CALLER)
    };
    // ?1, the organization, is bound by the scope.
    let mut args = vec![
        SqlValue::Text(ctx.user_id().to_string()),
        SqlValue::Integer(manage.into()),
        SqlValue::Integer(not_guest.into()),
    ];
    let sql = format!(
        "SELECT {} FROM {} a WHERE {}{}",
        select_list_with_shares(kind),
        kind.table(),
        filter,
        page_clauses(q, true, &mut args, 1)
    );
    c.scoped(ctx)
        .query_vec(&sql, &dyn_params(&args), |r| from_row_with_shares(kind, r))
}

/// The list API's filters, page position and order as SQL after a WHERE clause, binding
/// their values after `args`. A clause is written only when its filter is given: SQLite
/// re-plans a statement with `LIKE ?` every time the pattern is bound (even to NULL), so
/// the plain list must not carry the search clause, and each shape keeps its own cached plan.
/// The list's filters, cursor and limit. `bound` says how many parameters the statement
/// binds before `args` (the scope's organization): markers are numbered after them.
fn page_clauses(
    q: &ListQuery,
    with_visibility: bool,
    args: &mut Vec<SqlValue>,
    bound: usize,
) -> String {
    let bind = |args: &mut Vec<SqlValue>, v: String| -> usize {
        args.push(SqlValue::Text(v));
        args.len() + bound
    };
    let mut sql = String::new();
    if with_visibility && let Some(v) = q.visibility {
        let n = bind(args, v.as_str().to_string());
        sql.push_str(&format!(" AND a.visibility = ?{n}"));
    }
    if let Some(text) = q.q.as_deref() {
        let n = bind(args, like_pattern(text));
        sql.push_str(&format!(
            " AND (a.name LIKE ?{n} ESCAPE '\\' OR a.description LIKE ?{n} ESCAPE '\\')"
        ));
    }
    if let Some((at, id)) = &q.after {
        let n = bind(args, at.clone());
        let m = bind(args, id.clone());
        sql.push_str(&format!(" AND (a.created_at, a.id) < (?{n}, ?{m})"));
    }
    args.push(SqlValue::Integer(q.limit));
    sql.push_str(&format!(
        " ORDER BY a.created_at DESC, a.id DESC LIMIT ?{}",
        args.len() + bound
    ));
    sql
}

/// One resource if the context's user may read it.
pub fn find_visible(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: ResourceId,
) -> Result<Option<Resource>, DbError> {
    let sql = format!(
        "SELECT {} FROM {} a WHERE {} AND a.id = ?5",
        select_list_with_shares(kind),
        kind.table(),
        visibility_predicate(kind, &THE_CALLER)
    );
    let (manage, not_guest) = read_flags(ctx, kind);
    c.scoped(ctx).query_opt(
        &sql,
        params![ctx.user_id().to_string(), manage, not_guest, id],
        |r| from_row_with_shares(kind, r),
    )
}

/// One resource of the organization regardless of the user's visibility (for the access
/// explanation and administrative moves; callers check permissions first).
pub fn find_in_org(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: ResourceId,
) -> Result<Option<Resource>, DbError> {
    let sql = format!(
        "SELECT {} FROM {} a WHERE a.organization_id = ?1 AND a.id = ?2",
        select_list_with_shares(kind),
        kind.table()
    );
    c.scoped(ctx)
        .query_opt(&sql, params![id], |r| from_row_with_shares(kind, r))
}

pub struct NewResource<'a> {
    pub id: ResourceId,
    pub name: &'a str,
    pub description: &'a str,
    pub visibility: Visibility,
    pub fields: &'a Checked,
    pub now: &'a str,
}

/// Inserts a resource of the kind of its checked fields.
pub fn insert(tx: &WriteTx<'_>, ctx: &OrgContext, r: &NewResource<'_>) -> Result<(), DbError> {
    let kind = r.fields.kind();
    let mut names = String::from(
        "organization_id, id, user_id, name, description, visibility, created_at, updated_at",
    );
    let mut marks = String::from("?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7");
    // ?1, the organization, is bound by the scope.
    let mut args: Vec<SqlValue> = vec![
        SqlValue::Text(r.id.to_string()),
        SqlValue::Text(ctx.user_id().to_string()),
        SqlValue::Text(r.name.to_string()),
        SqlValue::Text(r.description.to_string()),
        SqlValue::Text(r.visibility.as_str().to_string()),
        SqlValue::Text(r.now.to_string()),
    ];
    for (name, cell) in r.fields.to_row() {
        names.push_str(", ");
        names.push_str(name);
        args.push(sql_value(cell));
        marks.push_str(&format!(", ?{}", args.len() + 1));
    }
    tx.scoped(ctx).execute(
        &format!("INSERT INTO {} ({names}) VALUES ({marks})", kind.table()),
        &dyn_params(&args),
    )?;
    Ok(())
}

pub struct Changes<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub visibility: Option<Visibility>,
    pub fields: &'a Checked,
    pub now: &'a str,
    /// Optimistic concurrency: only update when the row still has this version.
    pub expected_version: i64,
}

/// Applies the changes (to a resource of the kind of the checked fields) and bumps the
/// version; false when the version moved on.
pub fn update(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: ResourceId,
    ch: &Changes<'_>,
) -> Result<bool, DbError> {
    let kind = ch.fields.kind();
    let mut sets = vec![
        "version = version + 1".to_string(),
        "updated_at = ?3".to_string(),
    ];
    // ?1, the organization, is bound by the scope.
    let mut args: Vec<SqlValue> = vec![
        SqlValue::Text(id.to_string()),
        SqlValue::Text(ch.now.to_string()),
        SqlValue::Integer(ch.expected_version),
    ];
    let mut push = |col: &str, v: SqlValue, args: &mut Vec<SqlValue>| {
        args.push(v);
        sets.push(format!("{col} = ?{}", args.len() + 1));
    };
    if let Some(n) = ch.name {
        push("name", SqlValue::Text(n.into()), &mut args);
    }
    if let Some(d) = ch.description {
        push("description", SqlValue::Text(d.into()), &mut args);
    }
    if let Some(v) = ch.visibility {
        push("visibility", SqlValue::Text(v.as_str().into()), &mut args);
    }
    for (name, cell) in ch.fields.to_row() {
        push(name, sql_value(cell), &mut args);
    }
    let sql = format!(
        "UPDATE {} SET {} WHERE organization_id = ?1 AND id = ?2 AND version = ?4",
        kind.table(),
        sets.join(", ")
    );
    Ok(tx.scoped(ctx).execute(&sql, &dyn_params(&args))? == 1)
}

pub fn delete(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: ResourceId,
) -> Result<bool, DbError> {
    tx.scoped(ctx).execute(
        "DELETE FROM resource_shares WHERE organization_id = ?1 AND resource_type = ?2 AND resource_id = ?3",
        params![kind.share_type(), id],
    )?;
    Ok(tx.scoped(ctx).execute(
        &format!(
            "DELETE FROM {} WHERE organization_id = ?1 AND id = ?2",
            kind.table()
        ),
        params![id],
    )? == 1)
}

/// Replaces the resource's shares.
pub fn set_shares(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: ResourceId,
    shared: &SharedWith,
    now: &str,
) -> Result<(), DbError> {
    let scoped = tx.scoped(ctx);
    scoped.execute(
        "DELETE FROM resource_shares WHERE organization_id = ?1 AND resource_type = ?2 AND resource_id = ?3",
        params![kind.share_type(), id],
    )?;
    for p in shared.iter() {
        scoped.execute(
            "INSERT INTO resource_shares (organization_id, resource_type, resource_id, principal_type, principal_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![kind.share_type(), id, p.kind(), p.to_string(), now],
        )?;
    }
    Ok(())
}

/// Ends every share with `p` in the organization (a member leaving, a team deleted).
pub fn drop_shares_with(tx: &WriteTx<'_>, ctx: &OrgContext, p: Principal) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "DELETE FROM resource_shares WHERE organization_id = ?1 AND principal_type = ?2 AND principal_id = ?3",
        params![p.kind(), p.to_string()],
    )?;
    Ok(())
}

/// How many resources of `kind` the organization has.
pub fn count(c: &Conn<'_>, ctx: &OrgContext, kind: ResourceKind) -> Result<i64, DbError> {
    Ok(c.scoped(ctx)
        .query_opt(
            &format!(
                "SELECT COUNT(*) FROM {} WHERE organization_id = ?1",
                kind.table()
            ),
            &[],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

/// Counts by visibility.
pub fn count_by_visibility(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kind: ResourceKind,
) -> Result<BTreeMap<String, i64>, DbError> {
    let rows: Vec<(String, i64)> = c.scoped(ctx).query_vec(
        &format!(
            "SELECT visibility, COUNT(*) FROM {} WHERE organization_id = ?1 GROUP BY visibility",
            kind.table()
        ),
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(rows.into_iter().collect())
}

/// Bytes of uploaded documents stored for the organization.
pub fn storage_bytes(c: &Conn<'_>, ctx: &OrgContext) -> Result<i64, DbError> {
    Ok(c.scoped(ctx).query_opt(
        "SELECT COALESCE(SUM(size_bytes), 0) FROM uploaded_documents WHERE organization_id = ?1",
        &[],
        |r| r.get(0),
    )?
    .unwrap_or(0))
}

/// Gives every resource `from` owns in the organization to `to`; counts per type.
pub fn transfer_owner(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    from: UserId,
    to: UserId,
    now: &str,
) -> Result<BTreeMap<ResourceKind, usize>, DbError> {
    let mut out = BTreeMap::new();
    for kind in ResourceKind::ALL {
        let n = tx.scoped(ctx).execute(
            &format!(
                "UPDATE {} SET user_id = ?3, updated_at = ?4, version = version + 1
                 WHERE organization_id = ?1 AND user_id = ?2",
                kind.table()
            ),
            params![from.to_string(), to.to_string(), now],
        )?;
        if n > 0 {
            out.insert(kind, n);
        }
    }
    Ok(out)
}

pub fn agent_traits(
    c: &Conn<'_>,
    ctx: &OrgContext,
    agent: ResourceId,
) -> Result<Vec<Trait>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT trait, value FROM agent_personality_traits WHERE organization_id = ?1 AND agent_id = ?2 ORDER BY position",
        params![agent],
        |r| Ok(Trait { name: r.get(0)?, value: r.get(1)? }),
    )
}

pub fn agent_skills(
    c: &Conn<'_>,
    ctx: &OrgContext,
    agent: ResourceId,
) -> Result<Vec<Skill>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT skill, level FROM agent_skills WHERE organization_id = ?1 AND agent_id = ?2 ORDER BY position",
        params![agent],
        |r| Ok(Skill { name: r.get(0)?, level: r.get(1)? }),
    )
}

pub fn set_agent_traits(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    agent: ResourceId,
    traits: &[Trait],
) -> Result<(), DbError> {
    let scoped = tx.scoped(ctx);
    scoped.execute(
        "DELETE FROM agent_personality_traits WHERE organization_id = ?1 AND agent_id = ?2",
        params![agent],
    )?;
    for (i, t) in traits.iter().enumerate() {
        scoped.execute(
            "INSERT INTO agent_personality_traits (organization_id, agent_id, position, trait, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![agent, i as i64, t.name, t.value],
        )?;
    }
    Ok(())
}

pub fn set_agent_skills(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    agent: ResourceId,
    skills: &[Skill],
) -> Result<(), DbError> {
    let scoped = tx.scoped(ctx);
    scoped.execute(
        "DELETE FROM agent_skills WHERE organization_id = ?1 AND agent_id = ?2",
        params![agent],
    )?;
    for (i, s) in skills.iter().enumerate() {
        scoped.execute(
            "INSERT INTO agent_skills (organization_id, agent_id, position, skill, level) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![agent, i as i64, s.name, s.level],
        )?;
    }
    Ok(())
}

/// Replaces a document's stored bytes.
pub fn replace_document_content(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    doc: ResourceId,
    bytes: &[u8],
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "UPDATE document_contents SET content = ?3 WHERE organization_id = ?1 AND document_id = ?2",
        params![doc, bytes],
    )?;
    Ok(())
}

pub fn insert_document_content(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    doc: ResourceId,
    bytes: &[u8],
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "INSERT INTO document_contents (organization_id, document_id, content) VALUES (?1, ?2, ?3)",
        params![doc, bytes],
    )?;
    Ok(())
}

pub fn document_content(
    c: &Conn<'_>,
    ctx: &OrgContext,
    doc: ResourceId,
) -> Result<Option<Vec<u8>>, DbError> {
    c.scoped(ctx).query_opt(
        "SELECT content FROM document_contents WHERE organization_id = ?1 AND document_id = ?2",
        params![doc],
        |r| r.get(0),
    )
}

/// Documents linked to a knowledge base (ids, in the order they were added).
pub fn kb_documents(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
) -> Result<Vec<String>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT document_id FROM knowledge_base_documents WHERE organization_id = ?1 AND knowledge_base_id = ?2 ORDER BY added_at, document_id",
        params![kb],
        |r| r.get(0),
    )
}

pub fn kb_add_document(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    doc: ResourceId,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "INSERT INTO knowledge_base_documents (organization_id, knowledge_base_id, document_id, added_at)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        params![kb, doc, now],
    )? == 1)
}

pub fn kb_remove_document(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    doc: ResourceId,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "DELETE FROM knowledge_base_documents WHERE organization_id = ?1 AND knowledge_base_id = ?2 AND document_id = ?3",
        params![kb, doc],
    )? == 1)
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: MessageId,
    pub role: String,
    pub content: String,
    /// Who added it; `None` once they are no user of the instance.
    pub user_id: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: crate::domain::Micros,
    /// The model that wrote a reply.
    pub model: Option<String>,
    /// The passages a reply was given.
    pub citations: Vec<Citation>,
    /// False for a reply cut short (its reader went away, or the provider broke off).
    pub complete: bool,
}

/// A passage a reply was given: the chunk, where it is, and how close it was to the
/// question.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Citation {
    pub document_id: ResourceId,
    pub knowledge_base_id: ResourceId,
    pub chunk_id: i64,
    /// The chunk's place in its document, from 0.
    pub position: i64,
    pub score: f32,
}

const MESSAGE_COLUMNS: &str = "id, role, content, user_id, created_at, input_tokens, output_tokens, cost_micros, model, citations, status";

fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    let citations: String = r.get(9)?;
    let status: String = r.get(10)?;
    Ok(Message {
        id: MessageId::from_uuid(uuid_at(r, 0)?),
        role: r.get(1)?,
        content: r.get(2)?,
        user_id: opt_uuid_at(r, 3)?.map(UserId::from_uuid),
        created_at: time_at(r, 4)?,
        input_tokens: r.get(5)?,
        output_tokens: r.get(6)?,
        cost_micros: r.get(7)?,
        model: r.get(8)?,
        citations: serde_json::from_str(&citations).unwrap_or_default(),
        complete: status == "complete",
    })
}

/// Messages of a conversation, oldest first, after `after` (created_at, id).
pub fn messages(
    c: &Conn<'_>,
    ctx: &OrgContext,
    conv: ResourceId,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<Message>, DbError> {
    let (at, id) = after.unwrap_or(("", ""));
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE organization_id = ?1 AND conversation_id = ?2 AND (created_at, id) > (?3, ?4)
             ORDER BY created_at, id LIMIT ?5"
        ),
        params![conv, at, id, limit],
        message_from_row,
    )
}

/// The last `limit` messages of a conversation, oldest first (a prompt's history).
pub fn recent_messages(
    c: &Conn<'_>,
    ctx: &OrgContext,
    conv: ResourceId,
    limit: i64,
) -> Result<Vec<Message>, DbError> {
    let mut rows = c.scoped(ctx).query_vec(
        &format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE organization_id = ?1 AND conversation_id = ?2
             ORDER BY created_at DESC, id DESC LIMIT ?3"
        ),
        params![conv, limit],
        message_from_row,
    )?;
    rows.reverse();
    Ok(rows)
}

pub fn add_message(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    conv: ResourceId,
    m: &Message,
    now: &str,
) -> Result<(), DbError> {
    let citations = serde_json::to_string(&m.citations).unwrap_or_else(|_| "[]".into());
    tx.scoped(ctx).execute(
        "INSERT INTO messages (organization_id, id, conversation_id, user_id, role, content, created_at,
                               input_tokens, output_tokens, cost_micros, model, citations, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            m.id,
            conv,
            m.user_id.map(|u| u.to_string()),
            m.role,
            m.content,
            now,
            m.input_tokens,
            m.output_tokens,
            m.cost_micros,
            m.model,
            citations,
            if m.complete { "complete" } else { "partial" }
        ],
    )?;
    Ok(())
}

/// Only through `unscoped::unscoped_public_gallery`.
pub(in crate::db) fn public_gallery(
    c: &Conn<'_>,
    kind: ResourceKind,
    q: &ListQuery,
) -> Result<Vec<(Resource, String)>, DbError> {
    let mut args = Vec::new();
    let sql = format!(
        "SELECT {}, o.name FROM {} a JOIN organizations o ON o.id = a.organization_id
         WHERE a.visibility = 'public'{}",
        select_list(kind),
        kind.table(),
        page_clauses(q, false, &mut args, 0)
    );
    let n = COMMON_N + kind.columns().len();
    c.query_vec(&sql, params_from_iter(args), |r| {
        Ok((from_row(kind, r)?, r.get(n)?))
    })
}

/// Counts of the user's own resources in the organization, per type.
pub fn owned_counts(
    c: &Conn<'_>,
    ctx: &OrgContext,
    user: UserId,
) -> Result<BTreeMap<ResourceKind, i64>, DbError> {
    let mut out = BTreeMap::new();
    for kind in ResourceKind::ALL {
        let n: i64 = c
            .scoped(ctx)
            .query_opt(
                &format!(
                    "SELECT COUNT(*) FROM {} WHERE organization_id = ?1 AND user_id = ?2",
                    kind.table()
                ),
                params![user.to_string()],
                |r| r.get(0),
            )?
            .unwrap_or(0);
        if n > 0 {
            out.insert(kind, n);
        }
    }
    Ok(out)
}

/// Bytes of documents the user owns in the organization.
pub fn owned_storage(c: &Conn<'_>, ctx: &OrgContext, user: UserId) -> Result<i64, DbError> {
    Ok(c
        .scoped(ctx).query_opt(
            "SELECT COALESCE(SUM(size_bytes), 0) FROM uploaded_documents WHERE organization_id = ?1 AND user_id = ?2",
            params![user.to_string()],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

/// Moves every resource the user owns in `from` (their personal workspace, where they own
/// everything) into `to`, with all their parts. Shares do not cross organizations: they are
/// dropped, and `team` visibility becomes `private`.
pub fn move_owned(
    tx: &WriteTx<'_>,
    from: &OrgContext,
    to: &OrgContext,
    user: UserId,
    now: &str,
) -> Result<(), DbError> {
    let u = user.to_string();
    // Shares are removed in `from`; the rows then move from `from` (?1) to `to` (?2).
    let (shares, moving) = (tx.scoped(from), tx.moving(from, to));
    for kind in ResourceKind::ALL {
        shares.execute(
            &format!(
                "DELETE FROM resource_shares WHERE organization_id = ?1 AND resource_type = ?2
                   AND resource_id IN (SELECT id FROM {} WHERE organization_id = ?1 AND user_id = ?3)",
                kind.table()
            ),
            params![kind.share_type(), u],
        )?;
    }
    // Parts first (they find their parent by the parent's current organization).
    let parts: [(&str, &str, &str); 11] = [
        ("agent_personality_traits", "agent_id", "agents"),
        ("agent_skills", "agent_id", "agents"),
        ("agent_memories", "agent_id", "agents"),
        ("document_contents", "document_id", "uploaded_documents"),
        ("kb_chunks", "knowledge_base_id", "knowledge_bases"),
        ("kb_chunks", "document_id", "uploaded_documents"),
        ("workflow_run_steps", "run_id", "workflow_runs"),
        ("workflow_runs", "workflow_id", "workflows"),
        (
            "knowledge_base_documents",
            "knowledge_base_id",
            "knowledge_bases",
        ),
        ("messages", "conversation_id", "conversations"),
        (
            "knowledge_base_documents",
            "document_id",
            "uploaded_documents",
        ),
    ];
    for (table, fk, parent) in parts {
        moving.execute(
            &format!(
                "UPDATE {table} SET organization_id = ?2
                 WHERE organization_id = ?1 AND {fk} IN (SELECT id FROM {parent} WHERE organization_id = ?1 AND user_id = ?3)"
            ),
            params![u],
        )?;
    }
    for kind in ResourceKind::ALL {
        moving.execute(
            &format!(
                "UPDATE {} SET organization_id = ?2, updated_at = ?4, version = version + 1,
                        visibility = CASE visibility WHEN 'team' THEN 'private' ELSE visibility END
                 WHERE organization_id = ?1 AND user_id = ?3",
                kind.table()
            ),
            params![u, now],
        )?;
    }
    Ok(())
}
