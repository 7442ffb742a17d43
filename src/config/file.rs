//! The configuration file (`--config FILE` or `XAGENT_CONFIG`): TOML, one key per setting.
//! A key is named like its flag (`--public-url` is `public_url`), and a value from the file
//! counts as that flag's default: the command line and the environment still win
//! (flags > environment > file > defaults). Unknown keys and values of the wrong type are
//! errors that name the key; values are checked by the flag's own parser (`cli`).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A file value as the words a command line would give the flag.
pub trait FileValue {
    fn words(&self) -> Vec<String>;
}

impl FileValue for String {
    fn words(&self) -> Vec<String> {
        vec![self.clone()]
    }
}

impl FileValue for u64 {
    fn words(&self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl FileValue for bool {
    fn words(&self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl FileValue for Vec<String> {
    fn words(&self) -> Vec<String> {
        self.clone()
    }
}

/// Declares the keys that are flags: one line per setting, `name: type`, where the name is
/// the flag's (`--smtp-host` → `smtp_host`) and the type is the TOML one (`String`, `u64`,
/// `bool` or `Vec<String>`). The flag's own parser checks the value, so `listen` is text
/// here and a socket address once read.
macro_rules! flag_settings {
    ($($key:ident: $ty:ty),* $(,)?) => {
        /// A configuration file as read. Every field is optional: what the file leaves out
        /// comes from the environment or the defaults.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FileSettings {
            $(
                #[serde(default)]
                pub $key: Option<$ty>,
            )*
            /// `XAGENT_MASTER_KEY` (no flag: a secret has no place on a command line).
            #[serde(default)]
            pub master_key: Option<String>,
            /// `XAGENT_<PROVIDER>_API_KEY` / `_BASE_URL`, as `[providers.<name>]` tables.
            #[serde(default)]
            pub providers: BTreeMap<String, FileProvider>,
        }

        impl FileSettings {
            /// The keys that are flags, in the order the file documents them.
            pub const FLAG_KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            /// The flag keys the file sets, each with its value as command-line words.
            pub fn flag_values(&self) -> Vec<(&'static str, Vec<String>)> {
                let mut out = Vec::new();
                $(
                    if let Some(v) = &self.$key {
                        out.push((stringify!($key), FileValue::words(v)));
                    }
                )*
                out
            }
        }
    };
}

// Every flag of `xagent serve` and the flags every command takes. A test fails when a flag
// of `serve` has no line here.
flag_settings! {
    data_dir: String,
    log: String,
    log_format: String,
    listen: String,
    public_url: String,
    cookie_secure: bool,
    allow_private_targets: bool,
    trusted_proxies: Vec<String>,
    session_idle_minutes: u64,
    session_max_hours: u64,
    body_limit_bytes: u64,
    upload_limit_bytes: u64,
    request_timeout_secs: u64,
    smtp_host: String,
    smtp_port: u64,
    smtp_tls: String,
    smtp_username: String,
    smtp_password: String,
    smtp_from: String,
    metrics_token: String,
    metrics_listen: String,
    backup_dir: String,
    backup_interval: String,
    backup_keep: u64,
}

/// One `[providers.<name>]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProvider {
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
}

/// A configuration file that could not be used; the message names the file and, for a
/// key, the key.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read the configuration file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl FileSettings {
    pub fn load(path: &Path) -> Result<FileSettings, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| FileError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The settings of a file's text; the error is TOML's, with the line and the key.
    pub fn parse(text: &str) -> Result<FileSettings, String> {
        let settings: FileSettings = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, p) in &settings.providers {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!(
                    "providers.{name}: a provider name is letters, digits and '-'"
                ));
            }
            if p.api_key.is_none() && p.base_url.is_none() {
                return Err(format!("providers.{name}: set api_key, base_url or both"));
            }
        }
        Ok(settings)
    }
}

/// Whether a setting is a secret, shown only as set or not: by its name, so that a later
/// `..._token` or `..._password` is masked without anyone remembering to.
pub fn is_secret(key: &str) -> bool {
    let last = key.rsplit(['.', '_']).next().unwrap_or(key);
    ["password", "token", "secret", "key"].contains(&last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sets_the_keys_it_names_and_nothing_else() {
        let f = FileSettings::parse(
            "listen = \"0.0.0.0:9000\"\nallow_private_targets = true\ntrusted_proxies = [\"10.0.0.1\", \"10.0.0.2\"]\nsmtp_port = 465\n\n[providers.azure-openai]\napi_key = \"k\"\n",
        )
        .unwrap();
        assert_eq!(
            f.flag_values(),
            vec![
                ("listen", vec!["0.0.0.0:9000".to_string()]),
                ("allow_private_targets", vec!["true".to_string()]),
                (
                    "trusted_proxies",
                    vec!["10.0.0.1".to_string(), "10.0.0.2".to_string()]
                ),
                ("smtp_port", vec!["465".to_string()]),
            ]
        );
        assert_eq!(
            f.providers["azure-openai"].api_key.as_deref(),
            Some("k"),
            "{f:?}"
        );
        assert!(FileSettings::parse("").unwrap().flag_values().is_empty());
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it_and_its_line() {
        let e = FileSettings::parse("listen = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap_err();
        assert!(e.contains("unknown field `lisen`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = FileSettings::parse("[providers.openai]\napi_kee = \"x\"\n").unwrap_err();
        assert!(e.contains("unknown field `api_kee`"), "{e}");
        let e = FileSettings::parse("[providers.openai]\n").unwrap_err();
        assert!(e.contains("providers.openai"), "{e}");
    }

    #[test]
    fn a_value_of_the_wrong_type_or_bad_toml_is_an_error_naming_the_key() {
        let e = FileSettings::parse("smtp_port = \"587\"\n").unwrap_err();
        assert!(e.contains("smtp_port"), "{e}");
        let e = FileSettings::parse("session_idle_minutes = -5\n").unwrap_err();
        assert!(e.contains("session_idle_minutes"), "{e}");
        let e = FileSettings::parse("listen = \n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn secrets_are_known_by_their_names() {
        for k in [
            "smtp_password",
            "master_key",
            "metrics_token",
            "providers.openai.api_key",
            "webhook_secret",
        ] {
            assert!(is_secret(k), "{k}");
        }
        for k in [
            "listen",
            "smtp_username",
            "public_url",
            "providers.openai.base_url",
            "keys_dir",
        ] {
            assert!(!is_secret(k), "{k}");
        }
    }

    #[test]
    fn an_unreadable_file_names_the_file() {
        let e = FileSettings::load(Path::new("/nonexistent/xagent.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read the configuration file /nonexistent/xagent.toml"),
            "{e}"
        );
    }
}
