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
use crate::domain::resources::Patch;
use crate::error::{AppError, Result};
use crate::http::api::pagination::{Page, encode_cursor};
use crate::http::extract::CurrentUser;
use crate::http::state::AppState;
use crate::http::views::{
    AccessPage, AccessRow, ChoiceOption, FormErrors, KbDocumentRow, KindLabel, MessageRow,
    PersonRow, ResourceDetail, ResourceFormValues, ResourcePage, ResourceRow, ResourcesPage,
    ShareDialog, short_time,
};
use crate::services::resources::{self as svc, Input, SharedWithInput, Upload, View};
use crate::services::teams;

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

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListParams {
    q: String,
    visibility: String,
    cursor: String,
    done: String,
    /// `1`: the create form starts open (where an empty list's link leads).
    new: String,
}

async fn list_page(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    kind: ResourceKind,
    p: &ListParams,
) -> Result<ResourcesPage> {
    let label = KindLabel::of(kind);
    let q: String = p.q.trim().chars().take(200).collect();
    let visibility = parse_visibility(&p.visibility);
    let mut rows = svc::list(
        &s.svc,
        ctx,
        kind,
        ListQuery {
            visibility,
            q: Some(q.clone()).filter(|q| !q.is_empty()),
            after: decode_after(&p.cursor),
            limit: PAGE_SIZE + 1,
        },
    )
    .await?;
    let base = list_url(ctx, kind);
    let filters = [
        ("q", q.clone()),
        (
            "visibility",
            visibility
                .map(|v| v.as_str().to_string())
                .unwrap_or_default(),
        ),
    ];
    let older_href = if rows.len() as i64 > PAGE_SIZE {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map(|v| {
            let cursor = encode_cursor(&format!("{}|{}", v.resource.created_at, v.resource.id));
            let mut pairs = filters.to_vec();
            pairs.push(("cursor", cursor));
            with_query(&base, &pairs)
        })
    } else {
        None
    };
    let newest_href = (!p.cursor.is_empty()).then(|| with_query(&base, &filters));
    let people = org_people(s, ctx).await?;
    let names = Names::new(ctx, &people);
    let can_create = has_permission(ctx, kind.create_permission());
    let agents = if kind == ResourceKind::Conversation && can_create {
        choices(s, ctx, ResourceKind::Agent, "", &names).await?
    } else {
        Vec::new()
    };
    let server_max = s.config.upload_limit_bytes as i64;
    let max_upload = if kind == ResourceKind::Document && can_create {
        svc::document_size_limit(&s.svc, ctx, server_max).await?
    } else {
        server_max
    };
    let title = format!("{} · {}", label.plural, ctx.org().name);
    Ok(ResourcesPage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, kind.path()),
        rows: rows
            .into_iter()
            .map(|v| ResourceRow {
                owner: names.of(v.resource.owner_id),
                id: v.resource.id.to_string(),
                name: v.resource.name,
                description: v.resource.description,
                visibility: v.resource.visibility.as_str().to_string(),
                updated: short_time(&v.resource.updated_at),
            })
            .collect(),
        filtered: !q.is_empty() || visibility.is_some(),
        q,
        visibility: visibility
            .map(|v| v.as_str().to_string())
            .unwrap_or_default(),
        older_href,
        newest_href,
        can_create,
        open_new: p.new == "1",
        form: ResourceFormValues {
            visibility: "private".into(),
            ..Default::default()
        },
        errors: FormErrors::default(),
        agents,
        max_upload: crate::domain::format::bytes(max_upload),
        notice: None,
        kind: label,
    })
}

async fn index(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Kind(kind): Kind,
    Query(p): Query<ListParams>,
) -> Result<Response> {
    let mut page = list_page(&s, &user, &ctx, kind, &p).await?;
    if p.done == "deleted" {
        page.notice = Some(format!("The {} was deleted.", page.kind.singular));
    }
    render(&page)
}

/// The list page again with the new form as typed and what was wrong with it.
async fn list_with_errors(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    kind: ResourceKind,
    form: ResourceFormValues,
    errors: FormErrors,
    status: StatusCode,
) -> Result<Response> {
    let mut page = list_page(s, user, ctx, kind, &ListParams::default()).await?;
    for a in &mut page.agents {
        a.selected = a.id == form.agent_id;
    }
    page.form = form;
    page.errors = errors;
    Ok(shown_at(
        render_status(status, &page)?,
        &list_url(ctx, kind),
    ))
}

async fn create(
    State(s): State<AppState>,
    Kind(kind): Kind,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<ResourceFormValues>,
) -> Result<Response> {
    let input = input_from_form(kind, &f, true);
    match svc::create(&s.svc, &ctx, &user.actor(), input).await {
        Ok(v) => Ok(see_other(&format!(
            "{}?done=created",
            item_url(&ctx, kind, &v.resource.id.to_string())
        ))),
        Err(e) => {
            let Some(errors) = form_errors(&e, FORM_FIELDS, "form") else {
                return Err(e);
            };
            list_with_errors(&s, &user, &ctx, kind, f, errors, e.status()).await
        }
    }
}

/// The fields of the upload form; the file is read whole (the body is bounded).
async fn read_upload_form(
    req: Request,
    s: &AppState,
) -> Result<(BTreeMap<String, String>, Option<Upload>)> {
    let too_large = |e: &axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            AppError::bad_request("invalid_form", e.body_text())
        }
    };
    let mut mp = Multipart::from_request(req, s)
        .await
        .map_err(|e| AppError::bad_request("invalid_form", e.body_text()))?;
    let mut text = BTreeMap::new();
    let mut file = None;
    while let Some(field) = mp.next_field().await.map_err(|e| too_large(&e))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let filename = field.file_name().unwrap_or_default().to_string();
            let declared_type = field.content_type().map(str::to_string);
            let bytes = field.bytes().await.map_err(|e| too_large(&e))?;
            if !filename.is_empty() || !bytes.is_empty() {
                file = Some(Upload {
                    filename,
                    declared_type,
                    bytes: bytes.to_vec(),
                });
            }
        } else if ["csrf_token", "name", "description", "visibility"].contains(&name.as_str()) {
            let v = field.text().await.map_err(|e| too_large(&e))?;
            text.insert(name, v);
        }
    }
    Ok((text, file))
}

/// The documents' new form: a multipart upload that carries the CSRF token as a field.
async fn upload(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    req: Request,
) -> Result<Response> {
    let kind = ResourceKind::Document;
    let limit = s.config.upload_limit_bytes;
    let (parts, body) = req.into_parts();
    let body = Body::new(http_body_util::Limited::new(
        body,
        limit.saturating_add(64 * 1024),
    ));
    let read = read_upload_form(Request::from_parts(parts, body), &s).await;
    let (text, file) = match read {
        Ok(x) => x,
        Err(AppError::PayloadTooLarge) => {
            // The form is lost with the body; only the reason can be shown.
            let errors = FormErrors::one(
                "file",
                format!(
                    "The file is larger than the {} this server accepts.",
                    crate::domain::format::bytes(limit as i64)
                ),
            );
            return list_with_errors(
                &s,
                &user,
                &ctx,
                kind,
                ResourceFormValues::default(),
                errors,
                StatusCode::PAYLOAD_TOO_LARGE,
            )
            .await;
        }
        Err(e) => return Err(e),
    };
    user.check_form_csrf(text.get("csrf_token").map_or("", String::as_str))?;
    let get = |k: &str| text.get(k).cloned().unwrap_or_default();
    let form = ResourceFormValues {
        name: get("name"),
        description: get("description"),
        visibility: get("visibility"),
        ..Default::default()
    };
    let input = input_from_form(kind, &form, true);
    match svc::upload_document(&s.svc, &ctx, &user.actor(), input, file).await {
        Ok(v) => Ok(see_other(&format!(
            "{}?done=created",
            item_url(&ctx, kind, &v.resource.id.to_string())
        ))),
        Err(e) => {
            let Some(errors) = form_errors(&e, FORM_FIELDS, "file") else {
                return Err(e);
            };
            list_with_errors(&s, &user, &ctx, kind, form, errors, e.status()).await
        }
    }
}

async fn share_dialog(
    s: &AppState,
    ctx: &OrgContext,
    view: &View,
    people: &[PersonRow],
) -> Result<ShareDialog> {
    if !view.can_write {
        return Ok(ShareDialog::default());
    }
    let r = &view.resource;
    let (team_list, teams_listed) = match teams::list(&s.svc, ctx).await {
        Ok(t) => (t, true),
        Err(AppError::Forbidden { .. }) => (Vec::new(), false),
        Err(e) => return Err(e),
    };
    let members: Vec<ChoiceOption> = people
        .iter()
        .filter(|p| Some(p.id.as_str()) != r.owner_id.map(|o| o.to_string()).as_deref())
        .map(|p| ChoiceOption {
            id: p.id.clone(),
            label: format!("{} ({})", p.name, p.email),
            selected: r.shared_with.users.contains(&p.id),
        })
        .collect();
    let teams: Vec<ChoiceOption> = team_list
        .into_iter()
        .map(|t| ChoiceOption {
            selected: r.shared_with.teams.contains(&t.id.to_string()),
            id: t.id.to_string(),
            label: t.name,
        })
        .collect();
    // A viewer who cannot list members (or teams) keeps the shares they cannot see. One who
    // can list them drops ids that are no longer members: resending those would be refused.
    Ok(ShareDialog {
        open: false,
        visibility: r.visibility.as_str().to_string(),
        kept_users: if people.is_empty() {
            r.shared_with.users.clone()
        } else {
            Vec::new()
        },
        kept_teams: if teams_listed {
            Vec::new()
        } else {
            r.shared_with.teams.clone()
        },
        members,
        teams,
        error: None,
    })
}

/// The item's header: name, owner and times as people read them.
fn detail_of(r: &crate::db::repo::resources::Resource, names: &Names) -> ResourceDetail {
    ResourceDetail {
        id: r.id.to_string(),
        name: r.name.clone(),
        description: r.description.clone(),
        visibility: r.visibility.as_str().to_string(),
        owner: names.of(r.owner_id),
        created: short_time(&r.created_at),
        updated: short_time(&r.updated_at),
        version: r.version,
    }
}

/// A knowledge base's documents (named when the viewer can read them, else by id) and
/// the readable documents that can still be added.
fn kb_rows(
    inside: &[String],
    readable: Vec<ChoiceOption>,
) -> (Vec<KbDocumentRow>, Vec<ChoiceOption>) {
    let rows = inside
        .iter()
        .map(|d| match readable.iter().find(|o| &o.id == d) {
            Some(o) => KbDocumentRow {
                id: d.clone(),
                name: o.label.clone(),
                readable: true,
            },
            None => KbDocumentRow {
                id: d.clone(),
                name: d.clone(),
                readable: false,
            },
        })
        .collect();
    let candidates = readable
        .into_iter()
        .filter(|o| !inside.contains(&o.id))
        .collect();
    (rows, candidates)
}

async fn item_page(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: String,
) -> Result<ResourcePage> {
    let view = svc::get(&s.svc, ctx, kind, resource_id(&id)?).await?;
    let r = &view.resource;
    let people = org_people(s, ctx).await?;
    let names = Names::new(ctx, &people);
    let form = form_of(&view);
    let (agents, agent_name) = if kind == ResourceKind::Conversation {
        let agents = choices(s, ctx, ResourceKind::Agent, &form.agent_id, &names).await?;
        let name = agents.iter().find(|a| a.selected).map(|a| a.label.clone());
        (agents, name)
    } else {
        (Vec::new(), None)
    };
    let (kb_documents, kb_candidates) = if kind == ResourceKind::KnowledgeBase {
        let readable = choices(s, ctx, ResourceKind::Document, "", &names).await?;
        kb_rows(&view.documents.clone().unwrap_or_default(), readable)
    } else {
        (Vec::new(), Vec::new())
    };
    let messages = if kind == ResourceKind::Conversation {
        svc::messages(&s.svc, ctx, r.id, None, 500)
            .await?
            .into_iter()
            .map(|m| MessageRow {
                author: names.of(m.user_id.as_deref().and_then(UserId::parse)),
                role: m.role,
                content: m.content,
                at: short_time(&m.created_at),
            })
            .collect()
    } else {
        Vec::new()
    };
    let (traits, skills) = traits_of(&view);
    let share = share_dialog(s, ctx, &view, &people).await?;
    let label = KindLabel::of(kind);
    let title = format!("{} · {}", r.name, ctx.org().name);
    Ok(ResourcePage {
        layout: layout(s, user, &title, Some(ctx.org_id())).await?,
        nav: nav(ctx, kind.path()),
        item: detail_of(r, &names),
        facts: facts_of(&view, agent_name),
        traits,
        skills,
        can_write: view.can_write,
        form,
        errors: FormErrors::default(),
        notice: None,
        error: None,
        share,
        agents,
        download_href: (kind == ResourceKind::Document)
            .then(|| format!("/api/v1/orgs/{}/documents/{}/content", ctx.org_id(), r.id)),
        kb_documents,
        kb_candidates,
        can_upload: has_permission(ctx, Permission::DocumentsCreate),
        messages,
        message_role: "user".into(),
        message_content: String::new(),
        message_errors: FormErrors::default(),
        kind: label,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShowParams {
    done: String,
}

async fn show(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Kind(kind): Kind,
    Path((_, id)): Path<(String, String)>,
    Query(p): Query<ShowParams>,
) -> Result<Response> {
    let mut page = item_page(&s, &user, &ctx, kind, id).await?;
    let what = page.kind.singular.clone();
    page.notice = match p.done.as_str() {
        "created" => Some(format!("The {what} was created.")),
        "saved" => Some("Changes saved.".into()),
        "shared" => Some("Sharing saved.".into()),
        "doc_added" => Some("Document added.".into()),
        "doc_removed" => Some("Document removed.".into()),
        "message" => Some("Message added.".into()),
        _ => None,
    };
    render(&page)
}

async fn update(
    State(s): State<AppState>,
    Kind(kind): Kind,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<ResourceFormValues>,
) -> Result<Response> {
    let input = input_from_form(kind, &f, false);
    match svc::update(&s.svc, &ctx, &user.actor(), resource_id(&id)?, input).await {
        Ok(_) => Ok(see_other(&format!(
            "{}?done=saved",
            item_url(&ctx, kind, &id)
        ))),
        Err(e) => {
            // A concurrent edit (409) lands here too: its message shows above the form.
            let Some(errors) = form_errors(&e, FORM_FIELDS, "form") else {
                return Err(e);
            };
            edit_with_errors(&s, &user, &ctx, kind, id, f, errors, e.status()).await
        }
    }
}

/// The item's page again with the edit form as typed and what was wrong with it.
#[allow(clippy::too_many_arguments)]
async fn edit_with_errors(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: String,
    form: ResourceFormValues,
    errors: FormErrors,
    status: StatusCode,
) -> Result<Response> {
    let url = item_url(ctx, kind, &id);
    let mut page = item_page(s, user, ctx, kind, id).await?;
    for a in &mut page.agents {
        a.selected = a.id == form.agent_id;
    }
    page.form = form;
    page.errors = errors;
    Ok(shown_at(render_status(status, &page)?, &url))
}

/// The share dialog's choices: `visibility`, and one `u.<user id>` / `t.<team id>` field
/// per member or team it is shared with (checkboxes, so no repeated names).
fn share_input(kind: ResourceKind, form: &BTreeMap<String, String>) -> Result<Input, String> {
    let visibility = form
        .get("visibility")
        .and_then(|v| parse_visibility(v))
        .ok_or("choose who can see it")?;
    let pick = |prefix: &str| -> Vec<String> {
        form.keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut input = Input::new(Patch::empty(kind));
    input.visibility = Some(visibility);
    input.shared_with = Some(SharedWithInput {
        users: pick("u."),
        teams: pick("t."),
    });
    input.version = form.get("version").and_then(|v| v.trim().parse().ok());
    Ok(input)
}

async fn share(
    State(s): State<AppState>,
    Kind(kind): Kind,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<BTreeMap<String, String>>,
) -> Result<Response> {
    let result = match share_input(kind, &f) {
        Ok(input) => svc::update(&s.svc, &ctx, &user.actor(), resource_id(&id)?, input)
            .await
            .map(|_| ()),
        Err(why) => Err(AppError::bad_request("invalid_form", why)),
    };
    match result {
        Ok(()) => Ok(see_other(&format!(
            "{}?done=shared",
            item_url(&ctx, kind, &id)
        ))),
        Err(e) if is_user_error(&e) => {
            let mut page = item_page(&s, &user, &ctx, kind, id.clone()).await?;
            let d = &mut page.share;
            d.open = true;
            d.error = Some(e.public_message());
            if let Some(v) = f.get("visibility") {
                d.visibility.clone_from(v);
            }
            for m in &mut d.members {
                m.selected = f.contains_key(&format!("u.{}", m.id));
            }
            for t in &mut d.teams {
                t.selected = f.contains_key(&format!("t.{}", t.id));
            }
            Ok(shown_at(
                render_status(e.status(), &page)?,
                &item_url(&ctx, kind, &id),
            ))
        }
        Err(e) => Err(e),
    }
}

/// After an action on an item's page: where to go, or the page with what went wrong.
async fn answer(
    s: &AppState,
    user: &CurrentUser,
    ctx: &OrgContext,
    kind: ResourceKind,
    id: String,
    result: Result<()>,
    success: String,
) -> Result<Response> {
    match result {
        Ok(()) => Ok(see_other(&success)),
        Err(e) if is_user_error(&e) => {
            let url = item_url(ctx, kind, &id);
            let mut page = item_page(s, user, ctx, kind, id).await?;
            page.error = Some(e.public_message());
            Ok(shown_at(render_status(e.status(), &page)?, &url))
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn delete(
    State(s): State<AppState>,
    Kind(kind): Kind,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    let result = svc::delete(&s.svc, &ctx, &user.actor(), kind, resource_id(&id)?).await;
    let success = format!("{}?done=deleted", list_url(&ctx, kind));
    answer(&s, &user, &ctx, kind, id, result, success).await
}

async fn access(
    State(s): State<AppState>,
    OrgCtx { user, ctx }: OrgCtx,
    Kind(kind): Kind,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let view = svc::get(&s.svc, &ctx, kind, resource_id(&id)?).await?;
    let list = svc::explain_access(&s.svc, &ctx, kind, resource_id(&id)?, None).await?;
    let people = org_people(&s, &ctx).await?;
    let rows = list
        .into_iter()
        .map(|a| {
            let uid = a.user_id.to_string();
            let who = people.iter().find(|p| p.id == uid);
            AccessRow {
                name: who.map_or_else(|| uid.clone(), |p| p.name.clone()),
                email: who.map(|p| p.email.clone()).unwrap_or_default(),
                role: a.role.map(|r| r.to_string()).unwrap_or_default(),
                can_read: a.can_read,
                can_write: a.can_write,
                reasons: a.reasons.iter().map(ToString::to_string).collect(),
            }
        })
        .collect();
    let r = view.resource;
    let title = format!("Who has access to {} · {}", r.name, ctx.org().name);
    render(&AccessPage {
        layout: layout(&s, &user, &title, Some(ctx.org_id())).await?,
        nav: nav(&ctx, kind.path()),
        kind: KindLabel::of(kind),
        item_id: r.id.to_string(),
        item_name: r.name,
        visibility: r.visibility.as_str().to_string(),
        rows,
    })
}

#[derive(Deserialize)]
struct KbForm {
    #[serde(default)]
    document_id: String,
}

async fn kb_add(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<KbForm>,
) -> Result<Response> {
    let kind = ResourceKind::KnowledgeBase;
    let result = if f.document_id.trim().is_empty() {
        Err(AppError::bad_request(
            "invalid_form",
            "choose a document to add",
        ))
    } else {
        svc::kb_document(
            &s.svc,
            &ctx,
            &user.actor(),
            resource_id(&id)?,
            resource_id(&f.document_id)?,
            true,
        )
        .await
        .map(|_| ())
    };
    let success = format!("{}?done=doc_added", item_url(&ctx, kind, &id));
    answer(&s, &user, &ctx, kind, id, result, success).await
}

async fn kb_remove(
    State(s): State<AppState>,
    Path((_, id, doc)): Path<(String, String, String)>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    let kind = ResourceKind::KnowledgeBase;
    let result = svc::kb_document(
        &s.svc,
        &ctx,
        &user.actor(),
        resource_id(&id)?,
        resource_id(&doc)?,
        false,
    )
    .await
    .map(|_| ());
    let success = format!("{}?done=doc_removed", item_url(&ctx, kind, &id));
    answer(&s, &user, &ctx, kind, id, result, success).await
}

#[derive(Deserialize)]
struct MessageForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: String,
}

async fn add_message(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<MessageForm>,
) -> Result<Response> {
    let kind = ResourceKind::Conversation;
    let result = svc::add_message(
        &s.svc,
        &ctx,
        &user.actor(),
        resource_id(&id)?,
        &f.role,
        &f.content,
    )
    .await;
    match result {
        Ok(_) => Ok(see_other(&format!(
            "{}?done=message",
            item_url(&ctx, kind, &id)
        ))),
        Err(e) => {
            let Some(errors) = form_errors(&e, &["role", "content"], "content") else {
                return Err(e);
            };
            let url = item_url(&ctx, kind, &id);
            let mut page = item_page(&s, &user, &ctx, kind, id).await?;
            page.message_role = f.role;
            page.message_content = f.content;
            page.message_errors = errors;
            Ok(shown_at(render_status(e.status(), &page)?, &url))
        }
    }
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
            message_role: "user".into(),
            message_content: String::new(),
            message_errors: FormErrors::default(),
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
