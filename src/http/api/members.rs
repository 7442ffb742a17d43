//! Members, invitations and teams of an organization.
use crate::domain::InvitationId;
use crate::domain::TeamId;
use crate::http::extract::OrgCtx;
use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::json;

use super::pagination::{Page, encode_cursor, paginate, paginate_asc, time_key};
use super::views::members::{InvitationOut, MemberOut, MemberUserOut, TeamOut};
use super::views::{self, OrgOut};
use super::{created, items, no_content, ok};
use crate::domain::{Role, UserId};
use crate::error::{AppError, Result};
use crate::http::extract::{ApiJson, ApiQuery, CurrentUser};
use crate::http::state::AppState;
use crate::services::{invitations, members, teams};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org}/members", get(list_members))
        .route(
            "/api/v1/orgs/{org}/members/{user_id}",
            get(get_member).patch(update_member).delete(remove_member),
        )
        .route(
            "/api/v1/orgs/{org}/invitations",
            get(list_invitations).post(invite),
        )
        .route(
            "/api/v1/orgs/{org}/invitations/{id}",
            axum::routing::delete(cancel_invitation),
        )
        .route("/api/v1/invitations/accept", post(accept))
        .route(
            "/api/v1/orgs/{org}/teams",
            get(list_teams).post(create_team),
        )
        .route(
            "/api/v1/orgs/{org}/teams/{id}",
            get(get_team).patch(update_team).delete(delete_team),
        )
        .route(
            "/api/v1/orgs/{org}/teams/{id}/members/{user_id}",
            put(add_team_member).delete(remove_team_member),
        )
}

fn team_id(raw: &str) -> Result<TeamId> {
    TeamId::parse(raw).ok_or_else(AppError::not_found)
}

fn user_id(raw: &str) -> Result<UserId> {
    UserId::parse(raw).ok_or_else(AppError::not_found)
}

async fn list_members(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response> {
    let limit = page.limit()? as i64;
    let after = page
        .after()?
        .map(|c| {
            c.split_once('|')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| AppError::bad_request("invalid_query", "cursor is not valid"))
        })
        .transpose()?;
    let mut list = members::list(&s.svc, &ctx, after, limit + 1).await?;
    let next = if list.len() as i64 > limit {
        list.truncate(limit as usize);
        list.last()
            .map(|m| encode_cursor(&time_key(m.joined_at, m.user.id)))
    } else {
        None
    };
    Ok(items(&views::all::<_, MemberOut>(&list), next))
}

async fn get_member(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, uid)): Path<(String, String)>,
) -> Result<Response> {
    let m = members::get(&s.svc, &ctx, user_id(&uid)?).await?;
    Ok(ok(json!(MemberOut::from(&m))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberPatch {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    permissions: Option<BTreeMap<String, bool>>,
}

async fn update_member(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, uid)): Path<(String, String)>,
    ApiJson(b): ApiJson<MemberPatch>,
) -> Result<Response> {
    let m = members::update(
        &s.svc,
        &ctx,
        &user.actor(),
        user_id(&uid)?,
        members::MemberUpdate {
            role: b.role,
            permissions: b.permissions,
        },
    )
    .await?;
    Ok(ok(json!(MemberOut::from(&m))))
}

async fn remove_member(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, uid)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<RemoveQuery>,
) -> Result<Response> {
    let heir = match q.transfer_to.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(UserId::parse(t).ok_or_else(|| {
            AppError::bad_request("invalid_query", "transfer_to must be a user id")
        })?),
        None => None,
    };
    members::remove_with_transfer(&s.svc, &ctx, &user.actor(), user_id(&uid)?, heir).await?;
    Ok(no_content())
}

#[derive(Deserialize, Default)]
struct RemoveQuery {
    transfer_to: Option<String>,
}

#[derive(Deserialize)]
struct InviteBody {
    email: String,
    role: Role,
}

async fn invite(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    ApiJson(b): ApiJson<InviteBody>,
) -> Result<Response> {
    let c = invitations::create(&s.svc, &ctx, &user.actor(), &b.email, b.role).await?;
    let mut body = json!(InvitationOut::from(&c.invitation));
    body["token"] = json!(c.token);
    body["accept_url"] = json!(c.accept_url);
    body["email_sent"] = json!(c.email_sent);
    body["replaced_invitation"] = json!(c.replaced_invitation);
    Ok(created(body))
}

async fn list_invitations(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response> {
    let list = invitations::list_pending(&s.svc, &ctx).await?;
    let (list, next) = paginate(list, &page, |i| time_key(i.created_at, i.id))?;
    Ok(items(&views::all::<_, InvitationOut>(&list), next))
}

async fn cancel_invitation(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let id = InvitationId::parse(&id).ok_or_else(AppError::not_found)?;
    invitations::cancel(&s.svc, &ctx, &user.actor(), id).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
struct AcceptBody {
    token: String,
}

async fn accept(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<AcceptBody>,
) -> Result<Response> {
    user.require_session()?;
    let (org, role) = invitations::accept(&s.svc, user.user.id, &b.token, &user.meta).await?;
    Ok(ok(
        json!({"organization": OrgOut::from(&org), "role": role}),
    ))
}

async fn list_teams(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response> {
    let mut list = teams::list(&s.svc, &ctx).await?;
    // By name, case-insensitively; the separator sorts below any character a name may hold.
    let key = |t: &crate::db::repo::teams::Team| format!("{}\u{1}{}", t.name.to_lowercase(), t.id);
    list.sort_by_key(key);
    let (list, next) = paginate_asc(list, &page, key)?;
    Ok(items(&views::all::<_, TeamOut>(&list), next))
}

#[derive(Deserialize)]
struct TeamBody {
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_team(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    ApiJson(b): ApiJson<TeamBody>,
) -> Result<Response> {
    let t = teams::create(&s.svc, &ctx, &user.actor(), &b.name, &b.description).await?;
    Ok(created(json!(TeamOut::from(&t))))
}

async fn get_team(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let id = team_id(&id)?;
    let (team, members) = teams::get(&s.svc, &ctx, id).await?;
    let mut body = json!(TeamOut::from(&team));
    body["members"] = json!(views::all::<_, MemberUserOut>(&members));
    Ok(ok(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

async fn update_team(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
    ApiJson(b): ApiJson<TeamPatch>,
) -> Result<Response> {
    let id = team_id(&id)?;
    let t = teams::update(
        &s.svc,
        &ctx,
        &user.actor(),
        id,
        b.name.as_deref(),
        b.description.as_deref(),
    )
    .await?;
    Ok(ok(json!(TeamOut::from(&t))))
}

async fn delete_team(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let id = team_id(&id)?;
    teams::delete(&s.svc, &ctx, &user.actor(), id).await?;
    Ok(no_content())
}

async fn add_team_member(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id, uid)): Path<(String, String, String)>,
) -> Result<Response> {
    let id = team_id(&id)?;
    let added = teams::add_member(&s.svc, &ctx, &user.actor(), id, user_id(&uid)?).await?;
    Ok(if added {
        created(json!({"added": true}))
    } else {
        ok(json!({"added": false}))
    })
}

async fn remove_team_member(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id, uid)): Path<(String, String, String)>,
) -> Result<Response> {
    let id = team_id(&id)?;
    teams::remove_member(&s.svc, &ctx, &user.actor(), id, user_id(&uid)?).await?;
    Ok(no_content())
}
