//! Uploaded documents: what their bytes are, storing them, reading them back, and the
//! documents of a knowledge base.
use crate::domain::Permission;
use crate::domain::ResourceId;
use crate::services::Services;
use serde_json::{Value, json};

use super::{Input, View, check_description, check_name, check_shares, view, writable};
use crate::db::OrgContext;
use crate::db::repo::resources::{self as repo, Fields, NewResource, ResourceKind};
use crate::db::repo::{audit, plans};
use crate::domain::resources::{Checked, Document};
use crate::domain::{Invalid, Visibility};
use crate::error::{AppError, Result};
use crate::services::{Actor, fresh_context, require};

/// What an upload turned out to be, by its bytes (not by what the client said).
pub fn sniff(bytes: &[u8], filename: &str) -> std::result::Result<&'static str, AppError> {
    const BINARY: &[&str] = &[
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
    ];
    // HTML is text; infer knows it only by its first tag, the name says it too.
    let found = infer::get(bytes);
    let html = found.is_some_and(|t| t.mime_type() == "text/html");
    if let Some(t) = found.filter(|_| !html) {
        return BINARY.iter().find(|b| **b == t.mime_type()).copied().ok_or_else(|| AppError::Unprocessable {
            code: "unsupported_content_type",
            message: format!("files of type {} are not accepted; upload PDF, Office documents, images or text", t.mime_type()),
        });
    }
    // UTF-16 text (with its byte-order mark) is text too; NULs are not.
    let text = match crate::services::knowledge::extract::utf16_text(bytes) {
        Some(t) => std::borrow::Cow::Owned(t),
        None => std::borrow::Cow::Borrowed(
            std::str::from_utf8(bytes)
                .ok()
                .filter(|s| !s.contains('\0'))
                .ok_or_else(|| AppError::Unprocessable {
                    code: "unsupported_content_type",
                    message: "this file is neither text nor a known document type".into(),
                })?,
        ),
    };
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    Ok(match ext.as_str() {
        "md" | "markdown" => "text/markdown",
        "html" | "htm" | "xhtml" => "text/html",
        "csv" => "text/csv",
        "json" => {
            if serde_json::from_str::<Value>(text.trim_start_matches('\u{FEFF}')).is_err() {
                return Err(AppError::invalid(vec![Invalid::new(
                    "file",
                    "The file is named .json but is not valid JSON.",
                )]));
            }
            "application/json"
        }
        _ if html => "text/html",
        _ => "text/plain",
    })
}

/// The declared type must agree with the sniffed one (generic declarations are fine).
fn declared_matches(declared: Option<&str>, sniffed: &str) -> bool {
    let Some(d) = declared.map(|d| {
        d.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }) else {
        return true;
    };
    d.is_empty()
        || d == "application/octet-stream"
        || d == sniffed
        || (d.starts_with("text/")
            && (sniffed.starts_with("text/") || sniffed == "application/json"))
        || (d == "application/json" && sniffed == "application/json")
}

fn clean_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let s: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    if s.trim().is_empty() {
        "document".into()
    } else {
        s.trim().to_string()
    }
}

pub struct Upload {
    pub filename: String,
    pub declared_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// What an uploaded file is, once its bytes agree with what the client declared.
struct CheckedFile {
    filename: String,
    content_type: &'static str,
    size: i64,
    sha: String,
}

fn checked_file(upload: &Upload) -> Result<CheckedFile> {
    let filename = clean_filename(&upload.filename);
    let content_type = sniff(&upload.bytes, &filename)?;
    if !declared_matches(upload.declared_type.as_deref(), content_type) {
        return Err(AppError::bad_request(
            "content_type_mismatch",
            format!(
                "the file was sent as {} but its content is {content_type}",
                upload.declared_type.as_deref().unwrap_or_default()
            ),
        ));
    }
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&upload.bytes))
    };
    Ok(CheckedFile {
        filename,
        content_type,
        size: upload.bytes.len() as i64,
        sha,
    })
}

/// Stores an uploaded document (bytes inside the database, so one file is a backup).
pub async fn upload_document(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    input: Input,
    upload: Option<Upload>,
) -> Result<View> {
    require(ctx, Permission::DocumentsCreate)?;
    let checked = check_upload(input, upload)?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| store_upload_in_tx(tx, &ctx, &actor, &checked, &now))
        .await
}

/// An upload whose name, description and file passed their checks: what
/// `store_upload_in_tx` stores.
pub(crate) struct CheckedUpload {
    name: String,
    description: String,
    visibility: Visibility,
    shared_with: Option<super::SharedWithInput>,
    file: CheckedFile,
    bytes: Vec<u8>,
}

/// The checks of an upload that need no database: a file that is not empty and is what
/// it says it is, a name (the file's when none is given) and a description.
pub(crate) fn check_upload(mut input: Input, upload: Option<Upload>) -> Result<CheckedUpload> {
    let mut errors = input.unreadable.clone();
    match &upload {
        None => errors.push(Invalid::new("file", "Choose a file to upload.")),
        Some(u) if u.bytes.is_empty() => errors.push(Invalid::new("file", "The file is empty.")),
        Some(_) => {}
    }
    let name = input.name.take().filter(|n| !n.trim().is_empty());
    if let Some(n) = &name {
        check_name(n.trim(), &mut errors);
    }
    if let Some(d) = input.description.as_deref() {
        check_description(d, &mut errors);
    }
    let Some(upload) = upload.filter(|_| errors.is_empty()) else {
        return Err(AppError::invalid(errors));
    };
    let file = checked_file(&upload)?;
    let name = name.map_or_else(|| file.filename.clone(), |n| n.trim().to_string());
    if !check_name(&name, &mut errors) {
        return Err(AppError::invalid(errors));
    }
    Ok(CheckedUpload {
        name,
        description: input.description.unwrap_or_default(),
        visibility: input.visibility.unwrap_or(Visibility::Private),
        shared_with: input.shared_with,
        file,
        bytes: upload.bytes,
    })
}

/// Stores a checked upload inside the caller's write job: the plan's size limits against
/// the committed state, the document, its bytes, its shares and its audit row.
pub(crate) fn store_upload_in_tx(
    tx: &crate::db::WriteTx<'_>,
    ctx: &OrgContext,
    actor: &Actor,
    upload: &CheckedUpload,
    now: &str,
) -> Result<View> {
    let CheckedFile {
        filename,
        content_type,
        size,
        sha,
    } = &upload.file;
    let (size, name) = (*size, &upload.name);
    let me = fresh_context(tx, ctx)?;
    require(&me, Permission::DocumentsCreate)?;
    let plan = plans::for_org(tx, &me)?.ok_or_else(AppError::not_found)?;
    if let Some(max) = plan.max_documents
        && repo::count(tx, &me, ResourceKind::Document)? >= max
    {
        return Err(super::core::limit_reached("documents", max, &plan.name));
    }
    if let Some(max) = plan.max_document_bytes.filter(|m| size > *m) {
        return Err(AppError::Unprocessable {
            code: "plan_limit",
            message: format!(
                "the {} plan accepts documents up to {}; this one has {}",
                plan.name,
                crate::domain::format::bytes(max),
                crate::domain::format::bytes(size)
            ),
        });
    }
    if let Some(max) = plan
        .max_storage_bytes
        .filter(|m| repo::storage_bytes(tx, &me).map_or(true, |u| u + size > *m))
    {
        return Err(AppError::Unprocessable {
            code: "plan_limit",
            message: format!(
                "the {} plan allows {} of documents in all; this upload would pass it",
                plan.name,
                crate::domain::format::bytes(max)
            ),
        });
    }
    let shares = upload
        .shared_with
        .as_ref()
        .map(|s| check_shares(tx, &me, s))
        .transpose()?
        .unwrap_or_default();
    let id = ResourceId::new();
    let visibility = upload.visibility;
    let file = Document {
        content_type: content_type.to_string(),
        filename: filename.clone(),
        sha256: sha.clone(),
        size_bytes: size,
    };
    let fields = Checked::document(file);
    repo::insert(
        tx,
        &me,
        &NewResource {
            id,
            name: name.trim(),
            description: upload.description.trim(),
            visibility,
            fields: &fields,
            now,
        },
    )?;
    repo::insert_document_content(tx, &me, id, &upload.bytes)?;
    repo::set_shares(tx, &me, ResourceKind::Document, id, &shares, now)?;
    audit::append(
        tx,
        &me,
        &actor.entry("document.created", "document", Some(id.to_string()), json!({"name": name, "filename": filename, "content_type": content_type, "size_bytes": size, "sha256": sha, "visibility": visibility})),
        now,
    )?;
    let r =
        repo::find_in_org(tx, &me, ResourceKind::Document, id)?.ok_or_else(AppError::not_found)?;
    view(tx, &me, r)
}

/// Replaces a document's file (the caller must be able to change it): the same checks as
/// an upload, the version moves on, and every knowledge base holding the document whose
/// chunks came from other bytes queues it again (only it: the rest of each knowledge base
/// stays indexed). Returns the document and those knowledge bases.
pub async fn replace_document_content(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    id: ResourceId,
    upload: Option<Upload>,
) -> Result<(View, Vec<ResourceId>)> {
    let upload = match upload {
        None => {
            return Err(AppError::invalid(vec![Invalid::new(
                "file",
                "Choose a file to upload.",
            )]));
        }
        Some(u) if u.bytes.is_empty() => {
            return Err(AppError::invalid(vec![Invalid::new(
                "file",
                "The file is empty.",
            )]));
        }
        Some(u) => u,
    };
    let CheckedFile {
        filename,
        content_type,
        size,
        sha,
    } = checked_file(&upload)?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db.write(move |tx| {
        let me = fresh_context(tx, &ctx)?;
        let r = writable(tx, &me, ResourceKind::Document, id, "document", "replace its file")?;
        let Fields::Document(before) = &r.fields else {
            return Err(AppError::not_found());
        };
        let plan = plans::for_org(tx, &me)?.ok_or_else(AppError::not_found)?;
        if let Some(max) = plan.max_document_bytes.filter(|m| size > *m) {
            return Err(AppError::Unprocessable { code: "plan_limit", message: format!("the {} plan accepts documents up to {}; this one has {}", plan.name, crate::domain::format::bytes(max), crate::domain::format::bytes(size)) });
        }
        if let Some(max) = plan.max_storage_bytes.filter(|m| repo::storage_bytes(tx, &me).map_or(true, |u| u - before.size_bytes + size > *m)) {
            return Err(AppError::Unprocessable { code: "plan_limit", message: format!("the {} plan allows {} of documents in all; this file would pass it", plan.name, crate::domain::format::bytes(max)) });
        }
        let file = Document {
            content_type: content_type.to_string(),
            filename: filename.clone(),
            sha256: sha.clone(),
            size_bytes: size,
        };
        let fields = Checked::document(file);
        let changes = repo::Changes { name: None, description: None, visibility: None, fields: &fields, now: &now, expected_version: r.version };
        if !repo::update(tx, &me, id, &changes)? {
            return Err(AppError::conflict("version_conflict", "the document was changed meanwhile; try again"));
        }
        repo::replace_document_content(tx, &me, id, &upload.bytes)?;
        let requeued = crate::db::repo::knowledge::enqueue_changed(tx, &me, id, &sha, &now)?;
        audit::append(
            tx,
            &me,
            &actor.entry("document.updated", "document", Some(id.to_string()), json!({
                "before": {"filename": before.filename, "content_type": before.content_type, "size_bytes": before.size_bytes, "sha256": before.sha256},
                "after": {"filename": filename, "content_type": content_type, "size_bytes": size, "sha256": sha},
                "reindexed_in": requeued.len(),
            })),
            &now,
        )?;
        let r = repo::find_in_org(tx, &me, ResourceKind::Document, id)?.ok_or_else(AppError::not_found)?;
        Ok((view(tx, &me, r)?, requeued))
    })
    .await
}

/// The stored bytes of a document the caller may read: (filename, content type, bytes).
pub async fn document_content(
    svc: &Services,
    ctx: &OrgContext,
    id: ResourceId,
) -> Result<(String, String, Vec<u8>)> {
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let r = repo::find_visible(tx, &ctx, ResourceKind::Document, id)?
                .ok_or_else(AppError::not_found)?;
            let bytes = repo::document_content(tx, &ctx, id)?.ok_or_else(AppError::not_found)?;
            let Fields::Document(d) = r.fields else {
                return Err(AppError::not_found());
            };
            Ok((d.filename, d.content_type, bytes))
        })
        .await
}

/// Adds (or removes) a readable document to a knowledge base the caller may change.
pub async fn kb_document(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    kb: ResourceId,
    doc: ResourceId,
    add: bool,
) -> Result<bool> {
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| kb_document_in_tx(tx, &ctx, &actor, kb, doc, add, &now))
        .await
}

/// `kb_document` inside the caller's write job. An added document is queued for indexing,
/// as the member who added it: the server's indexer picks it up, also when another
/// process (`xagent import`) wrote it.
pub(crate) fn kb_document_in_tx(
    tx: &crate::db::WriteTx<'_>,
    ctx: &OrgContext,
    actor: &Actor,
    kb: ResourceId,
    doc: ResourceId,
    add: bool,
    now: &str,
) -> Result<bool> {
    let me = fresh_context(tx, ctx)?;
    writable(
        tx,
        &me,
        ResourceKind::KnowledgeBase,
        kb,
        "knowledge base",
        "change it",
    )?;
    let document = repo::find_visible(tx, &me, ResourceKind::Document, doc)?
        .ok_or_else(AppError::not_found)?;
    let changed = if add {
        let added = repo::kb_add_document(tx, &me, kb, doc, now)?;
        // New or added again: (re)indexed, as the member who added it.
        crate::db::repo::knowledge::enqueue(tx, &me, kb, doc, now)?;
        added
    } else {
        // The chunks go with the link, in this transaction.
        crate::db::repo::knowledge::delete_chunks(tx, &me, kb, doc)?;
        repo::kb_remove_document(tx, &me, kb, doc)?
    };
    if !add && !changed {
        return Err(AppError::not_found());
    }
    if changed {
        let action = if add {
            "knowledge_base.document_added"
        } else {
            "knowledge_base.document_removed"
        };
        audit::append(
            tx,
            &me,
            &actor.entry(
                action,
                "knowledge_base",
                Some(kb.to_string()),
                json!({"document_id": doc, "document": document.name}),
            ),
            now,
        )?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::sniff;

    fn sniffed(bytes: &[u8], name: &str) -> String {
        sniff(bytes, name).map_or_else(|e| format!("refused: {e}"), str::to_string)
    }

    #[test]
    fn html_is_accepted_as_html_by_its_first_tag_or_its_name() {
        assert_eq!(sniffed(b"<!DOCTYPE html><p>x</p>", "page"), "text/html");
        assert_eq!(sniffed(b"<html lang=\"en\"></html>", "A.txt"), "text/html");
        assert_eq!(sniffed(b"<meta charset=utf-8><p>x", "A.html"), "text/html");
        // The name wins over a leading comment.
        assert_eq!(sniffed(b"<!-- note -->\n# Title", "A.md"), "text/markdown");
    }

    #[test]
    fn utf16_text_with_a_byte_order_mark_is_text() {
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("{\"a\": \"é\"}".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(sniffed(&le, "Notes.txt"), "text/plain");
        assert_eq!(sniffed(&le, "Data.json"), "application/json");
        assert!(sniffed(&le[..le.len() - 1], "Notes.txt").starts_with("refused"));
        assert!(sniffed(b"a\0b", "Notes.txt").starts_with("refused"));
    }
}
