//! Single sign-on per organization with OpenID Connect: the organization's provider
//! (issuer, client id, a write-only client secret sealed like provider keys, the email
//! domains it signs in, the role of members it provisions, "SSO only"), the sign-in flow
//! (discovery, authorization code with PKCE, state and nonce, ID-token validation, a
//! verified email of an allowed domain) and the rule it sets for password sign-in.
//!
//! Every call to an issuer goes through the tenant HTTP client of `upstream`, so the
//! outbound target policy (`outbound.rs`) holds for the issuer, its discovery document's
//! endpoints and its key set alike, redirects are not followed, and each call has a
//! deadline and a size limit.
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    TokenResponse,
};
use serde::Serialize;
use serde_json::json;

use super::throttle::LoginThrottle;
use super::upstream::Origin;
use super::{Actor, ClientMeta, Services, fresh_context, require};
use crate::db::repo::{audit, members, orgs, plans, sso, users};
use crate::db::scope::SystemScope;
use crate::db::{OrgContext, WriteTx};
use crate::domain::sso::{
    fields, parse_client_id, parse_client_secret, parse_default_role, parse_domains, parse_issuer,
};
use crate::domain::{
    Email, Invalid, OrgId, OrgKind, OrgStatus, Permission, PersonName, Role, UserStatus, as_stored,
    fmt_time,
};
use crate::error::AppError;

type Result<T> = std::result::Result<T, AppError>;

/// How long a sign-in may stay at the provider before its state is no longer accepted.
pub const LOGIN_TTL_MINUTES: i64 = 10;
/// The cookie that binds a sign-in's state to the browser that started it.
pub const STATE_COOKIE: &str = "xagent_sso_state";
/// Each call to an issuer (discovery, key set, token) gets this long.
const ISSUER_TIMEOUT: Duration = Duration::from_secs(10);
/// Larger answers from an issuer are not read.
const ISSUER_BODY_LIMIT: usize = 1 << 20;

// ---------------------------------------------------------------- settings

/// An organization's single sign-on as the API and pages show it: the secret only as a
/// hint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = SsoSettings)]
pub struct SsoView {
    /// the OpenID Connect issuer URL (its discovery document is `<issuer>/.well-known/openid-configuration`)
    pub issuer: String,
    pub client_id: String,
    /// a hint of the client secret (`abc…wxyz`); null when none is set
    pub client_secret_hint: Option<String>,
    /// the email domains whose people sign in here, lower case
    pub allowed_domains: Vec<String>,
    /// the role of a member the first sign-in adds
    #[schema(value_type = String, example = "member")]
    pub default_role: Role,
    /// password sign-in is refused for the organization's members (owners with two-factor authentication excepted)
    pub sso_only: bool,
    /// the redirect URI to register at the provider
    pub redirect_uri: String,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub updated_at: DateTime<Utc>,
}

fn view(svc: &Services, org: OrgId, p: sso::Provider, domains: Vec<String>) -> SsoView {
    SsoView {
        issuer: p.issuer,
        client_id: p.client_id,
        client_secret_hint: p.secret_hint,
        allowed_domains: domains,
        default_role: p.default_role,
        sso_only: p.sso_only,
        redirect_uri: redirect_uri(svc, org),
        updated_at: p.updated_at,
    }
}

/// Where the provider sends the browser back: `<public_url>/sso/{org}/callback`, by the
/// organization's id (a slug may change; the URI is registered at the provider).
pub fn redirect_uri(svc: &Services, org: OrgId) -> String {
    format!("{}/sso/{org}/callback", svc.base_url.trim_end_matches('/'))
}

/// The organization's single sign-on, or `None` when it has none (`security.manage`).
pub async fn settings(svc: &Services, ctx: &OrgContext) -> Result<Option<SsoView>> {
    require(ctx, Permission::SecurityManage)?;
    let ctx = ctx.clone();
    let svc2 = svc.clone();
    svc.db
        .read(move |tx| {
            let Some(p) = sso::provider(tx, &ctx)? else {
                return Ok(None);
            };
            let domains = sso::domains(tx, &ctx)?;
            Ok(Some(view(&svc2, ctx.org_id(), p, domains)))
        })
        .await
}

/// A change to the single sign-on. Absent fields keep what is stored; `client_secret`
/// `null` removes the secret. Creating one needs `issuer`, `client_id` and
/// `allowed_domains`.
#[derive(Debug, Clone, Default)]
pub struct SsoInput {
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Option<String>>,
    pub allowed_domains: Option<Vec<String>>,
    pub default_role: Option<String>,
    pub sso_only: Option<bool>,
}

fn secret_aad(org: OrgId) -> String {
    format!("{org}/sso/client_secret")
}

/// Creates or changes the organization's single sign-on (`security.manage`), audited as
/// `sso.updated` (the secret only as "set"/"removed"/"unchanged").
pub async fn save(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    input: SsoInput,
) -> Result<SsoView> {
    require(ctx, Permission::SecurityManage)?;
    let mut errors = Vec::new();
    if ctx.org().kind == OrgKind::Personal {
        errors.push(Invalid::new(
            "sso",
            "A personal workspace has no single sign-on; set it up in an organization.",
        ));
    }
    let issuer = input
        .issuer
        .as_deref()
        .map(parse_issuer)
        .transpose()
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    if let Some(i) = &issuer
        && let Err(e) = super::outbound::check_saved(i, svc.targets, fields::ISSUER).await
    {
        errors.push(e);
    }
    let client_id = input
        .client_id
        .as_deref()
        .map(parse_client_id)
        .transpose()
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let secret = match &input.client_secret {
        Some(Some(s)) => parse_client_secret(s)
            .map_err(|e| errors.push(e))
            .ok()
            .map(Some),
        Some(None) => Some(None),
        None => None,
    };
    let domains = input
        .allowed_domains
        .as_deref()
        .map(parse_domains)
        .transpose()
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let role = input
        .default_role
        .as_deref()
        .map(parse_default_role)
        .transpose()
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    if let Some(r) = role
        && r.rank() > ctx.role().rank()
    {
        errors.push(Invalid::new(
            fields::DEFAULT_ROLE,
            "Choose a role no higher than your own.",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let (ctx, actor, svc2) = (ctx.clone(), actor.clone(), svc.clone());
    let at = as_stored(svc.now());
    let now = fmt_time(at);
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::SecurityManage)?;
            let before = sso::provider(tx, &me)?;
            let before_domains = sso::domains(tx, &me)?;
            let mut missing = Vec::new();
            if before.is_none() {
                if issuer.is_none() {
                    missing.push(Invalid::new(fields::ISSUER, "Enter the issuer's address."));
                }
                if client_id.is_none() {
                    missing.push(Invalid::new(fields::CLIENT_ID, "Enter the client id."));
                }
                if domains.is_none() {
                    missing.push(Invalid::new(
                        fields::ALLOWED_DOMAINS,
                        "Enter at least one email domain whose people sign in here, e.g. example.com.",
                    ));
                }
            }
            let (Some(mut row), true) = (
                before.clone().or_else(|| {
                    Some(sso::Provider {
                        issuer: issuer.clone().unwrap_or_default(),
                        client_id: client_id.clone().unwrap_or_default(),
                        secret_ciphertext: None,
                        secret_key_id: None,
                        secret_hint: None,
                        default_role: Role::Member,
                        sso_only: false,
                        updated_at: at,
                    })
                }),
                missing.is_empty(),
            ) else {
                return Err(AppError::invalid(missing));
            };
            if let Some(i) = &issuer {
                row.issuer.clone_from(i);
            }
            if let Some(c) = &client_id {
                row.client_id.clone_from(c);
            }
            if let Some(r) = role {
                row.default_role = r;
            }
            if let Some(o) = input.sso_only {
                row.sso_only = o;
            }
            let secret_change = match &secret {
                Some(Some(s)) => {
                    let dk = super::llm::data_key_for_sealing(tx, &me, &svc2.keyring, &now)?;
                    row.secret_ciphertext = Some(dk.seal(s.as_bytes(), &secret_aad(me.org_id())));
                    row.secret_key_id = Some(dk.id().to_string());
                    row.secret_hint = Some(crate::auth::hint(s));
                    "set"
                }
                Some(None) => {
                    row.secret_ciphertext = None;
                    row.secret_key_id = None;
                    row.secret_hint = None;
                    "removed"
                }
                None => "unchanged",
            };
            row.updated_at = at;
            let new_domains = domains.clone().unwrap_or_else(|| before_domains.clone());
            if let Some(taken) = sso::domain_taken(tx, &me, &new_domains)? {
                return Err(AppError::conflict(
                    "domain_taken",
                    format!(
                        "The email domain {taken} already signs in through another organization's single sign-on; an email domain routes to one organization only."
                    ),
                ));
            }
            sso::save_provider(tx, &me, &row, me.user_id(), &now)?;
            sso::set_domains(tx, &me, &new_domains)?;
            let shown = |p: &sso::Provider, d: &[String]| {
                json!({"issuer": p.issuer, "client_id": p.client_id, "allowed_domains": d,
                       "default_role": p.default_role, "sso_only": p.sso_only})
            };
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "sso.updated",
                    "sso",
                    None,
                    json!({
                        "before": before.as_ref().map(|b| shown(b, &before_domains)),
                        "after": shown(&row, &new_domains),
                        "client_secret": secret_change,
                    }),
                ),
                &now,
            )?;
            Ok(view(&svc2, me.org_id(), row, new_domains))
        })
        .await
}

/// Removes the organization's single sign-on: its provider, secret and domains, and the
/// sign-ins under way (`security.manage`), audited as `sso.removed`. 404 when there is none.
pub async fn remove(svc: &Services, ctx: &OrgContext, actor: &Actor) -> Result<()> {
    require(ctx, Permission::SecurityManage)?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::SecurityManage)?;
            let before = sso::provider(tx, &me)?.ok_or_else(AppError::not_found)?;
            let domains = sso::domains(tx, &me)?;
            sso::delete_provider(tx, &me)?;
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "sso.removed",
                    "sso",
                    None,
                    json!({"issuer": before.issuer, "client_id": before.client_id,
                           "allowed_domains": domains}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}

/// What "Test the connection" found: whether the issuer's discovery document (and its
/// key set) could be read and names that issuer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = SsoTestResult)]
pub struct TestResult {
    pub ok: bool,
    /// what was found, or why it failed, in a sentence
    pub message: String,
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub latency_ms: u64,
}

/// Reads the discovery document of `issuer` (or of the saved issuer) the way a sign-in
/// would (`security.manage`). Nothing of the issuer's own answer is repeated.
pub async fn test_connection(
    svc: &Services,
    ctx: &OrgContext,
    issuer: Option<String>,
) -> Result<TestResult> {
    require(ctx, Permission::SecurityManage)?;
    let issuer = match issuer.filter(|i| !i.trim().is_empty()) {
        Some(i) => parse_issuer(&i).map_err(|e| AppError::invalid(vec![e]))?,
        None => {
            let ctx = ctx.clone();
            svc.db
                .read(move |tx| Ok::<_, AppError>(sso::provider(tx, &ctx)?))
                .await?
                .map(|p| p.issuer)
                .ok_or_else(|| {
                    AppError::invalid(vec![Invalid::new(
                        fields::ISSUER,
                        "Enter the issuer's address to test, or save one first.",
                    )])
                })?
        }
    };
    let started = Instant::now();
    let found = discover(svc, &issuer).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(match found {
        Ok(m) => TestResult {
            ok: true,
            message: format!(
                "The issuer answered: its discovery document and signing keys ({} key(s)) were read.",
                m.jwks().keys().len()
            ),
            issuer,
            authorization_endpoint: Some(m.authorization_endpoint().to_string()),
            token_endpoint: m.token_endpoint().map(ToString::to_string),
            latency_ms,
        },
        Err(e) => TestResult {
            ok: false,
            message: e.message(),
            issuer,
            authorization_endpoint: None,
            token_endpoint: None,
            latency_ms,
        },
    })
}

// ---------------------------------------------------------------- the issuer's HTTP client

/// Why a call to an issuer failed, in words that carry nothing of its answer.
#[derive(Debug, thiserror::Error)]
pub enum IssuerHttpError {
    #[error("{0}")]
    Refused(#[from] super::outbound::TargetRefused),
    #[error("the identity provider did not answer within {} seconds", ISSUER_TIMEOUT.as_secs())]
    Timeout,
    #[error("the identity provider could not be reached")]
    Unreachable,
    #[error(
        "the identity provider's answer is larger than {} bytes",
        ISSUER_BODY_LIMIT
    )]
    TooLarge,
}

/// The openidconnect crate's HTTP hook, on our reqwest client for tenant-chosen addresses.
struct IssuerHttp<'a>(&'a Services);

impl<'c> openidconnect::AsyncHttpClient<'c> for IssuerHttp<'_> {
    type Error = IssuerHttpError;
    type Future = Pin<
        Box<
            dyn Future<Output = std::result::Result<openidconnect::HttpResponse, IssuerHttpError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let url = request.uri().to_string();
            let client = self.0.upstream.client_for(&url, Origin::Tenant)?;
            let (parts, body) = request.into_parts();
            let sent = client
                .request(parts.method, &url)
                .headers(parts.headers)
                .body(body)
                .send();
            let mut res = match tokio::time::timeout(ISSUER_TIMEOUT, sent).await {
                Err(_) => return Err(IssuerHttpError::Timeout),
                Ok(Err(e)) => {
                    return Err(super::upstream::refusal_in(&e)
                        .map_or(IssuerHttpError::Unreachable, IssuerHttpError::Refused));
                }
                Ok(Ok(r)) => r,
            };
            let mut out = openidconnect::http::Response::builder().status(res.status());
            for (k, v) in res.headers() {
                out = out.header(k, v);
            }
            let mut bytes = Vec::new();
            loop {
                let chunk = tokio::time::timeout(ISSUER_TIMEOUT, res.chunk())
                    .await
                    .map_err(|_| IssuerHttpError::Timeout)?
                    .map_err(|_| IssuerHttpError::Unreachable)?;
                let Some(chunk) = chunk else { break };
                if bytes.len() + chunk.len() > ISSUER_BODY_LIMIT {
                    return Err(IssuerHttpError::TooLarge);
                }
                bytes.extend_from_slice(&chunk);
            }
            out.body(bytes).map_err(|_| IssuerHttpError::Unreachable)
        })
    }
}

/// Why discovery failed.
enum DiscoveryFailed {
    BadIssuer,
    Http(IssuerHttpError),
    Status(u16),
    Invalid,
    WrongIssuer,
}

impl DiscoveryFailed {
    fn message(&self) -> String {
        match self {
            DiscoveryFailed::BadIssuer => "The issuer's address is not a valid URL.".into(),
            DiscoveryFailed::Http(e) => format!("Discovery failed: {e}."),
            DiscoveryFailed::Status(s) => {
                format!("The issuer answered HTTP {s} for its discovery document or signing keys.")
            }
            DiscoveryFailed::Invalid => {
                "The issuer's discovery document or signing keys are not valid OpenID Connect."
                    .into()
            }
            DiscoveryFailed::WrongIssuer => {
                "The discovery document names another issuer than the one configured.".into()
            }
        }
    }
}

/// The issuer's discovery document, with its key set.
async fn discover(
    svc: &Services,
    issuer: &str,
) -> std::result::Result<CoreProviderMetadata, DiscoveryFailed> {
    use openidconnect::DiscoveryError as D;
    let url = IssuerUrl::new(issuer.to_string()).map_err(|_| DiscoveryFailed::BadIssuer)?;
    let http = IssuerHttp(svc);
    CoreProviderMetadata::discover_async(url, &http)
        .await
        .map_err(|e| match e {
            D::Request(e) => DiscoveryFailed::Http(e),
            D::Response(status, _, _) => DiscoveryFailed::Status(status.as_u16()),
            D::Validation(_) => DiscoveryFailed::WrongIssuer,
            D::UrlParse(_) => DiscoveryFailed::BadIssuer,
            _ => DiscoveryFailed::Invalid,
        })
}

// ---------------------------------------------------------------- the sign-in

/// The organization, its provider and the opened client secret, read as the sign-in job.
struct Configured {
    ctx: OrgContext,
    provider: sso::Provider,
    domains: Vec<String>,
    secret: Option<crate::config::Secret>,
}

/// The organization named by `org_ref` with its single sign-on; 404 when either is
/// missing or the organization is suspended.
async fn configured(svc: &Services, org_ref: &str) -> Result<Configured> {
    let (org_ref, keyring) = (org_ref.to_string(), svc.keyring.clone());
    svc.db
        .read(move |tx| {
            let org = orgs::find_by_ref(tx, &org_ref)?.ok_or_else(AppError::not_found)?;
            if org.status != OrgStatus::Active {
                return Err(AppError::not_found());
            }
            let ctx = SystemScope::new("sso-sign-in")
                .in_org(tx, org.id)?
                .ok_or_else(AppError::not_found)?;
            let provider = sso::provider(tx, &ctx)?.ok_or_else(AppError::not_found)?;
            let domains = sso::domains(tx, &ctx)?;
            let secret = match (&provider.secret_ciphertext, &provider.secret_key_id) {
                (Some(ct), Some(kid)) => Some(super::llm::open_sealed(
                    tx,
                    &ctx,
                    &keyring,
                    kid,
                    ct,
                    &secret_aad(ctx.org_id()),
                )?),
                _ => None,
            };
            Ok(Configured {
                ctx,
                provider,
                domains,
                secret,
            })
        })
        .await
}

fn client_of(
    svc: &Services,
    c: &Configured,
    metadata: CoreProviderMetadata,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
> {
    let redirect = RedirectUrl::new(redirect_uri(svc, c.ctx.org_id()))
        .map_err(|_| AppError::Internal("the public URL does not make a redirect URI".into()))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(c.provider.client_id.clone()),
        c.secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose().to_string())),
    )
    .set_redirect_uri(redirect))
}

fn unreachable_provider(e: &DiscoveryFailed) -> AppError {
    AppError::BadGateway {
        code: "sso_provider_unavailable",
        message: format!(
            "The organization's identity provider cannot be used right now. {}",
            e.message()
        ),
    }
}

/// Where the browser goes to sign in, and the state its cookie must carry back.
pub struct Started {
    pub authorize_url: String,
    pub state: String,
    pub org_id: OrgId,
}

/// Starts a sign-in at the organization's provider: reads its discovery document, keeps
/// a state, a nonce and a PKCE verifier for `LOGIN_TTL_MINUTES`, and gives the provider's
/// authorization URL (`login_hint` is the email typed, when one was).
pub async fn start(
    svc: &Services,
    throttle: &LoginThrottle,
    org_ref: &str,
    login_hint: Option<&str>,
    meta: &ClientMeta,
) -> Result<Started> {
    let c = configured(svc, org_ref).await?;
    let key = throttle_key(c.ctx.org_id(), meta);
    if let Some(wait) = throttle.blocked(&key, meta.ip.as_deref()) {
        return Err(AppError::TooManyRequests {
            code: "rate_limited",
            message: "Too many failed sign-in attempts; try again later.".into(),
            retry_after_secs: Some(wait),
        });
    }
    let metadata = discover(svc, &c.provider.issuer)
        .await
        .map_err(|e| unreachable_provider(&e))?;
    let client = client_of(svc, &c, metadata)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge);
    if let Some(hint) = login_hint.map(str::trim).filter(|h| !h.is_empty()) {
        request = request.add_extra_param("login_hint", hint.to_string());
    }
    let (url, state, nonce) = request.url();
    let pending = sso::PendingLogin {
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        expires_at: svc.now() + chrono::Duration::minutes(LOGIN_TTL_MINUTES),
    };
    let (ctx, hash, now) = (
        c.ctx.clone(),
        crate::auth::token_hash(state.secret()),
        svc.now_str(),
    );
    svc.db
        .write(move |tx| Ok::<_, AppError>(sso::insert_login(tx, &ctx, &hash, &pending, &now)?))
        .await?;
    Ok(Started {
        authorize_url: url.to_string(),
        state: state.secret().clone(),
        org_id: c.ctx.org_id(),
    })
}

fn throttle_key(org: OrgId, meta: &ClientMeta) -> String {
    format!("sso:{org}:{}", meta.ip.as_deref().unwrap_or("-"))
}

/// What the provider sent the browser back with.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    /// The state the browser's cookie holds (set by `start`).
    pub cookie_state: Option<String>,
}

/// Why a sign-in was refused: a word for the audit log and a sentence for the person.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
    pub email: Option<String>,
}

impl Refusal {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            reason,
            message: message.into(),
            email: None,
        }
    }
}

/// A finished sign-in: the session of the account (made now or found) and the
/// organization it signed in to (joined now or before).
pub struct Signed {
    pub session: super::identity::LoginOutcome,
    pub org_slug: String,
}

/// Finishes a sign-in: checks the state against the browser's cookie and the one kept by
/// `start` (used once), exchanges the code with the PKCE verifier, validates the ID token
/// (signature by the issuer's keys, issuer, audience, expiry on the server's clock, nonce),
/// requires a verified email of an allowed domain, then provisions the account and the
/// membership as needed. Every refusal after the organization is known is audited in its
/// log as `auth.sso_failed`, and counted by the sign-in throttle.
pub async fn finish(
    svc: &Services,
    policy: super::identity::SessionPolicy,
    throttle: &LoginThrottle,
    org_ref: &str,
    cb: Callback,
    meta: &ClientMeta,
) -> Result<Signed> {
    let c = configured(svc, org_ref).await?;
    match verify(svc, &c, cb).await {
        Ok((email, name)) => match provision(svc, &c, email.clone(), name, meta).await {
            Ok((user, org_slug)) => {
                let session = super::identity::start_session(
                    svc,
                    policy,
                    user,
                    meta,
                    super::identity::SignInMethod::Sso(c.ctx.org_id()),
                )
                .await?;
                Ok(Signed { session, org_slug })
            }
            Err(Failure::Refused(mut r)) => {
                r.email = Some(email.as_str().to_string());
                Err(refuse(svc, throttle, &c, r, meta).await)
            }
            Err(Failure::Error(e)) => Err(e),
        },
        Err(Failure::Refused(r)) => Err(refuse(svc, throttle, &c, r, meta).await),
        Err(Failure::Error(e)) => Err(e),
    }
}

enum Failure {
    Refused(Refusal),
    Error(AppError),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure::Error(e)
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Failure::Refused(r)
    }
}

/// Audits and counts a refusal; the error the person sees.
async fn refuse(
    svc: &Services,
    throttle: &LoginThrottle,
    c: &Configured,
    r: Refusal,
    meta: &ClientMeta,
) -> AppError {
    throttle.record_failure(&throttle_key(c.ctx.org_id(), meta), meta.ip.as_deref());
    let (ctx, meta2, now) = (c.ctx.clone(), meta.clone(), svc.now_str());
    let (reason, email) = (r.reason, r.email.clone());
    let written = svc
        .db
        .write(move |tx| {
            let entry = audit::Entry {
                actor_id: None,
                actor_email: email.as_deref(),
                action: "auth.sso_failed",
                resource_type: "sso",
                resource_id: None,
                ip: meta2.ip.as_deref(),
                user_agent: meta2.user_agent.as_deref(),
                details: json!({"reason": reason, "email": email}),
            };
            audit::append(tx, &ctx, &entry, &now)?;
            Ok::<_, AppError>(())
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(error = %e, "single sign-on refusal not audited");
    }
    AppError::Forbidden {
        code: "sso_failed",
        message: format!("Single sign-on did not succeed: {}", r.message),
    }
}

/// The state, code exchange and ID token; the verified email and the name it carries.
async fn verify(
    svc: &Services,
    c: &Configured,
    cb: Callback,
) -> std::result::Result<(Email, Option<String>), Failure> {
    if let Some(err) = cb.error {
        let word: String = err
            .chars()
            .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
            .take(64)
            .collect();
        return Err(Refusal::new(
            "provider_error",
            format!("the identity provider answered \"{word}\"."),
        )
        .into());
    }
    let (Some(code), Some(state)) = (cb.code, cb.state) else {
        return Err(Refusal::new(
            "incomplete_callback",
            "the identity provider sent the browser back without a code.",
        )
        .into());
    };
    let cookie_ok = cb.cookie_state.as_deref().is_some_and(|cookie| {
        subtle::ConstantTimeEq::ct_eq(cookie.as_bytes(), state.as_bytes()).into()
    });
    if !cookie_ok {
        return Err(Refusal::new(
            "state_mismatch",
            "this sign-in was not started in this browser; start again from the sign-in page.",
        )
        .into());
    }
    let (ctx, hash) = (c.ctx.clone(), crate::auth::token_hash(&state));
    let pending = svc
        .db
        .write(move |tx| Ok::<_, AppError>(sso::take_login(tx, &ctx, &hash)?))
        .await?;
    let Some(pending) = pending.filter(|p| p.expires_at > svc.now()) else {
        return Err(Refusal::new(
            "state_unknown",
            "this sign-in link was used already or has expired; start again from the sign-in page.",
        )
        .into());
    };
    let metadata = discover(svc, &c.provider.issuer)
        .await
        .map_err(|e| Failure::Error(unreachable_provider(&e)))?;
    let client = client_of(svc, c, metadata)?;
    let http = IssuerHttp(svc);
    let exchange = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|_| {
            Refusal::new(
                "no_token_endpoint",
                "the identity provider's discovery document names no token endpoint.",
            )
        })?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
        .request_async(&http)
        .await;
    let tokens = match exchange {
        Ok(t) => t,
        Err(RequestTokenError::ServerResponse(e)) => {
            return Err(Refusal::new(
                "code_refused",
                format!(
                    "the identity provider refused the sign-in code ({}).",
                    e.error()
                ),
            )
            .into());
        }
        Err(RequestTokenError::Request(e)) => {
            return Err(Failure::Error(AppError::BadGateway {
                code: "sso_provider_unavailable",
                message: format!(
                    "The organization's identity provider cannot be used right now: {e}."
                ),
            }));
        }
        Err(_) => {
            return Err(Refusal::new(
                "token_response_invalid",
                "the identity provider's token answer is not valid.",
            )
            .into());
        }
    };
    let Some(id_token) = tokens.id_token() else {
        return Err(Refusal::new("no_id_token", "the identity provider sent no ID token.").into());
    };
    let now = svc.now();
    let verifier = client.id_token_verifier().set_time_fn(move || now);
    let claims = id_token
        .claims(&verifier, &Nonce::new(pending.nonce))
        .map_err(|e| {
            let (reason, what) = match e {
                ClaimsVerificationError::InvalidIssuer(_) => {
                    ("wrong_issuer", "the ID token was issued by another issuer.")
                }
                ClaimsVerificationError::InvalidAudience(_) => (
                    "wrong_audience",
                    "the ID token was issued for another client.",
                ),
                ClaimsVerificationError::Expired(_) => ("expired", "the ID token has expired."),
                ClaimsVerificationError::InvalidNonce(_) => (
                    "nonce_mismatch",
                    "the ID token does not belong to this sign-in.",
                ),
                ClaimsVerificationError::SignatureVerification(_) => (
                    "bad_signature",
                    "the ID token's signature does not verify with the issuer's keys.",
                ),
                _ => ("invalid_id_token", "the ID token is not valid."),
            };
            Refusal::new(reason, what)
        })?;
    let email = claims.email().map(|e| e.as_str().to_string());
    let Some(email) = email.and_then(|e| Email::parse(&e).ok()) else {
        return Err(Refusal::new(
            "no_email",
            "the identity provider did not say which email address signed in.",
        )
        .into());
    };
    if claims.email_verified() != Some(true) {
        return Err(Refusal {
            reason: "email_unverified",
            message: "the identity provider has not verified this email address.".into(),
            email: Some(email.as_str().to_string()),
        }
        .into());
    }
    let domain = email.as_str().rsplit('@').next().unwrap_or("").to_string();
    if !c.domains.contains(&domain) {
        return Err(Refusal {
            reason: "domain_not_allowed",
            message: format!("email addresses of {domain} do not sign in to this organization."),
            email: Some(email.as_str().to_string()),
        }
        .into());
    }
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_string());
    Ok((email, name))
}

/// The account for a verified email (made on its first sign-in, with a personal
/// workspace, like sign-up) and its membership in the organization (added with the default
/// role when missing), in one write.
async fn provision(
    svc: &Services,
    c: &Configured,
    email: Email,
    name: Option<String>,
    meta: &ClientMeta,
) -> std::result::Result<(users::User, String), Failure> {
    let (org, role, meta) = (c.ctx.org_id(), c.provider.default_role, meta.clone());
    let now = svc.now_str();
    let out = svc
        .db
        .write(move |tx| {
            // Read again inside the write: the organization may have gone meanwhile.
            let Some(ctx) = SystemScope::new("sso-sign-in").in_org(tx, org)? else {
                return Ok(Err(Refusal::new(
                    "organization_gone",
                    "the organization no longer exists.",
                )));
            };
            let user = match users::find_by_email(tx, &email)? {
                Some((user, _)) => user,
                None => {
                    let local = email.as_str().split('@').next().unwrap_or("user");
                    let person = name
                        .as_deref()
                        .and_then(|n| PersonName::parse(n).ok())
                        .or_else(|| PersonName::parse(local).ok())
                        .map_or_else(|| PersonName::parse("New member"), Ok)?;
                    super::identity::insert_user_with_workspace(
                        tx, &email, &person, None, false, &meta, &now,
                    )?
                    .0
                }
            };
            if user.status != UserStatus::Active {
                return Ok(Err(Refusal::new(
                    "account_disabled",
                    "this account is disabled; ask an administrator.",
                )));
            }
            // An organization's provider is trusted for its members, not for the instance:
            // an instance administrator's account is never opened by one.
            if user.is_superuser {
                return Ok(Err(Refusal::new(
                    "instance_administrator",
                    "instance administrators sign in with their password.",
                )));
            }
            match members::find(tx, &ctx, user.id)? {
                Some(m) if m.status == crate::domain::MemberStatus::Active => {}
                Some(_) => {
                    return Ok(Err(Refusal::new(
                        "membership_suspended",
                        "your membership in this organization is suspended; ask an administrator.",
                    )));
                }
                None => {
                    if let Some(refusal) = join(tx, &ctx, &user, role, &meta, &now)? {
                        return Ok(Err(refusal));
                    }
                }
            }
            users::set_current_org(tx, user.id, org, &now)?;
            Ok::<_, AppError>(Ok((user, ctx.org().slug.clone())))
        })
        .await?;
    out.map_err(Failure::Refused)
}

/// Adds `user` to the organization with `role`, audited as `member.joined`; a refusal
/// when the plan's member limit is reached.
fn join(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    user: &users::User,
    role: Role,
    meta: &ClientMeta,
    now: &str,
) -> Result<Option<Refusal>> {
    if let Some(plan) = plans::for_org(tx, ctx)?
        && let Some(max) = plan.max_members
        && members::count(tx, ctx)? >= max
    {
        return Ok(Some(Refusal::new(
            "plan_limit",
            format!(
                "this organization has reached its {} plan's member limit; ask an owner to upgrade.",
                plan.name
            ),
        )));
    }
    members::insert(tx, ctx, user.id, role, None, now)?;
    let actor = Actor {
        user_id: user.id,
        email: user.email.clone(),
        meta: meta.clone(),
    };
    audit::append(
        tx,
        ctx,
        &actor.entry(
            "member.joined",
            "member",
            Some(user.id.to_string()),
            json!({"email": user.email, "role": role, "via": "sso"}),
        ),
        now,
    )?;
    Ok(None)
}

// ---------------------------------------------------------------- password sign-in

/// The refusal of a password sign-in by `user`, when an organization they are a member of
/// signs in with single sign-on only. An owner of such an organization may still use a
/// password when they have two-factor authentication (the break-glass way in when the
/// provider is down). Instance administrators are not held to an organization's rule
/// (no provider signs them in, see `provision`).
pub(crate) fn password_refusal(
    tx: &crate::db::Conn<'_>,
    user: &users::User,
) -> Result<Option<AppError>> {
    if user.is_superuser {
        return Ok(None);
    }
    let strict = crate::db::unscoped::unscoped_sso_only_memberships_of(tx, user.id)?;
    if strict.is_empty() {
        return Ok(None);
    }
    let owner_everywhere = strict.iter().all(|(_, role)| *role == Role::Owner);
    if owner_everywhere && super::identity::has_two_factor(tx, user.id)? {
        return Ok(None);
    }
    Ok(Some(AppError::Forbidden {
        code: "sso_required",
        message: "Your organization signs in with single sign-on only: use \"Sign in with single sign-on\" on the sign-in page.".into(),
    }))
}

/// The organization whose single sign-on serves people of `email`'s domain: its id, or
/// `None` when no organization routes that domain.
pub async fn route_for_email(svc: &Services, email: &str) -> Result<Option<OrgId>> {
    let email = Email::parse(email).map_err(|e| AppError::invalid(vec![e]))?;
    let domain = email.as_str().rsplit('@').next().unwrap_or("").to_string();
    svc.db
        .read(move |tx| Ok(sso::org_for_domain(tx, &domain)?))
        .await
}

/// Removes every organization's sign-ins that expired (maintenance). Idempotent.
pub async fn purge_expired_logins(svc: &Services) -> Result<usize> {
    let now = svc.now_str();
    let ids = svc
        .db
        .read(|tx| Ok::<_, AppError>(crate::db::unscoped::unscoped_all_org_ids(tx)?))
        .await?;
    let mut total = 0;
    for id in ids {
        let now = now.clone();
        total += svc
            .db
            .write(move |tx| {
                let Some(ctx) = SystemScope::new("sso-cleanup").in_org(tx, id)? else {
                    return Ok(0);
                };
                Ok::<_, AppError>(sso::purge_expired_logins(tx, &ctx, &now)?)
            })
            .await?;
    }
    Ok(total)
}
