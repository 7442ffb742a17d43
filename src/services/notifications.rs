//! A member's in-app notifications in an organization (quota alerts, ...).
use super::Services;
use crate::db::OrgContext;
use crate::db::repo::notifications::{self, Notification};
use crate::error::AppError;

/// The caller's newest notifications (at most 200).
pub async fn mine(svc: &Services, ctx: &OrgContext) -> Result<Vec<Notification>, AppError> {
    let ctx = ctx.clone();
    svc.db
        .read(move |tx| Ok(notifications::list(tx, &ctx, ctx.user_id(), 200)?))
        .await
}

/// Marks one of the caller's notifications read; someone else's is not found.
pub async fn mark_read(svc: &Services, ctx: &OrgContext, id: String) -> Result<(), AppError> {
    let ctx = ctx.clone();
    let now = svc.now_str();
    svc.db
        .write(move |tx| {
            if notifications::mark_read(tx, &ctx, ctx.user_id(), &id, &now)? {
                Ok(())
            } else {
                Err(AppError::not_found())
            }
        })
        .await
}
