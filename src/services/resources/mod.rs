//! Resources of an organization: create, read, update, delete, share, search, explain
//! access, and the plan limits that bound them. Reads go through the visibility predicate;
//! writes need the type's permission and ownership, or `<type>.manage` (ARCHITECTURE §4).
mod access;
mod core;
mod documents;
mod moving;
mod sharing;

pub use access::{Access, Reason, can_write, explain_access};
pub(crate) use core::create_in_tx;
pub use core::{
    CreditLimit, Input, KindCount, Limit, Limits, MaxOnly, PeriodUse, Summary, View, create,
    delete, document_size_limit, get, limits, list, messages, summary, update,
};
pub(crate) use documents::{CheckedUpload, check_upload, kb_document_in_tx, store_upload_in_tx};
pub use documents::{
    Upload, document_content, kb_document, replace_document_content, sniff, upload_document,
};
pub use moving::{MoveResult, move_to_organization};
pub use sharing::{Accessible, PublicItem, PublicOrg, SharedWithInput, accessible, public};

use access::writable;
use core::{check_description, check_name, limit_reached, plan_limit, view};
use sharing::check_shares;
