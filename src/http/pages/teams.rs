//! Teams of an organization: the list with a create form, and one team's page (rename,
//! members in and out, delete).
use crate::domain::Permission;
use crate::domain::TeamId;
use crate::http::extract::OrgCtx;
use crate::http::extract::OrgForm;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::org_frame::{form_errors, is_user_error, nav, org_people, shown_at};
use super::{layout, render, render_status, see_other};
use crate::db::OrgContext;
use crate::db::repo::teams::Team;
use crate::db::scope::has_permission;
use crate::domain::UserId;
use crate::error::{AppError, Result};
use crate::http::extract::CurrentUser;
use crate::http::state::AppState;
use crate::http::views::{FormErrors, PersonRow, TeamPage, TeamRow, TeamsPage};
use crate::services::teams;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/o/{org}/teams", get(index).post(create))
        .route("/o/{org}/teams/{id}", get(show).post(update))
        .route(
            "/o/{org}/teams/{id}/members",
            get(back_to_team).post(add_member),
        )
        .route(
            "/o/{org}/teams/{id}/members/{user_id}/remove",
            get(back_to_team).post(remove_member),
        )
        .route("/o/{org}/teams/{id}/delete", get(back_to_team).post(delete))
}

fn teams_url(ctx: &OrgContext) -> String {
    format!("/o/{}/teams", ctx.org().slug)
}

fn team_url(ctx: &OrgContext, id: TeamId) -> String {
    format!("/o/{}/teams/{id}", ctx.org().slug)
}

fn team_row(t: Team) -> TeamRow {
    TeamRow {
        id: t.id.to_string(),
        name: t.name,
        description: t.description,
        members: t.member_count,
        created: crate::domain::format::time_at(t.created_at),
    }
}

async fn back_to_team(Path(params): Path<Vec<(String, String)>>) -> Response {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    see_other(&format!("/o/{}/teams/{}", get("org"), get("id")))
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

async fn teams_page(s: &AppState, user: &CurrentUser, ctx: &OrgContext) -> Result<TeamsPage> {
    let list = teams::list(&s.svc, ctx).await?;
    let title = format!("Teams · {}", ctx.org().name);
    Ok(TeamsPage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, "teams"),
        teams: list.into_iter().map(team_row).collect(),
        can_manage: has_permission(ctx, Permission::TeamsManage),
        name: String::new(),
        description: String::new(),
        errors: FormErrors::default(),
        notice: None,
    })
}

async fn index(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Query(q): Query<DoneQuery>,
) -> Result<Response> {
    let mut page = teams_page(&s, &user, &ctx).await?;
    if q.done.as_deref() == Some("deleted") {
        page.notice = Some("Team deleted.".into());
    }
    render(&page)
}

#[derive(Deserialize)]
struct TeamForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

async fn create(
    State(s): State<AppState>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<TeamForm>,
) -> Result<Response> {
    match teams::create(&s.svc, &ctx, &user.actor(), &f.name, &f.description).await {
        Ok(team) => Ok(see_other(&team_url(&ctx, team.id))),
        Err(e) => {
            let Some(errors) = form_errors(&e, &["name", "description"], "name") else {
                return Err(e);
            };
            let mut page = teams_page(&s, &user, &ctx).await?;
            page.name = f.name;
            page.description = f.description;
            page.errors = errors;
            Ok(shown_at(
                render_status(e.status(), &page)?,
                &teams_url(&ctx),
            ))
        }
    }
}

async fn team_page(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    id: TeamId,
) -> Result<TeamPage> {
    let (team, in_team) = teams::get(&s.svc, ctx, id).await?;
    let can_manage = has_permission(ctx, Permission::TeamsManage);
    let candidates = if can_manage {
        org_people(s, ctx)
            .await?
            .into_iter()
            .filter(|p| !in_team.iter().any(|m| m.id.to_string() == p.id))
            .collect()
    } else {
        Vec::new()
    };
    let title = format!("{} · {}", team.name, ctx.org().name);
    let team = team_row(team);
    Ok(TeamPage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, "teams"),
        name: team.name.clone(),
        description: team.description.clone(),
        team,
        members: in_team
            .into_iter()
            .map(|m| PersonRow {
                id: m.id.to_string(),
                name: m.name,
                email: m.email,
            })
            .collect(),
        candidates,
        can_manage,
        errors: FormErrors::default(),
        error: None,
        notice: None,
    })
}

async fn show(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Result<Response> {
    let id = TeamId::parse(&id).ok_or_else(AppError::not_found)?;
    let mut page = team_page(&s, &user, &ctx, id).await?;
    page.notice = match q.done.as_deref() {
        Some("saved") => Some("Team saved.".into()),
        Some("added") => Some("Member added.".into()),
        Some("removed") => Some("Member removed from the team.".into()),
        _ => None,
    };
    render(&page)
}

async fn update(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<TeamForm>,
) -> Result<Response> {
    let id = TeamId::parse(&id).ok_or_else(AppError::not_found)?;
    let result = teams::update(
        &s.svc,
        &ctx,
        &user.actor(),
        id,
        Some(&f.name),
        Some(&f.description),
    )
    .await;
    match result {
        Ok(_) => Ok(see_other(&format!("{}?done=saved", team_url(&ctx, id)))),
        Err(e) => {
            let Some(errors) = form_errors(&e, &["name", "description"], "name") else {
                return Err(e);
            };
            let mut page = team_page(&s, &user, &ctx, id).await?;
            page.name = f.name;
            page.description = f.description;
            page.errors = errors;
            Ok(shown_at(
                render_status(e.status(), &page)?,
                &team_url(&ctx, id),
            ))
        }
    }
}

/// After a team action: where to go, or the team page again with what went wrong.
async fn answer(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    id: TeamId,
    result: Result<()>,
    success: String,
) -> Result<Response> {
    match result {
        Ok(()) => Ok(see_other(&success)),
        Err(e) if is_user_error(&e) => {
            let url = team_url(ctx, id);
            let mut page = team_page(s, user, ctx, id).await?;
            page.error = Some(e.public_message());
            Ok(shown_at(render_status(e.status(), &page)?, &url))
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    user_id: String,
}

async fn add_member(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<AddForm>,
) -> Result<Response> {
    let id = TeamId::parse(&id).ok_or_else(AppError::not_found)?;
    let result = match UserId::parse(&f.user_id) {
        Some(uid) => teams::add_member(&s.svc, &ctx, &user.actor(), id, uid)
            .await
            .map(|_| ()),
        None => Err(AppError::bad_request(
            "invalid_form",
            "choose a member to add",
        )),
    };
    let success = format!("{}?done=added", team_url(&ctx, id));
    answer(&s, &user, &ctx, id, result, success).await
}

#[derive(Deserialize)]
struct Empty {}

async fn remove_member(
    State(s): State<AppState>,
    Path((_, id, uid)): Path<(String, String, String)>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    let id = TeamId::parse(&id).ok_or_else(AppError::not_found)?;
    let uid = UserId::parse(&uid).ok_or_else(AppError::not_found)?;
    let result = teams::remove_member(&s.svc, &ctx, &user.actor(), id, uid).await;
    let success = format!("{}?done=removed", team_url(&ctx, id));
    answer(&s, &user, &ctx, id, result, success).await
}

async fn delete(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    let id = TeamId::parse(&id).ok_or_else(AppError::not_found)?;
    let result = teams::delete(&s.svc, &ctx, &user.actor(), id).await;
    let success = format!("{}?done=deleted", teams_url(&ctx));
    answer(&s, &user, &ctx, id, result, success).await
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;
    use crate::http::views::{Layout, OrgNav};

    fn row() -> TeamRow {
        TeamRow {
            id: "t1".into(),
            name: "Research".into(),
            description: "Looms & engines".into(),
            members: 1,
            created: "2026-11-28 14:05 UTC".into(),
        }
    }

    #[test]
    fn the_team_list_shows_the_create_form_only_to_managers() {
        let mut p = TeamsPage {
            layout: Layout::default(),
            nav: OrgNav::new("acme", "Acme", "teams", |_| true),
            teams: vec![row()],
            can_manage: true,
            name: "Research".into(),
            description: String::new(),
            errors: FormErrors::one("name", "A team named \"Research\" exists already."),
            notice: None,
        };
        let html = p.render().unwrap();
        assert!(html.contains("id=\"new-team\""));
        assert!(html.contains("id=\"team-name-error\""));
        assert!(html.contains("href=\"/o/acme/teams/t1\""));
        assert!(html.contains("Looms &#38; engines") || html.contains("Looms &amp; engines"));
        p.can_manage = false;
        assert!(!p.render().unwrap().contains("id=\"new-team\""));
    }

    #[test]
    fn a_team_page_offers_members_to_add_and_confirms_removals() {
        let person = |id: &str, name: &str| PersonRow {
            id: id.into(),
            name: name.into(),
            email: format!("{id}@example.com"),
        };
        let mut p = TeamPage {
            layout: Layout::default(),
            nav: OrgNav::new("acme", "Acme", "teams", |_| true),
            team: row(),
            members: vec![person("u1", "Ada")],
            candidates: vec![person("u2", "Bob")],
            can_manage: true,
            name: "Research".into(),
            description: String::new(),
            errors: FormErrors::default(),
            error: Some("Not allowed".into()),
            notice: None,
        };
        let html = p.render().unwrap();
        assert!(html.contains("<option value=\"u2\">Bob (u2@example.com)</option>"));
        assert!(html.contains("action=\"/o/acme/teams/t1/members/u1/remove\""));
        assert!(html.contains("hx-confirm=\"Remove Ada from Research?\""));
        assert!(html.contains("hx-confirm=\"Delete the team Research?\""));
        assert!(html.contains("id=\"team-error\""));
        p.can_manage = false;
        let html = p.render().unwrap();
        assert!(!html.contains("id=\"add-team-member\""));
        assert!(!html.contains("id=\"delete-team\""));
    }
}
