//! The in-memory vector index, partitioned per organization and knowledge base: exact
//! search in small partitions, an inverted file over k-means lists (IVF) in large ones.
//!
//! A partition below [`Tuning::flat_max`] vectors is one list scanned whole: exact, and a
//! few milliseconds at that size. Above it the partition is trained: its vectors are
//! grouped by two-level spherical k-means into about √n lists, each with a unit centroid,
//! and a search scores the query against the centroids and scans only the nearest lists
//! (exact f32 scores inside them, so nothing needs re-ranking). A search only ever reads
//! the partition of its organization and knowledge base. New vectors join the list of
//! their nearest centroid; a partition is trained again when it has doubled since it was
//! last trained, on a thread of its own, while searches go on (see `benches/README.md`,
//! "Vector index design", for the measurements behind the numbers).
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::domain::{OrgId, ResourceId};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("a vector of {got} dimensions in a knowledge base of {want}")]
    Dims { got: usize, want: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub id: i64,
    pub document: ResourceId,
    pub score: f32,
}

/// The knobs of the index; the defaults are the ones `benches/vectors.rs` measured.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Partitions with fewer vectors are searched exhaustively.
    pub flat_max: usize,
    /// Lists per trained partition: `list_factor × √n`.
    pub list_factor: f64,
    /// Lists a search scans at least…
    pub min_probe: usize,
    /// …and at least this share of the partition's lists.
    pub probe_share: f64,
    /// Training vectors drawn per centroid (k-means runs on a sample).
    pub sample_per_centroid: usize,
    /// k-means rounds.
    pub rounds: usize,
    /// Threads a training uses.
    pub threads: usize,
    /// Retrain on a thread of its own (the server); `false` trains inside the `add` that
    /// crossed the threshold (tests, benches).
    pub background: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            flat_max: 32_768,
            list_factor: 1.0,
            min_probe: 16,
            probe_share: 0.1,
            sample_per_centroid: 64,
            rounds: 8,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            background: true,
        }
    }
}

/// Vectors stored together: `vectors` holds `ids.len()` rows of the partition's length.
#[derive(Default)]
struct List {
    vectors: Vec<f32>,
    ids: Vec<i64>,
    docs: Vec<ResourceId>,
}

impl List {
    fn push(&mut self, id: i64, doc: ResourceId, v: &[f32]) {
        self.vectors.extend_from_slice(v);
        self.ids.push(id);
        self.docs.push(doc);
    }

    fn vector(&self, at: usize, dims: usize) -> &[f32] {
        &self.vectors[at * dims..(at + 1) * dims]
    }

    /// Drops the rows `keep` refuses, in place; returns how many went.
    fn retain(&mut self, dims: usize, mut keep: impl FnMut(ResourceId) -> bool) -> usize {
        let mut w = 0;
        for r in 0..self.ids.len() {
            if keep(self.docs[r]) {
                if w != r {
                    self.ids[w] = self.ids[r];
                    self.docs[w] = self.docs[r];
                    self.vectors.copy_within(r * dims..(r + 1) * dims, w * dims);
                }
                w += 1;
            }
        }
        let gone = self.ids.len() - w;
        self.ids.truncate(w);
        self.docs.truncate(w);
        self.vectors.truncate(w * dims);
        gone
    }

    fn shrink(&mut self) {
        self.vectors.shrink_to_fit();
        self.ids.shrink_to_fit();
        self.docs.shrink_to_fit();
    }

    fn bytes(&self) -> usize {
        self.vectors.capacity() * size_of::<f32>()
            + self.ids.capacity() * size_of::<i64>()
            + self.docs.capacity() * size_of::<ResourceId>()
            + size_of::<List>()
    }
}

/// One organization's knowledge base.
#[derive(Default)]
struct Partition {
    dims: usize,
    len: usize,
    /// Empty while the partition is flat (one list, scanned whole); otherwise one unit
    /// vector per list.
    centroids: Vec<f32>,
    lists: Vec<List>,
    /// The size at the last training (0: never trained).
    trained_len: usize,
}

impl Partition {
    fn is_trained(&self) -> bool {
        !self.centroids.is_empty()
    }

    fn needs_training(&self, t: &Tuning) -> bool {
        if self.is_trained() {
            self.len >= 2 * self.trained_len
        } else {
            self.len >= t.flat_max
        }
    }

    fn insert(&mut self, id: i64, doc: ResourceId, v: &[f32]) {
        let at = if self.is_trained() {
            nearest(v, &self.centroids, self.dims).0
        } else {
            0
        };
        if self.lists.is_empty() {
            self.lists.push(List::default());
        }
        self.lists[at].push(id, doc, v);
        self.len += 1;
    }

    fn retain(&mut self, mut keep: impl FnMut(ResourceId) -> bool) -> usize {
        let dims = self.dims;
        let gone: usize = self
            .lists
            .iter_mut()
            .map(|l| l.retain(dims, &mut keep))
            .sum();
        self.len -= gone;
        gone
    }

    /// Back to one list once a trained partition has shrunk well below the threshold
    /// (so a partition that hovers around it is not trained again and again).
    fn flatten_if_small(&mut self, t: &Tuning) {
        if !self.is_trained() || self.len >= t.flat_max / 2 {
            return;
        }
        let mut one = List::default();
        for l in self.lists.drain(..) {
            one.vectors.extend_from_slice(&l.vectors);
            one.ids.extend_from_slice(&l.ids);
            one.docs.extend_from_slice(&l.docs);
        }
        self.lists.push(one);
        self.centroids = Vec::new();
        self.trained_len = 0;
    }

    fn search(&self, q: &[f32], k: usize, t: &Tuning) -> Vec<Hit> {
        let d = self.dims;
        let mut top = TopK::new(k);
        let mut scan = |li: usize| {
            let l = &self.lists[li];
            for (row, v) in l.vectors.chunks_exact(d).enumerate() {
                let s = dot(q, v);
                if s > top.floor() {
                    top.push(s, li as u32, row as u32);
                }
            }
        };
        if self.is_trained() {
            let mut order: Vec<(f32, usize)> = self
                .centroids
                .chunks_exact(d)
                .map(|c| dot(q, c))
                .enumerate()
                .map(|(i, s)| (s, i))
                .collect();
            let probe = probes(order.len(), t);
            if probe < order.len() {
                order.select_nth_unstable_by(probe - 1, |a, b| b.0.total_cmp(&a.0));
                order.truncate(probe);
            }
            // Best lists first: the k-th score rises early and most rows skip the push.
            order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
            for (_, li) in order {
                scan(li);
            }
        } else {
            for li in 0..self.lists.len() {
                scan(li);
            }
        }
        top.items
            .into_iter()
            .map(|(score, li, row)| {
                let l = &self.lists[li as usize];
                Hit {
                    id: l.ids[row as usize],
                    document: l.docs[row as usize],
                    score,
                }
            })
            .collect()
    }

    fn bytes(&self) -> usize {
        size_of::<Partition>()
            + self.centroids.capacity() * size_of::<f32>()
            + self.lists.iter().map(List::bytes).sum::<usize>()
    }
}

/// How many lists a search of a trained partition of `lists` lists scans.
fn probes(lists: usize, t: &Tuning) -> usize {
    let share = (lists as f64 * t.probe_share).ceil() as usize;
    share.max(t.min_probe).clamp(1, lists)
}

/// The best `k` (score, list, row) seen, best first.
struct TopK {
    k: usize,
    items: Vec<(f32, u32, u32)>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    fn floor(&self) -> f32 {
        if self.items.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.items[self.k - 1].0
        }
    }

    fn push(&mut self, score: f32, list: u32, row: u32) {
        if self.k == 0 {
            return;
        }
        let at = self.items.partition_point(|e| e.0 >= score);
        self.items.insert(at, (score, list, row));
        self.items.truncate(self.k);
    }
}

/// The inner product, in the shape the compiler turns into SIMD lanes (16 independent
/// sums, so the additions do not wait on each other).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0f32; 16];
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The centroid nearest `v` (largest inner product) and its score.
fn nearest(v: &[f32], centroids: &[f32], dims: usize) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, c) in centroids.chunks_exact(dims).enumerate() {
        let s = dot(v, c);
        if s > best.1 {
            best = (i, s);
        }
    }
    best
}

fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// splitmix64: trainings are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `m` distinct indexes below `n` (all of them when `m >= n`).
    fn pick(&mut self, n: usize, m: usize) -> Vec<usize> {
        if m >= n {
            return (0..n).collect();
        }
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..m {
            let j = i + self.below(n - i);
            all.swap(i, j);
        }
        all.truncate(m);
        all
    }
}

/// The nearest centroid of every row of `rows`, over `threads` threads.
fn assign_all(rows: &[&[f32]], centroids: &[f32], dims: usize, threads: usize) -> Vec<u32> {
    let mut out = vec![0u32; rows.len()];
    let threads = threads.max(1);
    if threads == 1 || rows.len() < 4096 {
        for (o, r) in out.iter_mut().zip(rows) {
            *o = nearest(r, centroids, dims).0 as u32;
        }
        return out;
    }
    let per = rows.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (outs, rs) in out.chunks_mut(per).zip(rows.chunks(per)) {
            s.spawn(move || {
                for (o, r) in outs.iter_mut().zip(rs) {
                    *o = nearest(r, centroids, dims).0 as u32;
                }
            });
        }
    });
    out
}

/// Spherical k-means on `rows` (unit vectors): `k` unit centroids, `k <= rows.len()`.
fn kmeans(
    rows: &[&[f32]],
    dims: usize,
    k: usize,
    t: &Tuning,
    threads: usize,
    rng: &mut Rng,
) -> Vec<f32> {
    if rows.is_empty() {
        return Vec::new();
    }
    let k = k.clamp(1, rows.len());
    let mut centroids: Vec<f32> = Vec::with_capacity(k * dims);
    for i in rng.pick(rows.len(), k) {
        centroids.extend_from_slice(rows[i]);
    }
    for _ in 0..t.rounds {
        let assigned = assign_all(rows, &centroids, dims, threads);
        let mut sums = vec![0f32; k * dims];
        let mut counts = vec![0usize; k];
        for (r, &c) in rows.iter().zip(&assigned) {
            let c = c as usize;
            counts[c] += 1;
            for (s, x) in sums[c * dims..(c + 1) * dims].iter_mut().zip(*r) {
                *s += x;
            }
        }
        for (c, sum) in sums.chunks_exact_mut(dims).enumerate() {
            if counts[c] == 0 {
                // An empty cluster starts again from a random row.
                sum.copy_from_slice(rows[rng.below(rows.len())]);
            }
            normalize(sum);
        }
        centroids = sums;
    }
    centroids
}

/// Coarse cells whose leaves a vector is placed among (see [`trained`]).
const CELLS_PER_VECTOR: usize = 3;

/// The `CELLS_PER_VECTOR` centroids nearest `v`, nearest first (`u32::MAX` when fewer).
fn nearest_few(v: &[f32], centroids: &[f32], dims: usize) -> [u32; CELLS_PER_VECTOR] {
    let mut best = [(f32::NEG_INFINITY, u32::MAX); CELLS_PER_VECTOR];
    for (i, c) in centroids.chunks_exact(dims).enumerate() {
        let s = dot(v, c);
        if s > best[CELLS_PER_VECTOR - 1].0 {
            let at = best.partition_point(|b| b.0 >= s);
            best.copy_within(at..CELLS_PER_VECTOR - 1, at + 1);
            best[at] = (s, i as u32);
        }
    }
    best.map(|b| b.1)
}

/// `f` over `0..n` split into `threads` ranges; the results in order.
fn par_map<T: Send + Default + Clone>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let mut out = vec![T::default(); n];
    let per = n.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (k, part) in out.chunks_mut(per).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (j, o) in part.iter_mut().enumerate() {
                    *o = f(k * per + j);
                }
            });
        }
    });
    out
}

/// The partition regrouped into about `list_factor × √n` lists, in two levels so that
/// placing n vectors costs about 4·√lists inner products each instead of `lists`: a
/// coarse k-means on a sample splits the partition into √lists cells; each cell's own
/// k-means, on a sample of the vectors nearest it, gives it leaves in proportion to its
/// size; every vector then goes to the nearest leaf of its `CELLS_PER_VECTOR` nearest
/// cells. (Only the nearest cell's leaves leaves the vectors near a cell border in a
/// list whose centroid is far from them, which searches then miss: recall@10 at 1M
/// was 0.88 that way with 40 lists scanned.)
fn trained(p: &Partition, t: &Tuning, seed: u64) -> Partition {
    let d = p.dims;
    let n = p.len;
    let threads = t.threads.max(1);
    let mut rng = Rng(seed);
    let rows: Vec<(u32, u32)> = p
        .lists
        .iter()
        .enumerate()
        .flat_map(|(li, l)| (0..l.ids.len()).map(move |r| (li as u32, r as u32)))
        .collect();
    let vector = |&(li, r): &(u32, u32)| p.lists[li as usize].vector(r as usize, d);
    let lists = ((n as f64).sqrt() * t.list_factor).round().max(2.0) as usize;
    let cells = (lists as f64).sqrt().ceil() as usize;
    let sample: Vec<&[f32]> = rng
        .pick(n, cells * t.sample_per_centroid)
        .into_iter()
        .map(|i| vector(&rows[i]))
        .collect();
    let coarse = kmeans(&sample, d, cells, t, threads, &mut rng);
    let cells = coarse.len() / d;
    let near = par_map(n, threads, |i| nearest_few(vector(&rows[i]), &coarse, d));
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); cells];
    for (i, c) in near.iter().enumerate() {
        members[c[0] as usize].push(i as u32);
    }
    let seeds: Vec<u64> = (0..cells).map(|_| rng.next()).collect();
    let leaves: Vec<Vec<f32>> = par_map(cells, threads, |c| {
        let m = &members[c];
        if m.is_empty() {
            return Vec::new();
        }
        let k = ((lists * m.len()) as f64 / n as f64).round().max(1.0) as usize;
        let mut rng = Rng(seeds[c]);
        let sample: Vec<&[f32]> = rng
            .pick(m.len(), k * t.sample_per_centroid)
            .into_iter()
            .map(|i| vector(&rows[m[i] as usize]))
            .collect();
        kmeans(&sample, d, k, t, 1, &mut rng)
    });
    drop(members);
    // The leaves of every cell, numbered one after the other.
    let mut first = Vec::with_capacity(cells + 1);
    let mut centroids = Vec::with_capacity(lists * d);
    for l in &leaves {
        first.push(centroids.len() / d);
        centroids.extend_from_slice(l);
    }
    first.push(centroids.len() / d);
    let leaf_of = par_map(n, threads, |i| {
        let v = vector(&rows[i]);
        let mut best = (0usize, f32::NEG_INFINITY);
        for &c in near[i].iter().filter(|c| **c != u32::MAX) {
            let c = c as usize;
            let (at, s) = nearest(v, &leaves[c], d);
            if s > best.1 && first[c] < first[c + 1] {
                best = (first[c] + at, s);
            }
        }
        best.0 as u32
    });
    drop(near);
    let total = centroids.len() / d;
    let mut counts = vec![0usize; total];
    leaf_of.iter().for_each(|&l| counts[l as usize] += 1);
    let mut out_lists: Vec<List> = counts
        .iter()
        .map(|&c| List {
            vectors: Vec::with_capacity(c * d),
            ids: Vec::with_capacity(c),
            docs: Vec::with_capacity(c),
        })
        .collect();
    for (row, &l) in rows.iter().zip(&leaf_of) {
        let (li, r) = (row.0 as usize, row.1 as usize);
        let src = &p.lists[li];
        out_lists[l as usize].push(src.ids[r], src.docs[r], src.vector(r, d));
    }
    let mut out = Partition {
        dims: d,
        len: n,
        centroids: Vec::with_capacity(total * d),
        lists: Vec::with_capacity(total),
        trained_len: n,
    };
    for (c, l) in centroids.chunks_exact(d).zip(out_lists) {
        if !l.ids.is_empty() {
            out.centroids.extend_from_slice(c);
            out.lists.push(l);
        }
    }
    out
}

/// A partition and what serializes its changes.
#[derive(Default)]
struct Shard {
    /// Held by every change and by a training from start to end, so that nothing changes
    /// between the training reading the partition and installing what it built; searches
    /// only take `part`'s read lock and go on meanwhile.
    changes: Mutex<()>,
    part: RwLock<Partition>,
    training: AtomicBool,
}

impl Shard {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Partition> {
        self.part.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Partition> {
        self.part.write().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_changes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Trains the partition if it needs it; the caller holds `changes`.
    fn train_held(&self, t: &Tuning) {
        let next = {
            let p = self.read();
            if !p.needs_training(t) {
                return;
            }
            trained(&p, t, p.len as u64)
        };
        *self.write() = next;
    }
}

type Key = (OrgId, ResourceId);

pub struct Index {
    parts: RwLock<HashMap<Key, Arc<Shard>>>,
    tuning: Tuning,
}

impl Default for Index {
    fn default() -> Self {
        Self::with_tuning(Tuning::default())
    }
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    normalize(&mut v);
    v
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_tuning(tuning: Tuning) -> Self {
        Index {
            parts: RwLock::new(HashMap::new()),
            tuning,
        }
    }

    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// New knobs for what comes next (searches probe by them at once; lists stay as
    /// they were trained until the next training).
    pub fn set_tuning(&mut self, tuning: Tuning) {
        self.tuning = tuning;
    }

    fn shard(&self, org: OrgId, kb: ResourceId) -> Option<Arc<Shard>> {
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        parts.get(&(org, kb)).cloned()
    }

    fn shard_or_new(&self, org: OrgId, kb: ResourceId) -> Arc<Shard> {
        if let Some(s) = self.shard(org, kb) {
            return s;
        }
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        parts.entry((org, kb)).or_default().clone()
    }

    /// Inserts without training; `Err` (and nothing inserted) when a length differs.
    fn insert(
        shard: &Shard,
        document: ResourceId,
        chunks: &[(i64, &[f32])],
    ) -> Result<bool, IndexError> {
        let mut p = shard.write();
        let want = if p.dims == 0 {
            chunks.first().map_or(0, |c| c.1.len())
        } else {
            p.dims
        };
        if let Some((_, v)) = chunks.iter().find(|c| c.1.len() != want) {
            return Err(IndexError::Dims { got: v.len(), want });
        }
        if chunks.is_empty() {
            return Ok(false);
        }
        p.dims = want;
        for (id, v) in chunks {
            p.insert(*id, document, &normalized(v));
        }
        Ok(true)
    }

    /// Adds a document's chunks (ids are the chunks' rows, unique: a document is taken
    /// out before it is added again). A partition that crossed its training threshold is
    /// trained, in the background when [`Tuning::background`].
    pub fn add(
        &self,
        org: OrgId,
        kb: ResourceId,
        document: ResourceId,
        chunks: &[(i64, &[f32])],
    ) -> Result<(), IndexError> {
        let shard = self.shard_or_new(org, kb);
        let needs = {
            let _changes = shard.lock_changes();
            Self::insert(&shard, document, chunks)?;
            shard.read().needs_training(&self.tuning)
        };
        if needs {
            self.train_later(shard);
        }
        Ok(())
    }

    fn train_later(&self, shard: Arc<Shard>) {
        if shard.training.swap(true, Ordering::AcqRel) {
            return;
        }
        let t = self.tuning.clone();
        if !t.background {
            let _changes = shard.lock_changes();
            shard.train_held(&t);
            shard.training.store(false, Ordering::Release);
            return;
        }
        let job = shard.clone();
        let spawned = std::thread::Builder::new()
            .name("vector-training".into())
            .spawn(move || {
                let _changes = job.lock_changes();
                let started = std::time::Instant::now();
                job.train_held(&t);
                job.training.store(false, Ordering::Release);
                tracing::info!(
                    vectors = job.read().len,
                    ms = started.elapsed().as_millis() as u64,
                    "a vector index partition was trained"
                );
            });
        if let Err(e) = spawned {
            shard.training.store(false, Ordering::Release);
            tracing::warn!(error = %e, "could not start training a vector index partition");
        }
    }

    /// Adds stored vectors at start without training anything; [`Index::build`] trains
    /// once everything is in.
    pub fn add_loaded(
        &self,
        org: OrgId,
        kb: ResourceId,
        document: ResourceId,
        chunks: &[(i64, &[f32])],
    ) -> Result<(), IndexError> {
        let shard = self.shard_or_new(org, kb);
        let _changes = shard.lock_changes();
        Self::insert(&shard, document, chunks).map(|_| ())
    }

    /// Trains every partition that needs it, here and now (after [`Index::add_loaded`]).
    pub fn build(&self) {
        let shards: Vec<Arc<Shard>> = {
            let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
            parts.values().cloned().collect()
        };
        for s in shards {
            let _changes = s.lock_changes();
            s.train_held(&self.tuning);
            // Loading grew the lists by doubling; what is loaded stays.
            s.write().lists.iter_mut().for_each(List::shrink);
        }
    }

    pub fn remove_document(&self, org: OrgId, kb: ResourceId, document: ResourceId) -> usize {
        let Some(shard) = self.shard(org, kb) else {
            return 0;
        };
        let _changes = shard.lock_changes();
        let mut p = shard.write();
        let gone = p.retain(|d| d != document);
        p.flatten_if_small(&self.tuning);
        gone
    }

    pub fn remove_kb(&self, org: OrgId, kb: ResourceId) {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        parts.remove(&(org, kb));
    }

    pub fn remove_org(&self, org: OrgId) {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        parts.retain(|k, _| k.0 != org);
    }

    /// The `k` vectors of the (org, kb) partition nearest `query` by cosine, best first;
    /// nothing when the partition is missing or of another length.
    pub fn search(&self, org: OrgId, kb: ResourceId, query: &[f32], k: usize) -> Vec<Hit> {
        let Some(shard) = self.shard(org, kb) else {
            return Vec::new();
        };
        let p = shard.read();
        if query.len() != p.dims || p.len == 0 {
            return Vec::new();
        }
        p.search(&normalized(query), k, &self.tuning)
    }

    /// The exact answer, every vector of the partition scored (what recall is measured
    /// against).
    pub fn search_exact(&self, org: OrgId, kb: ResourceId, query: &[f32], k: usize) -> Vec<Hit> {
        let Some(shard) = self.shard(org, kb) else {
            return Vec::new();
        };
        let p = shard.read();
        if query.len() != p.dims || p.len == 0 {
            return Vec::new();
        }
        let flat = Tuning {
            min_probe: usize::MAX,
            ..self.tuning.clone()
        };
        p.search(&normalized(query), k, &flat)
    }

    pub fn len(&self, org: OrgId, kb: ResourceId) -> usize {
        self.shard(org, kb).map_or(0, |s| s.read().len)
    }

    /// How many lists the partition is split into (1 while it is searched exhaustively).
    pub fn lists(&self, org: OrgId, kb: ResourceId) -> usize {
        self.shard(org, kb).map_or(0, |s| s.read().lists.len())
    }

    /// Bytes the index holds on the heap: vectors, ids, documents, centroids, lists and
    /// the partition table (allocated capacity, not just what is in use).
    pub fn memory_bytes(&self) -> usize {
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        let table = parts.capacity() * (size_of::<Key>() + size_of::<Arc<Shard>>() + 1);
        table
            + parts
                .values()
                .map(|s| size_of::<Shard>() + s.read().bytes())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn small_tuning() -> Tuning {
        Tuning {
            flat_max: 400,
            min_probe: 4,
            probe_share: 0.1,
            threads: 2,
            background: false,
            ..Tuning::default()
        }
    }

    /// `n` unit vectors around `topics` random centres (centre + noise), as embeddings
    /// of texts on a few subjects look, from `seed`.
    /// Vectors and queries of one data set share `topics` (their seed is fixed) and
    /// differ by `seed`.
    fn clustered(n: usize, dims: usize, topics: usize, seed: u64) -> Vec<Vec<f32>> {
        fn gauss(rng: &mut Rng) -> f32 {
            // Irwin–Hall: close enough to a normal for test data.
            (0..12)
                .map(|_| (rng.next() >> 11) as f32 / (1u64 << 53) as f32)
                .sum::<f32>()
                - 6.0
        }
        let mut at_centres = Rng(topics as u64);
        let centres: Vec<Vec<f32>> = (0..topics)
            .map(|_| {
                normalized(
                    &(0..dims)
                        .map(|_| gauss(&mut at_centres))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let mut rng = Rng(seed);
        (0..n)
            .map(|_| {
                let c = &centres[rng.below(topics)];
                let v: Vec<f32> = c
                    .iter()
                    .enumerate()
                    .map(|(j, x)| {
                        x + gauss(&mut rng) * 0.25 / (dims as f32).sqrt() * (1.0 + (j % 4) as f32)
                    })
                    .collect();
                normalized(&v)
            })
            .collect()
    }

    fn add_all(
        index: &Index,
        org: OrgId,
        kb: ResourceId,
        doc: ResourceId,
        vs: &[Vec<f32>],
        first: i64,
    ) {
        let chunks: Vec<(i64, &[f32])> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| (first + i as i64, v.as_slice()))
            .collect();
        index.add(org, kb, doc, &chunks).unwrap();
    }

    fn ids(hits: &[Hit]) -> Vec<i64> {
        hits.iter().map(|h| h.id).collect()
    }

    fn recall(index: &Index, org: OrgId, kb: ResourceId, queries: &[Vec<f32>]) -> f64 {
        let mut found = 0;
        let mut asked = 0;
        for q in queries {
            let exact = ids(&index.search_exact(org, kb, q, 10));
            let got = ids(&index.search(org, kb, q, 10));
            found += exact.iter().filter(|i| got.contains(i)).count();
            asked += exact.len();
        }
        found as f64 / asked as f64
    }

    #[test]
    fn two_organizations_with_the_same_vectors_each_find_only_their_own() {
        let index = Index::with_tuning(small_tuning());
        let (a, b) = (OrgId::new(), OrgId::new());
        let kb = ResourceId::new();
        let vs = clustered(50, 16, 5, 1);
        add_all(&index, a, kb, ResourceId::new(), &vs, 0);
        add_all(&index, b, kb, ResourceId::new(), &vs, 1000);
        let from_a = index.search(a, kb, &vs[3], 50);
        let from_b = index.search(b, kb, &vs[3], 50);
        assert_eq!(from_a.len(), 50);
        assert!(from_a.iter().all(|h| h.id < 1000), "org a saw b's vectors");
        assert!(from_b.iter().all(|h| h.id >= 1000), "org b saw a's vectors");
        assert_eq!(from_a[0].id, 3);
        assert_eq!(from_b[0].id, 1003);
        assert!(index.search(OrgId::new(), kb, &vs[3], 10).is_empty());
        assert!(index.search(a, ResourceId::new(), &vs[3], 10).is_empty());
    }

    #[test]
    fn vectors_leave_by_document_by_knowledge_base_and_by_organization() {
        let index = Index::with_tuning(small_tuning());
        let (org, other) = (OrgId::new(), OrgId::new());
        let (kb1, kb2) = (ResourceId::new(), ResourceId::new());
        let (d1, d2) = (ResourceId::new(), ResourceId::new());
        let vs = clustered(20, 8, 2, 2);
        add_all(&index, org, kb1, d1, &vs[..10], 0);
        add_all(&index, org, kb1, d2, &vs[10..], 10);
        add_all(&index, org, kb2, d1, &vs, 100);
        add_all(&index, other, kb1, d1, &vs, 200);

        assert_eq!(index.remove_document(org, kb1, d1), 10);
        assert_eq!(index.len(org, kb1), 10);
        let left = index.search(org, kb1, &vs[0], 20);
        assert!(left.iter().all(|h| h.document == d2 && h.id >= 10));
        assert_eq!(index.len(org, kb2), 20, "the same document elsewhere stays");

        index.remove_kb(org, kb1);
        assert_eq!(index.len(org, kb1), 0);
        assert!(index.search(org, kb1, &vs[0], 5).is_empty());
        assert_eq!(index.len(org, kb2), 20);

        index.remove_org(org);
        assert_eq!(index.len(org, kb2), 0);
        assert_eq!(
            index.len(other, kb1),
            20,
            "another organization keeps its vectors"
        );
    }

    #[test]
    fn a_vector_of_another_length_is_refused_and_nothing_of_its_batch_is_added() {
        let index = Index::with_tuning(small_tuning());
        let (org, kb, doc) = (OrgId::new(), ResourceId::new(), ResourceId::new());
        index
            .add(org, kb, doc, &[(1, &[1.0, 0.0, 0.0][..])])
            .unwrap();
        let err = index
            .add(
                org,
                kb,
                doc,
                &[(2, &[0.0, 1.0, 0.0][..]), (3, &[1.0, 0.0][..])],
            )
            .unwrap_err();
        assert!(matches!(err, IndexError::Dims { got: 2, want: 3 }));
        assert_eq!(index.len(org, kb), 1);
        assert!(index.search(org, kb, &[1.0, 0.0], 5).is_empty());
        assert_eq!(ids(&index.search(org, kb, &[1.0, 0.0, 0.0], 5)), vec![1]);
    }

    #[test]
    fn a_large_partition_is_split_into_lists_and_finds_what_exact_search_finds() {
        let index = Index::with_tuning(small_tuning());
        let (org, kb) = (OrgId::new(), ResourceId::new());
        let vs = clustered(3000, 32, 60, 3);
        for (i, chunk) in vs.chunks(100).enumerate() {
            add_all(&index, org, kb, ResourceId::new(), chunk, (i * 100) as i64);
        }
        assert!(
            index.lists(org, kb) > 10,
            "trained into {} lists",
            index.lists(org, kb)
        );
        assert_eq!(index.len(org, kb), 3000);
        let queries = clustered(100, 32, 60, 4);
        let r = recall(&index, org, kb, &queries);
        assert!(r >= 0.95, "recall@10 {r}");
        // A stored vector finds itself first.
        assert_eq!(index.search(org, kb, &vs[1234], 1)[0].id, 1234);
    }

    #[test]
    fn vectors_added_after_training_are_found() {
        let index = Index::with_tuning(small_tuning());
        let (org, kb) = (OrgId::new(), ResourceId::new());
        let vs = clustered(3000, 32, 60, 5);
        for (i, chunk) in vs[..2000].chunks(500).enumerate() {
            index
                .add_loaded(
                    org,
                    kb,
                    ResourceId::new(),
                    &chunk
                        .iter()
                        .enumerate()
                        .map(|(j, v)| ((i * 500 + j) as i64, v.as_slice()))
                        .collect::<Vec<_>>(),
                )
                .unwrap();
        }
        assert_eq!(index.lists(org, kb), 1, "nothing is trained while loading");
        index.build();
        let lists = index.lists(org, kb);
        assert!(lists > 10);
        let late = ResourceId::new();
        add_all(&index, org, kb, late, &vs[2000..], 2000);
        assert_eq!(
            index.lists(org, kb),
            lists,
            "not retrained below twice its size"
        );
        for probe in [2000, 2500, 2999] {
            let hit = index.search(org, kb, &vs[probe], 1)[0];
            assert_eq!((hit.id, hit.document), (probe as i64, late));
        }
        let r = recall(&index, org, kb, &clustered(100, 32, 60, 6));
        assert!(r >= 0.95, "recall@10 {r}");
        assert_eq!(index.remove_document(org, kb, late), 1000);
        assert!(
            index
                .search(org, kb, &vs[2500], 10)
                .iter()
                .all(|h| h.document != late)
        );
    }

    #[test]
    fn a_partition_that_doubled_is_trained_again_and_one_that_shrank_is_flat_again() {
        let index = Index::with_tuning(small_tuning());
        let (org, kb) = (OrgId::new(), ResourceId::new());
        let vs = clustered(2000, 16, 20, 7);
        let first = ResourceId::new();
        add_all(&index, org, kb, first, &vs[..500], 0);
        let small = index.lists(org, kb);
        add_all(&index, org, kb, ResourceId::new(), &vs[500..], 500);
        assert!(
            index.lists(org, kb) > small,
            "{} lists after doubling",
            index.lists(org, kb)
        );
        assert_eq!(index.remove_document(org, kb, first), 500);
        index.remove_document(org, kb, index.search(org, kb, &vs[600], 1)[0].document);
        assert_eq!(index.lists(org, kb), 1);
        assert_eq!(index.len(org, kb), 0);
    }

    #[test]
    fn memory_counts_the_vectors() {
        let index = Index::with_tuning(small_tuning());
        let vs = clustered(1000, 64, 10, 8);
        add_all(
            &index,
            OrgId::new(),
            ResourceId::new(),
            ResourceId::new(),
            &vs,
            0,
        );
        assert!(index.memory_bytes() >= 1000 * 64 * 4);
    }
}
