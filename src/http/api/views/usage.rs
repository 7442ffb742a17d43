//! Usage, quota, invoices, notifications and alert webhook deliveries. A delivery's
//! payload stays out: it is what was (or will be) sent to the organization's endpoint,
//! signed, and may carry more than the list needs.
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::repo::invoices::{CreditNote, Invoice, InvoiceLine};
use crate::db::repo::notifications::Notification;
use crate::db::repo::usage::{MemberTotals, Totals};
use crate::db::repo::webhooks::Delivery;
use crate::domain::Micros;
use crate::services::invoices::Credited;
use crate::services::quota::{
    DayUsage, EndpointUsage, Limit, ModelUsage, QuotaUse, QuotaView, UsageReport,
};

#[derive(Serialize, ToSchema)]
#[schema(as = UsageTotals)]
pub struct TotalsOut {
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: Micros,
}

impl From<&Totals> for TotalsOut {
    fn from(t: &Totals) -> Self {
        TotalsOut {
            requests: t.requests,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cost_micros: t.cost_micros,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberTotalsOut<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub totals: TotalsOut,
}

impl<'a> From<&'a MemberTotals> for MemberTotalsOut<'a> {
    fn from(m: &'a MemberTotals) -> Self {
        MemberTotalsOut {
            user_id: &m.user_id,
            email: &m.email,
            name: &m.name,
            totals: TotalsOut::from(&m.totals),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ModelUsageOut<'a> {
    pub model: &'a str,
    pub totals: TotalsOut,
    /// Calls that used tokens but found no price: counted as free, shown as such.
    pub unpriced_requests: i64,
}

impl<'a> From<&'a ModelUsage> for ModelUsageOut<'a> {
    fn from(m: &'a ModelUsage) -> Self {
        ModelUsageOut {
            model: &m.model,
            totals: TotalsOut::from(&m.totals),
            unpriced_requests: m.unpriced_requests,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DayUsageOut<'a> {
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub day: &'a str,
    pub totals: TotalsOut,
}

impl<'a> From<&'a DayUsage> for DayUsageOut<'a> {
    fn from(d: &'a DayUsage) -> Self {
        DayUsageOut {
            day: &d.day,
            totals: TotalsOut::from(&d.totals),
        }
    }
}

/// Usage of one service.
#[derive(Serialize, ToSchema)]
#[schema(as = EndpointUsage)]
pub struct EndpointUsageOut<'a> {
    /// `chat.completions`, `embeddings`, `agent.chat`, `agent.retrieval`, `agent.memory`,
    /// `knowledge.embeddings`, `knowledge.search` or `workflow.step`
    pub endpoint: &'a str,
    pub totals: TotalsOut,
}

impl<'a> From<&'a EndpointUsage> for EndpointUsageOut<'a> {
    fn from(d: &'a EndpointUsage) -> Self {
        EndpointUsageOut {
            endpoint: &d.endpoint,
            totals: TotalsOut::from(&d.totals),
        }
    }
}

/// What `GET …/usage` answers.
#[derive(Serialize, ToSchema)]
#[schema(as = Usage)]
pub struct UsageReportOut<'a> {
    #[schema(pattern = "^\\d{4}-\\d{2}$")]
    pub period: &'a str,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub start: DateTime<Utc>,
    /// Exclusive.
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub end: DateTime<Utc>,
    pub totals: TotalsOut,
    /// The caller's own calls.
    pub mine: TotalsOut,
    pub by_model: Vec<ModelUsageOut<'a>>,
    pub by_day: Vec<DayUsageOut<'a>>,
    /// per service that made the calls
    pub by_endpoint: Vec<EndpointUsageOut<'a>>,
    pub by_user: Vec<MemberTotalsOut<'a>>,
    /// The credit quota, when one applies.
    pub quota: Option<&'a QuotaUse>,
    pub limits: &'a [Limit],
    pub settings: &'a QuotaView,
}

impl<'a> From<&'a UsageReport> for UsageReportOut<'a> {
    fn from(r: &'a UsageReport) -> Self {
        UsageReportOut {
            period: &r.period,
            start: r.start,
            end: r.end,
            totals: TotalsOut::from(&r.totals),
            mine: TotalsOut::from(&r.mine),
            by_model: super::all(&r.by_model),
            by_day: super::all(&r.by_day),
            by_endpoint: super::all(&r.by_endpoint),
            by_user: super::all(&r.by_user),
            quota: r.quota.as_ref(),
            limits: &r.limits,
            settings: &r.settings,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = Invoice)]
pub struct InvoiceOut<'a> {
    pub id: &'a str,
    pub period: &'a str,
    pub currency: &'a str,
    pub subtotal_micros: Micros,
    pub total_micros: Micros,
    #[serde(serialize_with = "keys_sorted")]
    #[schema(value_type = Vec<Object>)]
    pub line_items: &'a [InvoiceLine],
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub issued_at: DateTime<Utc>,
}

impl<'a> From<&'a Invoice> for InvoiceOut<'a> {
    fn from(i: &'a Invoice) -> Self {
        InvoiceOut {
            id: &i.id,
            period: &i.period,
            currency: &i.currency,
            subtotal_micros: i.subtotal_micros,
            total_micros: i.total_micros,
            line_items: &i.line_items,
            issued_at: i.issued_at,
        }
    }
}

/// A correction of an issued invoice.
#[derive(Serialize, ToSchema)]
#[schema(as = CreditNote)]
pub struct CreditNoteOut<'a> {
    #[schema(format = "uuid")]
    pub id: &'a str,
    #[schema(format = "uuid")]
    pub invoice_id: &'a str,
    pub amount_micros: Micros,
    pub reason: &'a str,
    /// the member who issued it (null once their account is gone)
    #[schema(format = "uuid")]
    pub issued_by: Option<&'a str>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub issued_at: DateTime<Utc>,
}

impl<'a> From<&'a CreditNote> for CreditNoteOut<'a> {
    fn from(n: &'a CreditNote) -> Self {
        CreditNoteOut {
            id: &n.id,
            invoice_id: &n.invoice_id,
            amount_micros: n.amount_micros,
            reason: &n.reason,
            issued_by: n.issued_by.as_deref(),
            issued_at: n.issued_at,
        }
    }
}

/// One invoice as issued (it never changes) with the credit notes against it.
#[derive(Serialize, ToSchema)]
#[schema(as = CreditedInvoice)]
pub struct CreditedInvoiceOut<'a> {
    pub id: &'a str,
    pub period: &'a str,
    pub currency: &'a str,
    pub subtotal_micros: Micros,
    pub total_micros: Micros,
    #[serde(serialize_with = "keys_sorted")]
    #[schema(value_type = Vec<Object>)]
    pub line_items: &'a [InvoiceLine],
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub issued_at: DateTime<Utc>,
    /// oldest first
    pub credit_notes: Vec<CreditNoteOut<'a>>,
    /// what the credit notes add up to
    pub credited_micros: Micros,
    /// the total less the credit notes
    pub balance_micros: Micros,
}

impl<'a> From<&'a Credited> for CreditedInvoiceOut<'a> {
    fn from(c: &'a Credited) -> Self {
        let i = &c.invoice;
        CreditedInvoiceOut {
            id: &i.id,
            period: &i.period,
            currency: &i.currency,
            subtotal_micros: i.subtotal_micros,
            total_micros: i.total_micros,
            line_items: &i.line_items,
            issued_at: i.issued_at,
            credit_notes: c.credit_notes.iter().map(CreditNoteOut::from).collect(),
            credited_micros: c.credited(),
            balance_micros: c.balance(),
        }
    }
}

/// Each line with its keys in alphabetical order, as invoices have always been stored and
/// shown (the tagged enum alone would put `kind` first).
fn keys_sorted<S: serde::Serializer>(lines: &&[InvoiceLine], s: S) -> Result<S::Ok, S::Error> {
    // A `Value`'s maps keep their keys sorted; serializing plain data into one cannot fail.
    serde_json::to_value(lines).unwrap_or_default().serialize(s)
}

#[derive(Serialize, ToSchema)]
#[schema(as = Notification)]
pub struct NotificationOut<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub details: &'a serde_json::Value,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::ser_opt_time")]
    pub read_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a Notification> for NotificationOut<'a> {
    fn from(n: &'a Notification) -> Self {
        NotificationOut {
            id: &n.id,
            kind: &n.kind,
            title: &n.title,
            body: &n.body,
            details: &n.details,
            created_at: n.created_at,
            read_at: n.read_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryOut<'a> {
    pub id: &'a str,
    pub event: &'a str,
    pub url: &'a str,
    #[schema(schema_with = crate::http::api::openapi::delivery_status)]
    pub status: &'a str,
    pub attempts: i64,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<&'a str>,
    #[serde(serialize_with = "crate::domain::ser_time")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::ser_opt_time")]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a Delivery> for DeliveryOut<'a> {
    fn from(d: &'a Delivery) -> Self {
        DeliveryOut {
            id: &d.id,
            event: &d.event,
            url: &d.url,
            status: &d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error.as_deref(),
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}
