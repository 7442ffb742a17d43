//! A small OpenID Connect provider for the tests, served over real HTTP on a free port:
//! discovery, a key set (RS256), an authorization endpoint that approves at once (no login
//! form: it signs in the identity the test chose) and a token endpoint that checks the
//! client's credentials, the redirect URI and PKCE, and accepts each code once. What the
//! next ID token gets wrong on purpose is set with `twist`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_SECRET: &str = "oidc-test-client-secret-7f3a9c";
const KID: &str = "test-key-1";

/// Who the provider says signed in.
#[derive(Clone, Debug)]
pub struct Identity {
    pub email: String,
    pub email_verified: bool,
    pub name: String,
}

/// What the ID tokens get wrong, each on purpose, for one failure.
#[derive(Clone, Debug, Default)]
pub struct Twist {
    /// `iss` other than the provider's issuer.
    pub issuer: Option<String>,
    /// `aud` other than the client id.
    pub audience: Option<String>,
    /// Signed with a key that is not in the key set (under the same key id).
    pub foreign_key: bool,
    /// `exp` in the past.
    pub expired: bool,
    /// `nonce` other than the one the sign-in sent.
    pub nonce: Option<String>,
}

struct Grant {
    redirect_uri: String,
    nonce: String,
    challenge: String,
}

struct Inner {
    identity: Identity,
    twist: Twist,
    codes: HashMap<String, Grant>,
    /// The query of every authorization request, in order.
    authorize_requests: Vec<HashMap<String, String>>,
    /// What the token endpoint refused, in order (`invalid_grant`, …).
    token_refusals: Vec<String>,
    /// Every ID token issued, in order.
    id_tokens: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    issuer: String,
    client_id: String,
    inner: Arc<Mutex<Inner>>,
}

pub struct OidcProvider {
    pub issuer: String,
    pub client_id: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The provider's signing key and a second one that is not published, made once.
fn keys() -> &'static (RsaPrivateKey, RsaPrivateKey) {
    static KEYS: OnceLock<(RsaPrivateKey, RsaPrivateKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand::thread_rng();
        (
            RsaPrivateKey::new(&mut rng, 2048).expect("rsa key"),
            RsaPrivateKey::new(&mut rng, 2048).expect("rsa key"),
        )
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl OidcProvider {
    /// A provider on a free port of 127.0.0.1 for the client `client_id`, signing in
    /// `identity`.
    pub async fn start(client_id: &str, identity: Identity) -> OidcProvider {
        let _ = keys();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Shared {
            issuer: issuer.clone(),
            client_id: client_id.to_string(),
            inner: Arc::new(Mutex::new(Inner {
                identity,
                twist: Twist::default(),
                codes: HashMap::new(),
                authorize_requests: Vec::new(),
                token_refusals: Vec::new(),
                id_tokens: Vec::new(),
            })),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OidcProvider {
            issuer,
            client_id: client_id.to_string(),
            shared,
            server,
        }
    }

    pub fn set_identity(&self, identity: Identity) {
        self.shared.inner.lock().unwrap().identity = identity;
    }

    pub fn twist(&self, twist: Twist) {
        self.shared.inner.lock().unwrap().twist = twist;
    }

    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.shared.inner.lock().unwrap().authorize_requests.clone()
    }

    pub fn token_refusals(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().token_refusals.clone()
    }

    pub fn id_tokens(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().id_tokens.clone()
    }
}

pub fn identity(email: &str, verified: bool) -> Identity {
    Identity {
        email: email.to_string(),
        email_verified: verified,
        name: "Ada Lovelace".to_string(),
    }
}

async fn discovery(State(s): State<Shared>) -> Json<Value> {
    let i = &s.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "email", "email_verified", "name"],
    }))
}

async fn jwks() -> Json<Value> {
    let public = keys().0.to_public_key();
    Json(json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID,
        "n": b64(&public.n().to_bytes_be()),
        "e": b64(&public.e().to_bytes_be()),
    }]}))
}

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut inner = s.inner.lock().unwrap();
    inner.authorize_requests.push(q.clone());
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code"
        || get("client_id") != s.client_id
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
        || !get("scope").split(' ').any(|x| x == "openid")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = b64(&rand::random::<[u8; 24]>());
    inner.codes.insert(
        code.clone(),
        Grant {
            redirect_uri: get("redirect_uri"),
            nonce: get("nonce"),
            challenge: get("code_challenge"),
        },
    );
    let mut to = url::Url::parse(&get("redirect_uri")).expect("redirect uri");
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn refused(inner: &mut Inner, error: &str) -> Response {
    inner.token_refusals.push(error.to_string());
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}

async fn token(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = s.inner.lock().unwrap();
    // client_secret_basic: base64 of the form-encoded id and secret.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let decode = |x: &str| {
        url::form_urlencoded::parse(format!("x={x}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let ok_client = basic
        .as_deref()
        .and_then(|b| b.split_once(':'))
        .is_some_and(|(id, secret)| decode(id) == s.client_id && decode(secret) == CLIENT_SECRET);
    if !ok_client {
        return refused(&mut inner, "invalid_client");
    }
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return refused(&mut inner, "unsupported_grant_type");
    }
    // A code is good once: a second exchange finds nothing.
    let Some(grant) = inner.codes.remove(&get("code")) else {
        return refused(&mut inner, "invalid_grant");
    };
    let challenge = b64(&Sha256::digest(get("code_verifier").as_bytes()));
    if grant.redirect_uri != get("redirect_uri") || grant.challenge != challenge {
        return refused(&mut inner, "invalid_grant");
    }
    let twist = inner.twist.clone();
    let who = inner.identity.clone();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": twist.issuer.clone().unwrap_or_else(|| s.issuer.clone()),
        "sub": format!("sub-{}", who.email),
        "aud": twist.audience.clone().unwrap_or_else(|| s.client_id.clone()),
        "iat": now - 5,
        "exp": if twist.expired { now - 600 } else { now + 600 },
        "nonce": twist.nonce.clone().unwrap_or(grant.nonce),
        "email": who.email,
        "email_verified": who.email_verified,
        "name": who.name,
    });
    let key = if twist.foreign_key {
        &keys().1
    } else {
        &keys().0
    };
    let der = key.to_pkcs1_der().expect("der");
    let mut head = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    head.kid = Some(KID.to_string());
    let id_token = jsonwebtoken::encode(
        &head,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
    )
    .expect("signed");
    inner.id_tokens.push(id_token.clone());
    Json(json!({
        "access_token": b64(&rand::random::<[u8; 24]>()),
        "token_type": "Bearer",
        "expires_in": 600,
        "id_token": id_token,
    }))
    .into_response()
}
