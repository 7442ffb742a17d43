//! All SQL lives here, one file per aggregate. Functions on tenant tables take an
//! `&OrgContext` (or, when they create the organization, return the one they made).
pub mod audit;
pub mod imports;
pub mod invitations;
pub mod invoices;
pub mod knowledge;
pub mod llm;
pub mod members;
pub mod memory;
pub mod notifications;
pub mod orgs;
pub mod password_resets;
pub mod plans;
pub mod prices;
pub mod quotas;
pub mod resources;
pub mod runs;
pub mod sessions;
pub mod settings;
pub mod sso;
pub mod teams;
pub mod tokens;
pub mod two_factor;
pub mod usage;
pub mod users;
pub mod webhooks;

use chrono::{DateTime, Utc};
use rusqlite::Row;
use uuid::Uuid;

/// Reads a UUID stored as text; a malformed one is a conversion error, not a panic.
/// Ids are stored as their hyphenated text, so a typed id binds as it is.
macro_rules! id_to_sql {
    ($($t:ty),*) => {$(
        impl rusqlite::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.to_string()))
            }
        }
    )*};
}
id_to_sql!(crate::domain::ResourceId, crate::domain::MessageId);

/// Money is stored as its count of micro-dollars (an INTEGER column), so it binds and
/// reads as that integer.
impl rusqlite::ToSql for crate::domain::Micros {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.get()))
    }
}

impl rusqlite::types::FromSql for crate::domain::Micros {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(v).map(crate::domain::Micros::new)
    }
}

pub(crate) fn uuid_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let s: String = row.get(idx)?;
    Uuid::parse_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Reads a column holding one word of a closed list (a role, a status); a word outside
/// the list is a conversion error rather than a default chosen in silence.
pub(crate) fn word_at<T: crate::domain::Word>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    T::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown value {s:?}").into(),
        )
    })
}

/// Reads a stored time (RFC 3339); text that is not one is a conversion error.
pub(crate) fn time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let s: String = row.get(idx)?;
    parse_time(idx, &s)
}

pub(crate) fn opt_time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let s: Option<String> = row.get(idx)?;
    s.map(|s| parse_time(idx, &s)).transpose()
}

fn parse_time(idx: usize, s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
        })
}

pub(crate) fn opt_uuid_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Uuid>> {
    let s: Option<String> = row.get(idx)?;
    s.map(|s| {
        Uuid::parse_str(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

/// Reads JSON stored as text into `T`; text that does not fit is a conversion error.
pub(crate) fn json_at<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    serde_json::from_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}
