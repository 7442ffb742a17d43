//! The configuration file on the command line: each of its values becomes the default of
//! the flag of the same name, once that flag's own parser accepted it, so clap itself
//! keeps the order flags > environment > file > defaults and says where a value came
//! from (`ArgMatches::value_source`). Nothing here knows a setting by name: a new flag of
//! `serve` is a file setting with one line in `config::file`.
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::config::file::{FileSettings, is_secret};

/// The subcommands that take `serve`'s flags (`config check` shows what `serve` would run
/// with); the first one is where a setting's flag is looked up.
const SERVE_PATHS: &[&[&str]] = &[&["serve"], &["config", "check"]];

fn find_arg<'a>(cmd: &'a Command, path: &[&str], id: &str) -> Option<&'a Arg> {
    let mut at = cmd;
    for name in path {
        at = at.find_subcommand(name)?;
    }
    at.get_arguments().find(|a| a.get_id() == id)
}

/// `cmd` with the subcommand at `path` changed by `f` (the root when `path` is empty).
fn with_subcommand(cmd: Command, path: &[&str], f: &dyn Fn(Command) -> Command) -> Command {
    match path.split_first() {
        None => f(cmd),
        Some((first, rest)) => cmd.mut_subcommand(*first, |sub| with_subcommand(sub, rest, f)),
    }
}

/// The command line with the file's values as defaults; an error names the key and what
/// is wrong with its value.
pub fn apply(mut cmd: Command, file: &FileSettings) -> Result<Command, String> {
    for (key, words) in file.flag_values() {
        let paths: Vec<&[&str]> = if find_arg(&cmd, &[], key).is_some() {
            vec![&[]]
        } else {
            SERVE_PATHS.to_vec()
        };
        let arg = find_arg(&cmd, paths[0], key)
            .ok_or_else(|| format!("{key} is not a flag of this version of xagent"))?;
        check(arg, &words).map_err(|why| format!("{key}: {why}"))?;
        for path in paths {
            if find_arg(&cmd, path, key).is_some() {
                let words = words.clone();
                cmd = with_subcommand(cmd, path, &move |sub| {
                    let words = words.clone();
                    sub.mut_arg(key, move |a| a.default_values(words))
                });
            }
        }
    }
    Ok(cmd)
}

/// Runs the flag's own parser on the file's words, as if they were typed after the flag.
fn check(arg: &Arg, words: &[String]) -> Result<(), String> {
    let long = arg
        .get_long()
        .ok_or_else(|| "this setting has no flag".to_string())?;
    let argv: Vec<String> = match arg.get_action() {
        // A switch: set by being there.
        ArgAction::SetTrue | ArgAction::SetFalse => words
            .iter()
            .filter(|w| w.as_str() == "true")
            .map(|_| format!("--{long}"))
            .collect(),
        _ => words.iter().map(|w| format!("--{long}={w}")).collect(),
    };
    let probe = arg
        .clone()
        .env(None::<&str>)
        .default_value(None::<&str>)
        .required(false)
        .global(false);
    Command::new("file")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from(argv)
        .map(|_| ())
        .map_err(|e| reason(&e))
}

/// A parser's refusal in words, without clap's usage lines.
fn reason(e: &clap::Error) -> String {
    let mut out = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => format!("{v:?} is not a valid value"),
        _ => "not a valid value".to_string(),
    };
    if let Some(cause) = std::error::Error::source(e) {
        let _ = write!(out, ": {cause}");
    }
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        let _ = write!(out, " (one of: {})", valid.join(", "));
    }
    out
}

/// Where a setting's value came from.
fn source(arg: &Arg, m: &ArgMatches, from_file: bool) -> String {
    let id = arg.get_id().as_str();
    match m.value_source(id) {
        Some(ValueSource::CommandLine) => format!(
            "command line (--{})",
            arg.get_long().unwrap_or(id).trim_start_matches('-')
        ),
        Some(ValueSource::EnvVariable) => format!(
            "environment ({})",
            arg.get_env()
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        Some(ValueSource::DefaultValue) if from_file => "file".into(),
        Some(ValueSource::DefaultValue) => "default".into(),
        _ => "not set".into(),
    }
}

/// The settings in effect for `config check`: every setting of the file, its value
/// (secrets only as set or not) and where it came from, one per line.
pub fn report(cmd: &Command, m: &ArgMatches, file: Option<&(PathBuf, FileSettings)>) -> String {
    let mut out = String::new();
    match file {
        Some((path, _)) => {
            let _ = writeln!(out, "configuration file: {}", path.display());
        }
        None => {
            let _ = writeln!(
                out,
                "configuration file: none (give one with --config FILE or XAGENT_CONFIG)"
            );
        }
    }
    let in_file: Vec<&str> = file
        .map(|(_, f)| f.flag_values().into_iter().map(|(k, _)| k).collect())
        .unwrap_or_default();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for key in FileSettings::FLAG_KEYS {
        let arg = find_arg(cmd, &[], key).or_else(|| find_arg(cmd, SERVE_PATHS[0], key));
        let Some(arg) = arg else {
            continue;
        };
        let values: Vec<String> = m
            .get_raw(key)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let secret = is_secret(key) || arg.is_hide_env_values_set();
        let shown = match (values.is_empty(), secret) {
            (true, _) => "(not set)".to_string(),
            (false, true) => "(set, hidden)".to_string(),
            (false, false) => values.join(", "),
        };
        rows.push((
            (*key).to_string(),
            shown,
            source(arg, m, in_file.contains(key)),
        ));
    }
    let settings = file.map(|(_, f)| f);
    let env_master = std::env::var("XAGENT_MASTER_KEY")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let file_master = settings.and_then(|f| f.master_key.as_ref());
    rows.push(match (&env_master, file_master) {
        (Some(_), _) => (
            "master_key".into(),
            "(set, hidden)".into(),
            "environment (XAGENT_MASTER_KEY)".into(),
        ),
        (None, Some(_)) => ("master_key".into(), "(set, hidden)".into(), "file".into()),
        (None, None) => (
            "master_key".into(),
            "(not set: the data directory's master.key)".into(),
            "default".into(),
        ),
    });
    let env = crate::config::env_providers(std::env::vars());
    let mut names: Vec<&String> = env.keys().collect();
    if let Some(f) = settings {
        names.extend(f.providers.keys());
    }
    names.sort();
    names.dedup();
    for name in names {
        let var = name.to_ascii_uppercase().replace('-', "_");
        let from_env = env.get(name);
        let from_file = settings.and_then(|f| f.providers.get(name));
        let key_source = if from_env.is_some_and(|p| p.api_key.is_some()) {
            Some(format!("environment (XAGENT_{var}_API_KEY)"))
        } else if from_file.is_some_and(|p| p.api_key.is_some()) {
            Some("file".to_string())
        } else {
            None
        };
        rows.push((
            format!("providers.{name}.api_key"),
            if key_source.is_some() {
                "(set, hidden)".into()
            } else {
                "(not set)".into()
            },
            key_source.unwrap_or_else(|| "not set".into()),
        ));
        let (url, url_source) = match (
            from_env.and_then(|p| p.base_url.clone()),
            from_file.and_then(|p| p.base_url.clone()),
        ) {
            (Some(u), _) => (u, format!("environment (XAGENT_{var}_BASE_URL)")),
            (None, Some(u)) => (u, "file".to_string()),
            (None, None) => ("(not set)".into(), "not set".into()),
        };
        rows.push((format!("providers.{name}.base_url"), url, url_source));
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let value_width = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .min(48);
    for (key, value, from) in rows {
        let _ = writeln!(out, "{key:<width$}  {value:<value_width$}  {from}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn settings(text: &str) -> FileSettings {
        FileSettings::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `argv` read as `main` reads it, with `text` as the configuration file.
    fn parse(text: &str, argv: &[&str]) -> ArgMatches {
        let cmd = apply(super::super::Cli::command(), &settings(text)).unwrap();
        cmd.try_get_matches_from(argv)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn serve(m: &ArgMatches) -> &ArgMatches {
        m.subcommand_matches("serve").unwrap()
    }

    #[test]
    fn every_flag_of_serve_is_a_setting_of_the_file_and_every_setting_a_flag() {
        let cmd = super::super::Cli::command();
        let serve = cmd.find_subcommand("serve").unwrap();
        for arg in serve.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_global_set() || ["help", "version"].contains(&id) {
                continue;
            }
            assert!(
                FileSettings::FLAG_KEYS.contains(&id),
                "--{} has no line in config::file's flag_settings!",
                arg.get_long().unwrap_or(id)
            );
        }
        for key in FileSettings::FLAG_KEYS {
            assert!(
                find_arg(&cmd, &[], key).is_some() || find_arg(&cmd, &["serve"], key).is_some(),
                "{key} is no flag"
            );
            assert!(
                find_arg(&cmd, &[], key).is_some()
                    || find_arg(&cmd, &["config", "check"], key).is_some(),
                "config check does not take {key}"
            );
        }
    }

    #[test]
    fn the_command_line_wins_over_the_file_which_wins_over_the_defaults() {
        let file = "listen = \"127.0.0.1:7000\"\nsession_idle_minutes = 5\ndata_dir = \"/srv/x\"\n";
        let m = parse(file, &["xagent", "serve", "--session-idle-minutes", "9"]);
        let s = serve(&m);
        assert_eq!(
            s.get_one::<std::net::SocketAddr>("listen")
                .map(ToString::to_string),
            Some("127.0.0.1:7000".into())
        );
        assert_eq!(s.value_source("listen"), Some(ValueSource::DefaultValue));
        assert_eq!(s.get_one::<u64>("session_idle_minutes"), Some(&9));
        assert_eq!(
            s.value_source("session_idle_minutes"),
            Some(ValueSource::CommandLine)
        );
        assert_eq!(s.get_one::<u64>("session_max_hours"), Some(&720));
        // A global setting reaches every command, before or after the verb.
        assert_eq!(
            m.get_one::<PathBuf>("data_dir"),
            Some(&PathBuf::from("/srv/x"))
        );
        let m = parse(
            file,
            &["xagent", "backup", "x.db", "--data-dir", "/elsewhere"],
        );
        assert_eq!(
            m.get_one::<PathBuf>("data_dir"),
            Some(&PathBuf::from("/elsewhere"))
        );
        // The same defaults for `config check`.
        let m = parse(file, &["xagent", "config", "check"]);
        let c = m
            .subcommand_matches("config")
            .and_then(|c| c.subcommand_matches("check"))
            .unwrap();
        assert_eq!(
            c.get_raw("listen").unwrap().next().unwrap(),
            "127.0.0.1:7000"
        );
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        // A command of its own whose flag reads PATH, which every process has.
        let cmd = Command::new("t").subcommand(
            Command::new("serve")
                .arg(Arg::new("listen").long("listen").env("PATH"))
                .arg(Arg::new("log").long("log").env("XAGENT_TEST_NEVER_SET_47")),
        );
        let cmd = apply(cmd, &settings("listen = \"from-file\"\nlog = \"debug\"\n")).unwrap();
        let m = cmd.try_get_matches_from(["t", "serve"]).unwrap();
        let s = serve(&m);
        assert_eq!(s.value_source("listen"), Some(ValueSource::EnvVariable));
        assert_ne!(
            s.get_one::<String>("listen").map(String::as_str),
            Some("from-file")
        );
        assert_eq!(s.value_source("log"), Some(ValueSource::DefaultValue));
        assert_eq!(
            s.get_one::<String>("log").map(String::as_str),
            Some("debug")
        );
    }

    #[test]
    fn switches_lists_and_choices_from_the_file_are_read_as_their_flags_read_them() {
        let m = parse(
            "allow_private_targets = true\ntrusted_proxies = [\"10.0.0.1\", \"::1\"]\nsmtp_tls = \"tls\"\ncookie_secure = false\n",
            &["xagent", "serve"],
        );
        let s = serve(&m);
        assert_eq!(s.get_one::<bool>("allow_private_targets"), Some(&true));
        let proxies: Vec<String> = s
            .get_many::<std::net::IpAddr>("trusted_proxies")
            .unwrap()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.1", "::1"]);
        assert_eq!(
            s.get_one::<crate::config::SmtpTls>("smtp_tls"),
            Some(&crate::config::SmtpTls::Tls)
        );
        assert_eq!(s.get_one::<bool>("cookie_secure"), Some(&false));
    }

    #[test]
    fn a_bad_value_is_an_error_naming_the_key_and_why() {
        let err = |text: &str| {
            apply(super::super::Cli::command(), &settings(text))
                .err()
                .unwrap_or_default()
        };
        assert_eq!(
            err("listen = \"nonsense\""),
            "listen: \"nonsense\" is not a valid value: invalid socket address syntax"
        );
        assert_eq!(
            err("log_format = \"yaml\""),
            "log_format: \"yaml\" is not a valid value (one of: text, json)"
        );
        assert!(
            err("trusted_proxies = [\"10.0.0.1\", \"x\"]").starts_with("trusted_proxies: \"x\"")
        );
        assert!(err("smtp_port = 70000").starts_with("smtp_port: \"70000\""));
    }

    #[test]
    fn the_report_says_where_each_value_came_from_and_masks_secrets() {
        let text = "public_url = \"https://x.example\"\nsmtp_password = \"hunter2-very-secret\"\nmaster_key = \"c2VjcmV0\"\n[providers.acme]\napi_key = \"sk-acme-secret\"\nbase_url = \"https://acme.example/v1\"\n";
        let file = settings(text);
        let cmd = apply(super::super::Cli::command(), &file).unwrap();
        let m = cmd
            .try_get_matches_from(["xagent", "config", "check", "--smtp-host", "mail.example"])
            .unwrap();
        let c = m
            .subcommand_matches("config")
            .and_then(|c| c.subcommand_matches("check"))
            .unwrap();
        let out = report(
            &super::super::Cli::command(),
            c,
            Some(&(PathBuf::from("x.toml"), file)),
        );
        for secret in ["hunter2", "c2VjcmV0", "sk-acme"] {
            assert!(!out.contains(secret), "{secret} shown:\n{out}");
        }
        let line = |key: &str| {
            out.lines()
                .find(|l| l.split_whitespace().next() == Some(key))
                .unwrap_or_else(|| panic!("no {key} in\n{out}"))
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(line("public_url"), "https://x.example file");
        assert_eq!(line("smtp_password"), "(set, hidden) file");
        assert_eq!(line("smtp_host"), "mail.example command line (--smtp-host)");
        assert_eq!(line("smtp_username"), "(not set) not set");
        assert_eq!(line("listen"), "127.0.0.1:8080 default");
        assert_eq!(line("providers.acme.api_key"), "(set, hidden) file");
        assert_eq!(
            line("providers.acme.base_url"),
            "https://acme.example/v1 file"
        );
        assert!(out.starts_with("configuration file: x.toml\n"), "{out}");
        // Every setting has its line.
        for key in FileSettings::FLAG_KEYS {
            line(key);
        }
        line("master_key");
    }
}
