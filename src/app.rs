//! Assembly: open the database, build the router, bind, serve, shut down cleanly.
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, TcpSocket};

use crate::config::Config;
use crate::crypto::Keyring;
use crate::db::{DataDirLock, Db, DbError, LockError, Upgrade};
use crate::http::{self, state::AppState};
use crate::services::{Services, identity};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Another server (or a restore) holds the data directory.
    #[error("{0}")]
    Locked(#[from] LockError),
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("master key: {0}")]
    Keys(String),
    #[error("{0}")]
    Upstream(String),
}

/// A built application: data directory locked, database open and migrated, port bound,
/// not yet serving.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    /// The separate metrics listener (`--metrics-listen`) and its address.
    metrics: Option<(TcpListener, SocketAddr)>,
    state: AppState,
    /// Held until the server has stopped and checkpointed the database.
    lock: DataDirLock,
}

/// Creates the data directory (mode 0700) when missing.
pub fn ensure_data_dir(dir: &Path) -> Result<(), StartError> {
    let err = |source| StartError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(err)?;
    }
    Ok(())
}

/// The data directory and the files in it that others than their owner can read: they
/// hold password hashes and the master key, so each is worth a warning at start.
pub fn exposed_paths(dir: &Path) -> Vec<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let files = [
            "xagent.db",
            "xagent.db-wal",
            "xagent.db-shm",
            crate::crypto::KEY_FILE,
        ];
        std::iter::once(dir.to_path_buf())
            .chain(files.iter().map(|f| dir.join(f)))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o077 != 0))
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Vec::new()
    }
}

/// Thousands of concurrent clients need more sockets than the usual soft limit of 1024.
/// Raises the limit as far as the hard limit allows, and says what it got.
fn raise_open_file_limit() {
    const WANTED: u64 = 65_536;
    match rlimit::increase_nofile_limit(WANTED) {
        Ok(n) if n >= WANTED => tracing::info!(limit = n, "open-file limit"),
        Ok(n) => tracing::warn!(
            limit = n,
            wanted = WANTED,
            "open-file limit is low: fewer concurrent connections can be served (raise the hard limit, e.g. LimitNOFILE in the systemd unit)"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    // tokio's default backlog (1024) overflows when thousands of clients connect at once.
    socket.listen(4096)
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        ensure_data_dir(&config.data_dir)?;
        // Before anything else: one server per data directory, and no restore under a
        // running server.
        let lock = DataDirLock::try_acquire(&config.data_dir)?;
        raise_open_file_limit();
        for path in exposed_paths(&config.data_dir) {
            tracing::warn!(
                path = %path.display(),
                "readable by other users: it holds password hashes and keys (chmod 700 the data directory, 600 its files)"
            );
        }
        crate::services::backups::remove_stale_temp_copies(&config.data_dir);
        let db_path = config.database_path();
        let upgrade = Upgrade::BackUpInto(config.backup_dir());
        let db = tokio::task::spawn_blocking(move || Db::open_with(&db_path, &upgrade))
            .await
            .map_err(|_| DbError::TaskFailed)??;
        let keyring = Keyring::load(
            config.master_key.as_ref().map(|k| k.expose()),
            &config.data_dir,
        )
        .map_err(|e| StartError::Keys(e.to_string()))?;
        let listener = bind(config.listen).map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let metrics = match config.metrics_listen {
            Some(at) => {
                let l = bind(at).map_err(|source| StartError::Listen { addr: at, source })?;
                let bound = l
                    .local_addr()
                    .map_err(|source| StartError::Listen { addr: at, source })?;
                Some((l, bound))
            }
            None => None,
        };
        let base_url = config.base_url(addr);
        let svc = Services::new(db, keyring, &config, base_url).map_err(StartError::Upstream)?;
        let rewrapped = crate::services::llm::check_and_rewrap(&svc)
            .await
            .map_err(StartError::Keys)?;
        if rewrapped > 0 {
            tracing::info!(
                data_keys = rewrapped,
                master_key = svc.keyring.current().id(),
                "re-wrapped data keys under the current master key"
            );
        }
        let extractor = crate::services::knowledge::extract::Extractor {
            exe: match &config.extractor_exe {
                Some(p) => p.clone(),
                None => std::env::current_exe().map_err(|e| {
                    StartError::Upstream(format!(
                        "cannot find this executable for text extraction: {e}"
                    ))
                })?,
            },
            timeout: config.extract_timeout,
        };
        let knowledge = crate::services::knowledge::Knowledge::new(extractor);
        let started = std::time::Instant::now();
        let vectors = crate::services::knowledge::load(&svc, &knowledge)
            .await
            .map_err(|e| StartError::Upstream(format!("loading the vector index: {e}")))?;
        if vectors > 0 {
            tracing::info!(
                vectors,
                ms = started.elapsed().as_millis() as u64,
                "vector index loaded"
            );
        }
        let state = AppState::new(svc, config, knowledge);
        Ok(Self {
            listener,
            addr,
            metrics,
            state,
            lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the separate metrics listener is bound, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
    }

    pub fn base_url(&self) -> &str {
        &self.state.svc.base_url
    }

    pub fn db(&self) -> &Db {
        &self.state.svc.db
    }

    pub fn services(&self) -> &Services {
        &self.state.svc
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes; then finishes in-flight requests, stops the
    /// background tasks and checkpoints the database.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let cleanup = tokio::spawn(background_cleanup(state.clone()));
        let webhooks = tokio::spawn(crate::services::webhooks::run(
            state.svc.clone(),
            state.config.webhook_tick,
            state.config.webhook_retry_base,
        ));
        let indexer = tokio::spawn(crate::services::knowledge::run_indexer(
            state.svc.clone(),
            state.gateway.models.clone(),
            state.knowledge.clone(),
            state.config.indexer_poll,
        ));
        if let Ok(addr) = self.listener.local_addr() {
            state.runner.listening_on(addr.port());
        }
        let runner = tokio::spawn(crate::services::workflows::run_forever(state.engine()));
        // Serves until the main listener stops; it holds no request that needs finishing.
        let metrics = self.metrics.map(|(listener, at)| {
            tracing::info!(addr = %at, "metrics listening");
            let router = http::metrics::separate_router(state.svc.metrics.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            })
        });
        let backups = tokio::spawn(crate::services::backups::run_scheduled(state.svc.clone()));
        let lock = self.lock;
        let router = http::router(self.state);
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop)
        .await;
        cleanup.abort();
        webhooks.abort();
        indexer.abort();
        runner.abort();
        if let Some(m) = metrics {
            m.abort();
        }
        backups.abort();
        tracing::info!("stopped accepting; flushing the database");
        // Usage of the calls answered so far is written before the writer stops.
        state.gateway.models.meter.flush().await;
        // A backup under way holds a read snapshot, which would keep the final
        // checkpoint from emptying the WAL.
        state.svc.backups.wait_idle().await;
        if let Err(e) = state.svc.db.shutdown().await {
            tracing::error!(error = %e, "database shutdown");
        }
        drop(lock);
        served
    }

    /// Prints where to go and, on an empty instance, how to create the first admin.
    pub async fn announce(&self) {
        let url = self.base_url().to_string();
        println!("xagent {} listening on {url}", crate::VERSION);
        let migrated = self.db().migrated();
        if let (Some(from), Some(copy)) = (migrated.from, &migrated.pre_upgrade_backup) {
            println!(
                "upgraded the database from schema version {from} to {}; the copy taken before is {}",
                migrated.to,
                copy.path.display()
            );
        }
        tracing::info!(url = %url, "listening");
        if identity::user_count(self.services()).await.unwrap_or(1) == 0 {
            let command = self.state.config.create_user_command();
            println!(
                "\nThis instance has no users yet. Create the first administrator with:\n\n    \
                 {command}\n\n\
                 (type the password and press Enter), then sign in at {url}/login\n"
            );
        }
    }
}

/// Periodic upkeep: dead sessions, invoices of closed periods, finished invitations, audit
/// retention. Each step is idempotent, so a missed or repeated tick (restart, sleep) does
/// no harm.
async fn background_cleanup(state: AppState) {
    let mut every = tokio::time::interval(state.config.maintenance_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match identity::purge_dead_sessions(&state.svc, state.session_policy()).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "expired sessions removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "session cleanup failed"),
        }
        match crate::services::invoices::close_periods(&state.svc, state.svc.now()).await {
            Ok(n) if n > 0 => tracing::info!(issued = n, "invoices issued for closed periods"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "closing billing periods failed"),
        }
        match crate::services::invitations::purge_finished(&state.svc, state.svc.now()).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "finished invitations removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "invitation cleanup failed"),
        }
        match crate::services::sso::purge_expired_logins(&state.svc).await {
            Ok(n) if n > 0 => {
                tracing::info!(removed = n, "expired single sign-on attempts removed");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "single sign-on cleanup failed"),
        }
        match crate::services::audit::purge_expired(&state.svc).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "audit rows past retention purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit retention failed"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
