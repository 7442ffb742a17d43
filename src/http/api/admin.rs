//! The instance console's API (`/api/v1/admin/...`, API.md "Instance admin"): superusers
//! signed in with a session only; every change is audited in the instance chain.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::audit::AuditQuery;
use super::pagination::encode_cursor;
use super::{created, no_content, ok};
use crate::domain::audit::INSTANCE_AUDIT_ACTIONS;
use crate::domain::{Micros, OrgStatus, PlanLimits};
use crate::error::{AppError, Result};
use crate::http::extract::{AdminUser, ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::services::admin::{self, OrgChange, PlanInput, PriceInput, UserChange};
use crate::services::audit as audit_svc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/organizations", get(list_orgs))
        .route(
            "/api/v1/admin/organizations/{id}",
            get(show_org).patch(change_org).delete(delete_org),
        )
        .route("/api/v1/admin/organizations/{id}/enter", post(enter_org))
        .route("/api/v1/admin/users", get(list_users))
        .route(
            "/api/v1/admin/users/{id}",
            get(show_user).patch(change_user),
        )
        .route("/api/v1/admin/users/{id}/sign-out", post(sign_out_user))
        .route("/api/v1/admin/users/{id}/password-reset", post(reset_link))
        .route("/api/v1/admin/users/{id}/reset-2fa", post(reset_two_factor))
        .route("/api/v1/admin/plans", get(list_plans).post(create_plan))
        .route(
            "/api/v1/admin/plans/{id}",
            axum::routing::patch(change_plan).delete(delete_plan),
        )
        .route(
            "/api/v1/admin/model-prices",
            get(list_prices).post(create_price),
        )
        .route(
            "/api/v1/admin/model-prices/{id}",
            axum::routing::patch(change_price).delete(delete_price),
        )
        .route(
            "/api/v1/admin/settings",
            get(settings).patch(change_settings),
        )
        .route("/api/v1/admin/settings/test-mail", post(test_mail))
        .route("/api/v1/admin/audit", get(audit))
        .route("/api/v1/admin/audit/export", get(audit_export))
}

/// An `{id}` of the console: an organization's id or slug, a user's id, a plan's id, a
/// price's id.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct AdminPath {
    #[param(min_length = 1)]
    id: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// part of a name, slug or email (empty: all)
    #[serde(default)]
    #[param(nullable = false)]
    q: Option<String>,
    #[serde(default)]
    #[param(minimum = 1, maximum = 200, nullable = false)]
    limit: Option<i64>,
    #[serde(default)]
    #[param(minimum = 0, nullable = false)]
    offset: Option<i64>,
}

impl SearchQuery {
    fn parts(self) -> Result<(String, i64, i64)> {
        let limit = self.limit.unwrap_or(50);
        let offset = self.offset.unwrap_or(0);
        if !(1..=200).contains(&limit) || offset < 0 {
            return Err(AppError::bad_request(
                "invalid_query",
                "limit is 1 to 200 and offset 0 or more",
            ));
        }
        Ok((self.q.unwrap_or_default(), limit, offset))
    }
}

#[derive(Serialize, ToSchema)]
pub struct Listing<T> {
    items: Vec<T>,
    /// How many match in all.
    total: i64,
}

fn listing<T: Serialize>(l: admin::Listed<T>) -> Response {
    ok(&Listing {
        items: l.items,
        total: l.total,
    })
}

#[utoipa::path(
    get, path = "/api/v1/admin/organizations", tag = "admin",
    summary = "Every organization, by name, with plan, members, this period's usage and status",
    params(SearchQuery),
    responses((status = 200, description = "Success", body = Listing<admin::AdminOrgView>), (status = 400, response = BadRequest), Guarded),
    security(("session" = [])),
)]
async fn list_orgs(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Response> {
    let (q, limit, offset) = q.parts()?;
    Ok(listing(
        admin::list_orgs(&s.svc, &admin, q, limit, offset).await?,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/admin/organizations/{id}", tag = "admin",
    summary = "One organization as the console shows it",
    params(AdminPath),
    responses((status = 200, description = "Success", body = admin::AdminOrgView), Guarded),
    security(("session" = [])),
)]
async fn show_org(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(ok(&admin::get_org(&s.svc, &admin, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OrgBody {
    /// a plan id; limits change at once
    #[serde(default)]
    plan: Option<String>,
    /// charge the new plan's fee from this period (default: from the next)
    #[serde(default)]
    apply_now: bool,
    /// single limits over the plan's: a number ≥ 0, null (unlimited) or "plan" (remove the override)
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    limits: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(pattern = "^(active|suspended)$")]
    status: Option<String>,
    /// shown to the members; required to suspend
    #[serde(default)]
    #[schema(max_length = 500)]
    suspend_reason: Option<String>,
}

#[utoipa::path(
    patch, path = "/api/v1/admin/organizations/{id}", tag = "admin",
    summary = "Change an organization's plan, override single limits, suspend or reinstate it",
    params(AdminPath),
    request_body = OrgBody,
    responses((status = 200, description = "Success", body = admin::AdminOrgView), Guarded, Sent),
    security(("session" = [], "csrf" = [])),
)]
async fn change_org(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<OrgBody>,
) -> Result<Response> {
    let status = b
        .status
        .as_deref()
        .map(|st| {
            OrgStatus::parse(st).ok_or_else(|| {
                AppError::invalid(vec![crate::domain::Invalid::new(
                    "status",
                    "active or suspended",
                )])
            })
        })
        .transpose()?;
    let change = OrgChange {
        plan: b.plan,
        apply_now: b.apply_now,
        limits: b.limits,
        status,
        suspend_reason: b.suspend_reason,
    };
    Ok(ok(&admin::change_org(&s.svc, &admin, id, change).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    /// the organization's slug, typed again
    confirm: String,
}

#[utoipa::path(
    delete, path = "/api/v1/admin/organizations/{id}", tag = "admin",
    summary = "Delete a team organization and everything in it (typed confirmation)",
    params(AdminPath),
    request_body = ConfirmBody,
    responses((status = 204, description = "Deleted"), (status = 409, response = Conflict), Guarded, Sent),
    security(("session" = [], "csrf" = [])),
)]
async fn delete_org(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ConfirmBody>,
) -> Result<Response> {
    admin::delete_org(&s.svc, &admin, id, b.confirm).await?;
    Ok(no_content())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    /// recorded in the organization's own audit log
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
}

#[derive(Serialize, ToSchema)]
struct Entered {
    organization_id: String,
    slug: String,
    role: crate::domain::Role,
}

#[utoipa::path(
    post, path = "/api/v1/admin/organizations/{id}/enter", tag = "admin",
    summary = "Act as instance administrator inside an organization: become a visible admin member, audited in its log",
    params(AdminPath),
    request_body = ReasonBody,
    responses((status = 201, description = "Now a member", body = Entered), (status = 409, response = Conflict), Guarded, Sent),
    security(("session" = [], "csrf" = [])),
)]
async fn enter_org(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ReasonBody>,
) -> Result<Response> {
    let ctx = admin::enter_org(&s.svc, &admin, id, b.reason).await?;
    Ok(created(&Entered {
        organization_id: ctx.org_id().to_string(),
        slug: ctx.org().slug.clone(),
        role: ctx.role(),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/admin/users", tag = "admin",
    summary = "Every user, by email, with their organizations and roles and last sign-in",
    params(SearchQuery),
    responses((status = 200, description = "Success", body = Listing<admin::AdminUserView>), (status = 400, response = BadRequest), Guarded),
    security(("session" = [])),
)]
async fn list_users(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Response> {
    let (q, limit, offset) = q.parts()?;
    Ok(listing(
        admin::list_users(&s.svc, &admin, q, limit, offset).await?,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/admin/users/{id}", tag = "admin",
    summary = "One user as the console shows them",
    params(AdminPath),
    responses((status = 200, description = "Success", body = admin::AdminUserView), Guarded),
    security(("session" = [])),
)]
async fn show_user(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(ok(&admin::get_user(&s.svc, &admin, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserBody {
    /// disabling ends every session and token of the user at once
    #[serde(default)]
    disabled: Option<bool>,
    /// never the last instance administrator
    #[serde(default)]
    superuser: Option<bool>,
}

#[utoipa::path(
    patch, path = "/api/v1/admin/users/{id}", tag = "admin",
    summary = "Disable or enable a user; make or revoke an instance administrator",
    params(AdminPath),
    request_body = UserBody,
    responses((status = 200, description = "Success", body = admin::AdminUserView), (status = 409, response = Conflict), Guarded, Sent),
    security(("session" = [], "csrf" = [])),
)]
async fn change_user(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UserBody>,
) -> Result<Response> {
    let change = UserChange {
        disabled: b.disabled,
        superuser: b.superuser,
    };
    Ok(ok(&admin::change_user(&s.svc, &admin, id, change).await?))
}

#[derive(Serialize, ToSchema)]
struct SignedOut {
    sessions_ended: usize,
}

#[utoipa::path(
    post, path = "/api/v1/admin/users/{id}/sign-out", tag = "admin",
    summary = "End every session of a user",
    params(AdminPath),
    responses((status = 200, description = "Success", body = SignedOut), Guarded),
    security(("session" = [], "csrf" = [])),
)]
async fn sign_out_user(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let n = admin::sign_out_user(&s.svc, &admin, id).await?;
    Ok(ok(&SignedOut { sessions_ended: n }))
}

#[derive(Serialize, ToSchema)]
struct ResetLinkOut {
    /// shown once; works once
    url: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[utoipa::path(
    post, path = "/api/v1/admin/users/{id}/password-reset", tag = "admin",
    summary = "A one-time link with which the user sets a new password (valid 24 hours)",
    params(AdminPath),
    responses((status = 201, description = "Created", body = ResetLinkOut), Guarded),
    security(("session" = [], "csrf" = [])),
)]
async fn reset_link(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let l = admin::password_reset_link(&s.svc, &admin, id).await?;
    Ok(created(&ResetLinkOut {
        url: l.url,
        expires_at: l.expires_at,
    }))
}

#[derive(Serialize, ToSchema)]
struct TwoFactorReset {
    /// whether the user had a second factor (it is gone now)
    had_two_factor: bool,
}

#[utoipa::path(
    post, path = "/api/v1/admin/users/{id}/reset-2fa", tag = "admin",
    summary = "Remove a user's second factor and recovery codes (they sign in with the password until they enrol again)",
    params(AdminPath),
    responses((status = 200, description = "Success", body = TwoFactorReset), Guarded),
    security(("session" = [], "csrf" = [])),
)]
async fn reset_two_factor(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let had = admin::reset_two_factor(&s.svc, &admin, id).await?;
    Ok(ok(&TwoFactorReset {
        had_two_factor: had,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/admin/plans", tag = "admin",
    summary = "Every plan with its limits, fee and how many organizations are on it",
    responses((status = 200, description = "Success", body = Listing<admin::PlanView>), Guarded),
    security(("session" = [])),
)]
async fn list_plans(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
) -> Result<Response> {
    let items = admin::list_plans(&s.svc, &admin).await?;
    let total = items.len() as i64;
    Ok(listing(admin::Listed { items, total }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PlanBody {
    /// lower-case letters, digits and dashes; default: from the name (only on create)
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$")]
    id: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 60)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0)]
    monthly_fee_micros: Option<Micros>,
    /// every limit (absent or null: unlimited)
    #[serde(default, deserialize_with = "limits_object")]
    limits: Option<PlanLimits>,
}

/// A plan's changes (its id stays).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PlanPatchBody {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 60)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0)]
    monthly_fee_micros: Option<Micros>,
    /// every limit (absent or null: unlimited)
    #[serde(default, deserialize_with = "limits_object")]
    limits: Option<PlanLimits>,
}

/// Limits as a JSON object only (serde would also read a struct from an array).
fn limits_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PlanLimits>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v @ Value::Object(_) => serde_json::from_value(v)
            .map(Some)
            .map_err(D::Error::custom),
        _ => Err(D::Error::custom("limits must be an object")),
    }
}

/// A string that may be absent but not null.
fn not_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::String(s) => Ok(Some(s)),
        _ => Err(D::Error::custom("expected a string")),
    }
}

impl PlanBody {
    fn input(self) -> PlanInput {
        PlanInput {
            id: self.id,
            name: self.name,
            monthly_fee_micros: self.monthly_fee_micros,
            limits: self.limits,
        }
    }
}

#[utoipa::path(
    post, path = "/api/v1/admin/plans", tag = "admin",
    summary = "Create a plan",
    request_body = PlanBody,
    responses((status = 201, description = "Created", body = admin::PlanView), (status = 409, response = Conflict), Guarded, Sent),
    security(("session" = [], "csrf" = [])),
)]
async fn create_plan(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    ApiJson(b): ApiJson<PlanBody>,
) -> Result<Response> {
    Ok(created(
        &admin::create_plan(&s.svc, &admin, b.input()).await?,
    ))
}

#[utoipa::path(
    patch, path = "/api/v1/admin/plans/{id}", tag = "admin",
    summary = "Change a plan's name, fee or limits (limits take effect at once)",
    params(AdminPath),
    request_body = PlanPatchBody,
    responses((status = 200, description = "Success", body = admin::PlanView), Guarded, Sent),
    security(("session" = [], "csrf" = [])),
)]
async fn change_plan(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PlanPatchBody>,
) -> Result<Response> {
    let input = PlanInput {
        id: None,
        name: b.name,
        monthly_fee_micros: b.monthly_fee_micros,
        limits: b.limits,
    };
    Ok(ok(&admin::change_plan(&s.svc, &admin, id, input).await?))
}

#[utoipa::path(
    delete, path = "/api/v1/admin/plans/{id}", tag = "admin",
    summary = "Remove a plan no organization is on (and not the default)",
    params(AdminPath),
    responses((status = 204, description = "Deleted"), (status = 409, response = Conflict), Guarded),
    security(("session" = [], "csrf" = [])),
)]
async fn delete_plan(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
) -> Result<Response> {
    admin::delete_plan(&s.svc, &admin, id).await?;
    Ok(no_content())
}

#[utoipa::path(
    get, path = "/api/v1/admin/model-prices", tag = "admin",
    summary = "The model price table, by provider and model, newest first within each",
    responses((status = 200, description = "Success", body = Listing<admin::PriceView>), Guarded),
    security(("session" = [])),
)]
async fn list_prices(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
) -> Result<Response> {
    let items = admin::list_prices(&s.svc, &admin).await?;
    let total = items.len() as i64;
    Ok(listing(admin::Listed { items, total }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    /// "" or absent: any provider
    #[serde(default)]
    #[schema(max_length = 64)]
    provider: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    model: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0)]
    input_per_million_micros: Option<Micros>,
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0)]
    output_per_million_micros: Option<Micros>,
    /// RFC 3339 or YYYY-MM-DD (midnight UTC); blank or absent: now (on a change: as it was)
    #[serde(default, deserialize_with = "not_null")]
    #[schema(schema_with = super::openapi::time_or_date_or_blank)]
    effective_from: Option<String>,
}

impl PriceBody {
    fn input(self) -> PriceInput {
        PriceInput {
            provider: self.provider,
            model: self.model,
            input_per_million_micros: self.input_per_million_micros,
            output_per_million_micros: self.output_per_million_micros,
            effective_from: self.effective_from,
        }
    }
}

#[utoipa::path(
    post, path = "/api/v1/admin/model-prices", tag = "admin",
    summary = "Add a price, in force from a moment on (usage already charged keeps its price)",
    request_body = PriceBody,
    responses((status = 201, description = "Created", body = admin::PriceView), (status = 409, response = Conflict), Guarded, Sent),
    security(("session" = [], "csrf" = [])),
)]
async fn create_price(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    ApiJson(b): ApiJson<PriceBody>,
) -> Result<Response> {
    Ok(created(
        &admin::create_price(&s.svc, &admin, b.input()).await?,
    ))
}

#[utoipa::path(
    patch, path = "/api/v1/admin/model-prices/{id}", tag = "admin",
    summary = "Change a price",
    params(AdminPath),
    request_body = PriceBody,
    responses((status = 200, description = "Success", body = admin::PriceView), (status = 409, response = Conflict), Guarded, Sent),
    security(("session" = [], "csrf" = [])),
)]
async fn change_price(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PriceBody>,
) -> Result<Response> {
    Ok(ok(
        &admin::change_price(&s.svc, &admin, id, b.input()).await?
    ))
}

#[utoipa::path(
    delete, path = "/api/v1/admin/model-prices/{id}", tag = "admin",
    summary = "Remove a price",
    params(AdminPath),
    responses((status = 204, description = "Deleted"), Guarded),
    security(("session" = [], "csrf" = [])),
)]
async fn delete_price(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    Path(id): Path<String>,
) -> Result<Response> {
    admin::delete_price(&s.svc, &admin, id).await?;
    Ok(no_content())
}

#[utoipa::path(
    get, path = "/api/v1/admin/settings", tag = "admin",
    summary = "Instance settings",
    responses((status = 200, description = "Success", body = admin::InstanceSettings), Guarded),
    security(("session" = [])),
)]
async fn settings(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
) -> Result<Response> {
    Ok(ok(&admin::settings(&s.svc, &admin).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    #[serde(default)]
    signup_open: Option<bool>,
    /// the plan new organizations and personal workspaces start on
    #[serde(default)]
    default_plan: Option<String>,
}

#[utoipa::path(
    patch, path = "/api/v1/admin/settings", tag = "admin",
    summary = "Open or close sign-up; choose the default plan",
    request_body = SettingsBody,
    responses((status = 200, description = "Success", body = admin::InstanceSettings), Guarded, Sent),
    security(("session" = [], "csrf" = [])),
)]
async fn change_settings(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    ApiJson(b): ApiJson<SettingsBody>,
) -> Result<Response> {
    Ok(ok(&admin::change_settings(
        &s.svc,
        &admin,
        b.signup_open,
        b.default_plan,
    )
    .await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TestMailBody {
    #[schema(format = "email")]
    to: String,
}

#[utoipa::path(
    post, path = "/api/v1/admin/settings/test-mail", tag = "admin",
    summary = "Send a test mail through the configured SMTP server",
    request_body = TestMailBody,
    responses((status = 204, description = "Accepted by the SMTP server"), (status = 409, response = Conflict), (status = 502, description = "The SMTP server refused or could not be reached"), Guarded, Sent),
    security(("session" = [], "csrf" = [])),
)]
async fn test_mail(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    ApiJson(b): ApiJson<TestMailBody>,
) -> Result<Response> {
    admin::send_test_mail(&s.svc, &admin, b.to).await?;
    Ok(no_content())
}

/// The organization audit query's filters, with the instance chain's actions.
pub(crate) fn instance_filter(q: &AuditQuery) -> Result<crate::db::repo::audit::Filter> {
    if let Some(a) = q.action.as_deref().map(str::trim).filter(|a| !a.is_empty())
        && !INSTANCE_AUDIT_ACTIONS.contains(&a)
    {
        return Err(AppError::invalid_as(
            "invalid_query",
            vec![crate::domain::Invalid::new(
                "action",
                format!("There is no instance audit action \"{a}\"; the README lists them."),
            )],
        ));
    }
    AuditQuery {
        action: None,
        ..q.clone()
    }
    .filter()
    .map(|mut f| {
        f.action = q
            .action
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        f
    })
}

/// The instance audit's filters, as the document describes them (read as `AuditQuery`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct InstanceAuditParams {
    #[param(schema_with = super::openapi::instance_audit_action_or_blank)]
    action: Option<String>,
    #[param(nullable = false)]
    resource_type: Option<String>,
    #[param(nullable = false)]
    resource_id: Option<String>,
    #[param(nullable = false)]
    actor_id: Option<String>,
    #[param(schema_with = super::openapi::time_or_date_or_blank)]
    since: Option<String>,
    #[param(schema_with = super::openapi::time_or_date_or_blank)]
    until: Option<String>,
}

/// One entry of the instance chain (the organization entry's shape, the instance's words).
#[derive(ToSchema)]
#[allow(dead_code)]
struct InstanceAuditEntry {
    #[schema(format = "uuid")]
    id: String,
    #[schema(format = DateTime)]
    at: String,
    /// who did it; null id and email for the system
    actor: crate::services::audit::EntryActor<'static>,
    #[schema(value_type = crate::domain::schemas::InstanceAuditAction)]
    action: String,
    resource_type: String,
    resource_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    #[schema(value_type = Object)]
    details: Value,
}

#[utoipa::path(
    get, path = "/api/v1/admin/audit", tag = "admin",
    summary = "The instance audit chain, newest first, filtered as the organization audit",
    params(InstanceAuditParams, PageQuery),
    responses((status = 200, description = "Success", body = ListPage<InstanceAuditEntry>), (status = 400, response = BadRequest), Guarded),
    security(("session" = [])),
)]
async fn audit(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response> {
    let filter = instance_filter(&q)?;
    let (rows, next) =
        audit_svc::query_instance(&s.svc, &admin, filter, q.before_seq()?, q.limit()?).await?;
    let items: Vec<_> = rows.iter().map(audit_svc::export_json).collect();
    Ok(super::items(
        &items,
        next.map(|n| encode_cursor(&n.to_string())),
    ))
}

#[utoipa::path(
    get, path = "/api/v1/admin/audit/export", tag = "admin",
    summary = "Stream the filtered instance audit rows as CSV or NDJSON",
    params(InstanceAuditParams, ExportFormatQuery),
    responses(
        (status = 200, description = "Every matching row, newest first, streamed", content((String = "application/x-ndjson"), (String = "text/csv"))),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = [])),
)]
async fn audit_export(
    State(s): State<AppState>,
    AdminUser { admin, .. }: AdminUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response> {
    let format = super::audit::export_format(q.format.as_deref())?;
    let filter = instance_filter(&q)?;
    let stream = audit_svc::export_instance(s.svc.db.clone(), &admin, filter, format);
    Ok(super::audit::export_response(
        stream,
        format,
        "instance-audit",
    ))
}
