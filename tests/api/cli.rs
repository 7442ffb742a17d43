//! The binary: version, migrate, admin create-user (also while serving), backup,
//! serve's first-start message, and a clean shutdown leaving one complete file.
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

pub fn xagent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xagent"));
    c.env_remove("XAGENT_DATA_DIR").env("XAGENT_LOG", "warn");
    c
}

fn create_user(
    data_dir: &Path,
    email: &str,
    password: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut child = xagent()
        .args([
            "admin",
            "create-user",
            "--email",
            email,
            "--password-stdin",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn count_users(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn version_is_printed() {
    let out = xagent().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("xagent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn migrate_applies_once_and_creates_a_private_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = xagent()
        .arg("migrate")
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(first.status.success(), "{first:?}");
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied V1__init"));
    let second = xagent()
        .arg("migrate")
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&second.stdout).contains("up to date"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[tokio::test]
async fn create_user_works_while_the_server_runs_and_the_user_can_sign_in() {
    let app = TestApp::spawn().await;
    let data = app.data_dir();
    let out = create_user(
        &data,
        "Root@Example.com",
        "a long enough password",
        &["--superuser", "--name", "Root"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("root@example.com"));
    let s = app
        .login_with("root@example.com", "a long enough password")
        .await
        .unwrap();
    assert_eq!(s.login["user"]["is_superuser"], true);
    assert_eq!(s.login["organizations"][0]["kind"], "personal");

    let short = create_user(&data, "x@example.com", "short", &[]);
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("password"));
    let dup = create_user(&data, "root@example.com", "another long password", &[]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
}

#[tokio::test]
async fn backup_copies_a_live_database_consistently() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.create_user(&format!("u{i}@example.com"), "U").await;
    }
    let dest = app.root().join("backup.db");
    let out = xagent()
        .arg("backup")
        .arg(&dest)
        .arg("--data-dir")
        .arg(app.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count_users(&dest), 5);
    let c = rusqlite::Connection::open(&dest).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "the backup is a standalone file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o600,
        "the backup holds password hashes: only its owner may read it"
    );
    // Never overwrites.
    let again = xagent()
        .arg("backup")
        .arg(&dest)
        .arg("--data-dir")
        .arg(app.data_dir())
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[tokio::test]
async fn the_database_and_its_wal_and_shm_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    app.create_user("u@example.com", "U").await;
    let data = app.data_dir();
    for name in ["xagent.db", "xagent.db-wal", "xagent.db-shm"] {
        let mode = std::fs::metadata(data.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is {:o}", mode & 0o777);
    }
    assert!(
        xagent::app::exposed_paths(&data).is_empty(),
        "a fresh data directory is reported as readable by others"
    );
}

#[tokio::test]
async fn a_data_directory_or_database_readable_by_others_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let data = app.data_dir();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("xagent.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let exposed = xagent::app::exposed_paths(&data);
    assert!(exposed.contains(&data), "{exposed:?}");
    assert!(exposed.contains(&data.join("xagent.db")), "{exposed:?}");
    assert!(
        !exposed.contains(&data.join("xagent.db-wal")),
        "{exposed:?}"
    );
}

#[tokio::test]
async fn a_clean_shutdown_leaves_one_complete_database_file() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.create_user(&format!("u{i}@example.com"), "U").await;
    }
    let dir = app.stop().await;
    let data = dir.path().join("data");
    let wal = std::fs::metadata(data.join("xagent.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(
        wal, 0,
        "the WAL was not checkpointed into the database file"
    );
    // The .db file alone, copied elsewhere, holds everything.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(data.join("xagent.db"), elsewhere.path().join("xagent.db")).unwrap();
    assert_eq!(count_users(&elsewhere.path().join("xagent.db")), 3);
}

#[test]
fn serve_prints_the_url_and_how_to_create_the_first_admin_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = xagent()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !(seen.contains("listening on http://127.0.0.1:") && seen.contains("create-user"))
    {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&line);
            seen.push('\n');
        }
    }
    assert!(seen.contains("listening on http://127.0.0.1:"), "{seen}");
    assert!(seen.contains("xagent admin create-user"), "{seen}");
    assert!(seen.contains("--superuser"), "{seen}");
    let url = seen
        .lines()
        .find_map(|l| l.split("listening on ").nth(1))
        .unwrap()
        .trim()
        .to_string();
    let health = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(health.contains("ok"), "{health}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(code) = child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code:?}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::metadata(tmp.path().join("data/xagent.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0),
        0
    );
}

/// What the writers of `a_backup_finishes_while_sixteen_clients_keep_writing` saw.
#[derive(Default)]
struct WriterLog {
    /// (tool id, when its creation was acknowledged)
    acked: Vec<(String, Instant)>,
    /// (request start, latency)
    latencies: Vec<(Instant, Duration)>,
    errors: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_finishes_while_sixteen_clients_keep_writing() {
    let app = TestApp::spawn().await;
    let owner = app.create_user("busy@example.com", "Busy").await;
    let s = app.login("busy@example.com").await;
    let org = owner.personal_org.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = s.client.clone();
    let (csrf, base) = (s.csrf.clone(), s.base.clone());
    // Each row carries a few KiB so the database has thousands of pages to copy.
    let padding = "x".repeat(4000);
    let mut writers = Vec::new();
    for w in 0..16 {
        let (client, csrf, stop) = (client.clone(), csrf.clone(), stop.clone());
        let url = format!("{base}/api/v1/orgs/{org}/tools");
        let padding = padding.clone();
        writers.push(tokio::spawn(async move {
            let mut log = WriterLog::default();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                let res = client
                    .post(&url)
                    .header("x-csrf-token", &csrf)
                    .json(&serde_json::json!({
                        "name": format!("tool {w}-{i}"),
                        "description": padding,
                        "input_schema": {"type": "object"},
                    }))
                    .send()
                    .await;
                let r = match res {
                    Ok(r) => reply(r).await,
                    Err(e) => {
                        log.errors.push(e.to_string());
                        continue;
                    }
                };
                let done = Instant::now();
                log.latencies.push((started, done - started));
                match r.body["id"].as_str() {
                    Some(id) if r.status == 201 => log.acked.push((id.to_string(), done)),
                    _ => log.errors.push(format!("{} {}", r.status, r.text)),
                }
            }
            log
        }));
    }
    // Let the writers fill the database for a while before the backup starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dest = app.root().join("busy-backup.db");
    let backup_started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_xagent"))
        .env_remove("XAGENT_DATA_DIR")
        .env("XAGENT_LOG", "warn")
        .arg("backup")
        .arg(&dest)
        .arg("--data-dir")
        .arg(app.data_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Generous: on an idle machine this takes well under a second; the old page-by-page
    // copy restarted after every commit and never finished while the writers ran.
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    let backup_took = backup_started.elapsed();
    let backup_ended = Instant::now();
    // Writers keep going a moment after the backup, so the whole backup ran under load.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await.unwrap());
    }
    let status = match status {
        Ok(s) => s.unwrap(),
        Err(_) => {
            let _ = child.kill().await;
            panic!("the backup had not finished after 60 s of concurrent writes");
        }
    };
    assert!(status.success(), "backup failed");
    let errors: Vec<_> = logs.iter().flat_map(|l| l.errors.iter()).collect();
    assert!(errors.is_empty(), "writers saw errors: {errors:?}");
    let c = rusqlite::Connection::open(&dest).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let mut present = c.prepare("SELECT 1 FROM tools WHERE id = ?1").unwrap();
    let before: Vec<_> = logs
        .iter()
        .flat_map(|l| l.acked.iter())
        .filter(|(_, at)| *at < backup_started)
        .collect();
    assert!(before.len() > 100, "too few writes before the backup");
    for (id, _) in &before {
        assert!(
            present.exists([id]).unwrap(),
            "tool {id}, acknowledged before the backup began, is missing from it"
        );
    }
    let mut during: Vec<Duration> = logs
        .iter()
        .flat_map(|l| l.latencies.iter())
        .filter(|(at, _)| *at >= backup_started && *at <= backup_ended)
        .map(|(_, d)| *d)
        .collect();
    during.sort();
    let p99 = during
        .get(during.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    println!(
        "backup of {} rows took {backup_took:?}; {} writes during it, p99 {p99:?}",
        before.len(),
        during.len()
    );
    assert!(!during.is_empty(), "no write ran during the backup");
    assert!(!dest.with_extension("db.partial").exists());
}
