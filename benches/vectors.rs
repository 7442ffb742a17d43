//! The vector index (`xagent::services::knowledge::Index`) with 384-dimension vectors,
//! k = 10: 10k, 100k and 1M chunks spread over 100 organizations, and 10k, 100k and 1M in
//! one organization's knowledge base. For each: build time (loading, then training),
//! bytes held, query p50 / p99 / max, recall@10 against exact search. On the 1M
//! partition also: exact search's time, a sweep of how many lists a query scans, inserts
//! into the trained partition, and start-up from SQLite (the query `load` runs, on
//! 1M stored rows). Prints markdown tables; see benches/README.md.
//!
//! `cargo bench --bench vectors` (release). `XAGENT_BENCH_VECTORS=small` runs the 10k
//! and 100k cases only; `XAGENT_BENCH_VECTORS_DB=/path.db` puts the SQLite file
//! (2.5 GB, built once) elsewhere than `<target>/bench-data/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use xagent::db::repo::knowledge::vector_from_bytes;
use xagent::domain::{OrgId, ResourceId};
use xagent::services::knowledge::index::{Index, Tuning};

const DIMS: usize = 384;
const K: usize = 10;
/// Chunks per document.
const DOC_CHUNKS: usize = 20;
/// Sub-directions per topic, and how far vectors spread along each.
const SPREAD: [f32; 4] = [0.60, 0.45, 0.30, 0.20];

/// How a data set is drawn.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    /// Average vectors per topic.
    per_topic: usize,
    /// Multiplies `SPREAD`.
    spread: f32,
    /// Noise: its expected norm, spread over all dimensions with a power-law spectrum
    /// (the variance of the j-th dimension ∝ 1/(j+1), about 26 effective dimensions;
    /// the centres are isotropic, so the axes need no rotation).
    noise: f32,
}

/// Topics of 250 vectors, neighbours mostly within their topic.
const TOPICAL: Shape = Shape {
    name: "topical",
    per_topic: 250,
    spread: 1.0,
    noise: 0.6,
};

/// Ten times broader topics, noise twice as strong and over many more dimensions than
/// the topics' own axes: a query's neighbours are spread over many lists.
const DIFFUSE: Shape = Shape {
    name: "diffuse",
    per_topic: 2500,
    spread: 0.5,
    noise: 1.2,
};
/// How much every topic centre leans towards one shared direction (embeddings of one
/// model are not spread over the whole sphere)…
const SHARED: f32 = 0.35;
/// …and towards the centre of its subject (topics come in groups of related ones).
const SUBJECT: f32 = 0.8;
/// Topics per subject.
const SUBJECT_TOPICS: usize = 20;
const LATENCY_QUERIES: usize = 1000;
const RECALL_QUERIES: usize = 300;

/// splitmix64 with a Box–Muller normal.
struct Rng {
    state: u64,
    spare: Option<f32>,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Rng {
            state: seed,
            spare: None,
        }
    }
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn gauss(&mut self) -> f32 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u, v) = (self.unit(), self.unit());
        let r = (-2.0 * u.ln()).sqrt();
        let t = std::f64::consts::TAU * v;
        self.spare = Some((r * t.sin()) as f32);
        (r * t.cos()) as f32
    }
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

fn random_unit(rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS).map(|_| rng.gauss()).collect();
    normalize(&mut v);
    v
}

/// One organization's subjects: topic centres on the unit sphere leaning towards a
/// shared direction, each with its own sub-directions, and uneven sizes (log-normal
/// weights).
struct Topics {
    shape: Shape,
    /// The noise's standard deviation per dimension.
    sigma: Vec<f32>,
    centres: Vec<Vec<f32>>,
    axes: Vec<Vec<Vec<f32>>>,
    /// Cumulative weights.
    weights: Vec<f64>,
}

impl Topics {
    fn new(count: usize, seed: u64, shape: Shape) -> Self {
        let mut rng = Rng::new(seed);
        let shared = random_unit(&mut rng);
        let subjects: Vec<Vec<f32>> = (0..count.div_ceil(SUBJECT_TOPICS))
            .map(|_| random_unit(&mut rng))
            .collect();
        let mut centres = Vec::with_capacity(count);
        let mut axes = Vec::with_capacity(count);
        let mut weights = Vec::with_capacity(count);
        let mut total = 0.0;
        for _ in 0..count {
            let mut c = random_unit(&mut rng);
            let subject = &subjects[rng.below(subjects.len())];
            c.iter_mut()
                .zip(&shared)
                .zip(subject)
                .for_each(|((x, s), u)| *x += SHARED * s + SUBJECT * u);
            normalize(&mut c);
            centres.push(c);
            axes.push(SPREAD.iter().map(|_| random_unit(&mut rng)).collect());
            total += f64::from(rng.gauss()).exp();
            weights.push(total);
        }
        let harmonic: f32 = (1..=DIMS).map(|j| 1.0 / j as f32).sum();
        let sigma = (1..=DIMS)
            .map(|j| shape.noise * (1.0 / (j as f32 * harmonic)).sqrt())
            .collect();
        Topics {
            shape,
            sigma,
            centres,
            axes,
            weights,
        }
    }

    fn topic(&self, rng: &mut Rng) -> usize {
        let total = self.weights[self.weights.len() - 1];
        let at = rng.unit() * total;
        self.weights
            .partition_point(|w| *w < at)
            .min(self.weights.len() - 1)
    }

    /// A vector of topic `t`: centre + spread along its axes + noise, unit.
    fn vector(&self, t: usize, rng: &mut Rng, out: &mut [f32]) {
        out.copy_from_slice(&self.centres[t]);
        for (axis, s) in self.axes[t].iter().zip(SPREAD) {
            let s = s * self.shape.spread;
            let z = rng.gauss() * s;
            out.iter_mut().zip(axis).for_each(|(x, a)| *x += z * a);
        }
        out.iter_mut()
            .zip(&self.sigma)
            .for_each(|(x, s)| *x += rng.gauss() * s);
        normalize(out);
    }

    /// `docs` documents of `DOC_CHUNKS` chunks, each document about one topic (a chunk
    /// in five strays to another), on 2 threads.
    fn documents(&self, docs: usize, seed: u64) -> Vec<f32> {
        let mut out = vec![0f32; docs * DOC_CHUNKS * DIMS];
        let per = docs.div_ceil(2).max(1) * DOC_CHUNKS * DIMS;
        std::thread::scope(|s| {
            for (part, rows) in out.chunks_mut(per).enumerate() {
                s.spawn(move || {
                    let mut rng = Rng::new(seed ^ ((part as u64 + 1) << 40));
                    for doc in rows.chunks_mut(DOC_CHUNKS * DIMS) {
                        let t = self.topic(&mut rng);
                        for v in doc.chunks_mut(DIMS) {
                            let t = if rng.below(5) == 0 {
                                self.topic(&mut rng)
                            } else {
                                t
                            };
                            self.vector(t, &mut rng, v);
                        }
                    }
                });
            }
        });
        out
    }

    fn query(&self, rng: &mut Rng) -> Vec<f32> {
        let mut v = vec![0f32; DIMS];
        let t = self.topic(rng);
        self.vector(t, rng, &mut v);
        v
    }
}

struct Org {
    id: OrgId,
    kb: ResourceId,
    topics: Topics,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn mb(bytes: usize) -> String {
    format!("{:.0}", bytes as f64 / 1e6)
}

fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|l| {
            l.trim()
                .trim_end_matches(" kB")
                .trim()
                .parse::<usize>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Search latency: (p50, p99, max) over `LATENCY_QUERIES` queries of random
/// organizations, one at a time.
fn latency(index: &Index, orgs: &[Org], seed: u64) -> (Duration, Duration, Duration) {
    let mut rng = Rng::new(seed);
    let queries: Vec<(usize, Vec<f32>)> = (0..LATENCY_QUERIES + 50)
        .map(|_| {
            let o = rng.below(orgs.len());
            (o, orgs[o].topics.query(&mut rng))
        })
        .collect();
    let mut times = Vec::with_capacity(LATENCY_QUERIES);
    for (i, (o, q)) in queries.iter().enumerate() {
        let org = &orgs[*o];
        let started = Instant::now();
        let hits = index.search(org.id, org.kb, q, K);
        let took = started.elapsed();
        assert_eq!(hits.len(), K);
        if i >= 50 {
            times.push(took);
        }
    }
    times.sort();
    (
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
    )
}

/// recall@10 of `search` against `search_exact`, over `RECALL_QUERIES` fresh queries.
fn recall(index: &Index, orgs: &[Org], seed: u64) -> f64 {
    let mut rng = Rng::new(seed);
    let (mut found, mut asked) = (0, 0);
    for _ in 0..RECALL_QUERIES {
        let org = &orgs[rng.below(orgs.len())];
        let q = org.topics.query(&mut rng);
        let exact: Vec<i64> = index
            .search_exact(org.id, org.kb, &q, K)
            .iter()
            .map(|h| h.id)
            .collect();
        let got = index.search(org.id, org.kb, &q, K);
        found += exact
            .iter()
            .filter(|id| got.iter().any(|h| h.id == **id))
            .count();
        asked += exact.len();
    }
    found as f64 / asked as f64
}

fn tuning() -> Tuning {
    Tuning {
        background: false,
        ..Tuning::default()
    }
}

struct Built {
    index: Index,
    orgs: Vec<Org>,
    load: Duration,
    train: Duration,
}

/// `orgs` organizations of `per_org` chunks each, loaded as at start-up.
fn build(orgs: usize, per_org: usize, seed: u64, shape: Shape) -> (Built, Vec<Vec<f32>>) {
    let index = Index::with_tuning(tuning());
    let mut all = Vec::with_capacity(orgs);
    let mut data = Vec::with_capacity(orgs);
    for o in 0..orgs {
        let org = Org {
            id: OrgId::new(),
            kb: ResourceId::new(),
            topics: Topics::new((per_org / shape.per_topic).max(20), seed + o as u64, shape),
        };
        data.push(
            org.topics
                .documents(per_org.div_ceil(DOC_CHUNKS), seed * 1000 + o as u64),
        );
        all.push(org);
    }
    let started = Instant::now();
    let mut id = 0i64;
    for (org, vectors) in all.iter().zip(&data) {
        for doc in vectors.chunks(DOC_CHUNKS * DIMS) {
            let chunks: Vec<(i64, &[f32])> = doc
                .chunks_exact(DIMS)
                .map(|v| {
                    id += 1;
                    (id, v)
                })
                .collect();
            index
                .add_loaded(org.id, org.kb, ResourceId::new(), &chunks)
                .unwrap();
        }
    }
    let load = started.elapsed();
    let started = Instant::now();
    index.build();
    let train = started.elapsed();
    (
        Built {
            index,
            orgs: all,
            load,
            train,
        },
        data,
    )
}

fn header() {
    println!(
        "| organizations × chunks | total | lists per partition | load | train | index bytes (MB) | process RSS (MB) | p50 ms | p99 ms | max ms | recall@10 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
}

fn row(b: &Built, orgs: usize, per_org: usize, rss_before: usize) {
    let (p50, p99, max) = latency(&b.index, &b.orgs, 7);
    let r = recall(&b.index, &b.orgs, 8);
    let lists = b.index.lists(b.orgs[0].id, b.orgs[0].kb);
    println!(
        "| {orgs} × {per_org} | {} | {lists} | {:.2} s | {:.2} s | {} | {} | {} | {} | {} | {r:.3} |",
        orgs * per_org,
        b.load.as_secs_f64(),
        b.train.as_secs_f64(),
        mb(b.index.memory_bytes()),
        mb(rss().saturating_sub(rss_before)),
        ms(p50),
        ms(p99),
        ms(max),
    );
}

fn db_path() -> PathBuf {
    if let Some(p) = std::env::var_os("XAGENT_BENCH_VECTORS_DB") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    // target/release/deps/vectors-… → target/bench-data/
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    target.join("bench-data").join("vectors-v1.db")
}

/// The 1M vectors of `data` as `kb_chunks` rows (same columns and unique key as the
/// migration, ~700 bytes of text per chunk), written once.
fn stored(data: &[f32], org: OrgId, kb: ResourceId) -> (PathBuf, Duration) {
    let path = db_path();
    let started = Instant::now();
    if path.exists() {
        return (path, Duration::ZERO);
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut conn = Connection::open(&partial).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
         CREATE TABLE kb_chunks (
            id INTEGER PRIMARY KEY, organization_id TEXT NOT NULL,
            knowledge_base_id TEXT NOT NULL, document_id TEXT NOT NULL,
            position INTEGER NOT NULL, content TEXT NOT NULL, embedding BLOB NOT NULL,
            UNIQUE (organization_id, knowledge_base_id, document_id, position));",
    )
    .unwrap();
    let text = "lorem ipsum dolor sit amet ".repeat(26);
    let tx = conn.transaction().unwrap();
    {
        let mut ins = tx
            .prepare(
                "INSERT INTO kb_chunks (organization_id, knowledge_base_id, document_id, position, content, embedding)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .unwrap();
        let (org, kb) = (org.to_string(), kb.to_string());
        let mut bytes = Vec::with_capacity(DIMS * 4);
        for doc in data.chunks(DOC_CHUNKS * DIMS) {
            let d = ResourceId::new().to_string();
            for (pos, v) in doc.chunks_exact(DIMS).enumerate() {
                bytes.clear();
                v.iter()
                    .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
                ins.execute(params![org, kb, d, pos as i64, text, bytes])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
    drop(conn);
    std::fs::rename(&partial, &path).unwrap();
    (path, started.elapsed())
}

/// What `knowledge::load` does for one organization: the same SELECT, every row turned
/// into a vector and added, then one training.
fn start_up(path: &PathBuf) -> (usize, Duration, Duration, usize) {
    let conn = Connection::open(path).unwrap();
    let orgs: Vec<String> = conn
        .prepare("SELECT DISTINCT organization_id FROM kb_chunks")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let index = Index::with_tuning(tuning());
    let started = Instant::now();
    let mut n = 0;
    for o in orgs {
        let org = OrgId::parse(&o).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT knowledge_base_id, document_id, id, embedding FROM kb_chunks
                 WHERE organization_id = ?1 ORDER BY knowledge_base_id, document_id, position",
            )
            .unwrap();
        let mut rows = stmt.query(params![o]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let kb = ResourceId::parse(&r.get::<_, String>(0).unwrap()).unwrap();
            let doc = ResourceId::parse(&r.get::<_, String>(1).unwrap()).unwrap();
            let id: i64 = r.get(2).unwrap();
            let v = vector_from_bytes(r.get_ref(3).unwrap().as_blob().unwrap());
            index.add_loaded(org, kb, doc, &[(id, &v)]).unwrap();
            n += 1;
        }
    }
    let read = started.elapsed();
    let started = Instant::now();
    index.build();
    (n, read, started.elapsed(), index.memory_bytes())
}

/// recall@10 and latency of the trained partition by how many lists a query scans.
fn sweep(b: &mut Built) {
    let (org, kb) = (b.orgs[0].id, b.orgs[0].kb);
    println!("| lists scanned | recall@10 | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    let (r, (p50, p99, max)) = (
        recall(&b.index, &b.orgs, 12),
        latency(&b.index, &b.orgs, 13),
    );
    let lists = b.index.lists(org, kb);
    let default = tuning();
    let probes = (lists as f64 * default.probe_share).ceil() as usize;
    println!(
        "| default: {} of {lists} | {r:.3} | {} | {} | {} |",
        probes.max(default.min_probe).min(lists),
        ms(p50),
        ms(p99),
        ms(max)
    );
    for probe in [8, 16, 24, 32, 48, 64, 96, 128] {
        b.index.set_tuning(Tuning {
            min_probe: probe,
            probe_share: 0.0,
            ..tuning()
        });
        let r = recall(&b.index, &b.orgs, 12);
        let (p50, p99, max) = latency(&b.index, &b.orgs, 13);
        println!(
            "| {probe} of {lists} | {r:.3} | {} | {} | {} |",
            ms(p50),
            ms(p99),
            ms(max)
        );
    }
    b.index.set_tuning(tuning());
}

fn main() {
    let small = std::env::var("XAGENT_BENCH_VECTORS").is_ok_and(|v| v == "small");
    let sizes: &[usize] = if small {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let t = Tuning::default();
    println!(
        "vector index: {DIMS} dims, k = {K}, flat below {} vectors, lists = {} × √n, probe max({}, {} × lists); {} threads\n",
        t.flat_max, t.list_factor, t.min_probe, t.probe_share, t.threads
    );

    println!(
        "### 100 organizations, one knowledge base each ({} shape)\n",
        TOPICAL.name
    );
    header();
    for &total in sizes {
        let before = rss();
        let (b, data) = build(100, total / 100, 1, TOPICAL);
        drop(data);
        row(&b, 100, total / 100, before);
    }

    println!(
        "\n### One organization, one knowledge base ({} shape)\n",
        TOPICAL.name
    );
    header();
    let mut last = None;
    for &total in sizes {
        let before = rss();
        let (b, data) = build(1, total, 2, TOPICAL);
        row(&b, 1, total, before);
        last = Some((b, data));
    }
    let Some((mut b, data)) = last else { return };
    let n = b.index.len(b.orgs[0].id, b.orgs[0].kb);

    println!("\n### The {n}-vector partition\n");
    let org = &b.orgs[0];
    let mut rng = Rng::new(11);
    let mut exact = Vec::new();
    for _ in 0..20 {
        let q = org.topics.query(&mut rng);
        let started = Instant::now();
        b.index.search_exact(org.id, org.kb, &q, K);
        exact.push(started.elapsed());
    }
    exact.sort();
    println!(
        "exact search (every vector scored): p50 {} ms, max {} ms over 20 queries\n",
        ms(percentile(&exact, 0.5)),
        ms(exact[exact.len() - 1])
    );

    sweep(&mut b);
    let org = &b.orgs[0];

    // Documents added while serving: they join their nearest list.
    let fresh = org.topics.documents(500, 99);
    let mut adds = Vec::new();
    let first = 10_000_000i64;
    for (d, doc) in fresh.chunks(DOC_CHUNKS * DIMS).enumerate() {
        let chunks: Vec<(i64, &[f32])> = doc
            .chunks_exact(DIMS)
            .enumerate()
            .map(|(i, v)| (first + (d * DOC_CHUNKS + i) as i64, v))
            .collect();
        let started = Instant::now();
        b.index
            .add(org.id, org.kb, ResourceId::new(), &chunks)
            .unwrap();
        adds.push(started.elapsed());
    }
    adds.sort();
    let mut found_self = 0;
    let added = fresh.len() / DIMS;
    for i in (0..added).step_by(added / 200) {
        let v = &fresh[i * DIMS..(i + 1) * DIMS];
        if b.index.search(org.id, org.kb, v, 1)[0].id == first + i as i64 {
            found_self += 1;
        }
    }
    println!(
        "\nadded {added} vectors in 500 documents of {DOC_CHUNKS} to the trained partition: \
         per document p50 {} ms, max {} ms; {found_self} of 200 added vectors find themselves first; \
         recall@10 afterwards {:.3}; lists {}",
        ms(percentile(&adds, 0.5)),
        ms(adds[adds.len() - 1]),
        recall(&b.index, &b.orgs, 14),
        b.index.lists(org.id, org.kb),
    );

    let diffuse = || {
        let total = sizes[sizes.len() - 1];
        println!(
            "\n### One organization, {total} vectors of the {} shape\n",
            DIFFUSE.name
        );
        header();
        let before = rss();
        let (mut b, data) = build(1, total, 3, DIFFUSE);
        drop(data);
        row(&b, 1, total, before);
        println!();
        sweep(&mut b);
    };
    if small {
        drop(b);
        diffuse();
        return;
    }
    // Start-up from SQLite: the same 1M vectors as stored rows.
    let (org_id, kb) = (b.orgs[0].id, b.orgs[0].kb);
    drop(b);
    let (path, wrote) = stored(&data[0], org_id, kb);
    drop(data);
    if wrote > Duration::ZERO {
        println!("\nwrote {} in {:.1} s", path.display(), wrote.as_secs_f64());
    }
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let (n, read, train, bytes) = start_up(&path);
    println!(
        "\nstart-up from SQLite ({} MB file, page cache warm after the write or an earlier run): \
         {n} rows read and added in {:.2} s, trained in {:.2} s, total {:.2} s; index {} MB",
        size / 1_000_000,
        read.as_secs_f64(),
        train.as_secs_f64(),
        (read + train).as_secs_f64(),
        mb(bytes)
    );
    diffuse();
}
