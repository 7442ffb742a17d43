//! The accessible view: everything one user may read across all their organizations,
//! newest first (`xagent::services::resources::accessible`), on 100 organizations,
//! 10,000 users and 100,000 agents (`benches/common/dataset.rs`; the bench user is a plain
//! member of 20 organizations), listing 50 and searching, versus the same query without
//! scoping (no organization filter, no visibility predicate). See benches/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/dataset.rs"]
#[allow(dead_code)]
mod dataset;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use rusqlite::{Connection, OpenFlags, params};
use xagent::db::Db;
use xagent::db::repo::resources::{ListQuery, ResourceKind};
use xagent::domain::UserId;
use xagent::services::resources::accessible;

const LIMIT: i64 = 50;
const COLUMNS: &str = "a.id, a.organization_id, a.name, a.description, a.visibility, a.user_id, \
                       a.model, a.system_prompt, a.tools, a.config, a.version, a.created_at, a.updated_at";

fn unscoped_sql() -> String {
    format!("SELECT {COLUMNS} FROM agents a ORDER BY a.created_at DESC, a.id DESC LIMIT ?1")
}

fn unscoped_search_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM agents a
         WHERE (a.name LIKE ?1 ESCAPE '\\' OR a.description LIKE ?1 ESCAPE '\\')
         ORDER BY a.created_at DESC, a.id DESC LIMIT ?2"
    )
}

fn ids(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Vec<String> {
    let mut stmt = conn.prepare_cached(sql).unwrap();
    let rows = stmt.query_map(p, |r| r.get::<_, String>(0)).unwrap();
    rows.collect::<Result<Vec<_>, _>>().unwrap()
}

fn db_path() -> PathBuf {
    if let Some(p) = std::env::var_os("XAGENT_BENCH_ACCESSIBLE_DB") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("bench-data").join("accessible-v1.db")
}

fn ensure_data(path: &Path) {
    if path.exists() {
        println!("accessible: reusing data set {}", path.display());
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("building");
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", tmp.display()));
    }
    let started = Instant::now();
    dataset::build(&tmp, None);
    std::fs::rename(&tmp, path).unwrap();
    println!(
        "accessible: seeding took {:.1} s ({} MB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(path)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0)
    );
}

fn bench(c: &mut Criterion) {
    let path = db_path();
    ensure_data(&path);
    let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    reader
        .execute_batch("PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;")
        .unwrap();
    let bench_user: String = reader
        .query_row(
            "SELECT id FROM users WHERE email = ?1",
            [dataset::BENCH_EMAIL],
            |r| r.get(0),
        )
        .unwrap();
    let visible_total: i64 = reader
        .query_row(
            "SELECT count(*) FROM organization_members WHERE user_id = ?1",
            [&bench_user],
            |r| r.get(0),
        )
        .unwrap();
    println!("accessible: the bench user is a member of {visible_total} organizations");
    let pattern = format!("%{}%", dataset::SEARCH_WORD);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = Db::open(&path).unwrap();
    let dir = path.parent().unwrap().to_path_buf();
    let svc = xagent::services::Services::new(
        db,
        xagent::crypto::Keyring::load(None, &dir).unwrap(),
        &xagent::config::Config::new(dir),
        "http://127.0.0.1".into(),
    )
    .unwrap();
    let user = UserId::parse(&bench_user).unwrap();
    let search = ListQuery {
        q: Some(dataset::SEARCH_WORD.to_owned()),
        limit: LIMIT,
        ..Default::default()
    };
    let run = |q: ListQuery| {
        let svc = svc.clone();
        async move {
            accessible(&svc, user, ResourceKind::Agent, q, None)
                .await
                .unwrap()
        }
    };
    let listed = rt.block_on(run(ListQuery::first(LIMIT)));
    let found = rt.block_on(run(search.clone()));
    let orgs: std::collections::BTreeSet<_> = listed.iter().map(|a| &a.organization.id).collect();
    println!(
        "accessible: list returns {} agents from {} organizations; search {:?} returns {}",
        listed.len(),
        orgs.len(),
        dataset::SEARCH_WORD,
        found.len()
    );
    assert_eq!(listed.len(), LIMIT as usize);
    assert!(
        found
            .iter()
            .all(|a| a.view.resource.name.contains(dataset::SEARCH_WORD))
    );
    assert_eq!(
        ids(&reader, &unscoped_sql(), params![LIMIT]).len(),
        LIMIT as usize
    );
    println!(
        "accessible: unscoped search returns {}",
        ids(&reader, &unscoped_search_sql(), params![pattern, LIMIT]).len()
    );
    for sql in [unscoped_sql(), unscoped_search_sql()] {
        let mut stmt = reader
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let n = stmt.parameter_count();
        let get = |r: &rusqlite::Row<'_>| r.get::<_, String>(3);
        let rows = if n == 1 {
            stmt.query_map(params![LIMIT], get)
        } else {
            stmt.query_map(params![pattern, LIMIT], get)
        };
        let plan: Vec<String> = rows.unwrap().collect::<Result<_, _>>().unwrap();
        println!("accessible: plan of unscoped ({n} params): {plan:?}");
    }

    let mut g = c.benchmark_group("accessible");
    g.sample_size(30)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    let (rt_ref, run_ref) = (&rt, &run);
    let timed = |q: ListQuery| {
        move |b: &mut criterion::Bencher<'_>| {
            b.iter_custom(|iters| {
                rt_ref.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(run_ref(q.clone()).await);
                    }
                    start.elapsed()
                })
            });
        }
    };
    g.bench_function("accessible_list_50", timed(ListQuery::first(LIMIT)));
    g.bench_function("accessible_search_50", timed(search.clone()));
    g.bench_function("unscoped_list_50", |b| {
        b.iter(|| black_box(ids(&reader, &unscoped_sql(), params![LIMIT])));
    });
    g.bench_function("unscoped_search_50", |b| {
        b.iter(|| {
            black_box(ids(
                &reader,
                &unscoped_search_sql(),
                params![pattern, LIMIT],
            ))
        });
    });
    g.finish();
    rt.block_on(svc.db.shutdown()).unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
