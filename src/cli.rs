//! The command line. Every verb takes `--data-dir` and works while a server runs on the
//! same directory (SQLite does the locking), except `restore`, which needs the server
//! stopped, and `migrate` when there is something to migrate. Every verb reads the
//! configuration file given by `--config` or `XAGENT_CONFIG` (`file_config`).
mod file_config;

use crate::services::Services;
use std::ffi::OsString;
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::app::{Application, ensure_data_dir};
use crate::config::file::FileSettings;
use crate::config::{Config, Secret, SmtpConfig, SmtpTls};
use crate::db::{self, DataDirLock, Db, LockError, Upgrade};
use crate::services::{ClientMeta, identity};
use crate::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "xagent",
    version,
    about = "The organization layer of the xAgent platform: one binary, one database file."
)]
struct Cli {
    /// A TOML configuration file; its settings are the defaults of the flags of the same
    /// name (flags and environment variables win).
    #[arg(long, global = true, env = "XAGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Where the database and key files live.
    #[arg(long, global = true, env = "XAGENT_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Log filter, e.g. `info`, `debug`, `xagent=debug,tower_http=info`.
    #[arg(long, global = true, env = "XAGENT_LOG", default_value = "info")]
    log: String,
    /// Log line format.
    #[arg(long, global = true, env = "XAGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Where scheduled backups and the backups taken before a schema upgrade are written
    /// (default: DATA_DIR/backups).
    #[arg(long, global = true, env = "XAGENT_BACKUP_DIR")]
    backup_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Instance administration.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Import users and their resources from a single-user install's export (a JSON file,
    /// README "Import from a single-user install") into their personal organizations. Safe to run again: what
    /// was imported before is skipped. Exit status 1 when anything was refused.
    Import {
        /// The file to import.
        file: PathBuf,
    },
    /// Write a consistent copy of the live database to FILE.
    Backup {
        /// Destination file (must not exist).
        file: PathBuf,
    },
    /// Replace the database with FILE, a backup. Refused while a server runs on the data
    /// directory; the database it replaces is kept beside it as xagent.db.replaced-TIME.
    Restore {
        /// The backup to restore (checked before anything is replaced).
        file: PathBuf,
    },
    /// Master keys of the stored provider keys (XAGENT_MASTER_KEY, master_key in the
    /// configuration file, or DATA_DIR/master.key).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI description of the HTTP API (the one served at /api/openapi.json).
    Openapi,
    /// The configuration file and the settings in effect.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Read a document's text: its bytes on standard input, the text on standard output.
    /// The server runs this in a child process for each document it indexes.
    #[command(hide = true)]
    ExtractText(ExtractTextArgs),
}

#[derive(Args)]
struct ExtractTextArgs {
    /// The document's content type, e.g. application/pdf.
    #[arg(long = "type")]
    content_type: String,
    /// The document's file name (tells Markdown from other text).
    #[arg(long, default_value = "")]
    filename: String,
    /// The most address space this process may use, in MiB (0: no limit).
    #[arg(long, default_value_t = crate::services::knowledge::extract::MEMORY_LIMIT_MIB)]
    memory_limit_mib: u64,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Show the configured master keys and how many data keys each one wraps.
    List,
    /// Add a new master key to master.key and re-wrap every data key under it. Safe while
    /// the server runs; the previous key stays in the file until `keys retire`.
    Rotate,
    /// Remove from master.key the keys that no data key is wrapped by any more.
    Retire,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the settings `xagent serve` would run with (given the same flags), where each
    /// one comes from, secrets masked; exit status 1 when the configuration is not valid.
    Check(Box<ServeArgs>),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "XAGENT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The URL people use to reach this server (for links); defaults to http://LISTEN.
    #[arg(long, env = "XAGENT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Mark the session cookie Secure (default: when the public URL is https).
    #[arg(long, env = "XAGENT_COOKIE_SECURE")]
    cookie_secure: Option<bool>,
    /// Let organizations point providers and webhooks at private, loopback and link-local
    /// addresses (a model server on this host or network). Off: public addresses only.
    #[arg(long, env = "XAGENT_ALLOW_PRIVATE_TARGETS")]
    allow_private_targets: bool,
    /// Reverse proxies whose X-Forwarded-For is trusted (comma-separated IPs).
    #[arg(long, env = "XAGENT_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<IpAddr>,
    /// Minutes of inactivity after which a session ends.
    #[arg(long, env = "XAGENT_SESSION_IDLE_MINUTES", default_value_t = 24 * 60)]
    session_idle_minutes: u64,
    /// Hours after sign-in after which a session ends regardless of activity.
    #[arg(long, env = "XAGENT_SESSION_MAX_HOURS", default_value_t = 30 * 24)]
    session_max_hours: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "XAGENT_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    body_limit_bytes: usize,
    /// SMTP server for invitation emails (without it, invite links are shown to copy).
    #[arg(long, env = "XAGENT_SMTP_HOST")]
    smtp_host: Option<String>,
    #[arg(long, env = "XAGENT_SMTP_PORT", default_value_t = 587)]
    smtp_port: u16,
    #[arg(long, env = "XAGENT_SMTP_TLS", value_enum, default_value_t = SmtpTls::Starttls)]
    smtp_tls: SmtpTls,
    #[arg(long, env = "XAGENT_SMTP_USERNAME")]
    smtp_username: Option<String>,
    #[arg(long, env = "XAGENT_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// Sender address, e.g. "xagent <noreply@example.com>".
    #[arg(
        long,
        env = "XAGENT_SMTP_FROM",
        default_value = "xagent <noreply@localhost>"
    )]
    smtp_from: String,
    /// Largest document upload, in bytes (plans may allow less).
    #[arg(long, env = "XAGENT_UPLOAD_LIMIT_BYTES", default_value_t = 64 * 1024 * 1024)]
    upload_limit_bytes: usize,
    /// Seconds a request may take before it is answered 408.
    #[arg(long, env = "XAGENT_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
    /// Serve Prometheus metrics at GET /metrics on the main address to requests with
    /// `Authorization: Bearer <this token>` (without it, and without --metrics-listen,
    /// /metrics is 404).
    #[arg(long, env = "XAGENT_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Also serve GET /metrics, without a token, on this address (e.g. 127.0.0.1:9464).
    #[arg(long, env = "XAGENT_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// How often to write a backup into the backup directory: a number and a unit (90s,
    /// 30m, 6h, 1d; a bare number is minutes); 0 or off: no scheduled backups.
    #[arg(long, env = "XAGENT_BACKUP_INTERVAL", default_value = "off", value_parser = parse_interval)]
    backup_interval: Interval,
    /// How many scheduled backups to keep; older ones are deleted.
    #[arg(long, env = "XAGENT_BACKUP_KEEP", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    backup_keep: u32,
}

/// `--backup-interval`, parsed (`None`: off).
#[derive(Clone, Copy)]
struct Interval(Option<std::time::Duration>);

fn parse_interval(text: &str) -> Result<Interval, String> {
    crate::config::parse_backup_interval(text).map(Interval)
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chains and report the first broken link (exit status 1 if any).
    Verify {
        /// Only this organization (id or slug); default: the instance and every organization.
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user and their personal organization.
    CreateUser {
        #[arg(long)]
        email: String,
        /// Display name (defaults to the part of the email before @).
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Make the user an instance administrator.
        #[arg(long)]
        superuser: bool,
    },
    /// Print a one-time link with which the user sets a new password (valid 24 hours).
    ResetPassword {
        #[arg(long)]
        email: String,
        /// The URL people use to reach the server, for the link (default: the
        /// configuration file's public_url, else http://127.0.0.1:8080).
        #[arg(long, env = "XAGENT_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// Allow or forbid open sign-up over HTTP.
    Signup {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let parsed = match parse(&args) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let cli = parsed.cli;
    // The document reader writes text, not logs, and needs no runtime.
    if let Command::ExtractText(a) = &cli.command {
        return crate::services::knowledge::extract::run_child(
            &a.content_type,
            &a.filename,
            a.memory_limit_mib,
        );
    }
    telemetry::init(&cli.log, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let file = parsed.file;
    let matches = parsed.matches;
    match runtime.block_on(run(cli, file, matches)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command line read with the configuration file's settings as defaults.
struct Parsed {
    cli: Cli,
    /// The file and its path, when there is one.
    file: Option<(PathBuf, FileSettings)>,
    matches: ArgMatches,
}

/// Reads the command line twice: once to learn which configuration file to read (help,
/// version and usage errors end the process here, as clap does), then with the file's
/// values as the flags' defaults. Errors are the file's.
fn parse(args: &[OsString]) -> Result<Parsed, String> {
    let first = Cli::command()
        .try_get_matches_from(args)
        .unwrap_or_else(|e| e.exit());
    // The document reader is a child of the server: the server already read the file.
    let reads_file = first.subcommand_name() != Some("extract-text");
    let path = first
        .get_one::<PathBuf>("config")
        .filter(|_| reads_file)
        .cloned();
    let (command, file) = match path {
        None => (Cli::command(), None),
        Some(path) => {
            let settings = FileSettings::load(&path).map_err(|e| e.to_string())?;
            let command = file_config::apply(Cli::command(), &settings)
                .map_err(|e| format!("configuration file {}: {e}", path.display()))?;
            (command, Some((path, settings)))
        }
    };
    let matches = command
        .try_get_matches_from(args)
        .unwrap_or_else(|e| e.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok(Parsed { cli, file, matches })
}

/// The master keys: `XAGENT_MASTER_KEY`, else the file's `master_key`, else none (the key
/// file in the data directory).
fn master_key(file: Option<&FileSettings>) -> Option<String> {
    std::env::var("XAGENT_MASTER_KEY")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| file.and_then(|f| f.master_key.clone()))
}

/// What `xagent serve` runs with: the flags as parsed (the file's values are their
/// defaults) and the settings without a flag, where the environment wins over the file.
fn serve_config(
    data_dir: PathBuf,
    log: String,
    log_format: LogFormat,
    backup_dir: Option<PathBuf>,
    a: ServeArgs,
    file: Option<&FileSettings>,
) -> Config {
    let mut config = Config::new(data_dir);
    config.listen = a.listen;
    config.public_url = a.public_url;
    config.log = log;
    config.log_format = log_format;
    config.cookie_secure = a.cookie_secure;
    config.trusted_proxies = a.trusted_proxies;
    if a.allow_private_targets {
        config.targets = crate::services::outbound::TargetPolicy::AllowPrivate;
    }
    config.session_idle = std::time::Duration::from_secs(a.session_idle_minutes.max(1) * 60);
    config.session_max_age = std::time::Duration::from_secs(a.session_max_hours.max(1) * 3600);
    config.body_limit_bytes = a.body_limit_bytes;
    config.upload_limit_bytes = a.upload_limit_bytes;
    config.request_timeout = std::time::Duration::from_secs(a.request_timeout_secs.max(1));
    config.master_key = master_key(file).map(Secret::new);
    config.metrics_token = a
        .metrics_token
        .filter(|t| !t.trim().is_empty())
        .map(|t| Secret::new(t.trim()));
    config.metrics_listen = a.metrics_listen;
    config.backup_dir = backup_dir;
    config.backup_interval = a.backup_interval.0;
    config.backup_keep = a.backup_keep as usize;
    config.env_providers = crate::config::merge_providers(
        crate::config::env_providers(std::env::vars()),
        file.map(|f| &f.providers),
    );
    config.smtp = a.smtp_host.map(|host| SmtpConfig {
        host,
        port: a.smtp_port,
        tls: a.smtp_tls,
        username: a.smtp_username,
        password: a.smtp_password.map(Secret::new),
        from: a.smtp_from,
    });
    config
}

async fn run(
    cli: Cli,
    file: Option<(PathBuf, FileSettings)>,
    matches: ArgMatches,
) -> Result<(), String> {
    let master = master_key(file.as_ref().map(|(_, f)| f));
    let backups = backup_dir(&cli.data_dir, cli.backup_dir.clone());
    match cli.command {
        Command::Serve(a) => {
            let settings = file.as_ref().map(|(_, f)| f);
            let config = serve_config(
                cli.data_dir,
                cli.log,
                cli.log_format,
                cli.backup_dir,
                *a,
                settings,
            );
            config.validate().map_err(|problems| problems.join("; "))?;
            let app = Application::build(config)
                .await
                .map_err(|e| e.to_string())?;
            app.announce().await;
            app.run_until_stopped().await.map_err(|e| e.to_string())
        }
        Command::Config(ConfigCommand::Check(a)) => {
            let settings = file.as_ref().map(|(_, f)| f);
            let check = matches
                .subcommand_matches("config")
                .and_then(|m| m.subcommand_matches("check"))
                .ok_or_else(|| "the command line was not read".to_string())?;
            print!(
                "{}",
                file_config::report(&Cli::command(), check, file.as_ref())
            );
            let config = serve_config(
                cli.data_dir,
                cli.log,
                cli.log_format,
                cli.backup_dir,
                *a,
                settings,
            );
            match config.validate() {
                Ok(()) => {
                    println!("the configuration is valid");
                    Ok(())
                }
                Err(problems) => Err(format!(
                    "the configuration is not valid: {}",
                    problems.join("; ")
                )),
            }
        }
        Command::Migrate => {
            ensure_data_dir(&cli.data_dir).map_err(|e| e.to_string())?;
            let (lock, upgrade) = upgrade_mode(&cli.data_dir, backups)?;
            let path = cli.data_dir.join("xagent.db");
            let m = tokio::task::spawn_blocking(move || {
                let m = db::migrate_with(&path, &upgrade);
                drop(lock);
                m
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            if let (Some(from), Some(copy)) = (m.from, &m.pre_upgrade_backup) {
                println!(
                    "backed up the database (schema version {from}) to {}",
                    copy.path.display()
                );
            }
            if m.applied.is_empty() {
                println!("database is up to date (schema version {})", m.to);
            } else {
                for applied in m.applied {
                    println!("applied {applied}");
                }
            }
            Ok(())
        }
        Command::Backup { file } => {
            let src = cli.data_dir.join("xagent.db");
            if !src.exists() {
                return Err(format!("no database at {}", src.display()));
            }
            let copy = tokio::task::spawn_blocking(move || db::backup(&src, &file))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            println!(
                "backup written to {} ({} bytes, schema version {})",
                copy.path.display(),
                copy.bytes,
                copy.schema_version.unwrap_or(0)
            );
            Ok(())
        }
        Command::Restore { file } => restore(&cli.data_dir, file).await,
        Command::Import { file: path } => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let parsed = crate::services::import::ImportFile::parse(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let source = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let svc = services(cli.data_dir, master, backups).await?;
            let report = crate::services::import::import(&svc, parsed, &source).await;
            let _ = svc.db.shutdown().await;
            // Not print!: a reader that went away (`| head`) is no reason to panic.
            let _ = std::io::Write::write_all(
                &mut std::io::stdout().lock(),
                report.to_string().as_bytes(),
            );
            if report.complete() {
                Ok(())
            } else {
                Err("some users or items were not imported (see above); fix them and run the import again: what was imported is skipped".into())
            }
        }
        Command::Openapi => {
            println!("{}", crate::http::api::openapi::DOCUMENT.as_str());
            Ok(())
        }
        // Handled before the runtime starts.
        Command::ExtractText(_) => Ok(()),
        Command::Admin(cmd) => {
            let file_url = file.as_ref().and_then(|(_, f)| {
                f.public_url
                    .clone()
                    .or_else(|| f.listen.as_ref().map(|l| format!("http://{l}")))
            });
            admin(cli.data_dir, master, backups, file_url, cmd).await
        }
        Command::Keys(cmd) => keys(cli.data_dir, master, backups, cmd).await,
        Command::Audit(AuditCommand::Verify { org }) => {
            let svc = services(cli.data_dir, master, backups).await?;
            let reports = crate::services::audit::verify(&svc, org)
                .await
                .map_err(describe);
            let _ = svc.db.shutdown().await;
            let reports = reports?;
            let mut broken = 0;
            for r in &reports {
                match &r.broken {
                    None => println!("ok      {} — {} rows", r.scope, r.rows),
                    Some((seq, id, why)) => {
                        broken += 1;
                        println!(
                            "BROKEN  {} — first broken link at seq {seq} (row {id}): {why}",
                            r.scope
                        );
                    }
                }
            }
            if broken > 0 {
                Err(format!(
                    "{broken} of {} audit chains are broken",
                    reports.len()
                ))
            } else {
                println!("all {} audit chains verified", reports.len());
                Ok(())
            }
        }
    }
}

async fn keys(
    dir: PathBuf,
    master: Option<String>,
    backups: PathBuf,
    cmd: KeysCommand,
) -> Result<(), String> {
    use crate::services::llm;
    let svc = services(dir, master, backups).await?;
    let ring = &svc.keyring;
    let out = async {
        match cmd {
            KeysCommand::List => {
                let used = llm::master_keys_in_use(&svc).await.map_err(describe)?;
                for (i, id) in ring.ids().iter().enumerate() {
                    let role = if i == 0 { "current" } else { "older" };
                    let state = if used.contains(id) { "in use" } else { "unused" };
                    println!("{id}  {role}, {state}");
                }
                Ok(())
            }
            KeysCommand::Rotate => {
                let new = ring.rotate().map_err(|e| e.to_string())?;
                let n = llm::rewrap_all(&svc).await.map_err(describe)?;
                println!(
                    "new master key {}; {n} data keys re-wrapped. The older keys stay in master.key until `xagent keys retire`.",
                    new.id()
                );
                Ok(())
            }
            KeysCommand::Retire => {
                let used = llm::master_keys_in_use(&svc).await.map_err(describe)?;
                let gone = ring.retire_except(&used).map_err(|e| e.to_string())?;
                if gone.is_empty() {
                    println!("nothing to retire");
                } else {
                    println!("retired {}", gone.join(", "));
                }
                Ok(())
            }
        }
    }
    .await;
    let _ = svc.db.shutdown().await;
    out
}

/// The services a command runs on: the data directory's database and master keys (from
/// XAGENT_MASTER_KEY, the configuration file's master_key or master.key, as the server
/// reads them).
async fn services(
    dir: PathBuf,
    master: Option<String>,
    backups: PathBuf,
) -> Result<Services, String> {
    let db = open_db(dir.clone(), backups.clone()).await?;
    let made = crate::crypto::Keyring::load(master.as_deref(), &dir)
        .map_err(|e| e.to_string())
        .and_then(|ring| {
            let mut config = crate::config::Config::new(dir);
            config.backup_dir = Some(backups);
            let base_url = config.base_url(config.listen);
            Services::new(db.clone(), ring, &config, base_url)
        });
    if made.is_err() {
        let _ = db.shutdown().await;
    }
    made
}

/// Opens the data directory's database for a command. While no server runs, the command
/// holds the data directory as it opens, so that an upgrade (backup, then migrations) is
/// its alone; while one runs, a database that would need migrating is refused.
async fn open_db(dir: PathBuf, backups: PathBuf) -> Result<Db, String> {
    ensure_data_dir(&dir).map_err(|e| e.to_string())?;
    let (lock, upgrade) = upgrade_mode(&dir, backups)?;
    let path = dir.join("xagent.db");
    tokio::task::spawn_blocking(move || {
        let db = Db::open_with(&path, &upgrade);
        drop(lock);
        db
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// `--backup-dir` (or `XAGENT_BACKUP_DIR`), else `DATA_DIR/backups`.
fn backup_dir(data_dir: &std::path::Path, flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| data_dir.join("backups"))
}

/// The data directory's lock if no server holds it, and what opening may do to an older
/// schema accordingly.
fn upgrade_mode(
    dir: &std::path::Path,
    backups: PathBuf,
) -> Result<(Option<DataDirLock>, Upgrade), String> {
    match DataDirLock::try_acquire(dir) {
        Ok(lock) => Ok((Some(lock), Upgrade::BackUpInto(backups))),
        Err(LockError::Held { .. }) => Ok((None, Upgrade::Refuse)),
        Err(e) => Err(e.to_string()),
    }
}

async fn restore(dir: &std::path::Path, file: PathBuf) -> Result<(), String> {
    ensure_data_dir(dir).map_err(|e| e.to_string())?;
    let lock = DataDirLock::try_acquire(dir).map_err(|e| match e {
        LockError::Held { .. } => format!("cannot restore: {e}; stop it first"),
        other => other.to_string(),
    })?;
    let db_path = dir.join("xagent.db");
    let target = db_path.clone();
    let done = tokio::task::spawn_blocking(move || {
        let done = db::restore(&file, &target, &lock);
        drop(lock);
        done
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| match e {
        db::DbError::Refused(why) => format!("cannot restore {why}"),
        other => format!("cannot restore: {other}"),
    })?;
    let version = done.schema.applied.unwrap_or(0);
    println!(
        "restored {} ({} bytes, schema version {version}) as {}",
        done.from.display(),
        done.bytes,
        db_path.display()
    );
    match &done.replaced {
        Some(old) => println!("the database it replaced is kept as {}", old.display()),
        None => println!("there was no database before"),
    }
    if done.schema.needs_upgrade() {
        println!(
            "its schema is older than this xagent's (version {}): the next start backs it up and migrates it",
            done.schema.known
        );
    }
    Ok(())
}

async fn admin(
    dir: PathBuf,
    master: Option<String>,
    backups: PathBuf,
    file_public_url: Option<String>,
    cmd: AdminCommand,
) -> Result<(), String> {
    let mut svc = services(dir, master, backups).await?;
    let meta = ClientMeta {
        ip: None,
        user_agent: Some("xagent-cli".into()),
    };
    let result = match cmd {
        AdminCommand::CreateUser {
            email,
            name,
            password_stdin: _,
            superuser,
        } => {
            let password = read_password()?;
            let name =
                name.unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_string());
            identity::create_user(&svc, &email, &name, &password, superuser, &meta)
                .await
                .map(|(user, org)| {
                    println!(
                        "created {}user {} <{}> with personal organization \"{}\" ({})",
                        if superuser { "super" } else { "" },
                        user.name,
                        user.email,
                        org.name,
                        org.slug
                    );
                })
                .map_err(describe)
        }
        AdminCommand::ResetPassword { email, public_url } => {
            if let Some(url) = public_url.or(file_public_url) {
                svc.base_url = url.trim_end_matches('/').into();
            }
            crate::services::admin::password_reset_link_for_email(&svc, &email)
                .await
                .map(|link| {
                    println!(
                        "a one-time link for {email} to set a new password (it works once, until {}):\n{}",
                        crate::domain::fmt_time(link.expires_at),
                        link.url
                    );
                })
                .map_err(|e| match e {
                    crate::error::AppError::NotFound { .. } => {
                        format!("there is no account with the email {email}")
                    }
                    other => describe(other),
                })
        }
        AdminCommand::Signup { state } => identity::set_signup(&svc, state == "on", None)
            .await
            .map(|()| println!("sign-up is now {state}"))
            .map_err(describe),
    };
    let _ = svc.db.shutdown().await;
    result
}

fn describe(e: crate::error::AppError) -> String {
    match e {
        crate::error::AppError::Internal(cause) => cause,
        other => other.public_message(),
    }
}

/// One line from standard input, without its line ending; nothing else is trimmed.
fn read_password() -> Result<String, String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        // Typed at a terminal: do not echo it.
        return rpassword::prompt_password("Password: ")
            .map_err(|e| format!("cannot read the password: {e}"));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    Ok(pw.to_string())
}
