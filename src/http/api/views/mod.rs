//! The JSON the API answers with, written down field by field. Rows from `db` are not
//! serializable: a column reaches a response only once it is named here, so a new
//! (possibly secret) column stays private by default. Each type borrows its row, so
//! shaping a list costs no copies.
//!
//! Field order is the order on the wire for typed answers. Handlers that build a
//! `serde_json::Value` (to add fields beside a row) answer with keys in alphabetical
//! order, as they always have.
pub mod identity;
pub mod members;
pub mod orgs;
pub mod resources;
pub mod usage;

pub use orgs::{MembershipOut, OrgOut, OrgWithRole};

/// Views of each item of a list.
pub fn all<'a, R, V: From<&'a R>>(rows: &'a [R]) -> Vec<V> {
    rows.iter().map(V::from).collect()
}

/// A view as a JSON value, for handlers that add fields beside it. Serializing plain data
/// into a `Value` cannot fail; were it to, the answer would be `null`, not a panic.
pub fn value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}
