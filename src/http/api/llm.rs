//! LLM providers, keys and policy (API.md "LLM settings").
use crate::http::extract::OrgCtx;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, patch, post, put};
use serde::Deserialize;
use serde_json::json;

use super::{no_content, ok, ok_typed};
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

async fn settings(State(s): State<AppState>, OrgCtx { ctx, .. }: OrgCtx) -> Result<Response> {
    Ok(ok_typed(&llm::settings(&s.svc, &ctx).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderBody {
    #[serde(default, deserialize_with = "super::present")]
    api_key: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    base_url: Option<Option<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    key_required: Option<bool>,
}

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
    Ok(ok_typed(&view))
}

async fn delete_provider(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, provider)): Path<(String, String)>,
) -> Result<Response> {
    llm::delete_provider(&s.svc, &ctx, &user.actor(), &provider).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    #[serde(default)]
    allow_user_keys: Option<bool>,
    #[serde(default, deserialize_with = "super::present")]
    default_model: Option<Option<String>>,
    #[serde(default)]
    allowed_models: Option<Vec<String>>,
}

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
    Ok(ok_typed(&view))
}

#[derive(Deserialize)]
struct ResolveQuery {
    provider: String,
}

async fn resolve(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(q): ApiQuery<ResolveQuery>,
) -> Result<Response> {
    let view = llm::resolve(&s.svc, &ctx, &q.provider).await?;
    Ok(ok_typed(&view))
}

#[derive(Deserialize)]
struct OrgQuery {
    org: String,
}

async fn my_keys(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> Result<Response> {
    let ctx = user.org_context(&s, q.org).await?;
    let keys = llm::my_keys(&s.svc, &ctx).await?;
    Ok(ok(json!({ "items": keys })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MyKeyBody {
    api_key: String,
    #[serde(default)]
    base_url: Option<String>,
}

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
    Ok(ok_typed(&view))
}

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
    Ok(ok_typed(&result))
}

async fn test_org_provider(
    State(s): State<AppState>,
    user: CurrentUser,
    Path((org, provider)): Path<(String, String)>,
) -> Result<Response> {
    probe(&s, &user, org, &provider, Target::Organization).await
}

async fn test_my_key(
    State(s): State<AppState>,
    user: CurrentUser,
    Path(provider): Path<String>,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> Result<Response> {
    probe(&s, &user, q.org, &provider, Target::Mine).await
}
