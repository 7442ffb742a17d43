//! LLM providers, keys and policy (API.md "LLM settings").
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, patch, post, put};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{no_content, ok};
use crate::error::Result;
use crate::http::extract::{ApiJson, ApiQuery, CurrentUser};
use crate::http::state::AppState;
use crate::services::llm::{self, PolicyInput, ProviderInput};
use crate::services::llm_probe::Target;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org}/llm", get(settings))
        .route(
            "/api/v1/orgs/{org}/llm/providers/{provider}",
            put(put_provider).delete(delete_provider),
        )
        .route(
            "/api/v1/orgs/{org}/llm/providers/{provider}/test",
            post(test_org_provider),
        )
        .route("/api/v1/orgs/{org}/llm/policy", patch(patch_policy))
        .route("/api/v1/orgs/{org}/llm/resolve", get(resolve))
        .route("/api/v1/me/llm/providers", get(my_keys))
        .route(
            "/api/v1/me/llm/providers/{provider}",
            put(put_my_key).delete(delete_my_key),
        )
        .route(
            "/api/v1/me/llm/providers/{provider}/test",
            post(test_my_key),
        )
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/llm",
    tag = "llm",
    summary = "The organization's LLM policy and providers (keys only as hints)",
    params(OrgPath),
    responses(
        (status = 200, description = "Success", body = llm::Settings),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn settings(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    Ok(ok(&llm::settings(&s.svc, &ctx).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProviderBody {
    /// write-only; printable ASCII without spaces; null removes the key, absent keeps it
    #[schema(min_length = 1, max_length = 4096, pattern = "^\\s*[!-~]+\\s*$")]
    #[serde(default, deserialize_with = "super::present")]
    api_key: Option<Option<String>>,
    /// an http:// or https:// URL
    #[schema(max_length = 2048, pattern = "^https?://[^\\s/]\\S*$")]
    #[serde(default, deserialize_with = "super::present")]
    base_url: Option<Option<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    /// false: the provider needs no key (then base_url is required); absent keeps the setting
    #[serde(default)]
    key_required: Option<bool>,
}

#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org}/llm/providers/{provider}",
    tag = "llm",
    summary = "Create or change a provider: key (write-only, stored encrypted), base URL, enabled",
    params(OrgPath, ProviderPath),
    request_body = ProviderBody,
    responses(
        (status = 200, description = "Success", body = llm::ProviderView),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn put_provider(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, provider)): Path<(String, String)>,
    ApiJson(b): ApiJson<ProviderBody>,
) -> Result<Response> {
    let view = llm::put_provider(
        &s.svc,
        &ctx,
        &user.actor(),
        &provider,
        ProviderInput {
            api_key: b.api_key,
            base_url: b.base_url,
            enabled: b.enabled,
            key_required: b.key_required,
        },
    )
    .await?;
    Ok(ok(&view))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/llm/providers/{provider}",
    tag = "llm",
    summary = "Remove a provider entry and its key",
    params(OrgPath, ProviderPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn delete_provider(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, provider)): Path<(String, String)>,
) -> Result<Response> {
    llm::delete_provider(&s.svc, &ctx, &user.actor(), &provider).await?;
    Ok(no_content())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    #[serde(default)]
    allow_user_keys: Option<bool>,
    /// a model name, 1-200 characters; one of allowed_models when those are set
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    #[serde(default, deserialize_with = "super::present")]
    default_model: Option<Option<String>>,
    #[schema(max_items = 500, value_type = Option<Vec<super::openapi::ModelName>>)]
    #[serde(default)]
    allowed_models: Option<Vec<String>>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/llm/policy",
    tag = "llm",
    summary = "Allow members' own keys, default and allowed models",
    params(OrgPath),
    request_body = PolicyBody,
    responses(
        (status = 200, description = "Success", body = llm::PolicyView),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn patch_policy(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    ApiJson(b): ApiJson<PolicyBody>,
) -> Result<Response> {
    let view = llm::patch_policy(
        &s.svc,
        &ctx,
        &user.actor(),
        PolicyInput {
            allow_user_keys: b.allow_user_keys,
            default_model: b.default_model,
            allowed_models: b.allowed_models,
        },
    )
    .await?;
    Ok(ok(&view))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ResolveQuery {
    /// provider name: 1-32 lower-case letters, digits and '-' (e.g. openai, azure-openai, ollama)
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,31}$")]
    provider: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/llm/resolve",
    tag = "llm",
    summary = "Which key a call would use: user, organization, environment or none",
    params(OrgPath, ResolveQuery),
    responses(
        (status = 200, description = "Success", body = llm::ResolveView),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn resolve(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(q): ApiQuery<ResolveQuery>,
) -> Result<Response> {
    let view = llm::resolve(&s.svc, &ctx, &q.provider).await?;
    Ok(ok(&view))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct OrgQuery {
    /// organization id or slug
    #[param(min_length = 1)]
    org: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/me/llm/providers",
    tag = "llm",
    summary = "The caller's own provider keys in an organization (hints only)",
    params(OrgQuery),
    responses(
        (status = 200, description = "Success", body = ItemsOnly<llm::ProviderView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("session" = []), ("token" = [])),
)]
async fn my_keys(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> Result<Response> {
    let ctx = user.org_context(&s, q.org).await?;
    let keys = llm::my_keys(&s.svc, &ctx).await?;
    Ok(ok(&ItemsOnly { items: keys }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MyKeyBody {
    /// write-only; printable ASCII without spaces
    #[schema(min_length = 1, max_length = 4096, pattern = "^\\s*[!-~]+\\s*$")]
    api_key: String,
    /// an http:// or https:// URL
    #[schema(max_length = 2048, pattern = "^https?://[^\\s/]\\S*$")]
    #[serde(default)]
    base_url: Option<String>,
}

#[utoipa::path(
    put,
    path = "/api/v1/me/llm/providers/{provider}",
    tag = "llm",
    summary = "Set the caller's own key for a provider in an organization (403 user_keys_disabled when the organization does not allow them)",
    params(ProviderPath, OrgQuery),
    request_body = MyKeyBody,
    responses(
        (status = 200, description = "Success", body = llm::ProviderView),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn put_my_key(
    State(s): State<AppState>,
    user: CurrentUser,
    Path(provider): Path<String>,
    ApiQuery(q): ApiQuery<OrgQuery>,
    ApiJson(b): ApiJson<MyKeyBody>,
) -> Result<Response> {
    let ctx = user.org_context(&s, q.org).await?;
    let view = llm::put_my_key(
        &s.svc,
        &ctx,
        &user.actor(),
        &provider,
        llm::MyKey {
            api_key: &b.api_key,
            base_url: b.base_url.as_deref(),
        },
    )
    .await?;
    Ok(ok(&view))
}

#[utoipa::path(
    delete,
    path = "/api/v1/me/llm/providers/{provider}",
    tag = "llm",
    summary = "Remove the caller's own key",
    params(ProviderPath, OrgQuery),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn delete_my_key(
    State(s): State<AppState>,
    user: CurrentUser,
    Path(provider): Path<String>,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> Result<Response> {
    let ctx = user.org_context(&s, q.org).await?;
    llm::delete_my_key(&s.svc, &ctx, &user.actor(), &provider).await?;
    Ok(no_content())
}

/// The provider's model list asked with the key `target` names (API.md "LLM settings").
async fn probe(
    s: &AppState,
    user: &CurrentUser,
    org: String,
    provider: &str,
    target: Target,
) -> Result<Response> {
    let ctx = user.org_context(s, org).await?;
    let result =
        crate::services::llm_probe::test_connection(&s.svc, &ctx, provider, target).await?;
    Ok(ok(&result))
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/llm/providers/{provider}/test",
    tag = "llm",
    summary = "Test connection: ask the provider for its model list with the organization's key (or the server's environment key); answers {ok, status, message, source, key_hint, model_count, models, latency_ms}; llm.keys.manage",
    params(OrgPath, ProviderPath),
    responses(
        (status = 200, description = "Success", body = crate::services::llm_probe::ConnectionTest),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn test_org_provider(
    State(s): State<AppState>,
    user: CurrentUser,
    Path((org, provider)): Path<(String, String)>,
) -> Result<Response> {
    probe(&s, &user, org, &provider, Target::Organization).await
}

#[utoipa::path(
    post,
    path = "/api/v1/me/llm/providers/{provider}/test",
    tag = "llm",
    summary = "Test connection with the caller's own key for a provider in an organization (404 when they have none)",
    params(ProviderPath, OrgQuery),
    responses(
        (status = 200, description = "Success", body = crate::services::llm_probe::ConnectionTest),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn test_my_key(
    State(s): State<AppState>,
    user: CurrentUser,
    Path(provider): Path<String>,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> Result<Response> {
    probe(&s, &user, q.org, &provider, Target::Mine).await
}
