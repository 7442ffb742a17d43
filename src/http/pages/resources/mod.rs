//! An organization's resources in the browser, one handler set for the six types
//! (`/o/{org}/agents`, `/workflows`, `/documents`, `/tools`, `/knowledge-bases`,
//! `/conversations`): the list with search, filter, pages and the new form (an upload for
//! documents), one item's page with its edit form, the share dialog, delete, "who has
//! access", a knowledge base's documents and a conversation's messages.
use crate::domain::Permission;
use crate::http::extract::OrgCtx;
use crate::http::extract::OrgForm;
use crate::http::extract::resource_id;
use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::body::Body;
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, Multipart, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::org_frame::{form_errors, is_user_error, nav, org_people, shown_at};
use super::resource_forms::{
    FORM_FIELDS, facts_of, form_of, input_from_form, parse_visibility, traits_of,
};
use super::{layout, render, render_status, see_other, urlencode};
use crate::db::OrgContext;
use crate::db::repo::resources::{ListQuery, ResourceKind};
use crate::db::scope::has_permission;
use crate::domain::UserId;
use crate::domain::format::time_at;
use crate::domain::resources::Patch;
use crate::error::{AppError, Result};
use crate::http::api::pagination::{Page, encode_cursor, time_key};
use crate::http::extract::CurrentUser;
use crate::http::state::AppState;
use crate::http::views::{
    AccessPage, AccessRow, ChoiceOption, FormErrors, KbDocumentRow, KindLabel, MessageRow,
    PersonRow, ResourceDetail, ResourceFormValues, ResourcePage, ResourceRow, ResourcesPage,
    ShareDialog,
};
use crate::services::resources::{self as svc, Input, SharedWithInput, Upload, View};
use crate::services::teams;

mod agent_services;
mod item;
mod list;

use agent_services::*;
use item::*;
use list::*;

/// Items per list page.
const PAGE_SIZE: i64 = 25;
/// Choices offered in selects (agents of a conversation, documents of a knowledge base).
const CHOICES: i64 = 200;

pub fn router() -> Router<AppState> {
    let mut r = Router::new();
    for kind in ResourceKind::ALL {
        let base = format!("/o/{{org}}/{}", kind.path());
        let collection = if kind == ResourceKind::Document {
            // The upload limit is applied in `upload`, from the configuration.
            get(index).post(upload).layer(DefaultBodyLimit::disable())
        } else {
            get(index).post(create)
        };
        r = r
            .route(&base, collection)
            .route(&format!("{base}/{{id}}"), get(show).post(update))
            .route(
                &format!("{base}/{{id}}/share"),
                get(back_to_item).post(share),
            )
            .route(
                &format!("{base}/{{id}}/delete"),
                get(back_to_item).post(delete),
            )
            .route(&format!("{base}/{{id}}/access"), get(access));
    }
    r.route(
        "/o/{org}/knowledge-bases/{id}/documents",
        get(back_to_item).post(kb_add),
    )
    .route(
        "/o/{org}/knowledge-bases/{id}/documents/{doc}/remove",
        get(back_to_item).post(kb_remove),
    )
    .route(
        "/o/{org}/conversations/{id}/messages",
        get(back_to_item).post(add_message),
    )
    .route(
        "/o/{org}/workflows/{id}/runs",
        get(back_to_item).post(start_run),
    )
    .route(
        "/o/{org}/workflows/{id}/runs/{run}/cancel",
        get(back_to_item).post(cancel_run),
    )
    .route(
        "/o/{org}/agents/{id}/memory",
        get(back_to_item).post(remember),
    )
    .route(
        "/o/{org}/agents/{id}/memory/{fact}",
        get(back_to_item).post(change_fact),
    )
    .route(
        "/o/{org}/agents/{id}/memory/{fact}/delete",
        get(back_to_item).post(forget_fact),
    )
}

/// The resource type named by the address (`/o/{org}/{type}/…`).
struct Kind(ResourceKind);

impl<S: Send + Sync> FromRequestParts<S> for Kind {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts
            .uri
            .path()
            .split('/')
            .nth(3)
            .and_then(ResourceKind::from_path)
            .map(Kind)
            .ok_or_else(AppError::not_found)
    }
}

fn list_url(ctx: &OrgContext, kind: ResourceKind) -> String {
    format!("/o/{}/{}", ctx.org().slug, kind.path())
}

fn item_url(ctx: &OrgContext, kind: ResourceKind, id: &str) -> String {
    format!("{}/{id}", list_url(ctx, kind))
}

/// GET on an action address (a reload after a failed post): back to the item's page.
async fn back_to_item(uri: Uri) -> Response {
    let item: Vec<&str> = uri.path().split('/').take(5).collect();
    see_other(&item.join("/"))
}

/// Names by user id, for owners and message authors.
struct Names {
    me: UserId,
    by_id: HashMap<String, String>,
}

impl Names {
    fn new(ctx: &OrgContext, people: &[PersonRow]) -> Self {
        Self {
            me: ctx.user_id(),
            by_id: people
                .iter()
                .map(|p| (p.id.clone(), p.name.clone()))
                .collect(),
        }
    }

    fn of(&self, id: Option<UserId>) -> String {
        match id {
            None => "former member".into(),
            Some(u) if u == self.me => "you".into(),
            Some(u) => match self.by_id.get(&u.to_string()) {
                Some(name) => name.clone(),
                // Without members.view nobody's name is known; with it, a missing id left.
                None if self.by_id.is_empty() => "a member".into(),
                None => "former member".into(),
            },
        }
    }
}

/// The visible items of `kind`, for selects; items with the same name show their owner.
async fn choices(
    s: &AppState,
    ctx: &OrgContext,
    kind: ResourceKind,
    selected: &str,
    names: &Names,
) -> Result<Vec<ChoiceOption>> {
    let items = svc::list(&s.svc, ctx, kind, ListQuery::first(CHOICES)).await?;
    let labels = crate::domain::format::told_apart(
        items
            .iter()
            .map(|v| (v.resource.name.as_str(), names.of(v.resource.owner_id))),
    );
    Ok(items
        .into_iter()
        .zip(labels)
        .map(|(v, label)| ChoiceOption {
            selected: v.resource.id.to_string() == selected,
            id: v.resource.id.to_string(),
            label,
        })
        .collect())
}

fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// A list cursor (`created_at|id`, base64 like the API's); a bad one means page one.
pub(super) fn decode_after(cursor: &str) -> Option<(String, String)> {
    let page = Page {
        limit: None,
        cursor: Some(cursor.to_string()).filter(|c| !c.is_empty()),
    };
    page.after().ok().flatten().and_then(|c| {
        c.split_once('|')
            .map(|(a, b)| (a.to_string(), b.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;
    use crate::http::views::{Fact, Layout, NamedValue, OrgNav};

    fn nav_for(section: &str) -> OrgNav {
        OrgNav::new("acme", "Acme", section, |_| true)
    }

    fn list(kind: ResourceKind) -> ResourcesPage {
        ResourcesPage {
            layout: Layout::default(),
            nav: nav_for(kind.path()),
            kind: KindLabel::of(kind),
            rows: vec![ResourceRow {
                id: "r1".into(),
                name: "Helper <b>".into(),
                description: "Answers".into(),
                visibility: "organization".into(),
                owner: "Ada".into(),
                updated: "2026-11-28 14:05 UTC".into(),
            }],
            q: "help".into(),
            visibility: "organization".into(),
            filtered: true,
            older_href: Some("/o/acme/agents?q=help&cursor=abc".into()),
            newest_href: Some("/o/acme/agents?q=help".into()),
            can_create: true,
            open_new: false,
            form: ResourceFormValues {
                visibility: "private".into(),
                ..Default::default()
            },
            errors: FormErrors::one("name", "is required"),
            agents: vec![ChoiceOption {
                id: "a1".into(),
                label: "Helper".into(),
                selected: false,
            }],
            max_upload: "64 MiB".into(),
            notice: Some("The agent was deleted.".into()),
        }
    }

    #[test]
    fn the_list_shows_items_filters_pages_and_the_new_form_to_creators() {
        let mut p = list(ResourceKind::Agent);
        let html = p.render().unwrap();
        assert!(html.contains("href=\"/o/acme/agents/r1\""));
        assert!(html.contains("Helper &#60;b&#62;") || html.contains("Helper &lt;b&gt;"));
        assert!(html.contains("class=\"vis vis-organization\""));
        assert!(html.contains("id=\"resources-older\""));
        assert!(
            html.contains("href=\"/o/acme/agents?q=help&#38;cursor=abc\"")
                || html.contains("href=\"/o/acme/agents?q=help&amp;cursor=abc\"")
        );
        assert!(html.contains("<option value=\"organization\" selected>"));
        assert!(html.contains("id=\"new-resource\""));
        assert!(html.contains("id=\"resource-name-error\""));
        assert!(html.contains("id=\"resource-system-prompt\""));
        assert!(html.contains("<th scope=\"col\">Owner</th>"));
        assert!(html.contains("aria-current=\"page\">Agents</a>"));
        p.can_create = false;
        let html = p.render().unwrap();
        assert!(!html.contains("id=\"new-resource\""));
    }

    #[test]
    fn documents_are_uploaded_with_a_multipart_form_carrying_the_csrf_token() {
        let mut p = list(ResourceKind::Document);
        p.layout.csrf_token = "tok".into();
        let html = p.render().unwrap();
        assert!(html.contains("enctype=\"multipart/form-data\""));
        assert!(html.contains("type=\"file\""));
        assert!(html.contains("name=\"csrf_token\" value=\"tok\""));
        assert!(html.contains("64 MiB"));
        assert!(!html.contains("id=\"resource-system-prompt\""));
    }

    fn item(kind: ResourceKind) -> ResourcePage {
        ResourcePage {
            layout: Layout::default(),
            nav: nav_for(kind.path()),
            kind: KindLabel::of(kind),
            item: ResourceDetail {
                id: "r1".into(),
                name: "Helper".into(),
                description: "Answers".into(),
                visibility: "private".into(),
                owner: "you".into(),
                created: "2026-11-28 14:05 UTC".into(),
                updated: "2026-11-28 14:05 UTC".into(),
                version: 3,
            },
            facts: vec![Fact {
                label: "System prompt".into(),
                value: "Be kind".into(),
                block: true,
            }],
            traits: vec![NamedValue {
                name: "curious".into(),
                value: "high".into(),
            }],
            skills: Vec::new(),
            can_write: true,
            form: ResourceFormValues {
                name: "Helper".into(),
                version: "3".into(),
                ..Default::default()
            },
            errors: FormErrors::one("form", "this agent was changed meanwhile"),
            notice: None,
            error: None,
            share: ShareDialog {
                open: true,
                visibility: "team".into(),
                members: vec![ChoiceOption {
                    id: "u2".into(),
                    label: "Bob (bob@example.com)".into(),
                    selected: true,
                }],
                teams: vec![ChoiceOption {
                    id: "t1".into(),
                    label: "Research".into(),
                    selected: false,
                }],
                kept_users: vec!["u9".into()],
                kept_teams: Vec::new(),
                error: None,
            },
            agents: Vec::new(),
            download_href: None,
            kb_documents: Vec::new(),
            kb_candidates: Vec::new(),
            can_upload: true,
            messages: Vec::new(),
            message_content: String::new(),
            message_errors: FormErrors::default(),
            chat_model: String::new(),
            memory_mode: String::new(),
            memory: Vec::new(),
            memory_errors: FormErrors::default(),
            memory_key: String::new(),
            memory_value: String::new(),
            runs: Vec::new(),
            runs_active: false,
            can_run: true,
            run_input: String::new(),
            run_errors: FormErrors::default(),
        }
    }

    #[test]
    fn an_item_page_has_the_edit_form_with_its_version_the_share_dialog_and_a_confirmed_delete() {
        let mut p = item(ResourceKind::Agent);
        let html = p.render().unwrap();
        assert!(html.contains("name=\"version\" value=\"3\""));
        assert!(html.contains("id=\"edit-error\""));
        assert!(html.contains("<details class=\"share\" id=\"share\" open>"));
        assert!(html.contains("name=\"visibility\" value=\"team\" checked"));
        assert!(html.contains("name=\"u.u2\" checked"));
        assert!(html.contains("name=\"t.t1\">") || html.contains("name=\"t.t1\" >"));
        assert!(html.contains("type=\"hidden\" name=\"u.u9\""));
        assert!(html.contains("href=\"/o/acme/agents/r1/access\""));
        assert!(html.contains("hx-confirm=\"Delete the agent Helper?\""));
        assert!(html.contains("<pre"));
        p.can_write = false;
        let html = p.render().unwrap();
        assert!(!html.contains("id=\"edit-resource\""));
        assert!(!html.contains("id=\"share\""));
        assert!(!html.contains("id=\"delete-resource\""));
    }

    #[test]
    fn documents_link_their_content_and_conversations_show_messages() {
        let mut p = item(ResourceKind::Document);
        p.download_href = Some("/api/v1/orgs/o1/documents/r1/content".into());
        let html = p.render().unwrap();
        assert!(html.contains("href=\"/api/v1/orgs/o1/documents/r1/content\""));
        assert!(html.contains("hx-boost=\"false\""));

        let mut p = item(ResourceKind::Conversation);
        p.messages = vec![MessageRow {
            role: "user".into(),
            content: "Hello <there>".into(),
            author: "you".into(),
            at: "2026-11-28 14:05 UTC".into(),
            meta: String::new(),
            citations: Vec::new(),
            partial: false,
        }];
        p.message_errors = FormErrors::one("content", "must be 1 byte to 512 KiB");
        let html = p.render().unwrap();
        assert!(html.contains("id=\"messages\""));
        assert!(html.contains("Hello &#60;there&#62;") || html.contains("Hello &lt;there&gt;"));
        assert!(html.contains("id=\"message-content-error\""));

        let mut p = item(ResourceKind::KnowledgeBase);
        p.kb_documents = vec![KbDocumentRow {
            id: "d1".into(),
            name: "Manual".into(),
            readable: true,
            status: "indexing 3/10".into(),
            state: "indexing".into(),
        }];
        p.kb_candidates = vec![ChoiceOption {
            id: "d2".into(),
            label: "Guide".into(),
            selected: false,
        }];
        let html = p.render().unwrap();
        assert!(html.contains("action=\"/o/acme/knowledge-bases/r1/documents/d1/remove\""));
        assert!(html.contains("<option value=\"d2\">Guide</option>"));
    }

    #[test]
    fn the_access_table_has_row_headers_and_reasons() {
        let p = AccessPage {
            layout: Layout::default(),
            nav: nav_for("agents"),
            kind: KindLabel::of(ResourceKind::Agent),
            item_id: "r1".into(),
            item_name: "Helper".into(),
            visibility: "organization".into(),
            rows: vec![AccessRow {
                name: "Bob".into(),
                email: "bob@example.com".into(),
                role: "member".into(),
                can_read: true,
                can_write: false,
                reasons: vec!["organization visibility".into()],
            }],
        };
        let html = p.render().unwrap();
        assert!(html.contains("<th scope=\"row\">Bob"));
        assert!(html.contains("organization visibility"));
        assert!(html.contains("href=\"/o/acme/agents/r1\""));
    }

    #[test]
    fn the_share_form_becomes_visibility_and_shares() {
        let mut f = BTreeMap::new();
        f.insert("visibility".to_string(), "organization".to_string());
        f.insert("u.u1".to_string(), "on".to_string());
        f.insert("t.t1".to_string(), "on".to_string());
        f.insert("version".to_string(), "4".to_string());
        let input = share_input(ResourceKind::Agent, &f).unwrap();
        assert_eq!(
            input.visibility,
            Some(crate::domain::Visibility::Organization)
        );
        let sw = input.shared_with.unwrap();
        assert_eq!(sw.users, vec!["u1"]);
        assert_eq!(sw.teams, vec!["t1"]);
        assert_eq!(input.version, Some(4));
        assert!(input.name.is_none());
        f.remove("visibility");
        assert!(share_input(ResourceKind::Agent, &f).is_err());
    }

    #[test]
    fn bad_cursors_mean_page_one() {
        assert_eq!(decode_after("!!!"), None);
        let c = encode_cursor("2026-01-01T00:00:00Z|abc");
        assert_eq!(
            decode_after(&c),
            Some(("2026-01-01T00:00:00Z".into(), "abc".into()))
        );
    }
}
