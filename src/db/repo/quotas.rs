//! An organization's quota settings (limits, anchor day, alert thresholds, webhook).
use rusqlite::params;

use crate::db::{Conn, DbError, OrgContext, WriteTx};
use crate::domain::{Micros, UserId};

#[derive(Debug, Clone)]
pub struct Quota {
    /// `None`: the plan's monthly AI credits.
    pub monthly_credits_micros: Option<Micros>,
    pub monthly_requests: Option<i64>,
    pub rate_limit_rpm: Option<i64>,
    pub rate_limit_tpm: Option<i64>,
    pub member_monthly_credits_micros: Option<Micros>,
    pub billing_anchor_day: u32,
    pub alert_thresholds: Vec<u8>,
    pub webhook_url: Option<String>,
    pub webhook_secret_enc: Option<String>,
    pub webhook_key_id: Option<String>,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            monthly_credits_micros: None,
            monthly_requests: None,
            rate_limit_rpm: None,
            rate_limit_tpm: None,
            member_monthly_credits_micros: None,
            billing_anchor_day: 1,
            alert_thresholds: vec![80, 90, 100],
            webhook_url: None,
            webhook_secret_enc: None,
            webhook_key_id: None,
        }
    }
}

pub fn get(c: &Conn<'_>, ctx: &OrgContext) -> Result<Quota, DbError> {
    Ok(c.scoped(ctx)
        .query_opt(
            "SELECT monthly_credits_micros, monthly_requests, rate_limit_rpm, rate_limit_tpm,
                    member_monthly_credits_micros, billing_anchor_day, alert_thresholds,
                    webhook_url, webhook_secret_enc, webhook_key_id
             FROM organization_quotas WHERE organization_id = ?1",
            &[],
            |r| {
                let thresholds: String = r.get(6)?;
                Ok(Quota {
                    monthly_credits_micros: r.get(0)?,
                    monthly_requests: r.get(1)?,
                    rate_limit_rpm: r.get(2)?,
                    rate_limit_tpm: r.get(3)?,
                    member_monthly_credits_micros: r.get(4)?,
                    billing_anchor_day: r.get(5)?,
                    alert_thresholds: serde_json::from_str(&thresholds).unwrap_or_default(),
                    webhook_url: r.get(7)?,
                    webhook_secret_enc: r.get(8)?,
                    webhook_key_id: r.get(9)?,
                })
            },
        )?
        .unwrap_or_default())
}

pub fn save(
    tx: &WriteTx<'_>,
    ctx: &OrgContext,
    q: &Quota,
    by: UserId,
    now: &str,
) -> Result<(), DbError> {
    let thresholds = serde_json::to_string(&q.alert_thresholds).unwrap_or_else(|_| "[]".into());
    tx.scoped(ctx).execute(
        "INSERT INTO organization_quotas (organization_id, monthly_credits_micros, monthly_requests,
             rate_limit_rpm, rate_limit_tpm, member_monthly_credits_micros, billing_anchor_day,
             alert_thresholds, webhook_url, webhook_secret_enc, webhook_key_id, updated_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (organization_id) DO UPDATE SET
             monthly_credits_micros = excluded.monthly_credits_micros,
             monthly_requests = excluded.monthly_requests,
             rate_limit_rpm = excluded.rate_limit_rpm, rate_limit_tpm = excluded.rate_limit_tpm,
             member_monthly_credits_micros = excluded.member_monthly_credits_micros,
             billing_anchor_day = excluded.billing_anchor_day,
             alert_thresholds = excluded.alert_thresholds, webhook_url = excluded.webhook_url,
             webhook_secret_enc = excluded.webhook_secret_enc,
             webhook_key_id = excluded.webhook_key_id,
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        params![q.monthly_credits_micros,
            q.monthly_requests,
            q.rate_limit_rpm,
            q.rate_limit_tpm,
            q.member_monthly_credits_micros,
            q.billing_anchor_day,
            thresholds,
            q.webhook_url,
            q.webhook_secret_enc,
            q.webhook_key_id,
            by.to_string(),
            now
        ],
    )?;
    Ok(())
}
