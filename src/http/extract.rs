//! Extractors: who is calling (session cookie or API token), from where, and request
//! bodies whose rejections become the API's error envelope.
use crate::services::Services;
use axum::extract::RawPathParams;
use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::state::AppState;
use crate::auth;
use crate::db::OrgContext;
use crate::db::repo::users::User;
use crate::domain::SessionId;
use crate::error::AppError;
use crate::services::identity::{self, SessionAuth, TokenAuth};
use crate::services::security::Credential;
use crate::services::{Actor, ClientMeta, orgs};

pub const SESSION_COOKIE: &str = "xagent_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The peer address, honouring `X-Forwarded-For` only from configured trusted proxies:
/// the client is the right-most address that is not a trusted proxy.
pub fn client_ip(parts: &Parts, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}

/// Where the request came from: its client address (see `client_ip`) and user agent.
pub fn client_meta(parts: &Parts, trusted: &[IpAddr]) -> ClientMeta {
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    ClientMeta {
        ip: client_ip(parts, trusted).map(|i| i.to_string()),
        user_agent,
    }
}

impl FromRequestParts<AppState> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(client_meta(parts, &state.config.trusted_proxies))
    }
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.name_raw().and(c.value_raw()))
}

#[derive(Debug, Clone)]
pub enum AuthKind {
    Session(SessionAuth),
    Token(TokenAuth),
}

/// The authenticated caller. For `/api` requests made with the session cookie, a
/// state-changing method also needs the `X-CSRF-Token` header (pages use `CsrfForm`).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub kind: AuthKind,
    pub meta: ClientMeta,
}

impl CurrentUser {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user.id,
            email: self.user.email.clone(),
            meta: self.meta.clone(),
        }
    }

    pub fn session(&self) -> Option<&SessionAuth> {
        match &self.kind {
            AuthKind::Session(s) => Some(s),
            AuthKind::Token(_) => None,
        }
    }

    pub fn session_id(&self) -> Option<SessionId> {
        self.session().map(|s| s.session_id)
    }

    pub fn csrf_token(&self) -> &str {
        self.session().map_or("", |s| s.csrf_token.as_str())
    }

    /// Account management (tokens, sessions, switching) needs a browser session: a token
    /// acts in one organization and must not mint or end other credentials.
    pub fn require_session(&self) -> Result<&SessionAuth, AppError> {
        self.session().ok_or(AppError::Forbidden {
            code: "session_required",
            message: "this action needs a signed-in session, not an API token".into(),
        })
    }

    /// The holder of an API token (`Authorization: Bearer xa_…`); 401 for a token that
    /// is unknown, revoked, expired or whose user is not active.
    pub async fn from_api_token(
        svc: &Services,
        token: &str,
        meta: ClientMeta,
    ) -> Result<CurrentUser, AppError> {
        let auth = identity::authenticate_api_token(svc, token)
            .await?
            .ok_or(AppError::Unauthorized)?;
        Ok(CurrentUser {
            user: auth.user.clone(),
            kind: AuthKind::Token(auth),
            meta,
        })
    }

    /// The organization context for `{org}`: the membership check, and for an API token
    /// also "this is the token's organization". Anything else is 404.
    pub async fn org_context(
        &self,
        state: &AppState,
        org_ref: String,
    ) -> Result<OrgContext, AppError> {
        self.org_context_in(&state.svc, org_ref).await
    }

    /// `org_context` for a handler that holds the services but not the whole state.
    pub async fn org_context_in(
        &self,
        svc: &Services,
        org_ref: String,
    ) -> Result<OrgContext, AppError> {
        let ctx = orgs::context(svc, self.user.id, org_ref).await?;
        if let AuthKind::Token(t) = &self.kind
            && t.organization_id != ctx.org_id()
        {
            return Err(AppError::not_found());
        }
        self.admit(svc, &ctx)?;
        if let AuthKind::Session(s) = &self.kind {
            identity::touch_session(svc, s, svc.now());
        }
        Ok(ctx)
    }

    /// The organization's security policy for this request (`security::admit`): run for
    /// every request acting in it, also when the context itself was remembered.
    pub fn admit(&self, svc: &Services, ctx: &OrgContext) -> Result<(), AppError> {
        crate::services::security::admit(svc, ctx, self.credential(), self.ip())
    }

    pub fn credential(&self) -> Credential {
        match &self.kind {
            AuthKind::Session(s) => Credential::Session {
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
            },
            AuthKind::Token(t) => Credential::Token {
                created_at: t.created_at,
            },
        }
    }

    /// The client address (`client_ip`), when known.
    pub fn ip(&self) -> Option<IpAddr> {
        self.meta.ip.as_deref().and_then(|i| i.parse().ok())
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(existing) = parts.extensions.get::<CurrentUser>() {
            return Ok(existing.clone());
        }
        let Ok(meta) = ClientMeta::from_request_parts(parts, state).await;
        let current = if let Some(token) = bearer(&parts.headers) {
            CurrentUser::from_api_token(&state.svc, token, meta).await?
        } else {
            let cookie =
                cookie_value(&parts.headers, SESSION_COOKIE).ok_or(AppError::Unauthorized)?;
            let auth = identity::authenticate_session(&state.svc, state.session_policy(), cookie)
                .await?
                .ok_or(AppError::Unauthorized)?;
            // A request in an organization counts as use once that organization's policy
            // let it in (`org_context_in`); any other request counts now.
            let in_org = RawPathParams::from_request_parts(parts, state)
                .await
                .is_ok_and(|p| p.iter().any(|(name, _)| name == "org"));
            if !in_org {
                identity::touch_session(&state.svc, &auth, state.svc.now());
            }
            if parts.uri.path().starts_with("/api/") && !is_safe(&parts.method) {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !auth::tokens_equal(sent, &auth.csrf_token) {
                    return Err(AppError::Forbidden {
                        code: "csrf_failed",
                        message:
                            "missing or wrong X-CSRF-Token header (use the csrf_token from login)"
                                .into(),
                    });
                }
            }
            CurrentUser {
                user: auth.user.clone(),
                kind: AuthKind::Session(auth),
                meta,
            }
        };
        parts.extensions.insert(current.clone());
        Ok(current)
    }
}

/// The caller and their context in the organization the path names (`{org}`, an id or
/// a slug): the membership check of `CurrentUser::org_context`, done before the handler
/// runs, so a handler cannot forget it. Another organization's path is 404.
pub struct OrgCtx {
    pub user: CurrentUser,
    pub ctx: OrgContext,
}

impl FromRequestParts<AppState> for OrgCtx {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::not_found())?;
        let org = params
            .iter()
            .find(|(name, _)| *name == "org")
            .map(|(_, value)| value.to_string())
            .ok_or_else(AppError::not_found)?;
        let ctx = user.org_context(state, org).await?;
        Ok(OrgCtx { user, ctx })
    }
}

/// A resource id from a path or form; what is no id names no resource (404).
pub fn resource_id(raw: &str) -> Result<crate::domain::ResourceId, AppError> {
    crate::domain::ResourceId::parse(raw).ok_or_else(AppError::not_found)
}

/// The signed-in user if there is one (pages that also serve visitors).
pub struct MaybeUser(pub Option<CurrentUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match CurrentUser::from_request_parts(parts, state).await {
            Ok(u) => Ok(MaybeUser(Some(u))),
            Err(AppError::Unauthorized) => Ok(MaybeUser(None)),
            Err(e) => Err(e),
        }
    }
}

fn body_rejection(status: StatusCode, text: String, code: &'static str) -> AppError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge
    } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        AppError::bad_request("unsupported_media_type", text)
    } else {
        AppError::bad_request(code, text)
    }
}

/// JSON body whose failures are API errors: 400 `malformed_json` / `invalid_body`
/// (not an object, wrong types, missing fields), 413 when over the size limit.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(rej) => {
                return Err(match &rej {
                    JsonRejection::JsonSyntaxError(_) => {
                        AppError::bad_request("malformed_json", "the body is not valid JSON")
                    }
                    JsonRejection::MissingJsonContentType(_) => AppError::bad_request(
                        "unsupported_media_type",
                        "send the body as JSON with Content-Type: application/json",
                    ),
                    other => body_rejection(other.status(), other.body_text(), "invalid_body"),
                });
            }
        };
        // A struct would also take an array, field by field in order.
        if !value.is_object() {
            return Err(AppError::bad_request(
                "invalid_body",
                "the body must be a JSON object",
            ));
        }
        serde_json::from_value(whole_numbers_as_integers(value))
            .map(ApiJson)
            .map_err(|e| {
                AppError::bad_request(
                    "invalid_body",
                    format!("Failed to deserialize the JSON body into the target type: {e}"),
                )
            })
    }
}

/// JSON has one number type, and `17.0` is the integer 17 to JSON Schema and to most
/// clients' encoders; serde would refuse it for an integer field.
fn whole_numbers_as_integers(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => match n.as_f64() {
            // Below 2^53 a float holds whole numbers exactly.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                Value::from(f as i64)
            }
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(whole_numbers_as_integers).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k, whole_numbers_as_integers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Query string with 400 `invalid_query` on bad input.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| AppError::bad_request("invalid_query", e.body_text()))
    }
}

/// A urlencoded page form that must carry the session's `csrf_token` field.
pub struct CsrfForm<T>(pub CurrentUser, pub T);

#[derive(serde::Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf_token: String,
    #[serde(flatten)]
    inner: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let (mut parts, body) = req.into_parts();
        let user = CurrentUser::from_request_parts(&mut parts, state).await?;
        let form = checked_form(&user, Request::from_parts(parts, body), state).await?;
        Ok(CsrfForm(user, form))
    }
}

/// A page form posted to an organization's page (`/o/{org}/…`): the membership check of
/// `OrgCtx`, then the form and its CSRF token as `CsrfForm` reads them.
pub struct OrgForm<T>(pub OrgCtx, pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for OrgForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let (mut parts, body) = req.into_parts();
        let org = OrgCtx::from_request_parts(&mut parts, state).await?;
        let form = checked_form(&org.user, Request::from_parts(parts, body), state).await?;
        Ok(OrgForm(org, form))
    }
}

async fn checked_form<T: DeserializeOwned + Send>(
    user: &CurrentUser,
    req: Request,
    state: &AppState,
) -> Result<T, AppError> {
    let form = axum::Form::<WithCsrf<T>>::from_request(req, state)
        .await
        .map_err(|e: FormRejection| body_rejection(e.status(), e.body_text(), "invalid_form"))?;
    user.check_form_csrf(&form.0.csrf_token)?;
    Ok(form.0.inner)
}

impl CurrentUser {
    /// The check of every page form (urlencoded or multipart): a browser session, and the
    /// CSRF token the form carries is the session's. An API token has none to match.
    pub fn check_form_csrf(&self, sent: &str) -> Result<(), AppError> {
        self.require_session()?;
        if !auth::tokens_equal(sent, self.csrf_token()) {
            return Err(AppError::Forbidden {
                code: "csrf_failed",
                message: "the form has expired; reload the page and try again".into(),
            });
        }
        Ok(())
    }
}

/// A page form for visitors (sign-in, accept invitation): no session, so no CSRF token;
/// the Origin check and SameSite cookies guard these.
pub struct PublicForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for PublicForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|f| PublicForm(f.0))
            .map_err(|e: FormRejection| body_rejection(e.status(), e.body_text(), "invalid_form"))
    }
}

/// The caller as an instance administrator (the console's routes): a superuser signed in
/// with a session; anyone else, API tokens included, is 403 `superuser_required`.
pub struct AdminUser {
    pub user: CurrentUser,
    pub admin: crate::services::admin::InstanceAdmin,
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        let admin = crate::services::admin::InstanceAdmin::check(
            &user.user,
            user.actor(),
            user.session().is_some(),
        )?;
        Ok(AdminUser { user, admin })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn a_cookie_is_found_by_name_in_any_cookie_header_and_others_are_ignored() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; xa_x=1"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("broken; xa_session=abc.def; other=2"),
        );
        assert_eq!(super::cookie_value(&h, "xa_session"), Some("abc.def"));
        assert_eq!(super::cookie_value(&h, "theme"), Some("dark"));
        assert_eq!(super::cookie_value(&h, "xa"), None);
        assert_eq!(super::cookie_value(&HeaderMap::new(), "xa_session"), None);
    }
}
