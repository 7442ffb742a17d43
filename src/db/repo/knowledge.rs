//! Knowledge-base indexing: where each document of a knowledge base stands, and its
//! chunks with their vectors.
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{opt_uuid_at, time_at, uuid_at, word_at};
use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{IndexStatus, ResourceId, UserId};

/// A document of a knowledge base with its indexing state.
#[derive(Debug, Clone)]
pub struct KbDocument {
    pub document_id: ResourceId,
    pub status: IndexStatus,
    /// Chunks the document was split into.
    pub chunks: i64,
    /// Of those, embedded so far.
    pub embedded: i64,
    pub error: Option<String>,
    pub requested_by: Option<UserId>,
    pub added_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The document's name (the resource's), for lists.
    pub name: String,
    pub filename: String,
}

const KB_DOCUMENT_COLUMNS: &str = "k.document_id, k.status, k.chunks, k.embedded, k.error, k.requested_by, k.added_at, k.updated_at, d.name, d.filename";

fn kb_document_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KbDocument> {
    Ok(KbDocument {
        document_id: ResourceId::from_uuid(uuid_at(r, 0)?),
        status: word_at(r, 1)?,
        chunks: r.get(2)?,
        embedded: r.get(3)?,
        error: r.get(4)?,
        requested_by: opt_uuid_at(r, 5)?.map(UserId::from_uuid),
        added_at: time_at(r, 6)?,
        updated_at: match r.get::<_, Option<String>>(7)? {
            Some(_) => Some(time_at(r, 7)?),
            None => None,
        },
        name: r.get(8)?,
        filename: r.get(9)?,
    })
}

/// The documents of a knowledge base with their state, in the order they were added.
pub fn documents(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
) -> Result<Vec<KbDocument>, DbError> {
    c.scoped(ctx).query_vec(
        &format!(
            "SELECT {KB_DOCUMENT_COLUMNS} FROM knowledge_base_documents k
             JOIN uploaded_documents d ON d.organization_id = k.organization_id AND d.id = k.document_id
             WHERE k.organization_id = ?1 AND k.knowledge_base_id = ?2
             ORDER BY k.added_at, k.document_id"
        ),
        params![kb],
        kb_document_from_row,
    )
}

/// The knowledge bases a document is in.
pub fn bases_holding(
    c: &Conn<'_>,
    ctx: &OrgContext,
    doc: ResourceId,
) -> Result<Vec<ResourceId>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT knowledge_base_id FROM knowledge_base_documents
         WHERE organization_id = ?1 AND document_id = ?2",
        params![doc],
        |r| Ok(ResourceId::from_uuid(super::uuid_at(r, 0)?)),
    )
}

pub fn document(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    doc: ResourceId,
) -> Result<Option<KbDocument>, DbError> {
    c.scoped(ctx).query_opt(
        &format!(
            "SELECT {KB_DOCUMENT_COLUMNS} FROM knowledge_base_documents k
             JOIN uploaded_documents d ON d.organization_id = k.organization_id AND d.id = k.document_id
             WHERE k.organization_id = ?1 AND k.knowledge_base_id = ?2 AND k.document_id = ?3"
        ),
        params![kb, doc],
        kb_document_from_row,
    )
}

/// Puts a document (back) in the queue: `requested_by` will be the member it is embedded as.
pub fn enqueue(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    doc: ResourceId,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "UPDATE knowledge_base_documents SET status = 'queued', error = NULL, embedded = 0,
                requested_by = ?4, updated_at = ?5
         WHERE organization_id = ?1 AND knowledge_base_id = ?2 AND document_id = ?3",
        params![kb, doc, ctx.user_id().to_string(), now],
    )?;
    Ok(())
}

/// Every knowledge base holding `doc` whose chunks were made from other content than
/// `sha256` goes back in the queue (a re-uploaded document); returns them.
pub fn enqueue_changed(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    doc: ResourceId,
    sha256: &str,
    now: &str,
) -> Result<Vec<ResourceId>, DbError> {
    let kbs: Vec<String> = tx.scoped(ctx).query_vec(
        "SELECT knowledge_base_id FROM knowledge_base_documents
         WHERE organization_id = ?1 AND document_id = ?2
           AND (indexed_sha256 IS NULL OR indexed_sha256 <> ?3) AND status <> 'queued'",
        params![doc, sha256],
        |r| r.get(0),
    )?;
    let kbs: Vec<ResourceId> = kbs.iter().filter_map(|k| ResourceId::parse(k)).collect();
    for kb in &kbs {
        enqueue(tx, ctx, *kb, doc, now)?;
    }
    Ok(kbs)
}

/// Marks the document as being indexed, with its chunk count.
pub fn start(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    doc: ResourceId,
    chunks: i64,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE knowledge_base_documents SET status = 'indexing', chunks = ?4, embedded = 0, error = NULL, updated_at = ?5
         WHERE organization_id = ?1 AND knowledge_base_id = ?2 AND document_id = ?3",
        params![kb, doc, chunks, now],
    )? == 1)
}

/// Records how many chunks are embedded; false when the document is no longer being
/// indexed (taken out of the knowledge base, or queued again meanwhile).
pub fn progress(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    doc: ResourceId,
    embedded: i64,
    now: &str,
) -> Result<bool, DbError> {
    Ok(tx.scoped(ctx).execute(
        "UPDATE knowledge_base_documents SET embedded = ?4, updated_at = ?5
         WHERE organization_id = ?1 AND knowledge_base_id = ?2 AND document_id = ?3 AND status = 'indexing'",
        params![kb, doc, embedded, now],
    )? == 1)
}

pub fn fail(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    doc: ResourceId,
    reason: &str,
    now: &str,
) -> Result<(), DbError> {
    tx.scoped(ctx).execute(
        "UPDATE knowledge_base_documents SET status = 'failed', error = ?4, updated_at = ?5
         WHERE organization_id = ?1 AND knowledge_base_id = ?2 AND document_id = ?3",
        params![kb, doc, reason, now],
    )?;
    Ok(())
}

/// One chunk to store: its place, its text and its vector.
pub struct NewChunk<'a> {
    pub position: i64,
    pub content: &'a str,
    pub embedding: &'a [f32],
}

/// Replaces the document's chunks in the knowledge base by `chunks` and marks it ready,
/// in one transaction; returns the new chunks' ids in order.
pub fn finish(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    doc: ResourceId,
    sha256: &str,
    chunks: &[NewChunk<'_>],
    now: &str,
) -> Result<Vec<i64>, DbError> {
    let s = tx.scoped(ctx);
    s.execute(
        "DELETE FROM kb_chunks WHERE organization_id = ?1 AND knowledge_base_id = ?2 AND document_id = ?3",
        params![kb, doc],
    )?;
    let mut ids = Vec::with_capacity(chunks.len());
    for c in chunks {
        let id: i64 = s
            .query_opt(
                "INSERT INTO kb_chunks (organization_id, knowledge_base_id, document_id, position, content, embedding)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                params![kb, doc, c.position, c.content, vector_bytes(c.embedding)],
                |r| r.get(0),
            )?
            .ok_or(DbError::TaskFailed)?;
        ids.push(id);
    }
    s.execute(
        "UPDATE knowledge_base_documents SET status = 'ready', chunks = ?4, embedded = ?4, error = NULL,
                indexed_sha256 = ?5, updated_at = ?6
         WHERE organization_id = ?1 AND knowledge_base_id = ?2 AND document_id = ?3",
        params![kb, doc, chunks.len() as i64, sha256, now],
    )?;
    Ok(ids)
}

/// Deletes a document's chunks in a knowledge base (it was taken out of it).
pub fn delete_chunks(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    doc: ResourceId,
) -> Result<usize, DbError> {
    tx.scoped(ctx).execute(
        "DELETE FROM kb_chunks WHERE organization_id = ?1 AND knowledge_base_id = ?2 AND document_id = ?3",
        params![kb, doc],
    )
}

/// Little-endian f32, the stored form of a vector.
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn vector_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A stored chunk as retrieval shows it.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub id: i64,
    pub knowledge_base_id: ResourceId,
    pub document_id: ResourceId,
    pub position: i64,
    pub content: String,
}

/// The chunks of `ids` in this organization's knowledge base `kb` (ids of another
/// organization or knowledge base find nothing).
pub fn chunks(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    ids: &[i64],
) -> Result<Vec<Chunk>, DbError> {
    let mut out = Vec::with_capacity(ids.len());
    let s = c.scoped(ctx);
    for id in ids {
        if let Some(ch) = s.query_opt(
            "SELECT id, knowledge_base_id, document_id, position, content FROM kb_chunks
             WHERE organization_id = ?1 AND knowledge_base_id = ?2 AND id = ?3",
            params![kb, id],
            |r| {
                Ok(Chunk {
                    id: r.get(0)?,
                    knowledge_base_id: ResourceId::from_uuid(uuid_at(r, 1)?),
                    document_id: ResourceId::from_uuid(uuid_at(r, 2)?),
                    position: r.get(3)?,
                    content: r.get(4)?,
                })
            },
        )? {
            out.push(ch);
        }
    }
    Ok(out)
}

/// Every chunk vector of an organization, for the in-memory index at start: calls
/// `each(kb, document, id, vector bytes)` in storage order.
pub fn each_vector(
    c: &Conn<'_>,
    ctx: &OrgContext,
    mut each: impl FnMut(ResourceId, ResourceId, i64, &[u8]),
) -> Result<(), DbError> {
    c.scoped(ctx).for_each(
        "SELECT knowledge_base_id, document_id, id, embedding FROM kb_chunks
         WHERE organization_id = ?1 ORDER BY knowledge_base_id, document_id, position",
        params![],
        |r| {
            let kb = ResourceId::from_uuid(uuid_at(r, 0)?);
            let doc = ResourceId::from_uuid(uuid_at(r, 1)?);
            let id: i64 = r.get(2)?;
            let bytes = r.get_ref(3)?.as_blob().unwrap_or(&[]);
            each(kb, doc, id, bytes);
            Ok(())
        },
    )
}

/// The vectors of one document in a knowledge base (after it was indexed).
pub fn document_vectors(
    c: &Conn<'_>,
    ctx: &OrgContext,
    kb: ResourceId,
    doc: ResourceId,
) -> Result<Vec<(i64, Vec<f32>)>, DbError> {
    c.scoped(ctx).query_vec(
        "SELECT id, embedding FROM kb_chunks
         WHERE organization_id = ?1 AND knowledge_base_id = ?2 AND document_id = ?3 ORDER BY position",
        params![kb, doc],
        |r| {
            let id: i64 = r.get(0)?;
            let bytes = r.get_ref(1)?.as_blob().unwrap_or(&[]);
            Ok((id, vector_from_bytes(bytes)))
        },
    )
}
