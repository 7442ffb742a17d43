//! `xagent backup` of a live server while clients keep writing (see `benches/backup.sh`,
//! which seeds, starts the release server and runs this).
//!
//! `backup seed DATA_DIR MB`: builds `DATA_DIR/xagent.db` (the data set of
//! `benches/common/dataset.rs`, about 90 MB, with `tokens.tsv`) and pads it with tools of
//! 4 KB descriptions, spread over the organizations, until the file is about `MB` MB.
//!
//! `backup run ADDR DATA_DIR XAGENT_BIN [writers] [warmup_seconds]`: `writers` clients
//! (default 16), each with its own API token, create tools with 1 KB descriptions as
//! fast as the server answers (`POST /api/v1/orgs/{org}/tools`, one request in flight per
//! client); after `warmup_seconds` (default 5) it runs `XAGENT_BIN backup DEST --data-dir
//! DATA_DIR` and times it; the writers go on 1 s after it ends. Prints the backup time,
//! the copy's size, the writers' latency before and during the backup, their errors,
//! and checks that every tool acknowledged before the backup began is in the copy.
//!
//! Without arguments (e.g. from a plain `cargo bench`) it prints this usage and exits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/dataset.rs"]
#[allow(dead_code)]
mod dataset;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.first().map(String::as_str) {
        Some("seed") => seed(Path::new(&args[1]), args[2].parse().unwrap()),
        Some("run") => run(&args[1..]),
        _ => println!(
            "backup: nothing to do (usage: backup seed DIR MB | backup run ADDR DIR BIN [writers] [warmup]; see benches/backup.sh)"
        ),
    }
}

fn seed(dir: &Path, mb: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join("xagent.db");
    assert!(!db.exists(), "{} exists", db.display());
    let started = Instant::now();
    let m = dataset::build(&db, Some(dir));
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")
        .unwrap();
    let description = "lorem ipsum dolor sit amet ".repeat(150);
    let mut rng = dataset::Rng(42);
    let size = |c: &rusqlite::Connection| -> u64 {
        c.query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
    };
    let mut padded = 0u64;
    while size(&conn) < mb * 1_000_000 {
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO tools (id, organization_id, name, description, visibility, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 'organization', ?5, ?5)",
                )
                .unwrap();
            for _ in 0..1_000 {
                padded += 1;
                let org = &m.org_ids[rng.below(m.org_ids.len())];
                let id = uuid::Uuid::from_u128(u128::from(rng.next()) << 64 | u128::from(padded));
                ins.execute(rusqlite::params![
                    id.to_string(),
                    org,
                    format!("padding tool {padded}"),
                    description,
                    "2026-01-01T00:00:00Z",
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let bytes = size(&conn);
    drop(conn);
    println!(
        "backup: seeded in {:.1} s: {} MB ({padded} padding tools of {} bytes)",
        started.elapsed().as_secs_f64(),
        bytes / 1_000_000,
        description.len()
    );
}

#[derive(Default)]
struct Log {
    /// (tool id, organization, when its creation was acknowledged)
    acked: Vec<(String, Instant)>,
    /// (request start, latency)
    latencies: Vec<(Instant, Duration)>,
    errors: Vec<String>,
}

fn run(args: &[String]) {
    let addr = &args[0];
    let dir = Path::new(&args[1]);
    let bin = &args[2];
    let writers: usize = args.get(3).map_or(16, |a| a.parse().unwrap());
    let warmup: u64 = args.get(4).map_or(5, |a| a.parse().unwrap());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Writers: users whose role may create resources, one token each.
        let tokens: Vec<(String, String)> = std::fs::read_to_string(dir.join("tokens.tsv"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let (token, org, role) = (f.next()?, f.next()?, f.next()?);
                matches!(role, "owner" | "admin" | "member")
                    .then(|| (token.to_string(), org.to_string()))
            })
            .take(writers)
            .collect();
        assert_eq!(tokens.len(), writers, "not enough writer tokens");
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(writers)
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let description = "x".repeat(1000);
        let mut tasks = Vec::new();
        for (w, (token, org)) in tokens.into_iter().enumerate() {
            let (client, stop, description) = (client.clone(), stop.clone(), description.clone());
            let url = format!("http://{addr}/api/v1/orgs/{org}/tools");
            tasks.push(tokio::spawn(async move {
                let mut log = Log::default();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let started = Instant::now();
                    let res = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&serde_json::json!({
                            "name": format!("load tool {w}-{i}"),
                            "description": description,
                            "visibility": "organization",
                        }))
                        .send()
                        .await;
                    let (status, body) = match res {
                        Ok(r) => (r.status(), r.text().await.unwrap_or_default()),
                        Err(e) => {
                            log.errors.push(e.to_string());
                            continue;
                        }
                    };
                    let done = Instant::now();
                    log.latencies.push((started, done - started));
                    let id = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_string));
                    match id {
                        Some(id) if status == 201 => log.acked.push((id, done)),
                        _ => log.errors.push(format!("{status} {body}")),
                    }
                }
                log
            }));
        }
        tokio::time::sleep(Duration::from_secs(warmup)).await;
        let dest = dir.join("bench-backup.db");
        let _ = std::fs::remove_file(&dest);
        let db_bytes = std::fs::metadata(dir.join("xagent.db")).unwrap().len();
        let wal_bytes = std::fs::metadata(dir.join("xagent.db-wal")).map_or(0, |m| m.len());
        let backup_started = Instant::now();
        let out = tokio::process::Command::new(bin)
            .env("XAGENT_LOG", "warn")
            .arg("backup")
            .arg(&dest)
            .arg("--data-dir")
            .arg(dir)
            .output()
            .await
            .unwrap();
        let took = backup_started.elapsed();
        let backup_ended = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let mut logs = Vec::new();
        for t in tasks {
            logs.push(t.await.unwrap());
        }
        assert!(
            out.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let copy = rusqlite::Connection::open(&dest).unwrap();
        let mut present = copy.prepare("SELECT 1 FROM tools WHERE id = ?1").unwrap();
        let before: Vec<&String> = logs
            .iter()
            .flat_map(|l| l.acked.iter())
            .filter(|(_, at)| *at < backup_started)
            .map(|(id, _)| id)
            .collect();
        let missing = before
            .iter()
            .filter(|id| !present.exists([id.as_str()]).unwrap())
            .count();
        let window = |from: Instant, to: Instant| -> Vec<Duration> {
            let mut v: Vec<Duration> = logs
                .iter()
                .flat_map(|l| l.latencies.iter())
                .filter(|(at, _)| *at >= from && *at <= to)
                .map(|(_, d)| *d)
                .collect();
            v.sort();
            v
        };
        // When the slow writes of the backup window started, relative to the backup.
        let mut slow: Vec<(f64, f64)> = logs
            .iter()
            .flat_map(|l| l.latencies.iter())
            .filter(|(at, d)| *at >= backup_started && *at <= backup_ended && *d > Duration::from_millis(50))
            .map(|(at, d)| ((*at - backup_started).as_secs_f64(), d.as_secs_f64() * 1000.0))
            .collect();
        slow.sort_by(|a, b| a.0.total_cmp(&b.0));
        let errors: Vec<&String> = logs.iter().flat_map(|l| l.errors.iter()).collect();
        let warm_from = backup_started - Duration::from_secs(warmup.min(3));
        println!(
            "backup: database {} MB (+ WAL {} MB) at the start; backup took {:.2} s, copy {} MB, exit {}",
            db_bytes / 1_000_000,
            wal_bytes / 1_000_000,
            took.as_secs_f64(),
            std::fs::metadata(&dest).unwrap().len() / 1_000_000,
            out.status
        );
        report(
            &format!("writers ({writers}) in the {} s before", warmup.min(3)),
            &window(warm_from, backup_started),
        );
        report(
            &format!("writers ({writers}) during the backup"),
            &window(backup_started, backup_ended),
        );
        println!(
            "backup: writes over 50 ms during the backup: {} (started at s after the backup began → ms: {})",
            slow.len(),
            slow.iter()
                .take(12)
                .map(|(t, d)| format!("{t:.2}→{d:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "backup: {} tools acknowledged before the backup, {missing} missing from the copy; {} writer errors{}",
            before.len(),
            errors.len(),
            errors.first().map_or(String::new(), |e| format!(" (first: {e})"))
        );
        assert_eq!(missing, 0);
        let _ = std::fs::remove_file(&dest);
    });
}

fn report(what: &str, sorted: &[Duration]) {
    if sorted.is_empty() {
        println!("backup: {what}: no requests");
        return;
    }
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "backup: {what}: {} writes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sorted.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
