//! Configuration, built once at start from flags, `XAGENT_*` variables and the
//! configuration file (`file`): flags win over the environment, which wins over the file.
pub mod file;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::telemetry::LogFormat;

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The address people type in a browser; used in links (invitations) and printed at start.
    pub public_url: Option<String>,
    pub log: String,
    pub log_format: LogFormat,
    /// `Secure` attribute on the session cookie; `None` means "when public_url is https".
    pub cookie_secure: Option<bool>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    pub session_idle: Duration,
    pub session_max_age: Duration,
    pub body_limit_bytes: usize,
    /// Largest document upload accepted at all (plans may allow less).
    pub upload_limit_bytes: usize,
    pub request_timeout: Duration,
    /// Failed sign-ins allowed per account, and per client IP, within `login_window`.
    pub login_max_failures_per_account: u32,
    pub login_max_failures_per_ip: u32,
    pub login_window: Duration,
    /// Outgoing mail for invitations; without it the invite link is shown to copy.
    pub smtp: Option<SmtpConfig>,
    /// How often the background tasks run (retention purge, cleanup).
    pub maintenance_interval: Duration,
    /// `XAGENT_MASTER_KEY`: base64 master keys, newest first; without it the key file
    /// `master.key` in the data directory is used (and created).
    pub master_key: Option<Secret>,
    /// Provider keys from the environment (`XAGENT_<PROVIDER>_API_KEY`,
    /// `XAGENT_<PROVIDER>_BASE_URL`), the last fallback of key resolution.
    pub env_providers: BTreeMap<String, EnvProvider>,
    /// The clock of billing periods and metering (tests move it).
    pub clock: crate::domain::Clock,
    /// How often due webhook deliveries are sent, and the first retry delay (doubling).
    pub webhook_tick: Duration,
    pub webhook_retry_base: Duration,
    /// Whether provider base URLs and webhooks that organizations enter may reach private,
    /// loopback and link-local addresses (`--allow-private-targets`; default: public only).
    pub targets: crate::services::outbound::TargetPolicy,
    /// The executable whose `extract-text` command reads documents other than plain text
    /// (PDF, HTML, Markdown) in a child process, so a document that crashes the parser
    /// cannot take the server down; `None`: this one.
    pub extractor_exe: Option<PathBuf>,
    /// How long one document's extraction may take.
    pub extract_timeout: Duration,
    /// The bearer token `GET /metrics` on the main listener asks for (`--metrics-token`);
    /// without it that route is 404.
    pub metrics_token: Option<Secret>,
    /// A second address serving only `GET /metrics`, without a token (`--metrics-listen`),
    /// for a network only the scraper reaches.
    pub metrics_listen: Option<SocketAddr>,
    /// Where scheduled and pre-upgrade backups go; `None`: `DATA_DIR/backups`.
    pub backup_dir: Option<PathBuf>,
    /// How often the server writes a scheduled backup; `None`: never (the default).
    pub backup_interval: Option<Duration>,
    /// How many scheduled backups are kept (the oldest beyond are deleted); at least 1.
    pub backup_keep: usize,
    /// How often the indexer looks for queued documents when nobody woke it: documents
    /// another process queued (`xagent import`) are indexed within this.
    pub indexer_poll: Duration,
}

/// One provider configured through the environment, keyed by its provider name.
#[derive(Debug, Clone, Default)]
pub struct EnvProvider {
    pub api_key: Option<Secret>,
    pub base_url: Option<String>,
}

/// Collects `XAGENT_<PROVIDER>_API_KEY` / `_BASE_URL` pairs; `<PROVIDER>` becomes the
/// lower-case provider name with `_` read as `-` (`XAGENT_AZURE_OPENAI_API_KEY` →
/// `azure-openai`).
pub fn env_providers(
    vars: impl Iterator<Item = (String, String)>,
) -> BTreeMap<String, EnvProvider> {
    let mut out: BTreeMap<String, EnvProvider> = BTreeMap::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("XAGENT_") else {
            continue;
        };
        let (provider, is_key) = if let Some(p) = rest.strip_suffix("_API_KEY") {
            (p, true)
        } else if let Some(p) = rest.strip_suffix("_BASE_URL") {
            (p, false)
        } else {
            continue;
        };
        if provider.is_empty() || value.trim().is_empty() {
            continue;
        }
        let entry = out
            .entry(provider.to_ascii_lowercase().replace('_', "-"))
            .or_default();
        if is_key {
            entry.api_key = Some(Secret::new(value.trim()));
        } else {
            entry.base_url = Some(value.trim().trim_end_matches('/').to_string());
        }
    }
    out
}

/// The configuration file's `[providers.<name>]` under the environment's: for each
/// provider and field, the environment's value when it has one.
pub fn merge_providers(
    mut env: BTreeMap<String, EnvProvider>,
    file: Option<&BTreeMap<String, file::FileProvider>>,
) -> BTreeMap<String, EnvProvider> {
    for (name, p) in file.into_iter().flatten() {
        let entry = env.entry(name.to_ascii_lowercase()).or_default();
        if entry.api_key.is_none() {
            entry.api_key = p
                .api_key
                .as_deref()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(Secret::new);
        }
        if entry.base_url.is_none() {
            entry.base_url = p
                .base_url
                .as_deref()
                .map(|u| u.trim().trim_end_matches('/').to_string())
                .filter(|u| !u.is_empty());
        }
    }
    env
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpTls {
    /// Plain connection (a relay on localhost).
    None,
    /// Upgrade with STARTTLS (usually port 587).
    Starttls,
    /// TLS from the start (usually port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, e.g. `xagent <noreply@example.com>`.
    pub from: String,
}

impl Config {
    /// Defaults for a data directory; everything else as `xagent serve` starts without flags.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            public_url: None,
            log: "info".into(),
            log_format: LogFormat::Text,
            cookie_secure: None,
            trusted_proxies: Vec::new(),
            session_idle: Duration::from_secs(24 * 3600),
            session_max_age: Duration::from_secs(30 * 24 * 3600),
            body_limit_bytes: 1024 * 1024,
            upload_limit_bytes: 64 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            login_max_failures_per_account: 10,
            login_max_failures_per_ip: 50,
            login_window: Duration::from_secs(15 * 60),
            smtp: None,
            maintenance_interval: Duration::from_secs(3600),
            master_key: None,
            env_providers: BTreeMap::new(),
            clock: crate::domain::Clock::default(),
            webhook_tick: Duration::from_secs(2),
            webhook_retry_base: Duration::from_secs(30),
            targets: crate::services::outbound::TargetPolicy::PublicOnly,
            extractor_exe: None,
            extract_timeout: Duration::from_secs(60),
            metrics_token: None,
            metrics_listen: None,
            backup_dir: None,
            backup_interval: None,
            backup_keep: 7,
            indexer_poll: Duration::from_secs(30),
        }
    }

    /// Where scheduled and pre-upgrade backups go.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("backups"))
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("xagent.db")
    }

    /// The command that creates the first administrator in this server's database: with
    /// `--data-dir` unless it is the default, or the user lands in another database.
    pub fn create_user_command(&self) -> String {
        let dir = self.data_dir.to_string_lossy();
        let data_dir = if dir == "./data" || dir == "data" {
            String::new()
        } else {
            format!(" --data-dir {}", shell_quote(&dir))
        };
        format!(
            "xagent admin create-user{data_dir} --email you@example.com --name \"Your Name\" --superuser --password-stdin"
        )
    }

    /// The base URL for links, without a trailing slash.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{bound}"),
        }
    }

    /// What the flags' own parsers cannot see: addresses that must be URLs, master keys
    /// that must be keys. Every problem, in words (never a secret's value).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let web_url = |u: &str| {
            url::Url::parse(u)
                .ok()
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        };
        if let Some(u) = &self.public_url
            && !web_url(u)
        {
            problems.push(format!(
                "public_url {u:?} is not an http:// or https:// address"
            ));
        }
        if let Some(k) = &self.master_key
            && let Err(e) = crate::crypto::Keyring::check_master_keys(k.expose())
        {
            problems.push(format!("master_key: {e}"));
        }
        for (name, p) in &self.env_providers {
            if let Some(u) = &p.base_url
                && !web_url(u)
            {
                problems.push(format!(
                    "the base URL of provider {name} ({u:?}) is not an http:// or https:// address"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    pub fn secure_cookies(&self) -> bool {
        self.cookie_secure.unwrap_or_else(|| {
            self.public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
        })
    }
}

/// A backup interval as given to `--backup-interval`: a number with a unit, `s`, `m`, `h`
/// or `d` (`90s`, `30m`, `6h`, `1d`), a bare number meaning minutes; `0` or `off` for none.
pub fn parse_backup_interval(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") || t.is_empty() {
        return Ok(None);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit, e.g. 30m, 6h, 1d"))?;
    let seconds = match unit.trim() {
        "s" => 1,
        "" | "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use s, m, h or d)"
            ));
        }
    };
    Ok(Some(Duration::from_secs(n.saturating_mul(seconds))).filter(|d| !d.is_zero()))
}

/// `word` as one shell word: as is when it is plain, else in single quotes.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_intervals_read_with_their_unit_minutes_without_and_zero_or_off_as_none() {
        let d = |s| parse_backup_interval(s).unwrap();
        assert_eq!(d("90s"), Some(Duration::from_secs(90)));
        assert_eq!(d("30"), Some(Duration::from_secs(1800)));
        assert_eq!(d("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(d("6h"), Some(Duration::from_secs(6 * 3600)));
        assert_eq!(d("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(d("0"), None);
        assert_eq!(d("0h"), None);
        assert_eq!(d("off"), None);
        assert!(parse_backup_interval("6 weeks").is_err());
        assert!(parse_backup_interval("h").is_err());
        assert!(parse_backup_interval("-1m").is_err());
    }

    #[test]
    fn the_create_user_command_names_the_data_dir_only_when_it_is_not_the_default() {
        let default = Config::new(PathBuf::from("./data")).create_user_command();
        assert!(!default.contains("--data-dir"), "{default}");
        let custom = Config::new(PathBuf::from("/srv/x agent's data")).create_user_command();
        assert!(
            custom.starts_with(
                "xagent admin create-user --data-dir '/srv/x agent'\\''s data' --email"
            ),
            "{custom}"
        );
    }

    #[test]
    fn the_environment_wins_over_the_file_for_each_field_of_a_provider() {
        let env = env_providers(
            [("XAGENT_OPENAI_API_KEY".to_string(), "sk-env".to_string())].into_iter(),
        );
        let file = file::FileSettings::parse(
            "[providers.openai]\napi_key = \"sk-file\"\nbase_url = \"http://127.0.0.1:9/v1/\"\n[providers.local]\nbase_url = \"http://127.0.0.1:8/v1\"\n",
        )
        .unwrap();
        let merged = merge_providers(env, Some(&file.providers));
        assert_eq!(
            merged["openai"].api_key.as_ref().map(Secret::expose),
            Some("sk-env")
        );
        assert_eq!(
            merged["openai"].base_url.as_deref(),
            Some("http://127.0.0.1:9/v1")
        );
        assert!(merged["local"].api_key.is_none());
    }

    #[test]
    fn validation_names_each_problem_and_never_a_secret() {
        let mut c = Config::new("./data");
        assert_eq!(c.validate(), Ok(()));
        c.public_url = Some("xagent.example.com".into());
        c.master_key = Some(Secret::new("not-a-key-but-secret"));
        let problems = c.validate().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("public_url"), "{problems:?}");
        assert!(problems[1].starts_with("master_key"), "{problems:?}");
        assert!(!problems.join(" ").contains("not-a-key-but-secret"));
        c.public_url = Some("https://xagent.example.com/".into());
        c.master_key = Some(Secret::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        assert_eq!(c.validate(), Ok(()));
    }
}
