//! Members, invitations and teams of an organization.
#[allow(clippy::wildcard_imports)]
use super::openapi::prelude::*;
use crate::domain::InvitationId;
use crate::domain::TeamId;
use crate::http::extract::OrgCtx;
use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use utoipa::ToSchema;

use super::pagination::{Page, encode_cursor, paginate, paginate_asc, time_key};
use super::views::members::{
    Added, InvitationAccepted, InvitationCreated, InvitationOut, MemberOut, MemberUserOut, TeamOut,
    TeamWithMembers,
};
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

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/members",
    tag = "members",
    summary = "Members with role, overrides, status, joined and last active (members.view)",
    params(OrgPath, PageQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<MemberOut>),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
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
    let out: Vec<MemberOut> = list.iter().map(|m| MemberOut::seen_by(m, &ctx)).collect();
    Ok(items(&out, next))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/members/{user_id}",
    tag = "members",
    summary = "One member",
    params(OrgPath, ("user_id" = String, Path, format = "uuid")),
    responses(
        (status = 200, description = "Success", body = MemberOut),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn get_member(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, uid)): Path<(String, String)>,
) -> Result<Response> {
    let m = members::get(&s.svc, &ctx, user_id(&uid)?).await?;
    Ok(ok(&MemberOut::seen_by(&m, &ctx)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MemberPatch {
    #[serde(default)]
    role: Option<Role>,
    /// the overrides to keep: permission → granted (true) or denied (false)
    #[serde(default)]
    #[schema(schema_with = super::openapi::overrides_or_null)]
    permissions: Option<BTreeMap<String, bool>>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/members/{user_id}",
    tag = "members",
    summary = "Change role and/or permission overrides (members.manage; guard rails apply)",
    params(OrgPath, ("user_id" = String, Path, format = "uuid")),
    request_body = MemberPatch,
    responses(
        (status = 200, description = "Success", body = MemberOut),
        (status = 409, response = Conflict),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
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
    Ok(ok(&MemberOut::from(&m)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/members/{user_id}",
    tag = "members",
    summary = "Remove a member, or leave (409 last_owner); their resources go to ?transfer_to= (default: the remover; when leaving, an owner)",
    params(OrgPath, ("user_id" = String, Path, format = "uuid"), RemoveQuery),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
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

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RemoveQuery {
    /// the member who gets what the removed member owned (default: the remover)
    #[param(schema_with = super::openapi::uuid_or_empty)]
    transfer_to: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct InviteBody {
    /// an email address (compared case-insensitively)
    #[schema(max_length = 254, format = Email)]
    email: String,
    role: Role,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/invitations",
    tag = "members",
    summary = "Invite by email with a role up to your own; the token and accept_url are shown once",
    params(OrgPath),
    request_body = InviteBody,
    responses(
        (status = 201, description = "Success", body = InvitationCreated),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn invite(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    ApiJson(b): ApiJson<InviteBody>,
) -> Result<Response> {
    let c = invitations::create(&s.svc, &ctx, &user.actor(), &b.email, b.role).await?;
    Ok(created(&InvitationCreated {
        invitation: InvitationOut::from(&c.invitation),
        token: &c.token,
        accept_url: &c.accept_url,
        email_sent: c.email_sent,
        replaced_invitation: c.replaced_invitation,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/invitations",
    tag = "members",
    summary = "Pending invitations (never the token)",
    params(OrgPath, PageQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<InvitationOut>),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn list_invitations(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response> {
    let list = invitations::list_pending(&s.svc, &ctx).await?;
    let (list, next) = paginate(list, &page, |i| time_key(i.created_at, i.id))?;
    Ok(items(&views::all::<_, InvitationOut>(&list), next))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/invitations/{id}",
    tag = "members",
    summary = "Cancel a pending invitation",
    params(OrgPath, IdPath),
    responses(
        (status = 204, description = "Cancelled"),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn cancel_invitation(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let id = InvitationId::parse(&id).ok_or_else(AppError::not_found)?;
    invitations::cancel(&s.svc, &ctx, &user.actor(), id).await?;
    Ok(no_content())
}

#[derive(Deserialize, ToSchema)]
struct AcceptBody {
    #[schema(min_length = 1)]
    token: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/invitations/accept",
    tag = "members",
    summary = "Accept an invitation as the signed-in user (email must match); 404 invitation_invalid when expired, cancelled, used or unknown",
    request_body = AcceptBody,
    responses(
        (status = 200, description = "Success", body = InvitationAccepted),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = [])),
)]
async fn accept(
    State(s): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<AcceptBody>,
) -> Result<Response> {
    user.require_session()?;
    let (org, role) = invitations::accept(&s.svc, user.user.id, &b.token, &user.meta).await?;
    Ok(ok(&InvitationAccepted {
        organization: OrgOut::from(&org),
        role,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/teams",
    tag = "teams",
    summary = "Teams (teams.view)",
    params(OrgPath, PageQuery),
    responses(
        (status = 200, description = "Success", body = ListPage<TeamOut>),
        (status = 400, response = BadRequest),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
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

#[derive(Deserialize, ToSchema)]
struct TeamBody {
    /// 1-100 characters after trimming, no control characters
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    name: String,
    #[schema(max_length = 1000)]
    #[serde(default)]
    description: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/teams",
    tag = "teams",
    summary = "Create a team (teams.manage)",
    params(OrgPath),
    request_body = TeamBody,
    responses(
        (status = 201, description = "Success", body = TeamOut),
        (status = 409, response = Conflict),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn create_team(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    ApiJson(b): ApiJson<TeamBody>,
) -> Result<Response> {
    let t = teams::create(&s.svc, &ctx, &user.actor(), &b.name, &b.description).await?;
    Ok(created(&TeamOut::from(&t)))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/teams/{id}",
    tag = "teams",
    summary = "A team with its members",
    params(OrgPath, IdPath),
    responses(
        (status = 200, description = "Success", body = TeamWithMembers),
        Guarded,
    ),
    security(("session" = []), ("token" = [])),
)]
async fn get_team(
    State(s): State<AppState>,
    OrgCtx { ctx, .. }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let id = team_id(&id)?;
    let (team, members) = teams::get(&s.svc, &ctx, id).await?;
    Ok(ok(&TeamWithMembers {
        team: TeamOut::from(&team),
        members: views::all::<_, MemberUserOut>(&members),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TeamPatch {
    /// 1-100 characters after trimming, no control characters
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    #[serde(default)]
    name: Option<String>,
    #[schema(max_length = 1000)]
    #[serde(default)]
    description: Option<String>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/teams/{id}",
    tag = "teams",
    summary = "Rename or describe a team",
    params(OrgPath, IdPath),
    request_body = TeamPatch,
    responses(
        (status = 200, description = "Success", body = TeamOut),
        (status = 409, response = Conflict),
        Guarded,
        Sent,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
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
    Ok(ok(&TeamOut::from(&t)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/teams/{id}",
    tag = "teams",
    summary = "Delete a team",
    params(OrgPath, IdPath),
    responses(
        (status = 204, description = "Deleted"),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn delete_team(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let id = team_id(&id)?;
    teams::delete(&s.svc, &ctx, &user.actor(), id).await?;
    Ok(no_content())
}

#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org}/teams/{id}/members/{user_id}",
    tag = "teams",
    summary = "Add an organization member to the team (201 added, 200 already there)",
    params(OrgPath, IdPath, ("user_id" = String, Path, format = "uuid")),
    responses(
        (status = 200, description = "Already in the team", body = Added),
        (status = 201, description = "Added", body = Added),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn add_team_member(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id, uid)): Path<(String, String, String)>,
) -> Result<Response> {
    let id = team_id(&id)?;
    let added = teams::add_member(&s.svc, &ctx, &user.actor(), id, user_id(&uid)?).await?;
    Ok(if added {
        created(&Added { added: true })
    } else {
        ok(&Added { added: false })
    })
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/teams/{id}/members/{user_id}",
    tag = "teams",
    summary = "Remove from the team",
    params(OrgPath, IdPath, ("user_id" = String, Path, format = "uuid")),
    responses(
        (status = 204, description = "Removed"),
        Guarded,
    ),
    security(("session" = [], "csrf" = []), ("token" = [])),
)]
async fn remove_team_member(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id, uid)): Path<(String, String, String)>,
) -> Result<Response> {
    let id = team_id(&id)?;
    teams::remove_member(&s.svc, &ctx, &user.actor(), id, user_id(&uid)?).await?;
    Ok(no_content())
}
