//! Teams inside an organization (what `team` visibility and team shares refer to).
use super::Services;
use crate::domain::Permission;
use serde_json::json;

use super::{Actor, fresh_context, require};
use crate::db::repo::members::MemberUser;
use crate::db::repo::{audit, members, teams};
use crate::db::{OrgContext, WriteTx};
use crate::domain::{Invalid, TeamId, UserId};
use crate::error::{AppError, Result};

fn parse_name(raw: &str) -> std::result::Result<String, Invalid> {
    let n = raw.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(Invalid::new(
            "name",
            if n.is_empty() {
                "Enter a name."
            } else {
                "Use at most 100 characters, without tabs or line breaks."
            },
        ));
    }
    Ok(n.to_string())
}

fn parse_description(raw: &str) -> std::result::Result<String, Invalid> {
    if raw.chars().count() > 1000 {
        return Err(Invalid::new("description", "Use at most 1000 characters."));
    }
    Ok(raw.trim().to_string())
}

fn taken(name: &str) -> AppError {
    AppError::conflict(
        "team_name_taken",
        format!("A team named \"{name}\" exists already."),
    )
}

/// The actor's context re-read inside the write, holding `teams.manage`, and the team
/// (404 when it is not one of this organization's).
fn managed_team(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    id: TeamId,
) -> Result<(OrgContext, teams::Team)> {
    let me = fresh_context(tx, ctx)?;
    require(&me, Permission::TeamsManage)?;
    let team = teams::find(tx, &me, id)?.ok_or_else(AppError::not_found)?;
    Ok((me, team))
}

pub async fn list(svc: &Services, ctx: &OrgContext) -> Result<Vec<teams::Team>> {
    require(ctx, Permission::TeamsView)?;
    let ctx = ctx.clone();
    svc.db.read(move |tx| Ok(teams::list(tx, &ctx)?)).await
}

pub async fn get(
    svc: &Services,
    ctx: &OrgContext,
    id: TeamId,
) -> Result<(teams::Team, Vec<MemberUser>)> {
    require(ctx, Permission::TeamsView)?;
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| {
            let team = teams::find(tx, &ctx, id)?.ok_or_else(AppError::not_found)?;
            let members = teams::members(tx, &ctx, id)?;
            Ok((team, members))
        })
        .await
}

pub async fn create(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    name: &str,
    description: &str,
) -> Result<teams::Team> {
    require(ctx, Permission::TeamsManage)?;
    let mut errors = Vec::new();
    let name = parse_name(name).map_err(|e| errors.push(e)).ok();
    let description = parse_description(description)
        .map_err(|e| errors.push(e))
        .ok();
    let (Some(name), Some(description)) = (name, description) else {
        return Err(AppError::invalid(errors));
    };
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let me = fresh_context(tx, &ctx)?;
            require(&me, Permission::TeamsManage)?;
            if teams::name_taken(tx, &me, &name, None)? {
                return Err(taken(&name));
            }
            let id = TeamId::new();
            teams::insert(tx, &me, id, &name, &description, &now)?;
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "team.created",
                    "team",
                    Some(id.to_string()),
                    json!({"name": name}),
                ),
                &now,
            )?;
            teams::find(tx, &me, id)?.ok_or_else(AppError::not_found)
        })
        .await
}

pub async fn update(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    id: TeamId,
    name: Option<&str>,
    description: Option<&str>,
) -> Result<teams::Team> {
    require(ctx, Permission::TeamsManage)?;
    let mut errors = Vec::new();
    let name = name.map(|n| parse_name(n).map_err(|e| errors.push(e)).ok());
    let description = description.map(|d| parse_description(d).map_err(|e| errors.push(e)).ok());
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let (me, before) = managed_team(tx, &ctx, id)?;
            let new_name = name.flatten().unwrap_or_else(|| before.name.clone());
            let new_desc = description
                .flatten()
                .unwrap_or_else(|| before.description.clone());
            if new_name == before.name && new_desc == before.description {
                return Ok(before);
            }
            if new_name != before.name && teams::name_taken(tx, &me, &new_name, Some(id))? {
                return Err(taken(&new_name));
            }
            teams::update(tx, &me, id, &new_name, &new_desc, &now)?;
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "team.updated",
                    "team",
                    Some(id.to_string()),
                    json!({"before": {"name": before.name, "description": before.description},
                       "after": {"name": new_name, "description": new_desc}}),
                ),
                &now,
            )?;
            teams::find(tx, &me, id)?.ok_or_else(AppError::not_found)
        })
        .await
}

pub async fn delete(svc: &Services, ctx: &OrgContext, actor: &Actor, id: TeamId) -> Result<()> {
    require(ctx, Permission::TeamsManage)?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let (me, team) = managed_team(tx, &ctx, id)?;
            teams::delete(tx, &me, id)?;
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "team.deleted",
                    "team",
                    Some(id.to_string()),
                    json!({"name": team.name}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}

/// Adds an organization member to the team; true when newly added (PUT is idempotent).
pub async fn add_member(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    id: TeamId,
    user: UserId,
) -> Result<bool> {
    require(ctx, Permission::TeamsManage)?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let (me, team) = managed_team(tx, &ctx, id)?;
            let member = members::find(tx, &me, user)?.ok_or_else(AppError::not_found)?;
            let added = teams::add_member(tx, &me, id, user, &now)?;
            if added {
                audit::append(
                    tx,
                    &me,
                    &actor.entry(
                        "team.member_added",
                        "team",
                        Some(id.to_string()),
                        json!({"team": team.name, "user_id": user, "email": member.user.email}),
                    ),
                    &now,
                )?;
            }
            Ok(added)
        })
        .await
}

pub async fn remove_member(
    svc: &Services,
    ctx: &OrgContext,
    actor: &Actor,
    id: TeamId,
    user: UserId,
) -> Result<()> {
    require(ctx, Permission::TeamsManage)?;
    let (ctx, actor) = (ctx.clone(), actor.clone());
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            let (me, team) = managed_team(tx, &ctx, id)?;
            let email = members::find(tx, &me, user)?.map(|m| m.user.email);
            if !teams::remove_member(tx, &me, id, user)? {
                return Err(AppError::not_found());
            }
            audit::append(
                tx,
                &me,
                &actor.entry(
                    "team.member_removed",
                    "team",
                    Some(id.to_string()),
                    json!({"team": team.name, "user_id": user, "email": email}),
                ),
                &now,
            )?;
            Ok(())
        })
        .await
}
