//! AI providers: the organization's providers (keys write-only, shown as a hint), its
//! policy and a "test connection" per provider; and a member's own keys.
use crate::domain::Permission;
use crate::http::extract::OrgCtx;
use crate::http::extract::OrgForm;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::org_frame::{form_errors, nav, shown_at};
use super::{layout, render_status, see_other};
use crate::config::EnvProvider;
use crate::db::OrgContext;
use crate::db::scope::has_permission;
use crate::error::Result;
use crate::http::extract::CurrentUser;
use crate::http::state::AppState;
use crate::http::views::{
    FormErrors, LlmSettingsPage, MyKeyRow, MyKeysPage, ProviderRow, ResolutionRow, TestView,
};
use crate::services::llm::{self, KeySource, PolicyInput, ProviderInput, parse_provider};
use crate::services::llm_probe::{ConnectionTest, Target};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/o/{org}/llm", get(show))
        .route("/o/{org}/llm/providers", post(save_provider))
        .route(
            "/o/{org}/llm/providers/{provider}/delete",
            post(remove_provider),
        )
        .route(
            "/o/{org}/llm/providers/{provider}/test",
            post(test_provider),
        )
        .route("/o/{org}/llm/policy", post(save_policy))
        .route("/o/{org}/llm/keys", get(my_keys).post(save_my_key))
        .route("/o/{org}/llm/keys/{provider}/delete", post(remove_my_key))
        .route("/o/{org}/llm/keys/{provider}/test", post(test_my_key))
}

fn llm_url(ctx: &OrgContext) -> String {
    format!("/o/{}/llm", ctx.org().slug)
}

fn keys_url(ctx: &OrgContext) -> String {
    format!("/o/{}/llm/keys", ctx.org().slug)
}

/// What a page says after a redirect: `?saved=openai`, `?removed=openai`, `?policy=1`.
/// Only valid provider names are repeated on the page.
#[derive(Deserialize, Default)]
struct Done {
    #[serde(default)]
    saved: Option<String>,
    #[serde(default)]
    removed: Option<String>,
    #[serde(default)]
    policy: Option<String>,
}

impl Done {
    fn notice(&self, what: &str) -> Option<String> {
        let name = |n: &Option<String>| n.as_deref().and_then(|n| parse_provider(n).ok());
        if let Some(n) = name(&self.saved) {
            Some(format!("{n}: {what} saved."))
        } else if let Some(n) = name(&self.removed) {
            Some(format!("{n}: {what} removed."))
        } else {
            self.policy.as_ref().map(|_| "Policy saved.".to_string())
        }
    }
}

fn source_label(source: KeySource) -> &'static str {
    match source {
        KeySource::User => "your key",
        KeySource::Organization => "the organization's key",
        KeySource::Environment => "the server's key",
        KeySource::None => "no key",
    }
}

fn test_view(t: &ConnectionTest) -> TestView {
    let mut detail = vec![source_label(t.source).to_string()];
    if let Some(h) = &t.key_hint {
        detail[0].push(' ');
        detail[0].push_str(h);
    }
    if let Some(u) = &t.base_url {
        detail.push(u.clone());
    }
    if t.status.is_some() || t.latency_ms > 0 {
        detail.push(format!("{} ms", t.latency_ms));
    }
    let mut models = t
        .models
        .iter()
        .take(12)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if t.model_count > 12 {
        models.push_str(&format!(" and {} more", t.model_count - 12));
    }
    TestView {
        ok: t.ok,
        message: t.message.clone(),
        detail: detail.join(" · "),
        models,
    }
}

/// Rows for the organization's entries, then for providers configured only on the server.
fn provider_rows(
    entries: Vec<llm::ProviderView>,
    env: &std::collections::BTreeMap<String, EnvProvider>,
) -> Vec<ProviderRow> {
    let env_hint = |name: &str| {
        env.get(name)
            .and_then(|e| e.api_key.as_ref())
            .map(|k| crate::auth::hint(k.expose()))
    };
    let mut rows: Vec<ProviderRow> = entries
        .into_iter()
        .map(|p| {
            let effective = if !p.enabled {
                "nothing: disabled".to_string()
            } else if p.key_hint.is_some() {
                "the organization's key".to_string()
            } else if let Some(h) = env_hint(&p.provider) {
                format!("the server's key {h}")
            } else if !p.key_required {
                "no key needed".to_string()
            } else {
                "no key".to_string()
            };
            ProviderRow {
                base_url: p.base_url.unwrap_or_default(),
                key_hint: p.key_hint.unwrap_or_default(),
                enabled: p.enabled,
                key_required: p.key_required,
                effective,
                updated: crate::domain::format::time_at(p.updated_at),
                server_only: false,
                test: None,
                errors: FormErrors::default(),
                name: p.provider,
            }
        })
        .collect();
    for (name, e) in env {
        if rows.iter().any(|r| &r.name == name) {
            continue;
        }
        rows.push(ProviderRow {
            name: name.clone(),
            base_url: e.base_url.clone().unwrap_or_default(),
            key_hint: env_hint(name).unwrap_or_default(),
            enabled: true,
            key_required: true,
            effective: if e.api_key.is_some() {
                "the server's key".into()
            } else {
                "no key".into()
            },
            updated: String::new(),
            server_only: true,
            test: None,
            errors: FormErrors::default(),
        });
    }
    rows
}

async fn settings_page(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
) -> Result<LlmSettingsPage> {
    let settings = llm::settings(&s.svc, ctx).await?;
    let title = format!("AI providers · {}", ctx.org().name);
    Ok(LlmSettingsPage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, "llm"),
        can_manage_keys: has_permission(ctx, Permission::LlmKeysManage),
        can_manage_policy: has_permission(ctx, Permission::LlmPolicyManage),
        providers: provider_rows(settings.providers, &s.svc.env_providers),
        allow_user_keys: settings.policy.allow_user_keys,
        default_model: settings.policy.default_model.unwrap_or_default(),
        allowed_models: settings.policy.allowed_models.join("\n"),
        policy_errors: FormErrors::default(),
        new_name: String::new(),
        new_base_url: String::new(),
        new_no_key: false,
        new_errors: FormErrors::default(),
        notice: None,
    })
}

fn answer(status: StatusCode, page: &impl askama::Template, at: &str) -> Result<Response> {
    Ok(shown_at(render_status(status, page)?, at))
}

async fn show(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Query(done): Query<Done>,
) -> Result<Response> {
    let mut page = settings_page(&s, &user, &ctx).await?;
    page.notice = done.notice("provider");
    render_status(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct ProviderForm {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    remove_key: Option<String>,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    no_key: Option<String>,
}

impl ProviderForm {
    /// An empty key field keeps the stored key; an empty base URL removes the entry's own.
    fn input(&self) -> ProviderInput {
        let key = self.api_key.trim();
        ProviderInput {
            api_key: if self.remove_key.is_some() {
                Some(None)
            } else if key.is_empty() {
                None
            } else {
                Some(Some(key.to_string()))
            },
            base_url: Some(Some(self.base_url.trim().to_string()).filter(|u| !u.is_empty())),
            enabled: Some(self.enabled.is_some()),
            key_required: Some(self.no_key.is_none()),
        }
    }
}

async fn save_provider(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<ProviderForm>,
) -> Result<Response> {
    let name = f.provider.trim().to_string();
    let result = llm::put_provider(&s.svc, &ctx, &user.actor(), &name, f.input()).await;
    let e = match result {
        Ok(v) => {
            return Ok(see_other(&format!(
                "{}?saved={}",
                llm_url(&ctx),
                v.provider
            )));
        }
        Err(e) => e,
    };
    let Some(errors) = form_errors(&e, &["provider", "base_url", "api_key"], "form") else {
        return Err(e);
    };
    let mut page = settings_page(&s, &user, &ctx).await?;
    // The key typed is never sent back; the form asks for it again.
    match page.providers.iter_mut().find(|r| r.name == name) {
        Some(row) => {
            row.key_required = f.no_key.is_none();
            row.base_url = f.base_url;
            row.errors = errors;
        }
        None => {
            page.new_no_key = f.no_key.is_some();
            page.new_name = f.provider;
            page.new_base_url = f.base_url;
            page.new_errors = errors;
        }
    }
    answer(e.status(), &page, &llm_url(&ctx))
}

async fn remove_provider(
    State(s): State<AppState>,
    Path((_, provider)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, ()): OrgForm<()>,
) -> Result<Response> {
    llm::delete_provider(&s.svc, &ctx, &user.actor(), &provider).await?;
    Ok(see_other(&format!("{}?removed={provider}", llm_url(&ctx))))
}

async fn test_provider(
    State(s): State<AppState>,
    Path((_, provider)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, ()): OrgForm<()>,
) -> Result<Response> {
    let t =
        crate::services::llm_probe::test_connection(&s.svc, &ctx, &provider, Target::Organization)
            .await?;
    let mut page = settings_page(&s, &user, &ctx).await?;
    let view = test_view(&t);
    match page.providers.iter_mut().find(|r| r.name == t.provider) {
        Some(row) => row.test = Some(view),
        // A provider without any configuration: the result says there is no key.
        None => page.notice = Some(format!("{}: {}", t.provider, view.message)),
    }
    answer(StatusCode::OK, &page, &llm_url(&ctx))
}

#[derive(Deserialize)]
struct PolicyForm {
    #[serde(default)]
    allow_user_keys: Option<String>,
    #[serde(default)]
    default_model: String,
    #[serde(default)]
    allowed_models: String,
}

/// Model names one per line (commas also separate them).
fn model_list(raw: &str) -> Vec<String> {
    raw.split(['\n', ','])
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

async fn save_policy(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<PolicyForm>,
) -> Result<Response> {
    let default = f.default_model.trim();
    let input = PolicyInput {
        allow_user_keys: Some(f.allow_user_keys.is_some()),
        default_model: Some((!default.is_empty()).then(|| default.to_string())),
        allowed_models: Some(model_list(&f.allowed_models)),
    };
    let Err(e) = llm::patch_policy(&s.svc, &ctx, &user.actor(), input).await else {
        return Ok(see_other(&format!("{}?policy=1", llm_url(&ctx))));
    };
    let Some(errors) = form_errors(&e, &["default_model", "allowed_models"], "form") else {
        return Err(e);
    };
    let mut page = settings_page(&s, &user, &ctx).await?;
    page.allow_user_keys = f.allow_user_keys.is_some();
    page.default_model = f.default_model;
    page.allowed_models = f.allowed_models;
    page.policy_errors = errors;
    answer(e.status(), &page, &llm_url(&ctx))
}

async fn keys_page(s: &AppState, user: &CurrentUser, ctx: &OrgContext) -> Result<MyKeysPage> {
    let settings = llm::settings(&s.svc, ctx).await?;
    let mine = llm::my_keys(&s.svc, ctx).await?;
    let mut known: Vec<String> = settings
        .providers
        .iter()
        .map(|p| p.provider.clone())
        .chain(s.svc.env_providers.keys().cloned())
        .chain(mine.iter().map(|p| p.provider.clone()))
        .chain(std::iter::once("openai".to_string()))
        .collect();
    known.sort();
    known.dedup();
    let resolution = llm::resolve_each(&s.svc, ctx, known.clone())
        .await?
        .into_iter()
        .map(|r| ResolutionRow {
            provider: r.provider,
            source: source_label(r.source).to_string(),
            key_hint: r.key_hint.unwrap_or_default(),
            reason: r.reason.unwrap_or_default(),
        })
        .collect();
    let title = format!("My keys · {}", ctx.org().name);
    Ok(MyKeysPage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, "llm"),
        allowed: settings.policy.allow_user_keys,
        keys: mine
            .into_iter()
            .map(|k| MyKeyRow {
                name: k.provider,
                base_url: k.base_url.unwrap_or_default(),
                key_hint: k.key_hint.unwrap_or_default(),
                updated: crate::domain::format::time_at(k.updated_at),
                test: None,
            })
            .collect(),
        resolution,
        known,
        form_provider: String::new(),
        form_base_url: String::new(),
        errors: FormErrors::default(),
        notice: None,
    })
}

async fn my_keys(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Query(done): Query<Done>,
) -> Result<Response> {
    let mut page = keys_page(&s, &user, &ctx).await?;
    page.notice = done.notice("your key");
    render_status(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct MyKeyForm {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    base_url: String,
}

async fn save_my_key(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<MyKeyForm>,
) -> Result<Response> {
    let base_url = Some(f.base_url.trim()).filter(|u| !u.is_empty());
    let result = llm::put_my_key(
        &s.svc,
        &ctx,
        &user.actor(),
        f.provider.trim(),
        llm::MyKey {
            api_key: &f.api_key,
            base_url,
        },
    )
    .await;
    let e = match result {
        Ok(v) => {
            return Ok(see_other(&format!(
                "{}?saved={}",
                keys_url(&ctx),
                v.provider
            )));
        }
        Err(e) => e,
    };
    let Some(errors) = form_errors(&e, &["provider", "api_key", "base_url"], "form") else {
        return Err(e);
    };
    let mut page = keys_page(&s, &user, &ctx).await?;
    page.form_provider = f.provider;
    page.form_base_url = f.base_url;
    page.errors = errors;
    answer(e.status(), &page, &keys_url(&ctx))
}

async fn remove_my_key(
    State(s): State<AppState>,
    Path((_, provider)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, ()): OrgForm<()>,
) -> Result<Response> {
    llm::delete_my_key(&s.svc, &ctx, &user.actor(), &provider).await?;
    Ok(see_other(&format!("{}?removed={provider}", keys_url(&ctx))))
}

async fn test_my_key(
    State(s): State<AppState>,
    Path((_, provider)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, ()): OrgForm<()>,
) -> Result<Response> {
    let t =
        crate::services::llm_probe::test_connection(&s.svc, &ctx, &provider, Target::Mine).await?;
    let mut page = keys_page(&s, &user, &ctx).await?;
    if let Some(row) = page.keys.iter_mut().find(|k| k.name == t.provider) {
        row.test = Some(test_view(&t));
    }
    answer(StatusCode::OK, &page, &keys_url(&ctx))
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;
    use crate::config::Secret;
    use crate::http::views::{Layout, OrgNav};

    #[test]
    fn rows_say_which_key_calls_use_and_list_server_only_providers() {
        let mut env = std::collections::BTreeMap::new();
        env.insert(
            "openai".to_string(),
            EnvProvider {
                api_key: Some(Secret::new("sk-env-0000-WXYZ")),
                base_url: None,
            },
        );
        env.insert(
            "ollama".to_string(),
            EnvProvider {
                api_key: None,
                base_url: Some("http://localhost:11434/v1".into()),
            },
        );
        let entry = |name: &str, hint: Option<&str>, enabled: bool| llm::ProviderView {
            provider: name.into(),
            base_url: None,
            key_hint: hint.map(str::to_string),
            enabled,
            key_required: true,
            updated_at: chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00.000000Z")
                .unwrap()
                .to_utc(),
        };
        let rows = provider_rows(
            vec![
                entry("openai", None, true),
                entry("azure", Some("sk-…abcd"), true),
                entry("vllm", Some("sk-…efgh"), false),
            ],
            &env,
        );
        let by = |n: &str| rows.iter().find(|r| r.name == n).unwrap();
        assert_eq!(by("openai").effective, "the server's key sk-…WXYZ");
        assert_eq!(by("azure").effective, "the organization's key");
        assert_eq!(by("vllm").effective, "nothing: disabled");
        assert!(by("ollama").server_only);
        assert_eq!(by("ollama").effective, "no key");
        assert_eq!(rows.len(), 4);
        assert_eq!(
            model_list("gpt-4o\n gpt-4o-mini , ,\r\no1"),
            vec!["gpt-4o", "gpt-4o-mini", "o1"]
        );
    }

    #[test]
    fn managers_get_forms_and_others_a_read_only_page_without_any_key() {
        let page = |manage: bool| LlmSettingsPage {
            layout: Layout::default(),
            nav: OrgNav::new("acme", "Acme", "llm", |_| true),
            can_manage_keys: manage,
            can_manage_policy: manage,
            providers: vec![ProviderRow {
                name: "openai".into(),
                base_url: String::new(),
                key_hint: "sk-…abcd".into(),
                enabled: true,
                key_required: true,
                effective: "the organization's key".into(),
                updated: "2026-11-28 10:00 UTC".into(),
                server_only: false,
                test: Some(TestView {
                    ok: false,
                    message: "the provider refused the key (HTTP 401)".into(),
                    detail: "the organization's key sk-…abcd".into(),
                    models: String::new(),
                }),
                errors: FormErrors::one(
                    "base_url",
                    "Enter an address that starts with http:// or https://.",
                ),
            }],
            allow_user_keys: true,
            default_model: "gpt-4o".into(),
            allowed_models: "gpt-4o\ngpt-4o-mini".into(),
            policy_errors: FormErrors::default(),
            new_name: String::new(),
            new_base_url: String::new(),
            new_no_key: false,
            new_errors: FormErrors::default(),
            notice: None,
        };
        let html = page(true).render().unwrap();
        assert!(html.contains("id=\"test-openai\""));
        assert!(html.contains("id=\"add-provider-form\""));
        assert!(html.contains("id=\"test-result-openai\""));
        assert!(html.contains("<details id=\"edit-openai\" open>"));
        assert!(html.contains("id=\"save-policy\""));
        assert!(html.contains("gpt-4o\ngpt-4o-mini</textarea>"));
        let html = page(false).render().unwrap();
        assert!(!html.contains("id=\"test-openai\""));
        assert!(!html.contains("id=\"add-provider-form\""));
        assert!(!html.contains("id=\"save-policy\""));
        assert!(html.contains("sk-…abcd"));
    }
}
