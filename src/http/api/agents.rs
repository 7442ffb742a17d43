//! The agent services (API.md "Agent services"): chat in a conversation, a knowledge
//! base's documents and search, an agent's memory. Routes are the `{type}` shape of the
//! resources, each for the one kind it belongs to.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, put};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::pagination::{Page, encode_cursor, time_key};
use super::resources::{kind, only};
use super::views;
use super::views::members::Added;
use super::views::resources::MessageOut;
use super::{created, items, no_content, ok};
use crate::db::repo::knowledge::KbDocument;
use crate::db::repo::memory::Fact;
use crate::db::repo::resources::ResourceKind;
use crate::domain::IndexStatus;
use crate::domain::ResourceId;
use crate::error::{AppError, Result};
use crate::http::extract::{ApiJson, ApiQuery, OrgCtx, resource_id};
use crate::http::state::AppState;
use crate::services::chat::{self, Replied};
use crate::services::knowledge::{self, Passage};
use crate::services::resources as svc;
use crate::services::{memory, models};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/orgs/{org}/{type}/{id}/messages",
            get(list_messages).post(post_message),
        )
        .route(
            "/api/v1/orgs/{org}/{type}/{id}/documents",
            get(kb_documents).post(kb_add_by_body),
        )
        .route(
            "/api/v1/orgs/{org}/{type}/{id}/documents/{doc_id}",
            put(kb_add).delete(kb_remove),
        )
        .route("/api/v1/orgs/{org}/{type}/{id}/search", get(kb_search))
        .route(
            "/api/v1/orgs/{org}/{type}/{id}/memory",
            get(memory_list).post(memory_add),
        )
        .route(
            "/api/v1/orgs/{org}/{type}/{id}/memory/{memory_id}",
            patch(memory_change).delete(memory_remove),
        )
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/{type}/{id}/messages",
    tag = "agent-services",
    summary = "The conversation's messages, oldest first",
    params(OrgPath, IdPath, PageQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<MessageOut>),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn list_messages(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Conversation)?;
    let limit = page.limit()? as i64;
    let after = page.after()?.and_then(|c| {
        c.split_once('|')
            .map(|(a, b)| (a.to_string(), b.to_string()))
    });
    let mut rows = svc::messages(&s.svc, &ctx, resource_id(&id)?, after, limit + 1).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|m| encode_cursor(&time_key(m.created_at, m.id)))
    } else {
        None
    };
    Ok(items(&views::all::<_, MessageOut>(&rows), next))
}

#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org}/{type}/{id}/documents/{doc_id}",
    tag = "agent-services",
    summary = "Add a document to the knowledge base",
    params(OrgPath, IdPath, ("doc_id" = String, Path, format = "uuid")),
    responses(
        (status = 200, description = "Already there", body = Added),
        (status = 201, description = "Added", body = Added),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn kb_add(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, ty, id, doc)): Path<(String, String, String, String)>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::KnowledgeBase)?;
    let added = knowledge::add_document(
        &s.svc,
        &s.knowledge,
        &ctx,
        &user.actor(),
        resource_id(&id)?,
        resource_id(&doc)?,
    )
    .await?;
    Ok(if added {
        created(&Added { added: true })
    } else {
        ok(&Added { added: false })
    })
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/{type}/{id}/documents/{doc_id}",
    tag = "agent-services",
    summary = "Take a document out of the knowledge base",
    params(OrgPath, IdPath, ("doc_id" = String, Path, format = "uuid")),
    responses(
        (status = 204, description = "Removed"),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn kb_remove(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, ty, id, doc)): Path<(String, String, String, String)>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::KnowledgeBase)?;
    knowledge::remove_document(
        &s.svc,
        &s.knowledge,
        &ctx,
        &user.actor(),
        resource_id(&id)?,
        resource_id(&doc)?,
    )
    .await?;
    Ok(no_content())
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// `true`: the reply streams as server-sent events (as with `Accept: text/event-stream`)
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PostBody {
    /// the question, at most 64 KiB
    #[schema(min_length = 1)]
    content: String,
}

/// A question and the agent's reply.
#[derive(Serialize, utoipa::ToSchema)]
struct Exchange<'a> {
    message: MessageOut<'a>,
    reply: MessageOut<'a>,
}

fn wants_stream(headers: &HeaderMap, q: &StreamQuery) -> bool {
    q.stream.unwrap_or(false)
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"))
}

/// One server-sent event.
fn event(name: &str, data: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/{type}/{id}/messages",
    tag = "agent-services",
    summary = "Ask the conversation's agent; the reply is stored with the question",
    description = "The prompt is the agent's system prompt, traits and skills, its memory, passages from its knowledge bases and the history that fits the model's context. With `Accept: text/event-stream` (or `?stream=true`) the reply streams: `event: delta` with `{\"content\"}` pieces, then `event: done` with the stored reply (or `event: error`). A reader that goes away leaves the partial reply stored and metered for what was delivered. Refusals carry the gateway's codes: 429 `insufficient_quota` / `rate_limit_exceeded`, 424 `no_provider_key`, 403 `model_not_allowed`; nothing is stored then.",
    params(OrgPath, IdPath, StreamQuery),
    request_body = PostBody,
    responses(
        (status = 201, description = "The question and the reply", body = Exchange),
        (status = 422, response = Unprocessable),
        (status = 424, description = "No provider key or base URL", body = crate::http::api::openapi::ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 502, description = "The provider failed", body = crate::http::api::openapi::ErrorBody),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn post_message(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<PostBody>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Conversation)?;
    let conversation = resource_id(&id)?;
    let models = s.gateway.models.clone();
    let actor = user.actor();
    if !wants_stream(&headers, &q) {
        let (m, r) = chat::post(
            &s.svc,
            &models,
            &s.knowledge,
            &ctx,
            &actor,
            conversation,
            &b.content,
        )
        .await?;
        return Ok(created(&Exchange {
            message: MessageOut::from(&m),
            reply: MessageOut::from(&r),
        }));
    }
    let turn = chat::prepare(
        &s.svc,
        &models,
        &s.knowledge,
        &ctx,
        conversation,
        &b.content,
    )
    .await?;
    let mut stream = models::chat_stream(
        &models,
        &ctx,
        crate::domain::usage::AGENT_CHAT,
        turn.model.as_deref(),
        &turn.messages,
        Some(turn.max_tokens),
    )
    .await
    .map_err(AppError::from)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(64);
    let svc = s.svc.clone();
    tokio::spawn(async move {
        let mut reader_left = false;
        while let Some(delta) = stream.next_delta().await {
            if tx
                .send(Ok(event("delta", &json!({"content": delta}))))
                .await
                .is_err()
            {
                reader_left = true;
                break;
            }
        }
        let end = stream.so_far();
        // Metered here: 200 when whole, 499 when the reader left, 502 when it broke off.
        drop(stream);
        let replied = Replied {
            complete: !reader_left && !end.broke_off,
            content: end.content,
            tokens: end.tokens,
            cost: end.cost,
            model: end.model,
        };
        match chat::store(&svc, &actor, &turn, replied).await {
            Ok((_, reply)) => {
                let _ = tx.send(Ok(event("done", &MessageOut::from(&reply)))).await;
                chat::after_reply(&svc, &models, &turn, &reply);
            }
            Err(e) => {
                let _ = tx
                    .send(Ok(event(
                        "error",
                        &json!({"code": e.code(), "message": e.public_message()}),
                    )))
                    .await;
            }
        }
    });
    let body = Body::from_stream(tokio_stream_of(rx));
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    *res.status_mut() = axum::http::StatusCode::OK;
    Ok(res.into_response())
}

/// The receiving end of a channel as a body stream.
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
}

/// A document of a knowledge base with where its indexing stands.
#[derive(Serialize, utoipa::ToSchema)]
struct KbDocumentOut<'a> {
    document_id: ResourceId,
    name: &'a str,
    filename: &'a str,
    status: IndexStatus,
    /// chunks the document was split into
    chunks: i64,
    /// of those, embedded so far (`indexing n/m`)
    embedded: i64,
    /// why indexing failed
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<&'a str>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    added_at: chrono::DateTime<chrono::Utc>,
}

impl<'a> From<&'a KbDocument> for KbDocumentOut<'a> {
    fn from(d: &'a KbDocument) -> Self {
        KbDocumentOut {
            document_id: d.document_id,
            name: &d.name,
            filename: &d.filename,
            status: d.status,
            chunks: d.chunks,
            embedded: d.embedded,
            error: d.error.as_deref(),
            added_at: d.added_at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/{type}/{id}/documents",
    tag = "agent-services",
    summary = "The knowledge base's documents and their indexing status",
    params(OrgPath, IdPath),
    responses(
        (status = 200, description = "Success", body = ItemsOnly<KbDocumentOut>),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn kb_documents(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::KnowledgeBase)?;
    let docs = knowledge::documents(&s.svc, &ctx, resource_id(&id)?).await?;
    Ok(items(&views::all::<_, KbDocumentOut>(&docs), None))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddDocument {
    /// a document of this organization the caller can read
    #[schema(format = "uuid")]
    document_id: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/{type}/{id}/documents",
    tag = "agent-services",
    summary = "Add a document; indexing runs in the background",
    params(OrgPath, IdPath),
    request_body = AddDocument,
    responses(
        (status = 200, description = "Already there (queued for indexing again)", body = Added),
        (status = 201, description = "Added and queued", body = Added),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn kb_add_by_body(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
    ApiJson(b): ApiJson<AddDocument>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::KnowledgeBase)?;
    let added = knowledge::add_document(
        &s.svc,
        &s.knowledge,
        &ctx,
        &user.actor(),
        resource_id(&id)?,
        resource_id(&b.document_id)?,
    )
    .await?;
    Ok(if added {
        created(&Added { added: true })
    } else {
        ok(&Added { added: false })
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// what to search for
    #[param(required = true, min_length = 1, pattern = "\\S")]
    q: Option<String>,
    /// how many passages, 1 to 50 (default 5)
    #[param(minimum = 1, maximum = 50)]
    k: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/{type}/{id}/search",
    tag = "agent-services",
    summary = "The passages closest to the query, best first",
    description = "The query is embedded with the knowledge base's embedding model through the organization's provider (metered as `knowledge.search`); only this knowledge base's partition of the organization's index is searched.",
    params(OrgPath, IdPath, SearchQuery),
    responses(
        (status = 200, description = "Success", body = ItemsOnly<Passage>),
        (status = 424, description = "No provider key or base URL", body = crate::http::api::openapi::ErrorBody),
        (status = 429, response = TooManyRequests),
        Guarded,
        Sent,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn kb_search(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::KnowledgeBase)?;
    let kb = resource_id(&id)?;
    let found = knowledge::search(
        &s.svc,
        &s.gateway.models,
        &s.knowledge,
        &ctx,
        kb,
        q.q.as_deref().unwrap_or(""),
        q.k.unwrap_or(5),
    )
    .await?;
    Ok(items(&found, None))
}

/// A fact an agent keeps.
#[derive(Serialize, utoipa::ToSchema)]
struct FactOut<'a> {
    id: &'a str,
    key: &'a str,
    value: &'a str,
    /// `organization`: shared by the members who may read the agent; `member`: the caller's own
    #[schema(schema_with = crate::http::api::openapi::memory_scope)]
    scope: &'static str,
    #[schema(format = "uuid")]
    source_conversation_id: Option<ResourceId>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl<'a> From<&'a Fact> for FactOut<'a> {
    fn from(f: &'a Fact) -> Self {
        FactOut {
            id: &f.id,
            key: &f.key,
            value: &f.value,
            scope: if f.user_id.is_some() {
                "member"
            } else {
                "organization"
            },
            source_conversation_id: f.source_conversation_id,
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/{type}/{id}/memory",
    tag = "agent-services",
    summary = "The facts the agent keeps for the caller (or for the organization)",
    params(OrgPath, IdPath),
    responses(
        (status = 200, description = "Success", body = ItemsOnly<FactOut>),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn memory_list(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Agent)?;
    let facts = memory::list(&s.svc, &ctx, resource_id(&id)?).await?;
    Ok(items(&views::all::<_, FactOut>(&facts), None))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FactBody {
    /// at most 100 characters; the same key replaces the value
    #[schema(min_length = 1, max_length = 100)]
    key: String,
    #[schema(min_length = 1, max_length = 2000)]
    value: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/{type}/{id}/memory",
    tag = "agent-services",
    summary = "Remember a fact",
    params(OrgPath, IdPath),
    request_body = FactBody,
    responses(
        (status = 201, description = "Stored", body = FactOut),
        (status = 422, response = Unprocessable),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn memory_add(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
    ApiJson(b): ApiJson<FactBody>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Agent)?;
    let f = memory::put(&s.svc, &ctx, resource_id(&id)?, &b.key, &b.value).await?;
    Ok(created(&FactOut::from(&f)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FactChange {
    #[schema(min_length = 1, max_length = 100)]
    key: Option<String>,
    #[schema(min_length = 1, max_length = 2000)]
    value: Option<String>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/{type}/{id}/memory/{memory_id}",
    tag = "agent-services",
    summary = "Change a fact",
    params(OrgPath, IdPath, ("memory_id" = String, Path, format = "uuid")),
    request_body = FactChange,
    responses(
        (status = 200, description = "Changed", body = FactOut),
        (status = 409, response = Conflict),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn memory_change(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id, fact)): Path<(String, String, String, String)>,
    ApiJson(b): ApiJson<FactChange>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Agent)?;
    let f = memory::update(
        &s.svc,
        &ctx,
        resource_id(&id)?,
        fact_id(&fact)?,
        b.key,
        b.value,
    )
    .await?;
    Ok(ok(&FactOut::from(&f)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/{type}/{id}/memory/{memory_id}",
    tag = "agent-services",
    summary = "Forget a fact",
    params(OrgPath, IdPath, ("memory_id" = String, Path, format = "uuid")),
    responses(
        (status = 204, description = "Forgotten"),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn memory_remove(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id, fact)): Path<(String, String, String, String)>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Agent)?;
    memory::delete(&s.svc, &ctx, resource_id(&id)?, fact_id(&fact)?).await?;
    Ok(no_content())
}

/// A fact's id as stored (a UUID); anything else finds nothing.
fn fact_id(raw: &str) -> Result<String> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| AppError::not_found())
}
