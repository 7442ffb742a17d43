//! Backups, restore and upgrades, end to end: the real server, the real binary, real files.
//! Backups taken while clients write (`xagent backup` and the scheduled one) restore into
//! a fresh data directory with every acknowledged row; a restore is refused while a server
//! runs and for files that are not a usable database, and keeps the database it replaces;
//! scheduled backups are named by time, pruned and checked, and a failing one is counted
//! and logged; an older database is backed up before it is migrated, a newer one refused.
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::cli::xagent;
use crate::common::*;

mod embedded {
    refinery::embed_migrations!("migrations");
}

fn known() -> i64 {
    xagent::db::known_version()
}

/// The migrations' versions, oldest first (numbers are assigned ahead, so there may be
/// gaps).
fn versions() -> Vec<i64> {
    let mut v: Vec<i64> = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .collect();
    v.sort_unstable();
    v
}

/// The schema version `back` migrations before this xagent's.
fn before_known(back: usize) -> i64 {
    let v = versions();
    v[v.len() - 1 - back]
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn restore(file: &Path, data_dir: &Path) -> Output {
    xagent()
        .arg("restore")
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

fn integrity(db: &Path) -> String {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn schema_version(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT MAX(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The time in the name of a scheduled backup (`xagent-YYYYMMDDTHHMMSSZ.db`).
fn time_in_name(name: &str) -> DateTime<Utc> {
    let stamp = name
        .strip_prefix("xagent-")
        .and_then(|s| s.strip_suffix(".db"))
        .unwrap_or_else(|| panic!("{name} is not a scheduled backup's name"));
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .and_utc()
}

/// A database of schema version `version` made by this binary's own migrations (as the
/// xagent of that version made it), holding one user and one instance setting.
fn database_at_version(path: &Path, version: i64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .unwrap();
    embedded::migrations::runner()
        .set_target(refinery::Target::Version(version as i32))
        .run(&mut c)
        .unwrap();
    c.execute_batch(
        "INSERT INTO users (id, email, name, created_at, updated_at) \
         VALUES ('0190b5f4-0000-7000-8000-000000000001', 'old@example.com', 'Old', \
                 '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z');
         INSERT INTO instance_settings (key, value, updated_at) \
         VALUES ('made_by', 'an older xagent', '2025-01-01T00:00:00.000000Z');",
    )
    .unwrap();
}

fn has_old_user(db: &Path) -> bool {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM users WHERE email = 'old@example.com'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        == 1
}

/// What one writer of `eight_writers` saw: each tool whose creation was answered 201,
/// with the time of the answer, and anything else it was answered.
#[derive(Default)]
struct Writes {
    acked: Vec<(String, DateTime<Utc>)>,
    errors: Vec<String>,
}

struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Writes>>,
}

impl Writers {
    /// Eight clients creating tools through the API as fast as the server answers.
    fn start(s: &Session, org: &str) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let padding = "y".repeat(2000);
        let tasks = (0..8)
            .map(|w| {
                let (client, csrf, stop) = (s.client.clone(), s.csrf.clone(), stop.clone());
                let url = format!("{}/api/v1/orgs/{org}/tools", s.base);
                let padding = padding.clone();
                tokio::spawn(async move {
                    let mut out = Writes::default();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
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
                                out.errors.push(e.to_string());
                                continue;
                            }
                        };
                        let at = Utc::now();
                        match r.body["id"].as_str() {
                            Some(id) if r.status == 201 => out.acked.push((id.to_string(), at)),
                            _ => out.errors.push(format!("{} {}", r.status, r.text)),
                        }
                    }
                    out
                })
            })
            .collect();
        Writers { stop, tasks }
    }

    async fn stop(self) -> Vec<(String, DateTime<Utc>)> {
        self.stop.store(true, Ordering::Relaxed);
        let mut acked = Vec::new();
        for t in self.tasks {
            let w = t.await.unwrap();
            assert!(w.errors.is_empty(), "writers saw errors: {:?}", w.errors);
            acked.extend(w.acked);
        }
        acked
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_taken_while_eight_clients_write_restore_every_acknowledged_row_and_serve() {
    let app = TestApp::spawn_with(|c| {
        c.backup_interval = Some(Duration::from_secs(1));
        c.backup_keep = 100;
    })
    .await;
    let owner = app.create_user("writer@example.com", "Writer").await;
    let s = app.login("writer@example.com").await;
    let writers = Writers::start(&s, &owner.personal_org);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // `xagent backup`, a process of its own, while the writers go on.
    let cli_copy = app.root().join("cli-backup.db");
    let cli_started = Utc::now();
    let backup = tokio::process::Command::new(env!("CARGO_BIN_EXE_xagent"))
        .env_remove("XAGENT_DATA_DIR")
        .env("XAGENT_LOG", "warn")
        .arg("backup")
        .arg(&cli_copy)
        .arg("--data-dir")
        .arg(app.data_dir())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), backup)
        .await
        .expect("the backup finishes under load")
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("backup written to"),
        "{}",
        stdout(&out)
    );

    // A scheduled backup that started after that one ended, the writers still going.
    let backups = app.svc.backups.clone();
    let after_cli = backups.status().successes_total;
    wait_for(
        "a scheduled backup under load",
        Duration::from_secs(60),
        || backups.status().successes_total > after_cli,
    )
    .await;
    let status = backups.status();
    let scheduled = status.last_file.clone().unwrap();
    let acked = writers.stop().await;
    assert_eq!(status.failures_total, 0, "{:?}", status.last_error);
    let name = scheduled.file_name().unwrap().to_str().unwrap().to_string();
    // The name is the time the backup began, to the second (rounded down): everything
    // acknowledged before it is in the copy.
    let scheduled_started = time_in_name(&name);
    assert!(scheduled_started >= cli_started - chrono::Duration::seconds(1));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(scheduled.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700,
        "the backup directory the server made is its owner's only"
    );

    for (copy, began) in [(&cli_copy, cli_started), (&scheduled, scheduled_started)] {
        let before: Vec<&String> = acked
            .iter()
            .filter(|(_, at)| *at < began)
            .map(|(id, _)| id)
            .collect();
        assert!(before.len() > 50, "too few writes before the backup");
        assert!(
            acked.iter().any(|(_, at)| *at > began),
            "no write was answered after the backup began"
        );
        let fresh = tempfile::tempdir().unwrap();
        let data = fresh.path().join("data");
        let out = restore(copy, &data);
        assert!(out.status.success(), "{}", stderr(&out));
        let said = stdout(&out);
        assert!(
            said.contains(&format!("restored {}", copy.display()))
                && said.contains(&format!("schema version {}", known()))
                && said.contains("there was no database before"),
            "{said}"
        );
        let db = data.join("xagent.db");
        assert_eq!(integrity(&db), "ok");
        {
            let c = rusqlite::Connection::open(&db).unwrap();
            let mut present = c.prepare("SELECT 1 FROM tools WHERE id = ?1").unwrap();
            for id in &before {
                assert!(
                    present.exists([id]).unwrap(),
                    "tool {id}, acknowledged before the backup of {} began, is missing",
                    copy.display()
                );
            }
        }
        // The master key goes with the backup, as the README says.
        std::fs::copy(
            app.data_dir().join(xagent::crypto::KEY_FILE),
            data.join(xagent::crypto::KEY_FILE),
        )
        .unwrap();
        let restored = TestApp::spawn_in(fresh, |_| {}).await;
        let s = restored.login("writer@example.com").await;
        let tools = s
            .get(&format!("/api/v1/orgs/{}/tools", owner.personal_org))
            .await;
        assert_eq!(tools.status, 200, "{}", tools.text);
        assert!(!tools.body["items"].as_array().unwrap().is_empty());
        let new = s
            .post(
                &format!("/api/v1/orgs/{}/tools", owner.personal_org),
                serde_json::json!({
                    "name": "after the restore",
                    "description": "made on the restored server",
                    "input_schema": {"type": "object"},
                }),
            )
            .await;
        assert_eq!(new.status, 201, "{}", new.text);
        restored.stop().await;
    }
}

#[tokio::test]
async fn restore_is_refused_while_a_server_runs_and_so_is_a_second_server() {
    let app = TestApp::spawn().await;
    app.create_user("first@example.com", "First").await;
    let copy = app.root().join("copy.db");
    let out = xagent()
        .arg("backup")
        .arg(&copy)
        .arg("--data-dir")
        .arg(app.data_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    app.create_user("second@example.com", "Second").await;
    let data = app.data_dir();
    let files_before = names_in(&data);

    let out = restore(&copy, &data);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: cannot restore: ")
            && err.contains("is in use by another xagent process")
            && err.contains(&format!("(pid {})", std::process::id()))
            && err.contains("stop it first"),
        "{err}"
    );
    assert_eq!(names_in(&data), files_before, "the restore changed files");
    assert_eq!(identity_count(&app).await, 2);

    // Nor can a second server start on the same directory.
    let out = xagent()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is in use by another xagent process"),
        "{}",
        stderr(&out)
    );

    // Stopped, the same restore goes through and keeps what it replaced.
    let dir = app.stop().await;
    let data = dir.path().join("data");
    let out = restore(&copy, &data);
    assert!(out.status.success(), "{}", stderr(&out));
    let aside = names_in(&data)
        .into_iter()
        .find(|n| n.starts_with("xagent.db.replaced-"))
        .unwrap_or_else(|| panic!("nothing kept aside: {:?}", names_in(&data)));
    assert!(stdout(&out).contains(&format!("kept as {}", data.join(&aside).display())));
    assert!(!data.join("xagent.db-wal").exists() || file_len(&data.join("xagent.db-wal")) == 0);
    assert!(!data.join("xagent.db.restoring").exists());
    let users = |db: &Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(users(&data.join("xagent.db")), 1, "the backup had one user");
    assert_eq!(
        users(&data.join(&aside)),
        2,
        "the replaced database had two"
    );
    let restarted = TestApp::spawn_in(dir, |_| {}).await;
    restarted.login("first@example.com").await;
    assert!(
        restarted
            .login_with("second@example.com", PASSWORD)
            .await
            .is_err()
    );
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

async fn identity_count(app: &TestApp) -> i64 {
    xagent::services::identity::user_count(&app.svc)
        .await
        .unwrap()
}

#[test]
fn restore_refuses_a_missing_a_non_sqlite_a_corrupt_an_empty_and_a_newer_file_and_changes_nothing()
{
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    database_at_version(&data.join("xagent.db"), known());
    let good = tmp.path().join("good.db");
    let out = xagent()
        .arg("backup")
        .arg(&good)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The lock file a restore creates to hold the directory is no change to its data.
    let data_files = || -> Vec<String> {
        names_in(&data)
            .into_iter()
            .filter(|n| n != "xagent.lock")
            .collect()
    };
    // A read-only connection (the backup's) leaves the -wal and -shm files, the next
    // writable one that closes removes them: close one before taking stock.
    assert!(has_old_user(&data.join("xagent.db")));
    let files_before = data_files();

    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "these are notes, not a database\n".repeat(200)).unwrap();

    // A copy whose second page (a table's b-tree) is overwritten with junk.
    let corrupt = tmp.path().join("corrupt.db");
    let mut bytes = std::fs::read(&good).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    assert!(bytes.len() >= 3 * page);
    bytes[page..2 * page].fill(0xA5);
    std::fs::write(&corrupt, bytes).unwrap();

    let empty = tmp.path().join("empty.db");
    rusqlite::Connection::open(&empty)
        .unwrap()
        .execute_batch("PRAGMA user_version = 3;")
        .unwrap();

    // A database a newer xagent made: one migration this binary does not have.
    let newer = tmp.path().join("newer.db");
    std::fs::copy(&good, &newer).unwrap();
    let next = known() + 1;
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (?1, 'from_a_newer_xagent', '2030-01-01T00:00:00Z', '1')",
            [next],
        )
        .unwrap();

    let missing = tmp.path().join("missing.db");
    for (file, why) in [
        (&missing, "No such file".to_string()),
        (&text, "not an SQLite database".to_string()),
        (&corrupt, "integrity check failed".to_string()),
        (&empty, "empty database".to_string()),
        (
            &newer,
            format!(
                "database schema is version {next}, this xagent knows up to {}; use a newer xagent",
                known()
            ),
        ),
    ] {
        let out = restore(file, &data);
        assert!(!out.status.success(), "{} was restored", file.display());
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("error: cannot restore {}: ", file.display()))
                && err.contains(&why),
            "{}: {err}",
            file.display()
        );
        assert_eq!(data_files(), files_before, "{}", file.display());
        assert!(has_old_user(&data.join("xagent.db")));
    }
    // The good one is restored.
    let out = restore(&good, &data);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn scheduled_backups_are_named_by_time_pruned_to_keep_and_checked() {
    let started = Utc::now();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("elsewhere/backups");
    std::fs::create_dir_all(&dir).unwrap();
    // Files of the operator's own in the directory are never pruned.
    for mine in [
        "notes.txt",
        "xagent-manual.db",
        "xagent-20200101T000000Z.db.old",
    ] {
        std::fs::write(dir.join(mine), "mine").unwrap();
    }
    let backup_dir = dir.clone();
    let app = TestApp::spawn_with(move |c| {
        c.backup_dir = Some(backup_dir);
        c.backup_interval = Some(Duration::from_secs(1));
        c.backup_keep = 2;
    })
    .await;
    app.create_user("kept@example.com", "Kept").await;
    let backups = app.svc.backups.clone();
    assert_eq!(backups.status().dir, dir);
    assert_eq!(backups.status().interval_secs, Some(1));
    assert_eq!(backups.status().keep, 2);
    wait_for("four scheduled backups", Duration::from_secs(30), || {
        backups.status().successes_total >= 4
    })
    .await;
    // Stopping waits for a backup under way; then the directory holds still.
    app.stop().await;
    let status = backups.status();
    assert_eq!(status.failures_total, 0, "{:?}", status.last_error);
    assert!(status.last_error.is_none());
    let names = names_in(&dir);
    let scheduled: Vec<&String> = names
        .iter()
        .filter(|n| xagent::services::backups::is_scheduled_name(n))
        .collect();
    assert_eq!(scheduled.len(), 2, "{names:?}");
    for mine in [
        "notes.txt",
        "xagent-manual.db",
        "xagent-20200101T000000Z.db.old",
    ] {
        assert!(names.iter().any(|n| n == mine), "{mine} was removed");
    }
    assert!(!names.iter().any(|n| n.ends_with(".partial")), "{names:?}");
    let last = status.last_file.clone().unwrap();
    assert_eq!(
        last.file_name().unwrap().to_str().unwrap(),
        scheduled[1].as_str()
    );
    assert_eq!(status.last_size, Some(file_len(&last)));
    assert!(status.last_success_at.unwrap() >= started);
    let (t0, t1) = (time_in_name(scheduled[0]), time_in_name(scheduled[1]));
    assert!(t0 < t1, "{t0} {t1}");
    assert!(t0 >= started - chrono::Duration::seconds(1) && t1 <= Utc::now());
    for name in scheduled {
        let path = dir.join(name);
        assert_eq!(integrity(&path), "ok", "{name}");
        assert_eq!(schema_version(&path), known());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let users: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM users WHERE email = 'kept@example.com'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(users, 1, "{name}");
    }
}

#[tokio::test]
async fn a_copy_on_demand_is_checked_private_and_gone_once_dropped() {
    let app = TestApp::spawn().await;
    app.create_user("copy@example.com", "Copy").await;
    let copy = xagent::services::backups::temp_copy(&app.svc)
        .await
        .unwrap();
    let path = copy.path().to_path_buf();
    assert!(path.starts_with(app.data_dir()));
    assert_eq!(integrity(&path), "ok");
    assert_eq!(copy.schema_version(), Some(known()));
    assert_eq!(copy.bytes(), file_len(&path));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut open = copy.open().unwrap();
    drop(copy);
    assert!(!path.exists());
    let mut head = [0u8; 16];
    open.read_exact(&mut head).unwrap();
    assert_eq!(
        &head, b"SQLite format 3\0",
        "the open file is still readable"
    );
    // It counts as no scheduled backup.
    assert_eq!(app.svc.backups.status().successes_total, 0);
}

#[tokio::test]
async fn a_failing_scheduled_backup_is_counted_and_the_server_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    let not_a_dir = root.path().join("backups-is-a-file");
    std::fs::write(&not_a_dir, "a file where the directory should be").unwrap();
    let target = not_a_dir.clone();
    let app = TestApp::spawn_with(move |c| {
        c.backup_dir = Some(target);
        c.backup_interval = Some(Duration::from_secs(1));
    })
    .await;
    app.create_user("still@example.com", "Still").await;
    let backups = app.svc.backups.clone();
    wait_for("two failed backups", Duration::from_secs(30), || {
        backups.status().failures_total >= 2
    })
    .await;
    let status = backups.status();
    assert_eq!(status.successes_total, 0);
    assert!(status.last_success_at.is_none() && status.last_file.is_none());
    let err = status.last_error.unwrap();
    assert!(err.contains(&not_a_dir.display().to_string()), "{err}");
    assert!(status.last_failure_at.is_some());
    // The server goes on.
    let s = app.login("still@example.com").await;
    let me = s.get("/api/v1/me").await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(
        std::fs::read_to_string(&not_a_dir).unwrap(),
        "a file where the directory should be"
    );
}

#[test]
fn a_failing_scheduled_backup_is_logged_by_the_server_which_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_dir = tmp.path().join("backups-is-a-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let mut child = xagent()
        .env("XAGENT_LOG", "info")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--backup-interval",
            "1s",
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .arg("--backup-dir")
        .arg(&not_a_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    // Kept open until the end: the server prints more, and a closed pipe would fail it.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut first).unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();
    let mut err = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = err.read_to_string(&mut all);
        all
    });
    std::thread::sleep(Duration::from_millis(3500));
    let health = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status()
    });
    assert_eq!(health, 200);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let log = log.join().unwrap();
    let failures = log.lines().filter(|l| l.contains("backup failed")).count();
    assert!(failures >= 2, "{log}");
    assert!(log.contains(&not_a_dir.display().to_string()), "{log}");
}

#[tokio::test]
async fn an_older_database_restored_is_backed_up_before_the_next_start_migrates_it() {
    let old = before_known(1);
    let tmp = tempfile::tempdir().unwrap();
    let old_copy = tmp.path().join("old.db");
    database_at_version(&old_copy, old);
    // The data directory holds a current database, which the restore keeps aside.
    let data = tmp.path().join("data");
    let out = xagent()
        .arg("migrate")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let out = restore(&old_copy, &data);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains(&format!("schema version {old})")), "{said}");
    assert!(
        said.contains(&format!(
            "its schema is older than this xagent's (version {}): the next start backs it up and migrates it",
            known()
        )),
        "{said}"
    );
    let aside = names_in(&data)
        .into_iter()
        .find(|n| n.starts_with("xagent.db.replaced-"))
        .unwrap();
    assert_eq!(schema_version(&data.join(aside)), known());
    assert_eq!(schema_version(&data.join("xagent.db")), old);

    let app = TestApp::spawn_in(tmp, |_| {}).await;
    let backups = app.data_dir().join("backups");
    let pre: Vec<String> = names_in(&backups)
        .into_iter()
        .filter(|n| n.starts_with(&format!("pre-upgrade-V{old}-to-V{}-", known())))
        .collect();
    assert_eq!(pre.len(), 1, "{:?}", names_in(&backups));
    let pre = backups.join(&pre[0]);
    assert_eq!(integrity(&pre), "ok");
    assert_eq!(
        schema_version(&pre),
        old,
        "the backup is the database before"
    );
    assert!(has_old_user(&pre));
    assert!(!xagent::services::backups::is_scheduled_name(
        pre.file_name().unwrap().to_str().unwrap()
    ));
    let migrated = app.db.migrated().clone();
    assert_eq!(migrated.from, Some(old));
    assert_eq!(migrated.to, known());
    assert_eq!(migrated.pre_upgrade_backup.unwrap().path, pre);
    assert_eq!(identity_count(&app).await, 1, "the data is kept");
    let dir = app.stop().await;
    let db = dir.path().join("data/xagent.db");
    assert_eq!(schema_version(&db), known());
    assert!(has_old_user(&db));

    // Up to date now: the next start takes no backup.
    let app = TestApp::spawn_in(dir, |_| {}).await;
    assert!(app.db.migrated().pre_upgrade_backup.is_none());
    assert_eq!(names_in(&app.data_dir().join("backups")).len(), 1);
}

#[test]
fn migrate_backs_an_older_database_up_before_migrating_it() {
    let old = before_known(2);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    database_at_version(&data.join("xagent.db"), old);
    let elsewhere = tmp.path().join("kept/copies");
    let out = xagent()
        .arg("migrate")
        .arg("--data-dir")
        .arg(&data)
        .env("XAGENT_BACKUP_DIR", &elsewhere)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    let names = names_in(&elsewhere);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(&format!("pre-upgrade-V{old}-to-V{}-", known())));
    let pre = elsewhere.join(&names[0]);
    assert!(
        said.contains(&format!(
            "backed up the database (schema version {old}) to {}",
            pre.display()
        )),
        "{said}"
    );
    for v in versions().into_iter().filter(|v| *v > old) {
        assert!(said.contains(&format!("applied V{v}__")), "{said}");
    }
    assert_eq!(schema_version(&pre), old);
    assert_eq!(integrity(&pre), "ok");
    assert_eq!(schema_version(&data.join("xagent.db")), known());
    assert!(has_old_user(&data.join("xagent.db")));
    assert!(!data.join("backups").exists());
}

#[tokio::test]
async fn an_older_database_is_not_migrated_by_a_command_while_a_server_holds_it() {
    // A server that is up to date holds the directory; the database under it is then
    // made to look older (as if an older server had it): a command must not migrate it.
    let app = TestApp::spawn().await;
    let db = app.data_dir().join("xagent.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute(
            "DELETE FROM refinery_schema_history WHERE version = ?1",
            [known()],
        )
        .unwrap();
    }
    let out = xagent()
        .arg("migrate")
        .arg("--data-dir")
        .arg(app.data_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "database schema is version {} and this xagent's is {}, but a server holds the data directory",
            before_known(1),
            known()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!app.data_dir().join("backups").exists());
    assert_eq!(schema_version(&db), before_known(1));
}

#[test]
fn a_newer_database_is_refused_naming_both_versions_and_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    database_at_version(&data.join("xagent.db"), known());
    let next = known() + 1;
    {
        // What a newer xagent's migration would have left: its table and its history row.
        let c = rusqlite::Connection::open(data.join("xagent.db")).unwrap();
        c.execute_batch("CREATE TABLE from_the_future (id TEXT PRIMARY KEY);")
            .unwrap();
        c.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (?1, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
            [next],
        )
        .unwrap();
    }
    let want = format!(
        "database schema is version {next}, this xagent knows up to {}; use a newer xagent",
        known()
    );
    let serve = xagent()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = serve.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    for args in [vec!["migrate"], vec!["keys", "list"]] {
        let out = xagent()
            .args(&args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(&want), "{args:?}: {}", stderr(&out));
    }
    let db = data.join("xagent.db");
    assert_eq!(schema_version(&db), next);
    assert!(has_old_user(&db));
    assert!(!data.join("backups").exists(), "nothing was backed up");
}

#[test]
fn serve_says_it_upgraded_the_database_and_where_the_copy_before_is() {
    let old = before_known(1);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    database_at_version(&data.join("xagent.db"), old);
    let mut child = xagent()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let want = format!(
        "upgraded the database from schema version {old} to {}; the copy taken before is {}",
        known(),
        data.join("backups")
            .join(format!("pre-upgrade-V{old}-to-V{}-", known()))
            .display()
    );
    // The URL, then the upgrade (the database has a user: no first-start hint).
    let mut seen = String::new();
    for _ in 0..2 {
        out.read_line(&mut seen).unwrap();
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // (It may not have its signal handler yet: how it exits is not the point here.)
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let _ = child.wait();
    assert!(seen.contains(&want), "{seen}");
}
