//! `?limit=&cursor=` for lists (API.md): default 50, at most 200; the cursor is opaque.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::domain::fmt_time;

use crate::error::AppError;

#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// items per page
    #[param(minimum = 1, maximum = 200, default = 50, nullable = false)]
    pub limit: Option<i64>,
    /// the previous page's next_cursor (opaque); empty or absent: the first page
    #[param(pattern = "^[A-Za-z0-9_-]*$", nullable = false)]
    pub cursor: Option<String>,
}

impl Page {
    pub fn limit(&self) -> Result<usize, AppError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=200).contains(&n) => Ok(n as usize),
            Some(_) => Err(AppError::bad_request(
                "invalid_query",
                "limit must be between 1 and 200",
            )),
        }
    }

    /// The sort key the previous page ended at. An empty cursor (a form's empty field)
    /// means the first page: decoded, it would compare before every item.
    pub fn after(&self) -> Result<Option<String>, AppError> {
        self.cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| AppError::bad_request("invalid_query", "cursor is not valid"))
            })
            .transpose()
    }
}

pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// The sort key of an item listed by time and then id (`time|id`), the time written as it
/// is stored: keys then sort as the rows do (stored times sort as text in time order), and
/// a cursor compares with the stored columns directly.
pub fn time_key(at: DateTime<Utc>, id: impl std::fmt::Display) -> String {
    format!("{}|{id}", fmt_time(at))
}

/// Pages a list already sorted by `key` descending (newest first); for small lists that
/// are read whole (a user's tokens, an organization's invitations).
pub fn paginate<T>(
    items: Vec<T>,
    page: &Page,
    key: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), AppError> {
    paginate_by(items, page, key, true)
}

/// The same for lists sorted by `key` ascending (by name).
pub fn paginate_asc<T>(
    items: Vec<T>,
    page: &Page,
    key: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), AppError> {
    paginate_by(items, page, key, false)
}

fn paginate_by<T>(
    items: Vec<T>,
    page: &Page,
    key: impl Fn(&T) -> String,
    descending: bool,
) -> Result<(Vec<T>, Option<String>), AppError> {
    let limit = page.limit()?;
    let after = page.after()?;
    let mut rest: Vec<T> = match after {
        Some(a) => items
            .into_iter()
            .filter(|i| if descending { key(i) < a } else { key(i) > a })
            .collect(),
        None => items,
    };
    let next = if rest.len() > limit {
        rest.truncate(limit);
        rest.last().map(|l| encode_cursor(&key(l)))
    } else {
        None
    };
    Ok((rest, next))
}
