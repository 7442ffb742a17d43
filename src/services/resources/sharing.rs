//! Who a resource is shared with, and the reads across organizations that visibility
//! allows: "accessible to me" in every organization and the public gallery.
use crate::domain::Permission;
use crate::services::Services;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{View, can_write};
use crate::db::repo::resources::{self as repo, ListQuery, ResourceKind, SharedWith};
use crate::db::repo::{members, teams};
use crate::db::scope::has_permission;
use crate::db::{Conn, OrgContext};
use crate::domain::{Invalid, Principal, ResourceId, TeamId, UserId, fmt_time};
use crate::error::{AppError, Result};
use chrono::{DateTime, Utc};

// Ids as typed: `check_shares` reads each (it must name a member or a team of the
// organization).
/// Who to share with: members and teams of the organization.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedWithInput {
    /// members of the organization
    #[serde(default)]
    #[schema(value_type = Vec<UserId>)]
    pub users: Vec<String>,
    /// teams of the organization
    #[serde(default)]
    #[schema(value_type = Vec<TeamId>)]
    pub teams: Vec<String>,
}

pub(super) fn check_shares(
    c: &Conn<'_>,
    ctx: &OrgContext,
    s: &SharedWithInput,
) -> Result<SharedWith> {
    if s.users.len() + s.teams.len() > 200 {
        return Err(AppError::invalid(vec![Invalid::new(
            "shared_with",
            "Share with at most 200 members and teams.",
        )]));
    }
    let mut out = SharedWith::default();
    for u in &s.users {
        let id = UserId::parse(u).ok_or_else(|| {
            AppError::invalid(vec![Invalid::new(
                "shared_with",
                format!("{u} is not a member."),
            )])
        })?;
        if members::find(c, ctx, id)?.is_none() {
            return Err(AppError::invalid(vec![Invalid::new(
                "shared_with",
                format!("{u} is not a member."),
            )]));
        }
        out.insert(Principal::User(id));
    }
    for t in &s.teams {
        // A principal that is no team id names no team either.
        let found = match TeamId::parse(t) {
            Some(id) => teams::find(c, ctx, id)?,
            None => None,
        };
        let Some(team) = found else {
            return Err(AppError::invalid(vec![Invalid::new(
                "shared_with",
                format!("{t} is not a team of this organization."),
            )]));
        };
        out.insert(Principal::Team(team.id));
    }
    Ok(out)
}

/// One item of the cross-organization "accessible to me" view.
#[derive(Debug, Clone)]
pub struct Accessible {
    pub view: View,
    pub organization: crate::db::repo::orgs::Org,
}

/// Everything of `kind` the user may read in any of their organizations (the seed's
/// `user_accessible_agents`), newest first: each organization is read through its own
/// context (role, overrides, teams), then the pages are merged.
pub async fn accessible(
    svc: &Services,
    user: UserId,
    kind: ResourceKind,
    q: ListQuery,
    only_org: Option<crate::domain::OrgId>,
) -> Result<Vec<Accessible>> {
    svc.db
        .read(move |tx| {
            let memberships = crate::db::unscoped::unscoped_memberships_of(tx, user)?;
            let mut all = Vec::new();
            for m in memberships {
                if only_org.is_some_and(|o| o != m.organization.id) {
                    continue;
                }
                let Some(ctx) = crate::db::scope::enter(tx, user, &m.organization.id.to_string())?
                else {
                    continue;
                };
                if !has_permission(&ctx, Permission::OrgView) {
                    continue;
                }
                for r in repo::list_visible(tx, &ctx, kind, &q)? {
                    all.push(Accessible {
                        view: View {
                            can_write: can_write(&ctx, &r),
                            resource: r,
                            personality_traits: None,
                            skills: None,
                            documents: None,
                        },
                        organization: ctx.org().clone(),
                    });
                }
            }
            newest_first(&mut all, |a| {
                (a.view.resource.created_at, a.view.resource.id)
            });
            all.truncate(q.limit.max(0) as usize);
            Ok(all)
        })
        .await
}

/// Sorts merged pages as each organization's page is sorted: newest first, and by id
/// (newest first too) between items made at the same time.
fn newest_first<T>(items: &mut [T], key: impl Fn(&T) -> (DateTime<Utc>, ResourceId)) {
    items.sort_by_key(|i| std::cmp::Reverse(key(i)));
}

/// What the gallery shows of a public item besides its kind's `PUBLIC` fields: never
/// owners, shares, ids of other items or configuration.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PublicItem<'a> {
    pub id: ResourceId,
    #[serde(rename = "type")]
    pub kind: ResourceKind,
    pub name: &'a str,
    pub description: &'a str,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
    pub organization: PublicOrg<'a>,
}

/// The organization of a public item, by name only.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PublicOrg<'a> {
    pub name: &'a str,
}

/// The public gallery: public items of every organization, read-only, with nothing that
/// tells about the owning organization beyond its name.
pub async fn public(svc: &Services, kind: ResourceKind, q: ListQuery) -> Result<Vec<Value>> {
    svc.db
        .read(move |tx| {
            let rows = crate::db::unscoped::unscoped_public_gallery(tx, kind, &q)?;
            Ok(rows
                .into_iter()
                .map(|(r, org_name)| {
                    let mut v = json!(PublicItem {
                        id: r.id,
                        kind: r.kind,
                        name: &r.name,
                        description: &r.description,
                        created_at: fmt_time(r.created_at),
                        updated_at: fmt_time(r.updated_at),
                        organization: PublicOrg { name: &org_name },
                    });
                    for (k, x) in r.fields.public() {
                        v[k] = x;
                    }
                    v
                })
                .collect())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn merged_pages_are_newest_first_by_time_then_id() {
        let at = |d, h| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        let (a, b, c) = (ResourceId::new(), ResourceId::new(), ResourceId::new());
        // Two organizations' pages, each newest first, merged; b and c were made at the
        // same time, so the later id comes first.
        let mut all = vec![
            ("x", at(9, 10), a),
            ("y", at(28, 8), b),
            ("y", at(28, 8), c),
            ("x", at(10, 9), a),
        ];
        newest_first(&mut all, |&(_, t, id)| (t, id));
        let order: Vec<_> = all.iter().map(|&(_, t, id)| (t, id)).collect();
        assert_eq!(
            order,
            vec![
                (at(28, 8), c),
                (at(28, 8), b),
                (at(10, 9), a),
                (at(9, 10), a)
            ]
        );
    }
}
