//! 10,000 concurrent keep-alive connections against a running server (see
//! `benches/c10k.sh`, which seeds, starts the release server and runs this).
//!
//! `c10k seed DATA_DIR`: builds `DATA_DIR/xagent.db` (the data set of
//! `benches/common/dataset.rs`) and `DATA_DIR/{tokens,agents}.tsv`.
//!
//! `c10k run ADDR DATA_DIR [connections] [seconds] [ramp_seconds] [list_percent]`: opens
//! `connections` keep-alive HTTP/1.1 connections to ADDR (127.0.0.1 only), spread over
//! the users of `tokens.tsv` (one API token per connection, cycling), ramped over
//! `ramp_seconds`; each connection sends one request about once a second (0.5–1.5 s apart,
//! uniformly) for `seconds` after the ramp: `GET /api/v1/orgs/{org}/agents?limit=20`
//! (`list_percent` % of them) or `GET /api/v1/orgs/{org}/agents/{id}` of an agent the
//! user can read. Every latency (request written → response read) and every error is
//! recorded. Everything stops by itself.
//!
//! Without arguments (e.g. from a plain `cargo bench`) it prints this usage and exits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/dataset.rs"]
#[allow(dead_code)]
mod dataset;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.first().map(String::as_str) {
        Some("seed") => seed(Path::new(&args[1])),
        Some("run") => run(&args[1..]),
        _ => println!(
            "c10k: nothing to do (usage: c10k seed DIR | c10k run ADDR DIR [conns] [secs] [ramp] [list%]; see benches/c10k.sh)"
        ),
    }
}

fn seed(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join("xagent.db");
    assert!(!db.exists(), "{} exists", db.display());
    let started = Instant::now();
    let m = dataset::build(&db, Some(dir));
    println!(
        "c10k: seeded {} organizations, {} users, {} agents in {:.1} s ({} MB); bench user {}",
        m.org_ids.len(),
        dataset::USERS + 1,
        dataset::AGENTS,
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&db)
            .map(|x| x.len() / 1_000_000)
            .unwrap_or(0),
        m.bench_user_id
    );
}

struct User {
    token: String,
    org: String,
}

#[derive(Default)]
struct Counters {
    open: AtomicU64,
    max_open: AtomicU64,
    sent: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
}

#[derive(Default)]
struct Outcome {
    /// Latencies in microseconds of the requests sent in the measured window.
    latencies: Vec<u32>,
    requests: u64,
    errors: BTreeMap<String, u64>,
    reconnects: u64,
    connected: bool,
    late: u64,
}

fn run(args: &[String]) {
    let addr: SocketAddr = args[0].parse().unwrap();
    assert!(addr.ip().is_loopback(), "loopback only");
    let dir = PathBuf::from(&args[1]);
    let arg = |i: usize, d: u64| args.get(i).map_or(d, |s| s.parse().unwrap());
    let conns = arg(2, 10_000) as usize;
    let secs = arg(3, 60);
    let ramp = arg(4, 10);
    let list_percent = arg(5, 50);

    match rlimit::increase_nofile_limit(65_536) {
        Ok(n) => println!("c10k: client open-file limit {n}"),
        Err(e) => println!("c10k: cannot raise the open-file limit: {e}"),
    }
    let users: Vec<User> = std::fs::read_to_string(dir.join("tokens.tsv"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.split('\t');
            User {
                token: f.next().unwrap().to_owned(),
                org: f.next().unwrap().to_owned(),
            }
        })
        .collect();
    let mut agents: HashMap<String, Vec<String>> = HashMap::new();
    for l in std::fs::read_to_string(dir.join("agents.tsv"))
        .unwrap()
        .lines()
    {
        let (o, a) = l.split_once('\t').unwrap();
        agents.entry(o.to_owned()).or_default().push(a.to_owned());
    }
    let users = Arc::new(users);
    let agents = Arc::new(agents);
    println!(
        "c10k: {conns} connections over {} users, ramp {ramp} s, then {secs} s at ~1 request/s each ({list_percent} % list, rest get), target {addr}",
        users.len().min(conns)
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let counters = Arc::new(Counters::default());
        let t0 = tokio::time::Instant::now();
        let window_start = t0 + Duration::from_secs(ramp);
        let deadline = window_start + Duration::from_secs(secs);
        let mut tasks = Vec::with_capacity(conns);
        for i in 0..conns {
            let (users, agents, counters) = (users.clone(), agents.clone(), counters.clone());
            let connect_at = t0 + Duration::from_secs(ramp) * i as u32 / conns as u32;
            tasks.push(tokio::spawn(async move {
                let user = &users[i % users.len()];
                let ids = agents.get(&user.org).cloned().unwrap_or_default();
                connection(
                    i as u64,
                    addr,
                    user,
                    &ids,
                    list_percent as usize,
                    connect_at,
                    window_start,
                    deadline,
                    &counters,
                )
                .await
            }));
        }
        // Progress, once a second, until the deadline.
        let progress = {
            let counters = counters.clone();
            tokio::spawn(async move {
                let mut last = 0;
                let mut t = t0;
                while t < deadline {
                    t += Duration::from_secs(1);
                    sleep_until(t).await;
                    let done = counters.done.load(Ordering::Relaxed);
                    println!(
                        "c10k: t={:>3}s open={:>5} req/s={:>6} errors={} ",
                        (t - t0).as_secs(),
                        counters.open.load(Ordering::Relaxed),
                        done - last,
                        counters.errors.load(Ordering::Relaxed)
                    );
                    last = done;
                }
            })
        };
        let mut total = Outcome::default();
        let mut connected = 0;
        for t in tasks {
            // Every task ends by itself at the deadline (+ at most one request timeout).
            let o = t.await.unwrap();
            connected += usize::from(o.connected);
            total.latencies.extend(o.latencies);
            total.requests += o.requests;
            total.reconnects += o.reconnects;
            total.late += o.late;
            for (k, v) in o.errors {
                *total.errors.entry(k).or_default() += v;
            }
        }
        progress.await.unwrap();
        report(&total, connected, conns, &counters, secs);
    });
}

fn report(total: &Outcome, connected: usize, conns: usize, c: &Counters, secs: u64) {
    let mut l = total.latencies.clone();
    l.sort_unstable();
    let pct = |p: f64| -> f64 {
        if l.is_empty() {
            return f64::NAN;
        }
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        f64::from(l[i]) / 1000.0
    };
    let errors: u64 = total.errors.values().sum();
    println!("c10k: ---- result");
    println!(
        "c10k: connections established {connected} / {conns}; most open at once {}; reconnects {}",
        c.max_open.load(Ordering::Relaxed),
        total.reconnects
    );
    println!(
        "c10k: requests {} (all phases), {} sent in the {secs} s window = {:.0} req/s; responses that arrived after the next request was due {}",
        total.requests,
        l.len(),
        l.len() as f64 / secs as f64,
        total.late
    );
    println!("c10k: errors {errors} {:?}", total.errors);
    println!(
        "c10k: latency ms (window): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    let _ = c.sent.load(Ordering::Relaxed);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn open(addr: SocketAddr, c: &Counters) -> std::io::Result<TcpStream> {
    let s = timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
    s.set_nodelay(true)?;
    let n = c.open.fetch_add(1, Ordering::Relaxed) + 1;
    c.max_open.fetch_max(n, Ordering::Relaxed);
    Ok(s)
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    i: u64,
    addr: SocketAddr,
    user: &User,
    agent_ids: &[String],
    list_percent: usize,
    connect_at: tokio::time::Instant,
    window_start: tokio::time::Instant,
    deadline: tokio::time::Instant,
    c: &Counters,
) -> Outcome {
    let mut out = Outcome::default();
    let mut rng = Rng(0xc10c ^ i.wrapping_mul(0x1234_5678_9abc_def1));
    sleep_until(connect_at).await;
    let err = |out: &mut Outcome, kind: String| {
        *out.errors.entry(kind).or_default() += 1;
        c.errors.fetch_add(1, Ordering::Relaxed);
    };
    let mut stream = match open(addr, c).await {
        Ok(s) => Some(s),
        Err(e) => {
            err(&mut out, format!("connect: {:?}", e.kind()));
            None
        }
    };
    out.connected = stream.is_some();
    let host = format!("Host: {addr}\r\nAuthorization: Bearer {}\r\n", user.token);
    let mut buf = Vec::with_capacity(16 * 1024);
    // First request at a random point of the first second after connecting.
    let mut next = tokio::time::Instant::now() + Duration::from_millis(rng.below(1000));
    loop {
        if next >= deadline {
            break;
        }
        sleep_until(next).await;
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let path = if agent_ids.is_empty() || (rng.below(100) as usize) < list_percent {
            format!("/api/v1/orgs/{}/agents?limit=20", user.org)
        } else {
            let a = &agent_ids[rng.below(agent_ids.len() as u64) as usize];
            format!("/api/v1/orgs/{}/agents/{a}", user.org)
        };
        next += Duration::from_millis(500 + rng.below(1001));
        if stream.is_none() {
            out.reconnects += 1;
            match open(addr, c).await {
                Ok(s) => stream = Some(s),
                Err(e) => {
                    err(&mut out, format!("connect: {:?}", e.kind()));
                    continue;
                }
            }
        }
        let s = stream.as_mut().unwrap();
        let req = format!("GET {path} HTTP/1.1\r\n{host}Accept: application/json\r\n\r\n");
        let sent = tokio::time::Instant::now();
        c.sent.fetch_add(1, Ordering::Relaxed);
        let result = timeout(REQUEST_TIMEOUT, async {
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("write: {:?}", e.kind()))?;
            read_response(s, &mut buf).await
        })
        .await;
        let elapsed = sent.elapsed();
        out.requests += 1;
        c.done.fetch_add(1, Ordering::Relaxed);
        let keep = match result {
            Err(_) => {
                err(&mut out, "timeout (30 s)".into());
                false
            }
            Ok(Err(kind)) => {
                err(&mut out, kind);
                false
            }
            Ok(Ok((status, close))) => {
                if !(200..300).contains(&status) {
                    err(&mut out, format!("status {status}"));
                }
                if sent >= window_start {
                    out.latencies
                        .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                }
                if close {
                    err(&mut out, "server closed the connection".into());
                }
                !close
            }
        };
        // Closed loop: one request in flight per connection; an overloaded server is not
        // sent a burst of catch-up requests.
        let now = tokio::time::Instant::now();
        if next < now {
            // The response came after the next request was due: the schedule slips.
            out.late += 1;
            next = now;
        }
        if !keep {
            stream = None;
            c.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
    if stream.is_some() {
        c.open.fetch_sub(1, Ordering::Relaxed);
    }
    out
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns (status, connection
/// closes).
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, bool), String> {
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {:?}", e.kind()))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "closed by server before a response".into()
            } else {
                "closed by server mid-response".into()
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "bad response head")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let mut len = None;
    let mut close = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                close = true;
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                return Err(format!("unsupported transfer-encoding {v}"));
            }
        }
    }
    let len = len.ok_or("no content-length")?;
    while buf.len() < head_end + len {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {:?}", e.kind()))?;
        if n == 0 {
            return Err("closed by server mid-body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, close))
}
