//! Knowledge bases at work: documents extracted (`extract`), split (`chunk`), embedded
//! through the organization's provider (metered, `models::embed`) and kept in SQLite and
//! in the in-memory vector index (`index`), partitioned per organization and knowledge
//! base; indexing runs in the background and picks up where it stood after a restart.
pub mod chunk;
pub mod extract;
pub mod index;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::Actor;
use super::Services;
use super::models::{self, CallError, Models};
use crate::db::OrgContext;
use crate::db::repo::knowledge::{self as repo, KbDocument, NewChunk};
use crate::db::repo::resources::{self as resources, Citation, Fields, ResourceKind};
use crate::db::scope::SystemScope;
use crate::db::unscoped::unscoped_unfinished_indexing;
use crate::domain::IndexStatus;
use crate::domain::{OrgId, ResourceId};
use crate::error::{AppError, Result};

pub use index::{Hit, Index};

/// The embedding model of a knowledge base that names none.
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";
/// Texts sent per embeddings call while indexing.
const EMBED_BATCH: usize = 32;
/// The most passages a search returns.
pub const MAX_K: usize = 50;

/// The index, the extractor and the indexer's wake-up call.
pub struct Knowledge {
    pub index: Index,
    pub extractor: extract::Extractor,
    wake: Notify,
}

impl Knowledge {
    pub fn new(extractor: extract::Extractor) -> Arc<Knowledge> {
        Arc::new(Knowledge {
            index: Index::new(),
            extractor,
            wake: Notify::new(),
        })
    }

    /// Tells the indexer there is work.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Reads every stored vector into the index (at start); returns how many.
pub async fn load(svc: &Services, k: &Arc<Knowledge>) -> Result<usize> {
    let orgs = svc
        .db
        .read(|tx| Ok::<_, AppError>(crate::db::unscoped::unscoped_all_org_ids(tx)?))
        .await?;
    let mut total = 0;
    for org in orgs {
        total += read_org(svc, k, org, true).await?;
    }
    // Large partitions are trained once, after everything is in.
    let built = k.clone();
    tokio::task::spawn_blocking(move || built.index.build())
        .await
        .map_err(|_| AppError::Internal("training the vector index failed".into()))?;
    Ok(total)
}

/// Reads one organization's stored vectors into its partitions of the index again,
/// replacing what they held (after resources moved in or out of the organization); large
/// partitions are trained as vectors come, as for any insert.
pub async fn load_org(svc: &Services, k: &Arc<Knowledge>, org: OrgId) -> Result<usize> {
    read_org(svc, k, org, false).await
}

/// An organization's stored vectors into the index: `at_start`, only held for the one
/// training of [`load`] at the end; otherwise added as online inserts.
async fn read_org(svc: &Services, k: &Arc<Knowledge>, org: OrgId, at_start: bool) -> Result<usize> {
    let k = k.clone();
    svc.db
        .read(move |tx| {
            k.index.remove_org(org);
            let Some(ctx) = SystemScope::new("vector-index").in_org(tx, org)? else {
                return Ok::<_, AppError>(0);
            };
            let mut n = 0;
            let mut refused = 0;
            repo::each_vector(tx, &ctx, |kb, doc, id, bytes| {
                let v = repo::vector_from_bytes(bytes);
                let added = if at_start {
                    k.index.add_loaded(org, kb, doc, &[(id, v.as_slice())])
                } else {
                    k.index.add(org, kb, doc, &[(id, v.as_slice())])
                };
                match added {
                    Ok(()) => n += 1,
                    Err(_) => refused += 1,
                }
            })?;
            if refused > 0 {
                tracing::warn!(%org, refused, "stored vectors of another length than their knowledge base's were left out of the index");
            }
            Ok(n)
        })
        .await
}

/// The indexer: works through the queue, then waits to be woken, or `poll` at most (for
/// documents queued by another process, such as `xagent import`).
pub async fn run_indexer(svc: Services, models: Arc<Models>, k: Arc<Knowledge>, poll: Duration) {
    loop {
        let queue = svc
            .db
            .read(|tx| Ok::<_, AppError>(unscoped_unfinished_indexing(tx)?))
            .await;
        match queue {
            Ok(q) if !q.is_empty() => {
                for (org, kb, doc) in q {
                    if let Err(e) = index_document(&svc, &models, &k, org, kb, doc).await {
                        tracing::error!(%org, %kb, %doc, error = %e, "indexing a document failed");
                    }
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reading the indexing queue failed"),
        }
        let _ = tokio::time::timeout(poll, k.wake.notified()).await;
    }
}

/// What indexing one document needs from the database.
struct Job {
    system: OrgContext,
    entry: KbDocument,
    embedding_model: String,
    /// Chunk size and overlap, in characters.
    chunking: (usize, usize),
    content_type: String,
    filename: String,
    sha256: String,
    bytes: Vec<u8>,
}

/// Indexes one document of a knowledge base: extract, split, embed (as the member who
/// added it, so their organization's key, policy and quota apply), store. Whatever goes
/// wrong is the document's status with its reason.
pub async fn index_document(
    svc: &Services,
    models: &Arc<Models>,
    k: &Arc<Knowledge>,
    org: OrgId,
    kb: ResourceId,
    doc: ResourceId,
) -> Result<()> {
    let job = svc
        .db
        .read(move |tx| {
            let Some(system) = SystemScope::new("indexer").in_org(tx, org)? else {
                return Ok::<_, AppError>(None);
            };
            let Some(entry) = repo::document(tx, &system, kb, doc)? else {
                return Ok(None);
            };
            let Some(base) = resources::find_in_org(tx, &system, ResourceKind::KnowledgeBase, kb)?
            else {
                return Ok(None);
            };
            let Some(d) = resources::find_in_org(tx, &system, ResourceKind::Document, doc)? else {
                return Ok(None);
            };
            let embedding_model = match &base.fields {
                Fields::KnowledgeBase(b) => b.embedding_model.clone(),
                _ => None,
            }
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL.to_string());
            let chunking = match &base.fields {
                Fields::KnowledgeBase(b) => chunking(&b.config),
                _ => (chunk::MAX_CHARS, chunk::OVERLAP),
            };
            let Fields::Document(file) = d.fields else {
                return Ok(None);
            };
            let bytes = resources::document_content(tx, &system, doc)?.unwrap_or_default();
            Ok(Some(Job {
                system,
                entry,
                embedding_model,
                chunking,
                content_type: file.content_type,
                filename: file.filename,
                sha256: file.sha256,
                bytes,
            }))
        })
        .await?;
    let Some(job) = job else { return Ok(()) };
    let system = job.system.clone();
    let fail = |reason: String| {
        let (system, now) = (system.clone(), svc.now_str());
        async move {
            svc.db
                .write(move |tx| {
                    Ok::<_, AppError>(repo::fail(tx, &system, kb, doc, &reason, &now)?)
                })
                .await
        }
    };
    let Some(member) = job.entry.requested_by else {
        return fail("the member who added the document is no longer a user here".into()).await;
    };
    let ctx = match super::orgs::context(svc, member, org.to_string()).await {
        Ok(ctx) => ctx,
        // A suspended organization's documents say so (add them again once reinstated).
        Err(AppError::Forbidden {
            code: "organization_suspended",
            message,
        }) => return fail(message).await,
        Err(_) => {
            return fail(
                "the member who added the document is no longer in the organization; add it again"
                    .into(),
            )
            .await;
        }
    };
    let text = match k
        .extractor
        .extract(job.bytes, &job.content_type, &job.filename)
        .await
    {
        Ok(t) => t,
        Err(e) => return fail(e.to_string()).await,
    };
    let pieces = chunk::split(&text, job.chunking.0, job.chunking.1);
    if pieces.is_empty() {
        return fail("no text found in the document".into()).await;
    }
    let n = pieces.len() as i64;
    let started = {
        let (system, now) = (system.clone(), svc.now_str());
        svc.db
            .write(move |tx| Ok::<_, AppError>(repo::start(tx, &system, kb, doc, n, &now)?))
            .await?
    };
    if !started {
        return Ok(());
    }
    let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(pieces.len());
    for batch in pieces.chunks(EMBED_BATCH) {
        let inputs: Vec<String> = batch.iter().map(|p| p.text.clone()).collect();
        match models::embed(
            models,
            &ctx,
            crate::domain::usage::KNOWLEDGE_EMBEDDINGS,
            Some(&job.embedding_model),
            &inputs,
        )
        .await
        {
            Ok((v, _, _)) => vectors.extend(v),
            Err(e) => return fail(call_failure(e)).await,
        }
        let (system, now, done) = (system.clone(), svc.now_str(), vectors.len() as i64);
        let still = svc
            .db
            .write(move |tx| Ok::<_, AppError>(repo::progress(tx, &system, kb, doc, done, &now)?))
            .await?;
        // Taken out (or queued again) meanwhile: the rest is not embedded, nor paid for.
        if !still {
            return Ok(());
        }
    }
    if let Some(first) = vectors.first()
        && vectors.iter().any(|v| v.len() != first.len())
    {
        return fail("the embeddings provider answered with vectors of different lengths".into())
            .await;
    }
    let texts: Vec<String> = pieces.iter().map(|p| p.text.clone()).collect();
    let positions: Vec<i64> = pieces.iter().map(|p| p.position as i64).collect();
    let stored = {
        let (system, now, sha, vectors) =
            (system.clone(), svc.now_str(), job.sha256, vectors.clone());
        svc.db
            .write(move |tx| {
                // Taken out of the knowledge base meanwhile: nothing to store.
                if repo::document(tx, &system, kb, doc)?.is_none() {
                    return Ok::<_, AppError>(None);
                }
                let chunks: Vec<NewChunk<'_>> = texts
                    .iter()
                    .zip(&positions)
                    .zip(&vectors)
                    .map(|((t, p), v)| NewChunk {
                        position: *p,
                        content: t,
                        embedding: v,
                    })
                    .collect();
                Ok(Some(repo::finish(
                    tx, &system, kb, doc, &sha, &chunks, &now,
                )?))
            })
            .await?
    };
    let Some(ids) = stored else { return Ok(()) };
    k.index.remove_document(org, kb, doc);
    let entries: Vec<(i64, &[f32])> = ids
        .iter()
        .zip(&vectors)
        .map(|(id, v)| (*id, v.as_slice()))
        .collect();
    if let Err(e) = k.index.add(org, kb, doc, &entries) {
        tracing::warn!(%org, %kb, error = %e, "vectors left out of the index");
    }
    Ok(())
}

/// A knowledge base's chunk size and overlap: `config.chunk_chars` (20 to 8000, default
/// 1000) and `config.chunk_overlap` (up to half the size, default 150).
pub fn chunking(config: &serde_json::Map<String, serde_json::Value>) -> (usize, usize) {
    let size = config
        .get("chunk_chars")
        .and_then(serde_json::Value::as_u64)
        .map_or(chunk::MAX_CHARS, |n| n.clamp(20, 8000) as usize);
    let overlap = config
        .get("chunk_overlap")
        .and_then(serde_json::Value::as_u64)
        .map_or(chunk::OVERLAP.min(size / 2), |n| (n as usize).min(size / 2));
    (size, overlap)
}

/// A model call's failure as a document's reason (the gateway's words).
fn call_failure(e: CallError) -> String {
    let app: AppError = e.into();
    app.public_message()
}

/// One retrieved passage.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Passage {
    pub chunk_id: i64,
    pub knowledge_base_id: ResourceId,
    pub document_id: ResourceId,
    /// The document's name.
    pub document: String,
    pub text: String,
    pub score: f32,
    /// The chunk's place in its document, from 0.
    pub position: i64,
}

impl Passage {
    pub fn citation(&self) -> Citation {
        Citation {
            document_id: self.document_id,
            knowledge_base_id: self.knowledge_base_id,
            chunk_id: self.chunk_id,
            position: self.position,
            score: self.score,
        }
    }
}

/// The knowledge bases among `kbs` the member may read, with their embedding models.
fn readable_bases(
    tx: &crate::db::ReadTx<'_>,
    ctx: &OrgContext,
    kbs: &[ResourceId],
) -> Result<Vec<(ResourceId, String)>> {
    let mut out = Vec::new();
    for kb in kbs {
        if let Some(r) = resources::find_visible(tx, ctx, ResourceKind::KnowledgeBase, *kb)? {
            let model = match &r.fields {
                Fields::KnowledgeBase(b) => b.embedding_model.clone(),
                _ => None,
            }
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL.to_string());
            out.push((r.id, model));
        }
    }
    Ok(out)
}

/// What a retrieval asks for: the `top` passages nearest `query` among `bases`, the
/// query's embedding metered under `endpoint`.
pub struct Ask<'a> {
    pub endpoint: &'static str,
    pub bases: Vec<ResourceId>,
    pub query: &'a str,
    pub top: usize,
}

/// The `k` passages closest to `query` from those of `kbs` the member may read (others
/// are left out in silence: an agent may name a base its user cannot see). The query is
/// embedded once per embedding model, metered under `endpoint`; each base's partition of
/// the index is searched on its own.
pub async fn retrieve(
    svc: &Services,
    models: &Arc<Models>,
    k: &Arc<Knowledge>,
    ctx: &OrgContext,
    ask: Ask<'_>,
) -> Result<Vec<Passage>> {
    let Ask {
        endpoint,
        bases: kbs,
        query,
        top,
    } = ask;
    let bases = {
        let ctx = ctx.clone();
        svc.db
            .read(move |tx| readable_bases(tx, &ctx, &kbs))
            .await?
    };
    if bases.is_empty() || top == 0 {
        return Ok(Vec::new());
    }
    let mut by_model: BTreeMap<String, Vec<ResourceId>> = BTreeMap::new();
    for (kb, model) in bases {
        by_model.entry(model).or_default().push(kb);
    }
    let org = ctx.org_id();
    let mut hits: Vec<(ResourceId, Hit)> = Vec::new();
    for (model, kbs) in by_model {
        // Nothing indexed yet: no call to pay for.
        if kbs.iter().all(|kb| k.index.len(org, *kb) == 0) {
            continue;
        }
        let (v, _, _) =
            models::embed(models, ctx, endpoint, Some(&model), &[query.to_string()]).await?;
        let Some(q) = v.into_iter().next() else {
            continue;
        };
        for kb in kbs {
            hits.extend(
                k.index
                    .search(org, kb, &q, top)
                    .into_iter()
                    .map(|h| (kb, h)),
            );
        }
    }
    hits.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    hits.truncate(top);
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let mut out = Vec::with_capacity(hits.len());
            let mut names: BTreeMap<ResourceId, String> = BTreeMap::new();
            for (kb, h) in hits {
                let Some(c) = repo::chunks(tx, &ctx, kb, &[h.id])?.into_iter().next() else {
                    continue;
                };
                let name = match names.get(&c.document_id) {
                    Some(n) => n.clone(),
                    None => {
                        let n = resources::find_in_org(
                            tx,
                            &ctx,
                            ResourceKind::Document,
                            c.document_id,
                        )?
                        .map(|d| d.name)
                        .unwrap_or_default();
                        names.insert(c.document_id, n.clone());
                        n
                    }
                };
                out.push(Passage {
                    chunk_id: c.id,
                    knowledge_base_id: kb,
                    document_id: c.document_id,
                    document: name,
                    text: c.content,
                    score: h.score,
                    position: c.position,
                });
            }
            Ok(out)
        })
        .await
}

/// `GET …/knowledge-bases/{id}/search`: the base must be readable (404 otherwise).
pub async fn search(
    svc: &Services,
    models: &Arc<Models>,
    k: &Arc<Knowledge>,
    ctx: &OrgContext,
    kb: ResourceId,
    query: &str,
    top: usize,
) -> Result<Vec<Passage>> {
    let query = query.trim();
    if query.is_empty() {
        return Err(AppError::invalid_as(
            "invalid_query",
            vec![crate::domain::Invalid::new("q", "Say what to search for.")],
        ));
    }
    if query.len() > 8 * 1024 {
        return Err(AppError::invalid_as(
            "invalid_query",
            vec![crate::domain::Invalid::new(
                "q",
                "Keep the query under 8 KiB.",
            )],
        ));
    }
    if !(1..=MAX_K).contains(&top) {
        return Err(AppError::invalid_as(
            "invalid_query",
            vec![crate::domain::Invalid::new(
                "k",
                "Ask for 1 to 50 passages.",
            )],
        ));
    }
    {
        let ctx = ctx.clone();
        svc.db
            .read(move |tx| {
                resources::find_visible(tx, &ctx, ResourceKind::KnowledgeBase, kb)?
                    .ok_or_else(AppError::not_found)
            })
            .await?;
    }
    let ask = Ask {
        endpoint: crate::domain::usage::KNOWLEDGE_SEARCH,
        bases: vec![kb],
        query,
        top,
    };
    retrieve(svc, models, k, ctx, ask).await
}

/// The documents of a knowledge base the member may read, with their indexing state.
pub async fn documents(
    svc: &Services,
    ctx: &OrgContext,
    kb: ResourceId,
) -> Result<Vec<KbDocument>> {
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            resources::find_visible(tx, &ctx, ResourceKind::KnowledgeBase, kb)?
                .ok_or_else(AppError::not_found)?;
            Ok(repo::documents(tx, &ctx, kb)?)
        })
        .await
}

/// Adds a document to a knowledge base and queues it for indexing (as the caller); a
/// document already there is queued again. Returns whether it was newly added.
pub async fn add_document(
    svc: &Services,
    k: &Arc<Knowledge>,
    ctx: &OrgContext,
    actor: &Actor,
    kb: ResourceId,
    doc: ResourceId,
) -> Result<bool> {
    let added = super::resources::kb_document(svc, ctx, actor, kb, doc, true).await?;
    k.wake();
    Ok(added)
}

/// Takes a document out of a knowledge base: its chunks go in the same transaction, its
/// vectors from the index right after.
pub async fn remove_document(
    svc: &Services,
    k: &Arc<Knowledge>,
    ctx: &OrgContext,
    actor: &Actor,
    kb: ResourceId,
    doc: ResourceId,
) -> Result<()> {
    super::resources::kb_document(svc, ctx, actor, kb, doc, false).await?;
    k.index.remove_document(ctx.org_id(), kb, doc);
    Ok(())
}

/// After a resource was deleted: its vectors leave the index (the rows went with it), so
/// that they neither take places among the nearest passages nor are paid for; a document
/// leaves the knowledge bases it was in (`kbs`).
pub fn forget(k: &Knowledge, org: OrgId, kind: ResourceKind, id: ResourceId, kbs: &[ResourceId]) {
    match kind {
        ResourceKind::KnowledgeBase => k.index.remove_kb(org, id),
        ResourceKind::Document => {
            for kb in kbs {
                k.index.remove_document(org, *kb, id);
            }
        }
        _ => {}
    }
}

/// A document's status line: `indexing 3/10`, `failed: reason`.
pub fn status_text(d: &KbDocument) -> String {
    match d.status {
        IndexStatus::Indexing => format!("indexing {}/{}", d.embedded, d.chunks),
        IndexStatus::Failed => format!("failed: {}", d.error.as_deref().unwrap_or("unknown")),
        IndexStatus::Ready => format!("ready ({} chunks)", d.chunks),
        IndexStatus::Queued => "queued".into(),
    }
}
