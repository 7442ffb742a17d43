//! TestApp: the real server, in-process on a free port, with a temporary data directory,
//! spoken to over real HTTP.
#![allow(dead_code)]

pub mod mock_llm;
pub mod oidc_provider;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use xagent::app::Application;
use xagent::config::Config;
use xagent::db::Db;
use xagent::services::{ClientMeta, identity};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    /// Where the server listens (`base` is the public URL when the config sets one).
    pub addr: std::net::SocketAddr,
    /// The separate metrics listener's base URL, when the config asked for one.
    pub metrics_base: Option<String>,
    pub db: Db,
    pub svc: xagent::services::Services,
    dir: Option<tempfile::TempDir>,
    root: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The instance's `openai` provider is `mock` (the environment level of key resolution),
/// so every organization and personal workspace can call models.
pub fn env_mock(c: &mut Config, mock: &mock_llm::MockLlm) {
    c.env_providers.insert(
        "openai".into(),
        xagent::config::EnvProvider {
            api_key: Some(xagent::config::Secret::new("sk-env-mock-key-0000")),
            base_url: Some(mock.base.clone()),
        },
    );
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_in(tempfile::tempdir().expect("temp dir"), tweak).await
    }

    /// A server on the data of `dir` (one that `stop` returned, for a restart).
    pub async fn spawn_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Config::new(dir.path().join("data"));
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.log = "warn".into();
        // The local upstreams and webhook receivers of the tests listen on 127.0.0.1.
        config.targets = xagent::services::outbound::TargetPolicy::AllowPrivate;
        // Documents are read by a child process of the real binary, as in production.
        config.extractor_exe = Some(env!("CARGO_BIN_EXE_xagent").into());
        tweak(&mut config);
        let app = Application::build(config).await.expect("app builds");
        let base = app.base_url().to_string();
        let addr = app.addr();
        let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
        let db = app.db().clone();
        let svc = app.services().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            base,
            addr,
            metrics_base,
            db,
            svc,
            root: dir.path().to_path_buf(),
            dir: Some(dir),
            stop: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The temporary directory holding `data/` (and room for other files).
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.root.join("data")
    }

    /// Stops the server the way SIGTERM does and waits for it; the files stay for
    /// inspection as long as the returned directory lives.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let done = tokio::time::timeout(Duration::from_secs(10), h).await;
            assert!(
                matches!(done, Ok(Ok(Ok(())))),
                "server did not stop cleanly: {done:?}"
            );
        }
        self.dir.take().expect("dir")
    }

    /// A user made the way `xagent admin create-user` makes one.
    pub async fn create_user(&self, email: &str, name: &str) -> TestUser {
        let (user, org) = identity::create_user(
            &self.svc,
            email,
            name,
            PASSWORD,
            false,
            &ClientMeta::default(),
        )
        .await
        .expect("user created");
        TestUser {
            id: user.id.to_string(),
            email: user.email,
            personal_org: org.id.to_string(),
            personal_slug: org.slug,
        }
    }

    pub async fn create_superuser(&self, email: &str, name: &str) -> TestUser {
        let (user, org) = identity::create_user(
            &self.svc,
            email,
            name,
            PASSWORD,
            true,
            &ClientMeta::default(),
        )
        .await
        .expect("user created");
        TestUser {
            id: user.id.to_string(),
            email: user.email,
            personal_org: org.id.to_string(),
            personal_slug: org.slug,
        }
    }

    /// Signs in over HTTP; the returned client keeps the session cookie.
    pub async fn login(&self, email: &str) -> Session {
        self.login_with(email, PASSWORD)
            .await
            .expect("login succeeds")
    }

    pub async fn login_with(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Session, (StatusCode, Value)> {
        let client = cookie_client();
        let res = client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("request");
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status != StatusCode::OK {
            return Err((status, body));
        }
        Ok(Session {
            client,
            csrf: body["csrf_token"].as_str().expect("csrf").to_string(),
            base: self.base.clone(),
            login: body,
        })
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// reqwest is built with rustls and no default crypto provider (the server installs ring
/// at start); a test that makes a client before any server does needs it too.
pub fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn cookie_client() -> reqwest::Client {
    tls();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub personal_org: String,
    pub personal_slug: String,
}

/// A signed-in API client: session cookie plus the CSRF header on every call.
pub struct Session {
    pub client: reqwest::Client,
    pub csrf: String,
    pub base: String,
    pub login: Value,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn reply(res: reqwest::Response) -> Reply {
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

impl Session {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Reply {
        reply(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("x-csrf-token", &self.csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        reply(req.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

/// A client that authenticates with an API token.
pub struct TokenClient {
    pub client: reqwest::Client,
    pub token: String,
    pub base: String,
}

impl TokenClient {
    pub fn new(base: &str, token: &str) -> Self {
        tls();
        Self {
            client: reqwest::Client::new(),
            token: token.to_string(),
            base: base.to_string(),
        }
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        reply(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }
}

/// Every file below `dir`, in subfolders too (source scans of the tests).
#[allow(dead_code)]
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let (mut dirs, mut files) = (vec![dir.to_path_buf()], Vec::new());
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
