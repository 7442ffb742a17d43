//! Outgoing webhooks (quota alerts): each delivery is a row written in the same
//! transaction as the alert, POSTed by a background worker with an HMAC-SHA256 signature,
//! and retried with doubling delays until it is delivered or given up.
//!
//! Signature: `X-Xagent-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
//! with `X-Xagent-Timestamp: <unix seconds>`; receivers recompute it and may refuse old
//! timestamps.
use super::Services;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;
use crate::db::OrgContext;
use crate::db::repo::{quotas, webhooks};
use crate::db::unscoped::unscoped_due_webhook_deliveries;
use crate::domain::fmt_time;
use crate::error::AppError;
use crate::services::upstream::{self, Origin};

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(3600);

pub fn webhook_aad(org: crate::domain::OrgId) -> String {
    format!("{org}/webhook/secret")
}

pub fn signature(secret: &[u8], timestamp: &str, body: &str) -> String {
    // HMAC takes keys of any length; the error cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delay before attempt `attempts + 1`: base, 2×base, 4×base, ... at most an hour.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let factor = 2u32.saturating_pow(u32::try_from(attempts.saturating_sub(1)).unwrap_or(0));
    base.saturating_mul(factor).min(MAX_DELAY)
}

struct Job {
    ctx: OrgContext,
    delivery: webhooks::Delivery,
    secret: Option<Secret>,
}

/// Sends every delivery that is due; returns how many were attempted.
pub async fn deliver_due(svc: &Services, retry_base: Duration) -> Result<usize, AppError> {
    let now = svc.now_str();
    let due = {
        let now = now.clone();
        svc.db
            .read(move |tx| Ok::<_, AppError>(unscoped_due_webhook_deliveries(tx, &now, 50)?))
            .await?
    };
    let mut n = 0;
    for (org, id) in due {
        let keyring = svc.keyring.clone();
        let job = svc
            .db
            .read(move |tx| {
                let Some(ctx) =
                    crate::db::scope::SystemScope::new("webhook-delivery").in_org(tx, org)?
                else {
                    return Ok::<_, AppError>(None);
                };
                let Some(delivery) = webhooks::get(tx, &ctx, &id)? else {
                    return Ok(None);
                };
                let q = quotas::get(tx, &ctx)?;
                let secret = match (&q.webhook_secret_enc, &q.webhook_key_id) {
                    (Some(ct), Some(kid)) => Some(super::llm::open_sealed(
                        tx,
                        &ctx,
                        &keyring,
                        kid,
                        ct,
                        &webhook_aad(ctx.org_id()),
                    )?),
                    _ => None,
                };
                Ok(Some(Job {
                    ctx,
                    delivery,
                    secret,
                }))
            })
            .await?;
        let Some(job) = job else { continue };
        n += 1;
        attempt(svc, retry_base, job).await?;
    }
    Ok(n)
}

async fn attempt(svc: &Services, retry_base: Duration, job: Job) -> Result<(), AppError> {
    let d = &job.delivery;
    let timestamp = svc.now().timestamp().to_string();
    let (delivered, code, error) = match svc.upstream.client_for(&d.url, Origin::Tenant) {
        Ok(client) => send(client, &job, &timestamp).await,
        Err(refused) => (false, None, Some(refused.to_string())),
    };
    let attempts = d.attempts + 1;
    let now = svc.now();
    let next = (!delivered && attempts < MAX_ATTEMPTS).then(|| {
        let wait = chrono::Duration::from_std(backoff(retry_base, attempts))
            .unwrap_or(chrono::Duration::hours(1));
        fmt_time(now + wait)
    });
    let (ctx, id, now) = (job.ctx.clone(), d.id.clone(), fmt_time(now));
    svc.db
        .write_bookkeeping(crate::db::Bookkeeping::WebhookAttempt, move |tx| {
            Ok::<_, AppError>(webhooks::record_attempt(
                tx,
                &ctx,
                &id,
                delivered,
                code,
                error.as_deref(),
                next.as_deref(),
                &now,
            )?)
        })
        .await
}

/// Sends one delivery, signed when the subscription has a secret; what happened, as
/// stored with the attempt.
async fn send(
    client: &reqwest::Client,
    job: &Job,
    timestamp: &str,
) -> (bool, Option<u16>, Option<String>) {
    let d = &job.delivery;
    let mut req = client
        .post(&d.url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .header("user-agent", concat!("xagent/", env!("CARGO_PKG_VERSION")))
        .header("x-xagent-event", &d.event)
        .header("x-xagent-delivery", &d.id)
        .header("x-xagent-timestamp", timestamp)
        .body(d.payload.clone());
    if let Some(secret) = &job.secret {
        req = req.header(
            "x-xagent-signature",
            signature(secret.expose().as_bytes(), timestamp, &d.payload),
        );
    }
    match req.send().await {
        Ok(res) if res.status().is_success() => (true, Some(res.status().as_u16()), None),
        Ok(res) => (
            false,
            Some(res.status().as_u16()),
            Some(format!("answered {}", res.status().as_u16())),
        ),
        Err(e) => {
            let what = if let Some(refused) = upstream::refusal_in(&e) {
                refused.to_string()
            } else if e.is_timeout() {
                "timed out".to_string()
            } else if e.is_connect() {
                "could not connect".to_string()
            } else {
                "request failed".to_string()
            };
            (false, None, Some(what))
        }
    }
}

/// The delivery worker: every tick, sends what is due. Deliveries live in the database,
/// so a restart or a missed tick only delays them.
pub async fn run(svc: Services, tick: Duration, retry_base: Duration) {
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = deliver_due(&svc, retry_base).await {
            tracing::error!(error = %e, "webhook deliveries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_backoff() {
        // RFC 4231 test case 2 ("Jefe"), over "<timestamp>.<body>" split as "what do ya want " + "." + ...
        let sig = signature(b"Jefe", "what do ya want for nothing?", "");
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), 7 + 64);
        assert_ne!(sig, signature(b"Jefe", "what do ya want for nothing?", "x"));
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), Duration::from_secs(30));
        assert_eq!(backoff(base, 2), Duration::from_secs(60));
        assert_eq!(backoff(base, 4), Duration::from_secs(240));
        assert_eq!(backoff(base, 20), MAX_DELAY);
    }
}
