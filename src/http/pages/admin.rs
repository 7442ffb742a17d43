//! The instance console's pages (`/admin`): the same services as `/api/v1/admin`, for a
//! signed-in superuser. A form that succeeds redirects back with a fixed note (`?done=`);
//! one that fails shows the page again with what went wrong.
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{layout, render_status, see_other, urlencode};
use crate::domain::audit::INSTANCE_AUDIT_ACTIONS;
use crate::domain::plans::LIMIT_NAMES;
use crate::domain::{Micros, OrgStatus, PlanLimits};
use crate::error::{AppError, Result};
use crate::http::extract::{AdminUser, CsrfForm};
use crate::http::state::AppState;
use crate::http::views::admin::{
    AuditLine, AuditPage, BackupLine, HomePage, LimitRow, OrgPage, OrgsPage, Outcome, Pager,
    PlansPage, PricesPage, Section, SettingsPage, UserPage, UsersPage, limit_text,
};
use crate::services::admin::{self, InstanceAdmin, OrgChange, PlanInput, PriceInput, UserChange};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/backup", get(download_backup))
        .route("/admin/organizations", get(orgs))
        .route("/admin/organizations/{id}", get(org))
        .route("/admin/organizations/{id}/plan", post(org_plan))
        .route("/admin/organizations/{id}/limits", post(org_limits))
        .route("/admin/organizations/{id}/status", post(org_status))
        .route("/admin/organizations/{id}/enter", post(org_enter))
        .route("/admin/organizations/{id}/delete", post(org_delete))
        .route("/admin/users", get(users))
        .route("/admin/users/{id}", get(user))
        .route("/admin/users/{id}/change", post(user_change))
        .route("/admin/users/{id}/sign-out", post(user_sign_out))
        .route("/admin/users/{id}/password-reset", post(user_reset))
        .route("/admin/users/{id}/reset-2fa", post(user_reset_two_factor))
        .route("/admin/plans", get(plans).post(plan_create))
        .route("/admin/plans/{id}", post(plan_change))
        .route("/admin/plans/{id}/delete", post(plan_delete))
        .route("/admin/prices", get(prices).post(price_create))
        .route("/admin/prices/{id}", post(price_change))
        .route("/admin/prices/{id}/delete", post(price_delete))
        .route("/admin/settings", get(settings).post(settings_change))
        .route("/admin/settings/test-mail", post(test_mail))
        .route("/admin/audit", get(audit))
}

/// The note a successful form leaves, by the `?done=` it redirected with.
fn done_note(done: Option<&str>) -> Option<String> {
    let text = match done? {
        "plan" => "The plan is changed; its limits apply now.",
        "limits" => "The limits are saved; they apply now.",
        "suspended" => "The organization is suspended. Its members see the reason.",
        "active" => "The organization is active again.",
        "deleted" => "The organization is deleted.",
        "user" => "Saved.",
        "signed-out" => "Every session of the user has ended.",
        "two-factor-reset" => {
            "The user's two-factor authentication is removed; they sign in with the password until they set it up again."
        }
        "plan-created" => "The plan is created.",
        "plan-saved" => "The plan is saved; its limits apply now.",
        "plan-deleted" => "The plan is removed.",
        "price-saved" => "The price is saved.",
        "price-deleted" => "The price is removed.",
        "settings" => "The settings are saved.",
        "mail" => "The test mail was accepted by the SMTP server.",
        _ => return None,
    };
    Some(text.to_string())
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

fn noted(q: &DoneQuery) -> Outcome {
    Outcome {
        notice: done_note(q.done.as_deref()),
        error: None,
    }
}

/// What a refused form says: the message with each field's reason.
fn error_text(e: &AppError) -> String {
    match e {
        AppError::BadRequest { fields, .. } if !fields.is_empty() => fields
            .iter()
            .map(|(f, m)| format!("{}: {m}", f.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.public_message(),
    }
}

/// A form's failure as a page outcome, or the error itself when it is no user error.
fn refused(e: AppError) -> Result<(StatusCode, Outcome)> {
    if e.status().is_client_error() && !matches!(e, AppError::Unauthorized) {
        Ok((
            e.status(),
            Outcome {
                notice: None,
                error: Some(error_text(&e)),
            },
        ))
    } else {
        Err(e)
    }
}

async fn admin_layout(
    s: &AppState,
    a: &AdminUser,
    title: &str,
) -> Result<crate::http::views::Layout> {
    layout(s, &a.user, title, None).await
}

/// The caller of a console form: the CSRF check of `CsrfForm`, then the superuser check.
fn form_admin(user: &crate::http::extract::CurrentUser) -> Result<InstanceAdmin> {
    InstanceAdmin::check(&user.user, user.actor(), user.session().is_some())
}

// ---------------------------------------------------------------- overview and backup

async fn home(
    State(s): State<AppState>,
    a: AdminUser,
    Query(q): Query<DoneQuery>,
) -> Result<Response> {
    let orgs = admin::list_orgs(&s.svc, &a.admin, String::new(), 1, 0).await?;
    let users = admin::list_users(&s.svc, &a.admin, String::new(), 1, 0).await?;
    let suspended = admin::count_suspended(&s.svc, &a.admin).await?;
    let plans = admin::list_plans(&s.svc, &a.admin).await?;
    let backups = backup_lines(&admin::backup_status(&s.svc, &a.admin));
    render_status(
        StatusCode::OK,
        &HomePage {
            layout: admin_layout(&s, &a, "Instance console").await?,
            section: Section::Home,
            orgs: orgs.total,
            suspended,
            users: users.total,
            plans,
            backups,
            outcome: noted(&q),
        },
    )
}

/// The scheduled backups' state for the overview (empty when none are scheduled and none
/// ever failed).
fn backup_lines(st: &crate::services::backups::BackupStatus) -> Vec<BackupLine> {
    let Some(every) = st.interval_secs else {
        return Vec::new();
    };
    let line = |label: &str, value: String, warn: bool| BackupLine {
        label: label.to_string(),
        value,
        warn,
    };
    let mut out = vec![
        line(
            "Schedule",
            format!(
                "every {}, keeping {} in {}",
                humane(every),
                st.keep,
                st.dir.display()
            ),
            false,
        ),
        match (&st.last_success_at, &st.last_file) {
            (Some(at), Some(file)) => line(
                "Last backup",
                format!(
                    "{} — {} ({})",
                    crate::domain::format::time_at(*at),
                    file.display(),
                    crate::domain::format::bytes(st.last_size.unwrap_or(0) as i64)
                ),
                false,
            ),
            _ => line("Last backup", "none yet".into(), false),
        },
    ];
    if st.failures_total > 0 {
        let when = st
            .last_failure_at
            .map(crate::domain::format::time_at)
            .unwrap_or_default();
        out.push(line(
            "Failures",
            format!(
                "{} in all; the last at {when}: {}",
                st.failures_total,
                st.last_error.as_deref().unwrap_or("unknown")
            ),
            st.last_failure_at > st.last_success_at,
        ));
    }
    out
}

fn humane(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A consistent copy of the live database, streamed as a download.
async fn download_backup(State(s): State<AppState>, a: AdminUser) -> Result<Response> {
    let copy = admin::backup_now(&s.svc, &a.admin).await?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let file = copy
        .open()
        .map_err(|e| AppError::Internal(format!("reading the backup: {e}")))?;
    // Open before the name goes: the open file stays readable (Unix), nothing is left over.
    drop(copy);
    let reader = tokio::fs::File::from_std(file);
    let length = reader
        .metadata()
        .await
        .map(|m| m.len())
        .map_err(|e| AppError::Internal(format!("reading the backup: {e}")))?;
    let body = futures_util::stream::unfold(reader, |mut reader| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), reader))
            }
            Err(e) => Some((Err(e), reader)),
        }
    });
    // Fused: the compression layer polls once more after the end, which a bare unfold
    // answers with a panic.
    let body = futures_util::StreamExt::fuse(body);
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.sqlite3".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"xagent-{stamp}.db\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

// ---------------------------------------------------------------- organizations

#[derive(Deserialize, Default)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: Option<i64>,
}

const PAGE: i64 = 50;

fn pager(base: &str, q: &str, offset: i64, shown: usize, total: i64) -> Pager {
    let link = |o: i64| format!("{base}?q={}&offset={o}", urlencode(q));
    Pager {
        prev: if offset > 0 {
            link((offset - PAGE).max(0))
        } else {
            String::new()
        },
        next: if offset + (shown as i64) < total {
            link(offset + PAGE)
        } else {
            String::new()
        },
        shown: if total == 0 {
            String::new()
        } else {
            format!("{}–{} of {total}", offset + 1, offset + shown as i64)
        },
    }
}

async fn orgs(
    State(s): State<AppState>,
    a: AdminUser,
    Query(q): Query<SearchQuery>,
) -> Result<Response> {
    let offset = q.offset.unwrap_or(0).max(0);
    let l = admin::list_orgs(&s.svc, &a.admin, q.q.clone(), PAGE, offset).await?;
    let pager = pager("/admin/organizations", &q.q, offset, l.items.len(), l.total);
    render_status(
        StatusCode::OK,
        &OrgsPage {
            layout: admin_layout(&s, &a, "Organizations").await?,
            section: Section::Orgs,
            q: q.q,
            orgs: l.items,
            pager,
        },
    )
}

const LIMIT_LABELS: [&str; 8] = [
    "Agents",
    "Workflows",
    "Members",
    "Documents",
    "Storage (bytes)",
    "Largest document (bytes)",
    "AI credits per period ($)",
    "Requests per minute",
];

fn limit_values(l: &PlanLimits) -> [Option<i64>; 8] {
    [
        l.agents,
        l.workflows,
        l.members,
        l.documents,
        l.storage_bytes,
        l.document_bytes,
        l.monthly_credits_micros,
        l.rate_limit_rpm,
    ]
}

fn shown_limit(name: &str, v: Option<i64>) -> String {
    match (name, v) {
        ("monthly_credits_micros", Some(m)) => Micros::new(m).money(),
        (_, v) => limit_text(v),
    }
}

async fn org_page(
    s: &AppState,
    a: &AdminUser,
    id: String,
    status: StatusCode,
    outcome: Outcome,
) -> Result<Response> {
    let org = admin::get_org(&s.svc, &a.admin, id).await?;
    let plans = admin::list_plans(&s.svc, &a.admin).await?;
    let plan = plans
        .iter()
        .find(|p| p.id == org.plan)
        .map(|p| p.limits.clone())
        .unwrap_or_default();
    let limits = LIMIT_NAMES
        .iter()
        .zip(LIMIT_LABELS)
        .zip(
            limit_values(&plan)
                .into_iter()
                .zip(limit_values(&org.limits)),
        )
        .map(|((name, label), (plan_v, in_force))| LimitRow {
            name,
            label,
            plan: shown_limit(name, plan_v),
            value: match org.limit_overrides.get(*name) {
                None => String::new(),
                Some(Value::Null) => "unlimited".into(),
                Some(Value::Number(n)) => match (*name, n.as_i64()) {
                    ("monthly_credits_micros", Some(m)) => Micros::new(m).usd(),
                    _ => n.to_string(),
                },
                Some(other) => other.to_string(),
            },
            in_force: shown_limit(name, in_force),
        })
        .collect();
    let title = org.name.clone();
    render_status(
        status,
        &OrgPage {
            layout: admin_layout(s, a, &title).await?,
            section: Section::Orgs,
            org,
            plans,
            limits,
            outcome,
        },
    )
}

async fn org(
    State(s): State<AppState>,
    a: AdminUser,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response> {
    org_page(&s, &a, id, StatusCode::OK, noted(&q)).await
}

/// A console form's result: 303 back to `back` with the note of `done`, or the page again
/// (drawn by `page`) with what went wrong; errors that are not the user's stay errors.
async fn settle(
    result: Result<&'static str>,
    back: &str,
    page: impl AsyncFnOnce(StatusCode, Outcome) -> Result<Response>,
) -> Result<Response> {
    match result {
        Ok(done) => Ok(see_other(&format!("{back}?done={done}"))),
        Err(e) => {
            let (status, outcome) = refused(e)?;
            page(status, outcome).await
        }
    }
}

async fn after_org_form(
    s: &AppState,
    user: crate::http::extract::CurrentUser,
    admin: InstanceAdmin,
    id: String,
    result: Result<&'static str>,
) -> Result<Response> {
    let back = format!("/admin/organizations/{}", urlencode(&id));
    settle(result, &back, async move |status, outcome| {
        org_page(s, &AdminUser { user, admin }, id, status, outcome).await
    })
    .await
}

#[derive(Deserialize)]
struct PlanForm {
    #[serde(default)]
    plan: String,
    #[serde(default)]
    apply_now: Option<String>,
}

async fn org_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, f): CsrfForm<PlanForm>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let change = OrgChange {
        plan: Some(f.plan),
        apply_now: f.apply_now.is_some(),
        ..Default::default()
    };
    let r = admin::change_org(&s.svc, &admin, id.clone(), change)
        .await
        .map(|_| "plan");
    after_org_form(&s, user, admin, id, r).await
}

/// The limits form: each field empty (the plan's), "unlimited", or a number (dollars for
/// the credits).
fn limits_from_form(
    form: &std::collections::HashMap<String, String>,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for name in LIMIT_NAMES {
        let raw = form.get(name).map(|v| v.trim()).unwrap_or("");
        let value = if raw.is_empty() {
            Value::String("plan".into())
        } else if raw.eq_ignore_ascii_case("unlimited") {
            Value::Null
        } else if name == "monthly_credits_micros" {
            match Micros::parse_usd(raw) {
                Some(m) => Value::from(m.get()),
                None => {
                    errors.push(crate::domain::Invalid::new(
                        "limits",
                        "AI credits are dollars, e.g. 250 or 12.50.",
                    ));
                    continue;
                }
            }
        } else {
            match raw.replace([',', '_', ' '], "").parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    errors.push(crate::domain::Invalid::new(
                        "limits",
                        format!("{name} must be a whole number, \"unlimited\" or empty."),
                    ));
                    continue;
                }
            }
        };
        out.insert(name.to_string(), value);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(AppError::invalid(errors))
    }
}

async fn org_limits(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, f): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = match limits_from_form(&f) {
        Ok(limits) => {
            let change = OrgChange {
                limits: Some(limits),
                ..Default::default()
            };
            admin::change_org(&s.svc, &admin, id.clone(), change)
                .await
                .map(|_| "limits")
        }
        Err(e) => Err(e),
    };
    after_org_form(&s, user, admin, id, r).await
}

#[derive(Deserialize)]
struct StatusForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    suspend_reason: Option<String>,
}

async fn org_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, f): CsrfForm<StatusForm>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let status = OrgStatus::parse(&f.status).unwrap_or(OrgStatus::Active);
    let change = OrgChange {
        status: Some(status),
        suspend_reason: f.suspend_reason,
        ..Default::default()
    };
    let r = admin::change_org(&s.svc, &admin, id.clone(), change)
        .await
        .map(|_| status.as_str());
    after_org_form(&s, user, admin, id, r).await
}

#[derive(Deserialize)]
struct ReasonForm {
    #[serde(default)]
    reason: String,
}

async fn org_enter(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, f): CsrfForm<ReasonForm>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    match admin::enter_org(&s.svc, &admin, id.clone(), f.reason).await {
        Ok(ctx) => Ok(see_other(&format!("/o/{}", ctx.org().slug))),
        Err(e) => after_org_form(&s, user, admin, id, Err(e)).await,
    }
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

async fn org_delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, f): CsrfForm<ConfirmForm>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    match admin::delete_org(&s.svc, &admin, id.clone(), f.confirm).await {
        Ok(()) => Ok(see_other("/admin/organizations?done=deleted")),
        Err(e) => after_org_form(&s, user, admin, id, Err(e)).await,
    }
}

// ---------------------------------------------------------------- users

async fn users(
    State(s): State<AppState>,
    a: AdminUser,
    Query(q): Query<SearchQuery>,
) -> Result<Response> {
    let offset = q.offset.unwrap_or(0).max(0);
    let l = admin::list_users(&s.svc, &a.admin, q.q.clone(), PAGE, offset).await?;
    let pager = pager("/admin/users", &q.q, offset, l.items.len(), l.total);
    render_status(
        StatusCode::OK,
        &UsersPage {
            layout: admin_layout(&s, &a, "Users").await?,
            section: Section::Users,
            q: q.q,
            users: l.items,
            pager,
        },
    )
}

async fn user_page(
    s: &AppState,
    a: &AdminUser,
    id: String,
    status: StatusCode,
    outcome: Outcome,
    reset_link: Option<(String, String)>,
) -> Result<Response> {
    let user = admin::get_user(&s.svc, &a.admin, id).await?;
    let is_me = user.id == a.user.user.id.to_string();
    let title = user.email.clone();
    render_status(
        status,
        &UserPage {
            layout: admin_layout(s, a, &title).await?,
            section: Section::Users,
            user,
            is_me,
            reset_link,
            outcome,
        },
    )
}

async fn user(
    State(s): State<AppState>,
    a: AdminUser,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response> {
    user_page(&s, &a, id, StatusCode::OK, noted(&q), None).await
}

async fn after_user_form(
    s: &AppState,
    user: crate::http::extract::CurrentUser,
    admin: InstanceAdmin,
    id: String,
    result: Result<&'static str>,
) -> Result<Response> {
    let back = format!("/admin/users/{}", urlencode(&id));
    settle(result, &back, async move |status, outcome| {
        user_page(s, &AdminUser { user, admin }, id, status, outcome, None).await
    })
    .await
}

#[derive(Deserialize)]
struct UserForm {
    #[serde(default)]
    disabled: Option<String>,
    #[serde(default)]
    superuser: Option<String>,
}

async fn user_change(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, f): CsrfForm<UserForm>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let flag = |v: Option<String>| v.map(|v| v == "true");
    let change = UserChange {
        disabled: flag(f.disabled),
        superuser: flag(f.superuser),
    };
    let r = admin::change_user(&s.svc, &admin, id.clone(), change)
        .await
        .map(|_| "user");
    after_user_form(&s, user, admin, id, r).await
}

#[derive(Deserialize)]
struct Empty {}

async fn user_sign_out(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, _): CsrfForm<Empty>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = admin::sign_out_user(&s.svc, &admin, id.clone())
        .await
        .map(|_| "signed-out");
    after_user_form(&s, user, admin, id, r).await
}

async fn user_reset_two_factor(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, _): CsrfForm<Empty>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = admin::reset_two_factor(&s.svc, &admin, id.clone())
        .await
        .map(|_| "two-factor-reset");
    after_user_form(&s, user, admin, id, r).await
}

/// Shows the link once, on the page the form was posted to (never in a redirect URL).
async fn user_reset(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, _): CsrfForm<Empty>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    match admin::password_reset_link(&s.svc, &admin, id.clone()).await {
        Ok(link) => {
            let expires = crate::domain::format::time_at(link.expires_at);
            let a = AdminUser { user, admin };
            let mut r = user_page(
                &s,
                &a,
                id,
                StatusCode::OK,
                Outcome::default(),
                Some((link.url, expires)),
            )
            .await?;
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            Ok(r)
        }
        Err(e) => after_user_form(&s, user, admin, id, Err(e)).await,
    }
}

// ---------------------------------------------------------------- plans

async fn plans_page(
    s: &AppState,
    a: &AdminUser,
    status: StatusCode,
    outcome: Outcome,
) -> Result<Response> {
    let plans = admin::list_plans(&s.svc, &a.admin).await?;
    render_status(
        status,
        &PlansPage {
            layout: admin_layout(s, a, "Plans").await?,
            section: Section::Plans,
            plans,
            outcome,
        },
    )
}

async fn plans(
    State(s): State<AppState>,
    a: AdminUser,
    Query(q): Query<DoneQuery>,
) -> Result<Response> {
    plans_page(&s, &a, StatusCode::OK, noted(&q)).await
}

async fn after_plan_form(
    s: &AppState,
    user: crate::http::extract::CurrentUser,
    admin: InstanceAdmin,
    result: Result<&'static str>,
) -> Result<Response> {
    settle(result, "/admin/plans", async move |status, outcome| {
        plans_page(s, &AdminUser { user, admin }, status, outcome).await
    })
    .await
}

/// A plan form: name, fee in dollars and every limit (empty: unlimited).
fn plan_from_form(f: &std::collections::HashMap<String, String>) -> Result<PlanInput> {
    let mut errors = Vec::new();
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let mut number = |k: &'static str| -> Option<i64> {
        let raw = get(k).replace([',', '_', ' '], "");
        if raw.is_empty() {
            return None;
        }
        raw.parse::<i64>()
            .map_err(|_| {
                errors.push(crate::domain::Invalid::new(
                    "limits",
                    format!("{k}: a whole number, or empty for unlimited."),
                ));
            })
            .ok()
    };
    let limits = PlanLimits {
        agents: number("agents"),
        workflows: number("workflows"),
        members: number("members"),
        documents: number("documents"),
        storage_bytes: number("storage_bytes"),
        document_bytes: number("document_bytes"),
        rate_limit_rpm: number("rate_limit_rpm"),
        monthly_credits_micros: None,
    };
    let mut limits = limits;
    let credits = get("credits");
    if !credits.is_empty() {
        match Micros::parse_usd(&credits) {
            Some(m) => limits.monthly_credits_micros = Some(m.get()),
            None => errors.push(crate::domain::Invalid::new(
                "limits",
                "AI credits are dollars, e.g. 250.",
            )),
        }
    }
    let fee = match Micros::parse_usd(&get("fee")) {
        Some(m) => Some(m),
        None if get("fee").is_empty() => None,
        None => {
            errors.push(crate::domain::Invalid::new(
                "monthly_fee_micros",
                "The fee is dollars, e.g. 49.",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let id = get("id");
    Ok(PlanInput {
        id: (!id.is_empty()).then_some(id),
        name: Some(get("name")),
        monthly_fee_micros: fee,
        limits: Some(limits),
    })
}

async fn plan_create(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = match plan_from_form(&f) {
        Ok(input) => admin::create_plan(&s.svc, &admin, input)
            .await
            .map(|_| "plan-created"),
        Err(e) => Err(e),
    };
    after_plan_form(&s, user, admin, r).await
}

async fn plan_change(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, f): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = match plan_from_form(&f) {
        Ok(input) => admin::change_plan(&s.svc, &admin, id, PlanInput { id: None, ..input })
            .await
            .map(|_| "plan-saved"),
        Err(e) => Err(e),
    };
    after_plan_form(&s, user, admin, r).await
}

async fn plan_delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, _): CsrfForm<Empty>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = admin::delete_plan(&s.svc, &admin, id)
        .await
        .map(|()| "plan-deleted");
    after_plan_form(&s, user, admin, r).await
}

// ---------------------------------------------------------------- prices

async fn prices_page(
    s: &AppState,
    a: &AdminUser,
    status: StatusCode,
    outcome: Outcome,
) -> Result<Response> {
    let prices = admin::list_prices(&s.svc, &a.admin).await?;
    render_status(
        status,
        &PricesPage {
            layout: admin_layout(s, a, "Model prices").await?,
            section: Section::Prices,
            prices,
            outcome,
        },
    )
}

async fn prices(
    State(s): State<AppState>,
    a: AdminUser,
    Query(q): Query<DoneQuery>,
) -> Result<Response> {
    prices_page(&s, &a, StatusCode::OK, noted(&q)).await
}

#[derive(Deserialize)]
struct PriceForm {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: String,
    #[serde(default)]
    output: String,
    #[serde(default)]
    effective_from: String,
}

fn price_from_form(f: PriceForm) -> Result<PriceInput> {
    let dollars = |field: &'static str, raw: &str| {
        Micros::parse_usd(raw).ok_or_else(|| {
            AppError::invalid(vec![crate::domain::Invalid::new(
                field,
                "Dollars per million tokens, e.g. 2.50.",
            )])
        })
    };
    Ok(PriceInput {
        provider: Some(f.provider),
        model: Some(f.model),
        input_per_million_micros: Some(dollars("input_per_million_micros", &f.input)?),
        output_per_million_micros: Some(dollars("output_per_million_micros", &f.output)?),
        effective_from: Some(f.effective_from).filter(|v| !v.trim().is_empty()),
    })
}

async fn after_price_form(
    s: &AppState,
    user: crate::http::extract::CurrentUser,
    admin: InstanceAdmin,
    result: Result<&'static str>,
) -> Result<Response> {
    settle(result, "/admin/prices", async move |status, outcome| {
        prices_page(s, &AdminUser { user, admin }, status, outcome).await
    })
    .await
}

async fn price_create(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<PriceForm>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = match price_from_form(f) {
        Ok(input) => admin::create_price(&s.svc, &admin, input)
            .await
            .map(|_| "price-saved"),
        Err(e) => Err(e),
    };
    after_price_form(&s, user, admin, r).await
}

async fn price_change(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, f): CsrfForm<PriceForm>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = match price_from_form(f) {
        Ok(input) => admin::change_price(&s.svc, &admin, id, input)
            .await
            .map(|_| "price-saved"),
        Err(e) => Err(e),
    };
    after_price_form(&s, user, admin, r).await
}

async fn price_delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(user, _): CsrfForm<Empty>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = admin::delete_price(&s.svc, &admin, id)
        .await
        .map(|()| "price-deleted");
    after_price_form(&s, user, admin, r).await
}

// ---------------------------------------------------------------- settings

async fn settings_page(
    s: &AppState,
    a: &AdminUser,
    status: StatusCode,
    outcome: Outcome,
) -> Result<Response> {
    let settings = admin::settings(&s.svc, &a.admin).await?;
    let plans = admin::list_plans(&s.svc, &a.admin).await?;
    render_status(
        status,
        &SettingsPage {
            layout: admin_layout(s, a, "Instance settings").await?,
            section: Section::Settings,
            settings,
            plans,
            outcome,
        },
    )
}

async fn settings(
    State(s): State<AppState>,
    a: AdminUser,
    Query(q): Query<DoneQuery>,
) -> Result<Response> {
    settings_page(&s, &a, StatusCode::OK, noted(&q)).await
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    signup_open: Option<String>,
    #[serde(default)]
    default_plan: String,
}

async fn after_settings_form(
    s: &AppState,
    user: crate::http::extract::CurrentUser,
    admin: InstanceAdmin,
    result: Result<&'static str>,
) -> Result<Response> {
    settle(result, "/admin/settings", async move |status, outcome| {
        settings_page(s, &AdminUser { user, admin }, status, outcome).await
    })
    .await
}

async fn settings_change(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<SettingsForm>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = admin::change_settings(
        &s.svc,
        &admin,
        Some(f.signup_open.is_some()),
        Some(f.default_plan),
    )
    .await
    .map(|_| "settings");
    after_settings_form(&s, user, admin, r).await
}

#[derive(Deserialize)]
struct MailForm {
    #[serde(default)]
    to: String,
}

async fn test_mail(
    State(s): State<AppState>,
    CsrfForm(user, f): CsrfForm<MailForm>,
) -> Result<Response> {
    let admin = form_admin(&user)?;
    let r = admin::send_test_mail(&s.svc, &admin, f.to)
        .await
        .map(|()| "mail");
    // A refusal by the SMTP server is no server error of ours: shown on the page.
    let r = r.map_err(|e| match e {
        AppError::BadGateway { message, .. } => AppError::Conflict {
            code: "smtp_failed",
            message,
        },
        other => other,
    });
    after_settings_form(&s, user, admin, r).await
}

// ---------------------------------------------------------------- audit

async fn audit(
    State(s): State<AppState>,
    a: AdminUser,
    Query(q): Query<crate::http::api::audit::AuditQuery>,
) -> Result<Response> {
    let action = q.action.clone().unwrap_or_default();
    let mut outcome = Outcome::default();
    let (rows, next) = match crate::http::api::admin_audit_filter(&q) {
        Ok(filter) => {
            let before = q.before_seq().unwrap_or(None);
            crate::services::audit::query_instance(&s.svc, &a.admin, filter, before, 50).await?
        }
        Err(e) => {
            outcome.error = Some(error_text(&e));
            (Vec::new(), None)
        }
    };
    let query = |extra: &str| {
        format!(
            "action={}&since={}&until={}{extra}",
            urlencode(&action),
            urlencode(q.since.as_deref().unwrap_or("")),
            urlencode(q.until.as_deref().unwrap_or(""))
        )
    };
    let rows = rows
        .iter()
        .map(|r| AuditLine {
            at: crate::domain::format::time(&r.at),
            actor: r.actor_email.clone().unwrap_or_else(|| "system".into()),
            action: r.action.clone(),
            resource: format!(
                "{}{}",
                r.resource_type,
                r.resource_id
                    .as_deref()
                    .map(|i| format!(" {i}"))
                    .unwrap_or_default()
            ),
            ip: r.ip.clone().unwrap_or_default(),
            details: r.details.to_string(),
        })
        .collect();
    let next = next
        .map(|n| {
            format!(
                "/admin/audit?{}",
                query(&format!(
                    "&cursor={}",
                    crate::http::api::pagination::encode_cursor(&n.to_string())
                ))
            )
        })
        .unwrap_or_default();
    render_status(
        StatusCode::OK,
        &AuditPage {
            layout: admin_layout(&s, &a, "Instance audit log").await?,
            section: Section::Audit,
            actions: INSTANCE_AUDIT_ACTIONS
                .iter()
                .map(|x| (*x, *x == action))
                .collect(),
            since: q.since.clone().unwrap_or_default(),
            until: q.until.clone().unwrap_or_default(),
            rows,
            next,
            export_csv: format!("/api/v1/admin/audit/export?format=csv&{}", query("")),
            export_ndjson: format!("/api/v1/admin/audit/export?format=ndjson&{}", query("")),
            outcome,
        },
    )
}
