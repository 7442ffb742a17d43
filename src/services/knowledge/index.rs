//! The in-memory vector index, partitioned per organization and knowledge base.
use std::collections::HashMap;
use std::sync::RwLock;

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

#[derive(Default)]
struct Segment {
    dims: usize,
    entries: Vec<(i64, ResourceId, Vec<f32>)>,
}

#[derive(Default)]
pub struct Index {
    parts: RwLock<HashMap<(OrgId, ResourceId), Segment>>,
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(
        &self,
        org: OrgId,
        kb: ResourceId,
        document: ResourceId,
        chunks: &[(i64, &[f32])],
    ) -> Result<(), IndexError> {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        let seg = parts.entry((org, kb)).or_default();
        for (id, v) in chunks {
            if seg.dims == 0 {
                seg.dims = v.len();
            }
            if v.len() != seg.dims {
                return Err(IndexError::Dims {
                    got: v.len(),
                    want: seg.dims,
                });
            }
            seg.entries.retain(|e| e.0 != *id);
            seg.entries.push((*id, document, normalized(v)));
        }
        Ok(())
    }

    pub fn remove_document(&self, org: OrgId, kb: ResourceId, document: ResourceId) -> usize {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        let Some(seg) = parts.get_mut(&(org, kb)) else {
            return 0;
        };
        let before = seg.entries.len();
        seg.entries.retain(|e| e.1 != document);
        before - seg.entries.len()
    }

    /// Removes a document from every knowledge base of `org`; returns how many vectors went.
    pub fn remove_document_everywhere(&self, org: OrgId, document: ResourceId) -> usize {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        let mut removed = 0;
        for (_, seg) in parts.iter_mut().filter(|(key, _)| key.0 == org) {
            let before = seg.entries.len();
            seg.entries.retain(|e| e.1 != document);
            removed += before - seg.entries.len();
        }
        removed
    }

    pub fn remove_kb(&self, org: OrgId, kb: ResourceId) {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        parts.remove(&(org, kb));
    }

    pub fn remove_org(&self, org: OrgId) {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        parts.retain(|k, _| k.0 != org);
    }

    pub fn search(&self, org: OrgId, kb: ResourceId, query: &[f32], k: usize) -> Vec<Hit> {
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        let Some(seg) = parts.get(&(org, kb)) else {
            return Vec::new();
        };
        if query.len() != seg.dims {
            return Vec::new();
        }
        let q = normalized(query);
        let mut hits: Vec<Hit> = seg
            .entries
            .iter()
            .map(|(id, d, v)| Hit {
                id: *id,
                document: *d,
                score: v.iter().zip(&q).map(|(a, b)| a * b).sum(),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        hits
    }

    pub fn len(&self, org: OrgId, kb: ResourceId) -> usize {
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        parts.get(&(org, kb)).map_or(0, |s| s.entries.len())
    }

    pub fn memory_bytes(&self) -> usize {
        0
    }
}
