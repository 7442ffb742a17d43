//! Outgoing mail (SMTP through lettre): invitation emails.
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpTls};

pub struct InvitationMail<'a> {
    pub to: &'a str,
    pub org_name: &'a str,
    pub inviter: &'a str,
    pub role: &'a str,
    pub accept_url: &'a str,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

fn transport(cfg: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match cfg.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
            .map_err(|e| format!("smtp: {e}"))?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)
            .map_err(|e| format!("smtp: {e}"))?,
    };
    let mut builder = builder
        .port(cfg.port)
        .timeout(Some(std::time::Duration::from_secs(15)));
    if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
    }
    Ok(builder.build())
}

/// Sends the invitation; the error text never contains the SMTP password.
pub async fn send_invitation(cfg: &SmtpConfig, mail: &InvitationMail<'_>) -> Result<(), String> {
    let to: Mailbox = mail.to.parse().map_err(|e| format!("recipient: {e}"))?;
    let body = format!(
        "{inviter} invited you to join {org} on xagent as {role}.\n\n\
         Accept the invitation here:\n{url}\n\n\
         The link works once and expires at {expires}.\n\
         If you did not expect this, ignore this email.\n",
        inviter = mail.inviter,
        org = mail.org_name,
        role = mail.role,
        url = mail.accept_url,
        expires = crate::domain::fmt_time(mail.expires_at),
    );
    send(
        cfg,
        to,
        &format!("You are invited to {} on xagent", mail.org_name),
        body,
    )
    .await
}

/// Sends a plain-text mail to `to`; the error text never contains the SMTP password.
pub async fn send_text(
    cfg: &SmtpConfig,
    to: &str,
    subject: &str,
    body: String,
) -> Result<(), String> {
    let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
    send(cfg, to, subject, body).await
}

async fn send(cfg: &SmtpConfig, to: Mailbox, subject: &str, body: String) -> Result<(), String> {
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e| format!("smtp from address: {e}"))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("building the message: {e}"))?;
    transport(cfg)?
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("smtp: {e}"))
}
