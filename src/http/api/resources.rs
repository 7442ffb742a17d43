//! Resources: the same collection shape for agents, workflows, documents, tools,
//! knowledge bases and conversations (API.md "Resources").
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use crate::http::extract::OrgCtx;
use crate::http::extract::resource_id;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::pagination::{Page, encode_cursor, time_key};
use super::views;
use super::views::resources::{AccessibleOut, ViewOut};
use super::{created, items, no_content, ok};
use crate::db::repo::resources::{ListQuery, ResourceKind};
use crate::domain::resources::Patch;
use crate::domain::{UserId, Visibility};
use crate::error::{AppError, Result};
use crate::http::extract::{ApiJson, ApiQuery, CurrentUser};
use crate::http::state::AppState;
use crate::services::resources::{self as svc, Input, SharedWithInput, Upload};

pub fn router(upload_limit: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/orgs/{org}/{type}",
            get(list).post(create).layer(DefaultBodyLimit::max(
                upload_limit.saturating_add(64 * 1024),
            )),
        )
        .route(
            "/api/v1/orgs/{org}/{type}/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/orgs/{org}/{type}/{id}/access", get(access))
        .route(
            "/api/v1/orgs/{org}/{type}/{id}/content",
            get(content)
                .put(replace_content)
                .layer(DefaultBodyLimit::max(
                    upload_limit.saturating_add(64 * 1024),
                )),
        )
        .route("/api/v1/orgs/{org}/limits", get(limits))
        .route("/api/v1/orgs/{org}/summary", get(summary))
        .route("/api/v1/me/accessible/{type}", get(accessible))
        .route("/api/v1/public/{type}", get(public))
}

pub(super) fn kind(raw: &str) -> Result<ResourceKind> {
    ResourceKind::from_path(raw).ok_or_else(AppError::not_found)
}

pub(super) fn only(k: ResourceKind, want: ResourceKind) -> Result<()> {
    if k == want {
        Ok(())
    } else {
        Err(AppError::not_found())
    }
}

/// A list's filters; its page is documented as `PageQuery`, and `organization_id` by
/// the one list that takes it.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    #[param(nullable = false)]
    visibility: Option<Visibility>,
    /// search in name and description (at most 200 characters)
    #[param(max_length = 200, nullable = false)]
    q: Option<String>,
    #[param(ignore)]
    limit: Option<i64>,
    #[param(ignore)]
    cursor: Option<String>,
    #[param(ignore)]
    organization_id: Option<String>,
}

impl ListParams {
    fn query(&self) -> Result<ListQuery> {
        let page = Page {
            limit: self.limit,
            cursor: self.cursor.clone(),
        };
        let limit = page.limit()? as i64;
        let after = page
            .after()?
            .map(|c| {
                c.split_once('|')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| AppError::bad_request("invalid_query", "cursor is not valid"))
            })
            .transpose()?;
        let q = self
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_string);
        if q.as_deref().is_some_and(|q| q.chars().count() > 200) {
            return Err(AppError::bad_request(
                "invalid_query",
                "q must be at most 200 characters",
            ));
        }
        // One more than asked, to know whether there is a next page.
        Ok(ListQuery {
            visibility: self.visibility,
            q,
            after,
            limit: limit + 1,
        })
    }
}

/// The page's rows (the one read beyond the limit dropped) and the next page's cursor.
fn page_out<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let next = if rows.len() as i64 > limit - 1 {
        rows.truncate((limit - 1) as usize);
        rows.last().map(|r| encode_cursor(&key(r)))
    } else {
        None
    };
    (rows, next)
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/{type}",
    tag = "resources",
    summary = "The {kinds} the caller may read, newest first (search with q)",
    params(OrgPath, ListParams, PageQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<AnyResource>),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn list(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty)): Path<(String, String)>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Response> {
    let k = kind(&ty)?;
    let q = p.query()?;
    let limit = q.limit;
    let rows = svc::list(&s.svc, &ctx, k, q).await?;
    let (rows, next) = page_out(rows, limit, |v| {
        time_key(v.resource.created_at, v.resource.id)
    });
    Ok(items(&views::all::<_, ViewOut>(&rows), next))
}

// `input_from` takes these out of the body before the kind's patch reads the rest; a test
// holds the two to each other.
/// What every kind's create body has besides the kind's own fields.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CreateCommon {
    /// 1-200 characters after trimming
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    name: String,
    #[schema(max_length = 5000)]
    description: Option<String>,
    visibility: Option<Visibility>,
    /// at most 200 users and teams together; every one must exist (400 otherwise)
    shared_with: Option<SharedWithInput>,
}

/// What every kind's change body has besides the kind's own fields; every field is optional.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ChangeCommon {
    /// 1-200 characters after trimming
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    name: Option<String>,
    #[schema(max_length = 5000)]
    description: Option<String>,
    visibility: Option<Visibility>,
    /// at most 200 users and teams together; every one must exist (400 otherwise)
    shared_with: Option<SharedWithInput>,
    /// the version you read; 409 version_conflict when it changed meanwhile (If-Match does the same)
    version: Option<i64>,
}

// `read_upload` matches these names.
/// A document upload: the file, and what else its form may say.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DocumentUpload {
    /// PDF, Office document, image, text, Markdown, HTML, CSV or JSON; the declared type must agree with the bytes
    #[schema(value_type = super::openapi::Binary)]
    file: Vec<u8>,
    /// 1-200 characters after trimming
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]",
        nullable = false
    )]
    name: Option<String>,
    #[schema(max_length = 5000, nullable = false)]
    description: Option<String>,
    #[schema(nullable = false)]
    visibility: Option<Visibility>,
    /// JSON: {"users": [ids], "teams": [ids]}
    #[schema(nullable = false)]
    shared_with: Option<String>,
}

/// Splits a JSON body into the common fields and the type's own.
fn input_from(kind: ResourceKind, mut body: Map<String, Value>) -> Result<Input> {
    let take_str = |b: &mut Map<String, Value>, k: &str| -> Result<Option<String>> {
        match b.remove(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(AppError::bad_request(
                "invalid_body",
                format!("{k} must be a string"),
            )),
        }
    };
    let name = take_str(&mut body, "name")?;
    let description = take_str(&mut body, "description")?;
    let visibility = match body.remove("visibility") {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value::<Visibility>(v).map_err(|_| {
            AppError::bad_request(
                "invalid_body",
                "visibility must be private, team, organization or public",
            )
        })?),
    };
    let shared_with = match body.remove("shared_with") {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value::<SharedWithInput>(v).map_err(|e| {
            AppError::bad_request(
                "invalid_body",
                format!("shared_with must be {{\"users\": [ids], \"teams\": [ids]}}: {e}"),
            )
        })?),
    };
    let version =
        match body.remove("version") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                AppError::bad_request("invalid_body", "version must be an integer")
            })?),
        };
    for k in [
        "id",
        "organization_id",
        "owner_id",
        "type",
        "created_at",
        "updated_at",
        "can_write",
    ] {
        if body.contains_key(k) {
            return Err(AppError::bad_request(
                "invalid_body",
                format!("{k} cannot be set"),
            ));
        }
    }
    let (fields, unknown_fields) = Patch::from_json(kind, body);
    Ok(Input {
        name,
        description,
        visibility,
        shared_with,
        fields,
        unknown_fields,
        version,
        unreadable: Vec::new(),
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/{type}",
    tag = "resources",
    summary = "Create one of the {kinds}; 422 plan_limit when the plan's maximum is reached",
    params(OrgPath),
    request_body = ResourceCreate,
    responses(
        (status = 201, description = "Success", body = AnyResource, headers(("ETag" = String, description = "the version, quoted; send it back as If-Match"))),
        (status = 422, response = Unprocessable),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn create(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, ty)): Path<(String, String)>,
    req: Request,
) -> Result<Response> {
    let k = kind(&ty)?;
    let view = if k == ResourceKind::Document {
        let upload = read_upload(req, &s).await?;
        svc::upload_document(&s.svc, &ctx, &user.actor(), upload.0, upload.1).await?
    } else {
        let limited = limit_body(req, s.config.body_limit_bytes);
        let ApiJson(body) = ApiJson::<Map<String, Value>>::from_request(limited, &s).await?;
        if body.contains_key("version") {
            // Only a change guards against lost updates; a new item has no version yet.
            return Err(AppError::bad_request(
                "invalid_body",
                "version cannot be set on create",
            ));
        }
        svc::create(&s.svc, &ctx, &user.actor(), input_from(k, body)?).await?
    };
    let mut res = created(&ViewOut::from(&view));
    etag(&mut res, view.resource.version);
    Ok(res)
}

/// JSON bodies keep the ordinary limit even on the route that also takes uploads.
fn limit_body(req: Request, limit: usize) -> Request {
    let (parts, body) = req.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, limit));
    Request::from_parts(parts, body)
}

async fn read_upload(req: Request, s: &AppState) -> Result<(Input, Option<Upload>)> {
    let mut mp = Multipart::from_request(req, s).await.map_err(|e| {
        AppError::bad_request(
            "invalid_body",
            format!(
                "send the document as multipart/form-data: {}",
                e.body_text()
            ),
        )
    })?;
    let mut meta = Map::new();
    let mut file: Option<Upload> = None;
    while let Some(field) = mp.next_field().await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            AppError::bad_request("invalid_body", e.body_text())
        }
    })? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                let filename = field.file_name().unwrap_or("document").to_string();
                let declared = field.content_type().map(str::to_string);
                let bytes = field.bytes().await.map_err(|e| {
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        AppError::PayloadTooLarge
                    } else {
                        AppError::bad_request("invalid_body", e.body_text())
                    }
                })?;
                file = Some(Upload {
                    filename,
                    declared_type: declared,
                    bytes: bytes.to_vec(),
                });
            }
            "name" | "description" | "visibility" => {
                let v = field
                    .text()
                    .await
                    .map_err(|e| AppError::bad_request("invalid_body", e.body_text()))?;
                meta.insert(name, Value::String(v));
            }
            "shared_with" => {
                let v = field
                    .text()
                    .await
                    .map_err(|e| AppError::bad_request("invalid_body", e.body_text()))?;
                let parsed: Value = serde_json::from_str(&v).map_err(|_| {
                    AppError::bad_request("invalid_body", "shared_with must be JSON")
                })?;
                meta.insert(name, parsed);
            }
            other => {
                return Err(AppError::bad_request(
                    "invalid_body",
                    format!("unknown form field {other}"),
                ));
            }
        }
    }
    Ok((input_from(ResourceKind::Document, meta)?, file))
}

fn etag(res: &mut Response, version: i64) {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/{type}/{id}",
    tag = "resources",
    summary = "One of them (404 when not visible); the ETag is its version",
    params(OrgPath, IdPath),
    responses(
        (status = 200, description = "Success", body = AnyResource, headers(("ETag" = String, description = "the version, quoted; send it back as If-Match"))),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn show(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
) -> Result<Response> {
    let k = kind(&ty)?;
    let view = svc::get(&s.svc, &ctx, k, resource_id(&id)?).await?;
    let mut res = ok(&ViewOut::from(&view));
    etag(&mut res, view.resource.version);
    Ok(res)
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/{type}/{id}",
    tag = "resources",
    summary = "Change it (its owner with the create permission, or the manage permission); If-Match or version guards against lost updates",
    params(OrgPath, IdPath, IfMatch),
    request_body = ResourceChange,
    responses(
        (status = 200, description = "Success", body = AnyResource, headers(("ETag" = String, description = "the version, quoted; send it back as If-Match"))),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn update(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Response> {
    let k = kind(&ty)?;
    let mut input = input_from(k, body)?;
    if let Some(v) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        let n = v
            .trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse::<i64>()
            .map_err(|_| {
                AppError::bad_request(
                    "invalid_header",
                    "If-Match must be the ETag of the resource",
                )
            })?;
        input.version = Some(n);
    }
    let view = svc::update(&s.svc, &ctx, &user.actor(), resource_id(&id)?, input).await?;
    let mut res = ok(&ViewOut::from(&view));
    etag(&mut res, view.resource.version);
    Ok(res)
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/{type}/{id}",
    tag = "resources",
    summary = "Delete it",
    params(OrgPath, IdPath),
    responses(
        (status = 204, description = "Deleted"),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn remove(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
) -> Result<Response> {
    let (k, id) = (kind(&ty)?, resource_id(&id)?);
    let bases = svc::delete(&s.svc, &ctx, &user.actor(), k, id).await?;
    crate::services::knowledge::forget(&s.knowledge, ctx.org_id(), k, id, &bases);
    Ok(no_content())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AccessQuery {
    /// only this member
    #[param(schema_with = super::openapi::uuid_or_empty)]
    user_id: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/{type}/{id}/access",
    tag = "resources",
    summary = "Who can read and write it, and why (its owner and administrators)",
    params(OrgPath, IdPath, AccessQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<crate::services::resources::Access>),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn access(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> Result<Response> {
    let k = kind(&ty)?;
    let only =
        match q.user_id.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => Some(UserId::parse(u).ok_or_else(|| {
                AppError::bad_request("invalid_query", "user_id must be a user id")
            })?),
            None => None,
        };
    let list = svc::explain_access(&s.svc, &ctx, k, resource_id(&id)?, only).await?;
    Ok(items(&list, None))
}

/// A document's new file.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DocumentFile {
    /// the new bytes; their type is decided by them, as at upload
    #[schema(value_type = super::openapi::Binary)]
    file: Vec<u8>,
}

#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org}/{type}/{id}/content",
    tag = "resources",
    summary = "Replace the document's file; the knowledge bases holding it index it again",
    description = "multipart/form-data with one `file`. The same checks as an upload (422 `plan_limit`, 422 `unsupported_content_type`); the version moves on. Each knowledge base holding the document whose chunks came from other bytes queues this document again (only it); the same bytes re-index nothing.",
    params(OrgPath, IdPath),
    request_body(content = DocumentFile, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Replaced", body = AnyResource, headers(("ETag" = String, description = "the new version"))),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn replace_content(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Document)?;
    let (input, file) = read_upload(req, &s).await?;
    if input.name.is_some()
        || input.description.is_some()
        || input.visibility.is_some()
        || input.shared_with.is_some()
    {
        return Err(AppError::bad_request(
            "invalid_body",
            "only the file is sent here; change the name, description or sharing with PATCH",
        ));
    }
    let (view, requeued) =
        svc::replace_document_content(&s.svc, &ctx, &user.actor(), resource_id(&id)?, file).await?;
    if !requeued.is_empty() {
        s.knowledge.wake();
    }
    let mut res = ok(&ViewOut::from(&view));
    etag(&mut res, view.resource.version);
    Ok(res)
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/{type}/{id}/content",
    tag = "resources",
    summary = "The document's bytes, with the type sniffed at upload",
    params(OrgPath, IdPath),
    responses(
        (status = 200, description = "The bytes", content((Binary = "*/*")), headers(("Content-Disposition" = String, description = ""))),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn content(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, ty, id)): Path<(String, String, String)>,
) -> Result<Response> {
    only(kind(&ty)?, ResourceKind::Document)?;
    let (filename, ctype, bytes) = svc::document_content(&s.svc, &ctx, resource_id(&id)?).await?;
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ascii}\""),
            ),
            (header::CONTENT_SECURITY_POLICY, "sandbox".to_string()),
            (header::CACHE_CONTROL, "private, no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/limits",
    tag = "resources",
    summary = "Usage against the plan: agents, workflows, users, storage_bytes, ai_credits",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = svc::Limits),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn limits(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    Ok(ok(&svc::limits(&s.svc, &ctx, s.svc.now()).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/summary",
    tag = "resources",
    summary = "Counts by type and visibility, members, usage this period",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = svc::Summary),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn summary(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    Ok(ok(&svc::summary(&s.svc, &ctx, s.svc.now()).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/me/accessible/{type}",
    tag = "resources",
    summary = "Everything of the type the caller may read across their organizations, with the organization of each",
    params(KindPath, ListParams, PageQuery, ("organization_id" = Option<String>, Query, format = "uuid", description = "only this organization")),
    responses(
        (status = 200, description = "Success", body = ListPage<AccessibleOut>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("session" = []), ("token" = [])),
)]
async fn accessible(
    State(s): State<AppState>,
    user: CurrentUser,
    Path(ty): Path<String>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Response> {
    let k = kind(&ty)?;
    let q = p.query()?;
    let limit = q.limit;
    // A token sees its own organization only.
    let only_org = match (&user.kind, p.organization_id.as_deref()) {
        (crate::http::extract::AuthKind::Token(t), _) => Some(t.organization_id),
        (_, Some(o)) => Some(crate::domain::OrgId::parse(o).ok_or_else(AppError::not_found)?),
        _ => None,
    };
    let rows = svc::accessible(&s.svc, user.user.id, k, q, only_org).await?;
    let (rows, next) = page_out(rows, limit, |a| {
        time_key(a.view.resource.created_at, a.view.resource.id)
    });
    Ok(items(&views::all::<_, AccessibleOut>(&rows), next))
}

#[utoipa::path(
    get,
    path = "/api/v1/public/{type}",
    tag = "resources",
    summary = "The public gallery (read-only, every signed-in user)",
    params(KindPath, ListParams, PageQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<PublicResource>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("session" = []), ("token" = [])),
)]
async fn public(
    State(s): State<AppState>,
    _user: CurrentUser,
    Path(ty): Path<String>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Response> {
    let k = kind(&ty)?;
    let q = p.query()?;
    let limit = q.limit;
    let rows = svc::public(&s.svc, k, q).await?;
    let (rows, next) = page_out(rows, limit, |v| {
        format!(
            "{}|{}",
            v["created_at"].as_str().unwrap_or(""),
            v["id"].as_str().unwrap_or("")
        )
    });
    Ok(items(&rows, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    fn properties<T: PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap_or_default();
        schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The document's common fields are exactly the keys `input_from` takes out of a body
    /// before the kind's patch reads the rest: each described one is read (a wrong type
    /// is refused naming it), and a key it does not describe reaches the patch as unknown.
    #[test]
    fn the_described_common_fields_are_the_ones_the_body_is_read_for() {
        let change = properties::<ChangeCommon>();
        let create = properties::<CreateCommon>();
        assert!(
            create.iter().all(|k| change.contains(k)),
            "{create:?} ⊄ {change:?}"
        );
        assert_eq!(
            change.len(),
            create.len() + 1,
            "a change also takes the version"
        );
        for key in &change {
            let mut body = Map::new();
            body.insert(key.clone(), serde_json::json!([1]));
            let Err(e) = input_from(ResourceKind::Tool, body) else {
                panic!("{key} is described but a list for it was accepted");
            };
            assert!(format!("{e:?}").contains(key.as_str()), "{key}: {e:?}");
        }
        let mut body = Map::new();
        body.insert("colour".into(), serde_json::json!("red"));
        let input = input_from(ResourceKind::Tool, body).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(input.unknown_fields, vec!["colour".to_string()]);
    }
}
