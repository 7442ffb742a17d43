#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Tenancy benchmark: "list 50 visible agents for one user among 100 organizations x
//! 10,000 agents", scoped (organization filter + visibility predicate) versus the same
//! query without scoping. See `benches/README.md` for the figures and how to read them.
//!
//! The data set (1,000,000 agents) is generated once into
//! `<target>/bench-data/tenancy-v1.db` and reused; delete the file to rebuild it.
//! `XAGENT_BENCH_DB=/some/path.db` overrides the location.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use rusqlite::{Connection, OpenFlags, params};
use xagent::db::repo::resources::{ListQuery, ResourceKind, list_visible};
use xagent::db::scope::enter;
use xagent::db::{Db, DbError};
use xagent::domain::{UserId, fmt_time};

const ORGS: usize = 100;
const AGENTS_PER_ORG: usize = 10_000;
const MEMBERS_PER_ORG: usize = 10;
const TEAMS_PER_ORG: usize = 5;
/// The organization the bench user lists agents in, and the other ones they belong to.
const TARGET_ORG: usize = 42;
const BENCH_USER_ORGS: [usize; 5] = [TARGET_ORG, 7, 19, 63, 88];
const BENCH_EMAIL: &str = "bench@example.com";
const GUEST_EMAIL: &str = "guest@example.com";
const LIMIT: i64 = 50;

const COLUMNS: &str =
    "a.id, a.name, a.description, a.visibility, a.user_id, a.created_at, a.updated_at";

/// The SQL `list_visible(.., ResourceKind::Agent, 50)` runs: a copy of the text built by
/// `xagent::db::scope::visibility_predicate("agent")` (which is `pub(crate)`) inside the
/// SELECT of `xagent::db::repo::resources::list_visible`. Parameters: ?1 organization,
/// ?2 user, ?3 = 1 when the user holds agents.manage, ?4 = 1 when not a guest, ?5 limit.
/// Checked against the library at start-up (same ids in the same order).
fn scoped_sql() -> String {
    format!(
        "SELECT {COLUMNS}
         FROM agents a
         WHERE a.organization_id = ?1 AND (
            ?3 = 1
            OR a.user_id = ?2
            OR (?4 = 1 AND a.visibility IN ('organization', 'public'))
            OR EXISTS (
                SELECT 1 FROM resource_shares s
                WHERE s.organization_id = ?1 AND s.resource_type = 'agent' AND s.resource_id = a.id
                  AND ((s.principal_type = 'user' AND s.principal_id = ?2)
                    OR (s.principal_type = 'team' AND s.principal_id IN (
                        SELECT tm.team_id FROM team_members tm
                        WHERE tm.organization_id = ?1 AND tm.user_id = ?2)))))
         ORDER BY a.created_at DESC, a.id DESC
         LIMIT ?5"
    )
}

/// A rewrite of the scoped query proposed for the sparse case (a user who can see few of
/// the organization's agents): one index range per way of being visible, each cut at the
/// limit, then the newest 50 of their union. Same parameters as `scoped_sql` minus ?3
/// (a user holding agents.manage would use `org_only_sql`). Not what the library runs.
fn proposed_union_sql() -> String {
    format!(
        "SELECT {COLUMNS}
         FROM agents a
         WHERE +a.organization_id = ?1 AND a.id IN (
            SELECT id FROM (SELECT id FROM agents
                            WHERE organization_id = ?1 AND user_id = ?2
                            ORDER BY created_at DESC, id DESC LIMIT ?4)
            UNION ALL
            SELECT id FROM (SELECT id FROM agents
                            WHERE organization_id = ?1 AND ?3 = 1 AND visibility = 'organization'
                            ORDER BY created_at DESC, id DESC LIMIT ?4)
            UNION ALL
            SELECT id FROM (SELECT id FROM agents
                            WHERE organization_id = ?1 AND ?3 = 1 AND visibility = 'public'
                            ORDER BY created_at DESC, id DESC LIMIT ?4)
            UNION ALL
            SELECT s.resource_id FROM resource_shares s INDEXED BY resource_shares_by_principal
            WHERE s.organization_id = ?1 AND s.principal_type = 'user' AND s.principal_id = ?2
              AND s.resource_type = 'agent'
            UNION ALL
            SELECT s.resource_id FROM resource_shares s INDEXED BY resource_shares_by_principal
            WHERE s.organization_id = ?1 AND s.principal_type = 'team'
              AND s.principal_id IN (SELECT tm.team_id FROM team_members tm
                                     WHERE tm.organization_id = ?1 AND tm.user_id = ?2)
              AND s.resource_type = 'agent')
         ORDER BY a.created_at DESC, a.id DESC
         LIMIT ?4"
    )
}

/// "The same query without scoping": same SELECT, ORDER BY and LIMIT, no WHERE.
fn unscoped_sql() -> String {
    format!("SELECT {COLUMNS} FROM agents a ORDER BY a.created_at DESC, a.id DESC LIMIT ?1")
}

/// Only the organization filter, no visibility predicate: isolates the predicate's cost.
fn org_only_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM agents a WHERE a.organization_id = ?1
         ORDER BY a.created_at DESC, a.id DESC LIMIT ?2"
    )
}

/// The seed's user-centric shape, before organizations existed.
fn user_centric_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM agents a WHERE a.user_id = ?1
         ORDER BY a.created_at DESC LIMIT ?2"
    )
}

type Row = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
);

fn run_rows(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Vec<Row> {
    let mut stmt = conn.prepare_cached(sql).unwrap();
    let rows = stmt
        .query_map(p, |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap();
    rows.collect::<Result<Vec<_>, _>>().unwrap()
}

// ------------------------------------------------------------------ data set

/// splitmix64: a deterministic generator so that every rebuild makes the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn percent(&mut self) -> usize {
        self.below(100)
    }
}

fn db_path() -> PathBuf {
    if let Some(p) = std::env::var_os("XAGENT_BENCH_DB") {
        return PathBuf::from(p);
    }
    // <target>/release/deps/tenancy-<hash> -> <target>/bench-data/
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("bench-data").join("tenancy-v1.db")
}

fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Returns the cached data set, generating it when missing.
fn ensure_data(path: &Path) -> PathBuf {
    if path.exists() {
        println!("tenancy: reusing data set {}", path.display());
        return path.to_path_buf();
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".building");
    let tmp = PathBuf::from(tmp);
    remove_db_files(&tmp);
    println!(
        "tenancy: building data set ({ORGS} organizations x {AGENTS_PER_ORG} agents) in {}",
        path.display()
    );
    let started = Instant::now();
    xagent::db::migrate_only(&tmp).unwrap();
    let mut conn = Connection::open(&tmp).unwrap();
    // Bulk load: no journal, no fsync, a large cache. The WAL mode the server uses is
    // restored at the end.
    let _mode: String = conn
        .query_row("PRAGMA journal_mode = OFF", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576; PRAGMA foreign_keys = OFF;",
    )
    .unwrap();
    seed(&mut conn);
    // Foreign keys were off for the load: check them once now.
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0, "the generated data set breaks a foreign key");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);
    std::fs::rename(&tmp, path).unwrap();
    remove_db_files(&tmp);
    println!(
        "tenancy: seeding took {:.1} s ({} MB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(path)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0)
    );
    path.to_path_buf()
}

fn seed(conn: &mut Connection) {
    let mut rng = Rng(0x7e4a_4c79);
    let base = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut clock: i64 = 0;
    let mut tick = |step_ms: i64| {
        clock += step_ms;
        fmt_time(base + chrono::Duration::milliseconds(clock))
    };
    let id = || uuid::Uuid::now_v7().to_string();

    let tx = conn.transaction().unwrap();
    {
        let mut ins_user = tx
            .prepare(
                "INSERT INTO users (id, email, name, password_hash, is_superuser, created_at, updated_at)
                 VALUES (?1, ?2, ?3, NULL, 0, ?4, ?4)",
            )
            .unwrap();
        let mut ins_org = tx
            .prepare(
                "INSERT INTO organizations (id, name, slug, kind, plan, created_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'team', 'enterprise', ?4, ?5, ?5)",
            )
            .unwrap();
        let mut ins_member = tx
            .prepare(
                "INSERT INTO organization_members (organization_id, user_id, role, joined_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .unwrap();
        let mut ins_team = tx
            .prepare(
                "INSERT INTO teams (id, organization_id, name, created_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )
            .unwrap();
        let mut ins_team_member = tx
            .prepare(
                "INSERT INTO team_members (organization_id, team_id, user_id, added_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .unwrap();
        let mut ins_agent = tx
            .prepare(
                "INSERT INTO agents (id, organization_id, user_id, name, description, visibility,
                                     model, system_prompt, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'gpt-4o-mini', 'You are a helpful assistant.', ?7, ?7)",
            )
            .unwrap();
        let mut ins_share = tx
            .prepare(
                "INSERT OR IGNORE INTO resource_shares
                     (organization_id, resource_type, resource_id, principal_type, principal_id, created_at)
                 VALUES (?1, 'agent', ?2, ?3, ?4, ?5)",
            )
            .unwrap();

        let now = tick(1000);
        let bench_user = id();
        ins_user
            .execute(params![bench_user, BENCH_EMAIL, "Bench User", now])
            .unwrap();
        let guest_user = id();
        ins_user
            .execute(params![guest_user, GUEST_EMAIL, "Guest User", now])
            .unwrap();

        // Organizations and members (owner, admin, 8 members; the bench user is an extra
        // plain member of five of them, and a guest joins the target organization).
        struct OrgData {
            id: String,
            members: Vec<String>,
            teams: Vec<String>,
            bench: bool,
        }
        let mut orgs = Vec::with_capacity(ORGS);
        for o in 0..ORGS {
            let now = tick(1000);
            let org_id = id();
            let mut members = Vec::with_capacity(MEMBERS_PER_ORG + 1);
            for m in 0..MEMBERS_PER_ORG {
                let uid = id();
                ins_user
                    .execute(params![
                        uid,
                        format!("user{m}.org{o}@example.com"),
                        format!("User {m} of org {o}"),
                        now
                    ])
                    .unwrap();
                members.push(uid);
            }
            ins_org
                .execute(params![
                    org_id,
                    format!("Organization {o}"),
                    format!("org-{o:03}"),
                    members[0],
                    now
                ])
                .unwrap();
            for (m, uid) in members.iter().enumerate() {
                let role = match m {
                    0 => "owner",
                    1 => "admin",
                    _ => "member",
                };
                ins_member.execute(params![org_id, uid, role, now]).unwrap();
            }
            let bench = BENCH_USER_ORGS.contains(&o);
            if bench {
                ins_member
                    .execute(params![org_id, bench_user, "member", now])
                    .unwrap();
                members.push(bench_user.clone());
            }
            if o == TARGET_ORG {
                ins_member
                    .execute(params![org_id, guest_user, "guest", now])
                    .unwrap();
            }
            // Five teams; every member is in two of them, the bench user in teams 0 and 1.
            let mut teams = Vec::with_capacity(TEAMS_PER_ORG);
            for t in 0..TEAMS_PER_ORG {
                let tid = id();
                ins_team
                    .execute(params![tid, org_id, format!("Team {t}"), members[0], now])
                    .unwrap();
                teams.push(tid);
            }
            for (m, uid) in members.iter().enumerate() {
                let (t1, t2) = if *uid == bench_user {
                    (0, 1)
                } else {
                    (m % TEAMS_PER_ORG, (m + 2) % TEAMS_PER_ORG)
                };
                for t in [t1, t2] {
                    ins_team_member
                        .execute(params![org_id, teams[t], uid, now])
                        .unwrap();
                }
            }
            orgs.push(OrgData {
                id: org_id,
                members,
                teams,
                bench,
            });
        }

        // Agents, interleaved across organizations in time order: 60% private, 25%
        // organization, 10% team (shared to one team), 5% public. 3% of private agents are
        // shared with another member; in the bench user's organizations 1% more are shared
        // with the bench user directly; in the target organization 0.4% are shared with
        // the guest (the only agents the guest can see).
        for i in 0..AGENTS_PER_ORG {
            for (o, org) in orgs.iter().enumerate() {
                let now = tick(31);
                let aid = id();
                let owner = &org.members[rng.below(org.members.len())];
                let roll = rng.percent();
                let visibility = match roll {
                    0..60 => "private",
                    60..85 => "organization",
                    85..95 => "team",
                    _ => "public",
                };
                ins_agent
                    .execute(params![
                        aid,
                        org.id,
                        owner,
                        format!("Agent {o}-{i}"),
                        format!("Benchmark agent {i} of organization {o}"),
                        visibility,
                        now
                    ])
                    .unwrap();
                match visibility {
                    "team" => {
                        let team = &org.teams[rng.below(TEAMS_PER_ORG)];
                        ins_share
                            .execute(params![org.id, aid, "team", team, now])
                            .unwrap();
                    }
                    "private" => {
                        if rng.below(1000) < 30 {
                            let to = &org.members[rng.below(org.members.len())];
                            if to != owner {
                                ins_share
                                    .execute(params![org.id, aid, "user", to, now])
                                    .unwrap();
                            }
                        }
                        if org.bench && *owner != bench_user && rng.below(1000) < 10 {
                            ins_share
                                .execute(params![org.id, aid, "user", bench_user, now])
                                .unwrap();
                        }
                    }
                    _ => {}
                }
                if o == TARGET_ORG && rng.below(1000) < 4 {
                    ins_share
                        .execute(params![org.id, aid, "user", guest_user, now])
                        .unwrap();
                }
            }
        }
    }
    tx.commit().unwrap();
}

// ------------------------------------------------------------------ helpers

struct Fixture {
    org_id: String,
    bench_user: String,
    guest_user: String,
}

fn fixture(conn: &Connection) -> Fixture {
    let org_id = conn
        .query_row(
            "SELECT id FROM organizations WHERE slug = ?1",
            [format!("org-{TARGET_ORG:03}")],
            |r| r.get(0),
        )
        .unwrap();
    let user = |email: &str| -> String {
        conn.query_row("SELECT id FROM users WHERE email = ?1", [email], |r| {
            r.get(0)
        })
        .unwrap()
    };
    Fixture {
        org_id,
        bench_user: user(BENCH_EMAIL),
        guest_user: user(GUEST_EMAIL),
    }
}

fn open_reader(path: &Path) -> Connection {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    // The reader settings of src/db/conn.rs.
    conn.execute_batch(
        "PRAGMA busy_timeout = 5000; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000;",
    )
    .unwrap();
    conn
}

fn print_plan(conn: &Connection, name: &str, sql: &str, p: impl rusqlite::Params) {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows: Vec<(i64, i64, String)> = stmt
        .query_map(p, |r| Ok((r.get(0)?, r.get(1)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    println!("tenancy: query plan of {name}:");
    let mut depth: Vec<(i64, usize)> = Vec::new();
    for (id, parent, detail) in rows {
        while depth.last().is_some_and(|(pid, _)| *pid != parent) {
            depth.pop();
        }
        let level = depth.last().map_or(0, |(_, l)| l + 1);
        println!("    {}{detail}", "  ".repeat(level));
        depth.push((id, level));
    }
}

/// The plans SQLite would choose with statistics (`ANALYZE`, or `PRAGMA optimize` once it
/// decides to analyze). Runs inside a transaction that is rolled back, so the cached data
/// set keeps no sqlite_stat1 and the benchmarks see the plans the server sees.
fn analyzed_plans(path: &Path, queries: &[(&str, &str)]) {
    let conn = Connection::open(path).unwrap();
    let started = Instant::now();
    conn.execute_batch("BEGIN; ANALYZE;").unwrap();
    println!(
        "tenancy: ANALYZE took {:.1} s; plans with statistics:",
        started.elapsed().as_secs_f64()
    );
    let fx = fixture(&conn);
    for (name, sql) in queries {
        let p: Vec<Box<dyn rusqlite::ToSql>> = match *name {
            "unscoped" => vec![Box::new(LIMIT)],
            "user-centric (pre-tenancy)" => vec![Box::new(fx.bench_user.clone()), Box::new(LIMIT)],
            _ if sql.contains("?5") => vec![
                Box::new(fx.org_id.clone()),
                Box::new(fx.bench_user.clone()),
                Box::new(false),
                Box::new(true),
                Box::new(LIMIT),
            ],
            _ => vec![
                Box::new(fx.org_id.clone()),
                Box::new(fx.bench_user.clone()),
                Box::new(true),
                Box::new(LIMIT),
            ],
        };
        print_plan(
            &conn,
            &format!("{name}, with statistics"),
            sql,
            rusqlite::params_from_iter(p.iter()),
        );
    }
    conn.execute_batch("ROLLBACK;").unwrap();
}

/// Runs the query once and prints SQLite's per-statement counters: a rough "how much did
/// it read" figure next to the plan (VM steps grow with the rows visited).
fn work_counters(conn: &Connection, sql: &str, p: impl rusqlite::Params) {
    use rusqlite::StatementStatus::{FullscanStep, Sort, VmStep};
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.query_map(p, |_| Ok(())).unwrap().count();
    println!(
        "    -> {n} rows; {} VM steps, {} full-scan steps, {} sorts",
        stmt.get_status(VmStep),
        stmt.get_status(FullscanStep),
        stmt.get_status(Sort)
    );
}

// ------------------------------------------------------------------ benchmarks

fn tenancy(c: &mut Criterion) {
    let path = ensure_data(&db_path());
    let reader = open_reader(&path);
    let fx = fixture(&reader);
    let agents: i64 = reader
        .query_row("SELECT count(*) FROM agents", [], |r| r.get(0))
        .unwrap();
    let shares: i64 = reader
        .query_row("SELECT count(*) FROM resource_shares", [], |r| r.get(0))
        .unwrap();
    println!(
        "tenancy: {agents} agents, {shares} resource shares; org {} user {}",
        fx.org_id, fx.bench_user
    );

    let scoped = scoped_sql();
    let unscoped = unscoped_sql();
    let org_only = org_only_sql();
    let user_centric = user_centric_sql();
    let scoped_params = params![fx.org_id, fx.bench_user, false, true, LIMIT];
    let guest_params = params![fx.org_id, fx.guest_user, false, false, LIMIT];

    let union = proposed_union_sql();
    let union_params = params![fx.org_id, fx.bench_user, true, LIMIT];
    let union_guest_params = params![fx.org_id, fx.guest_user, false, LIMIT];
    let version: String = reader
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .unwrap();
    println!("tenancy: SQLite {version} (bundled), no ANALYZE statistics (as the server runs)");

    print_plan(&reader, "scoped (list_visible)", &scoped, scoped_params);
    work_counters(&reader, &scoped, scoped_params);
    print_plan(&reader, "scoped, guest", &scoped, guest_params);
    work_counters(&reader, &scoped, guest_params);
    print_plan(&reader, "unscoped", &unscoped, params![LIMIT]);
    work_counters(&reader, &unscoped, params![LIMIT]);
    print_plan(
        &reader,
        "organization filter only",
        &org_only,
        params![fx.org_id, LIMIT],
    );
    work_counters(&reader, &org_only, params![fx.org_id, LIMIT]);
    print_plan(
        &reader,
        "user-centric (pre-tenancy)",
        &user_centric,
        params![fx.bench_user, LIMIT],
    );
    work_counters(&reader, &user_centric, params![fx.bench_user, LIMIT]);
    print_plan(&reader, "proposed union rewrite", &union, union_params);
    work_counters(&reader, &union, union_params);
    work_counters(&reader, &union, union_guest_params);
    if std::env::var_os("XAGENT_BENCH_ANALYZE").is_some() {
        analyzed_plans(
            &path,
            &[
                ("scoped (list_visible)", &scoped),
                ("unscoped", &unscoped),
                ("user-centric (pre-tenancy)", &user_centric),
                ("proposed union rewrite", &union),
            ],
        );
    }

    // The library path, through the real pool and spawn_blocking. The crate does not enable
    // criterion's async_tokio feature, so the runtime is driven with iter_custom + block_on
    // (one block_on per batch of iterations, as `to_async` does).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = Db::open(&path).unwrap();
    let user = UserId::parse(&fx.bench_user).unwrap();
    let list = |db: Db, org_ref: String| async move {
        db.read(move |tx| -> Result<_, DbError> {
            match enter(tx, user, &org_ref)? {
                Some(ctx) => list_visible(tx, &ctx, ResourceKind::Agent, &ListQuery::first(LIMIT)),
                None => Ok(Vec::new()),
            }
        })
        .await
        .unwrap()
    };
    let from_library = rt.block_on(list(db.clone(), fx.org_id.clone()));
    let from_sql = run_rows(&reader, &scoped, scoped_params);
    assert_eq!(
        from_library.len(),
        LIMIT as usize,
        "bench user sees 50 agents"
    );
    assert_eq!(
        from_library
            .iter()
            .map(|s| s.id.to_string())
            .collect::<Vec<_>>(),
        from_sql.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        "the copied SQL returns what list_visible returns"
    );
    let guest_rows = run_rows(&reader, &scoped, guest_params);
    println!("tenancy: the guest sees {} agents", guest_rows.len());
    assert_eq!(run_rows(&reader, &union, union_params), from_sql);
    assert_eq!(run_rows(&reader, &union, union_guest_params), guest_rows);

    let mut g = c.benchmark_group("tenancy");
    g.sample_size(50)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));

    g.bench_function("scoped_list_50_visible", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(list(db.clone(), fx.org_id.clone()).await);
                }
                start.elapsed()
            })
        });
    });
    g.bench_function("scoped_sql_only", |b| {
        b.iter(|| black_box(run_rows(&reader, &scoped, scoped_params)));
    });
    g.bench_function("org_filter_only_list_50", |b| {
        b.iter(|| black_box(run_rows(&reader, &org_only, params![fx.org_id, LIMIT])));
    });

    g.bench_function("proposed_union_sql", |b| {
        b.iter(|| black_box(run_rows(&reader, &union, union_params)));
    });
    g.bench_function("proposed_union_sql_guest", |b| {
        b.iter(|| black_box(run_rows(&reader, &union, union_guest_params)));
    });

    // The slow ones scan the whole table or the whole organization: fewer, flat samples.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("scoped_sql_only_guest", |b| {
        b.iter(|| black_box(run_rows(&reader, &scoped, guest_params)));
    });
    g.bench_function("unscoped_list_50", |b| {
        b.iter(|| black_box(run_rows(&reader, &unscoped, params![LIMIT])));
    });
    g.bench_function("user_centric_pre_tenancy", |b| {
        b.iter(|| {
            black_box(run_rows(
                &reader,
                &user_centric,
                params![fx.bench_user, LIMIT],
            ))
        });
    });
    g.finish();

    rt.block_on(db.shutdown()).unwrap();
}

criterion_group!(benches, tenancy);
criterion_main!(benches);
