//! Deliberately cross-tenant queries, each named for what it crosses. Everything here
//! starts from the signed-in user (their own memberships), never from request data.
use rusqlite::params;
use serde::Serialize;

use super::repo::orgs::{ORG_COLUMNS, Org, org_from_row};
use super::{Conn, DbError};
use crate::domain::{Role, UserId};

#[derive(Debug, Clone, Serialize)]
pub struct Membership {
    pub organization: Org,
    pub role: Role,
}

/// Every organization the user is an active member of, personal first, then by name.
pub fn unscoped_memberships_of(c: &Conn<'_>, user: UserId) -> Result<Vec<Membership>, DbError> {
    let rows = c.unscoped().query_vec(
        &format!(
            "SELECT {ORG_COLUMNS}, m.role
             FROM organization_members m JOIN organizations o ON o.id = m.organization_id
             WHERE m.user_id = ?1 AND m.status = 'active'
             ORDER BY o.kind = 'personal' DESC, o.name COLLATE NOCASE, o.id"
        ),
        params![user.to_string()],
        |r| Ok((org_from_row(r, 0)?, r.get::<_, String>(9)?)),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(organization, role)| {
            Role::parse(&role).map(|role| Membership { organization, role })
        })
        .collect())
}
