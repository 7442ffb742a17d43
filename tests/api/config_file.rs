//! The configuration file through the real binary: `config check` shows what is in effect
//! with secrets masked and fails on a bad file; `serve` listens where the file says.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn xagent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xagent"));
    for (name, _) in std::env::vars() {
        if name.starts_with("XAGENT_") {
            c.env_remove(name);
        }
    }
    c.env("XAGENT_LOG", "warn");
    c
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value and source of `key` in `config check`'s output.
fn setting(out: &str, key: &str) -> String {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn config_check_prints_every_setting_with_its_source_and_masks_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "xagent.toml",
        "listen = \"127.0.0.1:9100\"\npublic_url = \"https://xagent.example.com\"\nsmtp_host = \"smtp.example.com\"\nsmtp_password = \"pw-from-the-file-4821\"\nmaster_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\n[providers.openai]\napi_key = \"sk-file-key-7731\"\n",
    );
    let (ok, out, err) = run(xagent()
        .args(["config", "check", "--config"])
        .arg(&file)
        .args(["--session-idle-minutes", "15"])
        .env("XAGENT_PUBLIC_URL", "https://from-env.example.com")
        .env("XAGENT_OPENAI_BASE_URL", "https://proxy.example.com/v1"));
    assert!(ok, "{out}\n{err}");
    for secret in ["pw-from-the-file", "AAAAAAAA", "sk-file-key"] {
        assert!(!out.contains(secret), "{secret} shown:\n{out}");
        assert!(!err.contains(secret), "{secret} shown:\n{err}");
    }
    assert_eq!(setting(&out, "listen"), "127.0.0.1:9100 file");
    assert_eq!(
        setting(&out, "public_url"),
        "https://from-env.example.com environment (XAGENT_PUBLIC_URL)"
    );
    assert_eq!(
        setting(&out, "session_idle_minutes"),
        "15 command line (--session-idle-minutes)"
    );
    assert_eq!(setting(&out, "session_max_hours"), "720 default");
    assert_eq!(setting(&out, "smtp_password"), "(set, hidden) file");
    assert_eq!(setting(&out, "master_key"), "(set, hidden) file");
    assert_eq!(
        setting(&out, "providers.openai.api_key"),
        "(set, hidden) file"
    );
    assert_eq!(
        setting(&out, "providers.openai.base_url"),
        "https://proxy.example.com/v1 environment (XAGENT_OPENAI_BASE_URL)"
    );
    assert!(out.ends_with("the configuration is valid\n"), "{out}");

    // XAGENT_CONFIG names the file as --config does; a secret from the environment is
    // masked as well.
    let (ok, out, _) = run(xagent()
        .args(["config", "check"])
        .env("XAGENT_CONFIG", &file)
        .env("XAGENT_SMTP_PASSWORD", "pw-from-the-environment"));
    assert!(ok);
    assert!(!out.contains("pw-from-the-environment"), "{out}");
    assert_eq!(
        setting(&out, "smtp_password"),
        "(set, hidden) environment (XAGENT_SMTP_PASSWORD)"
    );
}

#[test]
fn config_check_fails_with_a_message_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown.toml",
            "listen = \"127.0.0.1:1\"\nlisten_port = 80\n",
            "unknown field `listen_port`",
        ),
        (
            "bad-toml.toml",
            "listen = \"127.0.0.1:1\n",
            "TOML parse error at line 1",
        ),
        (
            "bad-type.toml",
            "smtp_port = \"twenty-five\"\n",
            "smtp_port",
        ),
        (
            "bad-value.toml",
            "listen = \"localhost\"\n",
            "listen: \"localhost\" is not a valid value: invalid socket address syntax",
        ),
        (
            "bad-choice.toml",
            "smtp_tls = \"ssl\"\n",
            "smtp_tls: \"ssl\" is not a valid value (one of: none, starttls, tls)",
        ),
        (
            "bad-url.toml",
            "public_url = \"xagent.example.com\"\n",
            "public_url \"xagent.example.com\" is not an http:// or https:// address",
        ),
        (
            "bad-key.toml",
            "master_key = \"secret-but-not-a-key\"\n",
            "master_key: ",
        ),
    ];
    for (name, text, expected) in cases {
        let file = write(tmp.path(), name, text);
        let (ok, out, err) = run(xagent().args(["config", "check", "--config"]).arg(&file));
        assert!(!ok, "{name} was accepted:\n{out}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(err.starts_with("error: "), "{name}: {err}");
        assert!(!err.contains("secret-but-not-a-key"), "{err}");
        // The server refuses the same file.
        let (ok, _, serve_err) = run(xagent()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(tmp.path().join("data")));
        assert!(!ok, "serve started with {name}");
        assert!(serve_err.contains(expected), "{name}: {serve_err}");
    }
    let (ok, _, err) = run(xagent()
        .args(["config", "check", "--config"])
        .arg(tmp.path().join("missing.toml")));
    assert!(!ok);
    assert!(
        err.contains("cannot read the configuration file") && err.contains("missing.toml"),
        "{err}"
    );
    // A directory is unreadable as a file too.
    let (ok, _, err) = run(xagent()
        .args(["config", "check", "--config"])
        .arg(tmp.path()));
    assert!(!ok);
    assert!(err.contains("cannot read the configuration file"), "{err}");
}

#[test]
fn the_packaged_sample_configuration_is_valid_and_names_every_setting() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/xagent.toml");
    let (ok, out, err) = run(xagent().args(["config", "check", "--config"]).arg(&sample));
    assert!(ok, "{out}\n{err}");
    assert_eq!(setting(&out, "data_dir"), "/var/lib/xagent file");
    let text = std::fs::read_to_string(&sample).unwrap();
    for key in xagent::config::file::FileSettings::FLAG_KEYS {
        assert!(
            text.contains(&format!("\n{key} = ")) || text.contains(&format!("# {key} = ")),
            "packaging/xagent.toml does not document {key}"
        );
    }
}

#[test]
fn serve_listens_where_the_file_says_and_links_with_its_public_url() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = write(
        tmp.path(),
        "xagent.toml",
        &format!(
            "listen = \"127.0.0.1:{port}\"\npublic_url = \"https://xagent.example.com/\"\ndata_dir = \"{}\"\n",
            tmp.path().join("data").display()
        ),
    );
    let mut child = xagent()
        .arg("serve")
        .env("XAGENT_CONFIG", &file)
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
    while Instant::now() < deadline && !seen.contains("sign in at") {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&line);
            seen.push('\n');
        }
    }
    assert!(
        seen.contains("listening on https://xagent.example.com\n"),
        "{seen}"
    );
    // The first-start hint names the file's data directory.
    assert!(seen.contains("--data-dir"), "{seen}");
    let health = tokio::runtime::Runtime::new().unwrap().block_on(async {
        crate::common::tls();
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(health.contains("ok"), "{health}");
    assert!(tmp.path().join("data/xagent.db").exists());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(code) = child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code:?}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}
