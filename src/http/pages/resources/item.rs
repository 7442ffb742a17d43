//! One item's page: its edit form, the share dialog, delete, "who has access", a
//! knowledge base's documents and a conversation's messages.
use super::*;
use crate::domain::Principal;

pub(super) async fn share_dialog(
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
            selected: UserId::parse(&p.id)
                .is_some_and(|u| r.shared_with.contains(Principal::User(u))),
        })
        .collect();
    let teams: Vec<ChoiceOption> = team_list
        .into_iter()
        .map(|t| ChoiceOption {
            selected: r.shared_with.contains(Principal::Team(t.id)),
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
            r.shared_with.users().map(|u| u.to_string()).collect()
        } else {
            Vec::new()
        },
        kept_teams: if teams_listed {
            Vec::new()
        } else {
            r.shared_with.teams().map(|t| t.to_string()).collect()
        },
        members,
        teams,
        error: None,
    })
}

/// The item's header: name, owner and times as people read them.
pub(super) fn detail_of(r: &crate::db::repo::resources::Resource, names: &Names) -> ResourceDetail {
    ResourceDetail {
        id: r.id.to_string(),
        name: r.name.clone(),
        description: r.description.clone(),
        visibility: r.visibility.as_str().to_string(),
        owner: names.of(r.owner_id),
        created: time_at(r.created_at),
        updated: time_at(r.updated_at),
        version: r.version,
    }
}

/// A knowledge base's documents (named when the viewer can read them, else by id) and
/// the readable documents that can still be added.
pub(super) fn kb_rows(
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
                status: String::new(),
                state: String::new(),
            },
            None => KbDocumentRow {
                id: d.clone(),
                name: d.clone(),
                readable: false,
                status: String::new(),
                state: String::new(),
            },
        })
        .collect();
    let candidates = readable
        .into_iter()
        .filter(|o| !inside.contains(&o.id))
        .collect();
    (rows, candidates)
}

pub(super) async fn item_page(
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
    let (mut kb_documents, kb_candidates) = if kind == ResourceKind::KnowledgeBase {
        let readable = choices(s, ctx, ResourceKind::Document, "", &names).await?;
        kb_rows(&view.documents.clone().unwrap_or_default(), readable)
    } else {
        (Vec::new(), Vec::new())
    };
    if kind == ResourceKind::KnowledgeBase {
        kb_statuses(s, ctx, r.id, &mut kb_documents).await?;
    }
    let (messages, chat_model) = if kind == ResourceKind::Conversation {
        let docs = choices(s, ctx, ResourceKind::Document, "", &names).await?;
        let rows = svc::messages(&s.svc, ctx, r.id, None, 500)
            .await?
            .into_iter()
            .map(|m| {
                let author = names.of(m.user_id);
                message_row(ctx, m, author, &docs)
            })
            .collect();
        let model = conversation_model(s, ctx, &form.agent_id).await;
        (rows, model)
    } else {
        (Vec::new(), String::new())
    };
    let (memory_mode, memory) = if kind == ResourceKind::Agent {
        memory_rows(s, ctx, &view).await?
    } else {
        (String::new(), Vec::new())
    };
    let runs = if kind == ResourceKind::Workflow {
        run_rows(s, ctx, r.id, &names).await?
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
        message_content: String::new(),
        message_errors: FormErrors::default(),
        chat_model,
        memory_mode,
        memory,
        memory_errors: FormErrors::default(),
        memory_key: String::new(),
        memory_value: String::new(),
        runs_active: runs.iter().any(|r| r.cancellable),
        runs,
        can_run: has_permission(ctx, Permission::LlmUse),
        run_input: String::new(),
        run_errors: FormErrors::default(),
        kind: label,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ShowParams {
    done: String,
}

pub(super) async fn show(
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
        "run_started" => Some("Run started; it works in the background.".into()),
        "run_cancelled" => Some("Run cancelled.".into()),
        "remembered" => Some("Fact remembered.".into()),
        "forgotten" => Some("Fact forgotten.".into()),
        "fact_saved" => Some("Fact saved.".into()),
        _ => None,
    };
    render(&page)
}

pub(super) async fn update(
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
pub(super) async fn edit_with_errors(
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
pub(super) fn share_input(
    kind: ResourceKind,
    form: &BTreeMap<String, String>,
) -> Result<Input, String> {
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

pub(super) async fn share(
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
pub(super) async fn answer(
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
pub(super) struct Empty {}

pub(super) async fn delete(
    State(s): State<AppState>,
    Kind(kind): Kind,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    let rid = resource_id(&id)?;
    let result = svc::delete(&s.svc, &ctx, &user.actor(), kind, rid)
        .await
        .map(|bases| {
            crate::services::knowledge::forget(&s.knowledge, ctx.org_id(), kind, rid, &bases);
        });
    let success = format!("{}?done=deleted", list_url(&ctx, kind));
    answer(&s, &user, &ctx, kind, id, result, success).await
}

pub(super) async fn access(
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
pub(super) struct KbForm {
    #[serde(default)]
    document_id: String,
}

pub(super) async fn kb_add(
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
        crate::services::knowledge::add_document(
            &s.svc,
            &s.knowledge,
            &ctx,
            &user.actor(),
            resource_id(&id)?,
            resource_id(&f.document_id)?,
        )
        .await
        .map(|_| ())
    };
    let success = format!("{}?done=doc_added", item_url(&ctx, kind, &id));
    answer(&s, &user, &ctx, kind, id, result, success).await
}

pub(super) async fn kb_remove(
    State(s): State<AppState>,
    Path((_, id, doc)): Path<(String, String, String)>,
    OrgForm(OrgCtx { user, ctx }, _): OrgForm<Empty>,
) -> Result<Response> {
    let kind = ResourceKind::KnowledgeBase;
    let result = crate::services::knowledge::remove_document(
        &s.svc,
        &s.knowledge,
        &ctx,
        &user.actor(),
        resource_id(&id)?,
        resource_id(&doc)?,
    )
    .await;
    let success = format!("{}?done=doc_removed", item_url(&ctx, kind, &id));
    answer(&s, &user, &ctx, kind, id, result, success).await
}

#[derive(Deserialize)]
pub(super) struct MessageForm {
    #[serde(default)]
    content: String,
}

pub(super) async fn add_message(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OrgForm(OrgCtx { user, ctx }, f): OrgForm<MessageForm>,
) -> Result<Response> {
    let kind = ResourceKind::Conversation;
    // Without script the form posts here and the page shows the stored reply; the
    // page's script streams the reply through the API instead.
    let result = crate::services::chat::post(
        &s.svc,
        &s.gateway.models,
        &s.knowledge,
        &ctx,
        &user.actor(),
        resource_id(&id)?,
        &f.content,
    )
    .await;
    match result {
        Ok(_) => Ok(see_other(&format!(
            "{}?done=message",
            item_url(&ctx, kind, &id)
        ))),
        Err(e) => {
            // A refused model call (quota, no key, the provider failing) is said under
            // the message box, which keeps what was typed.
            let errors = form_errors(&e, &["content"], "content").or_else(|| {
                matches!(e.status().as_u16(), 424 | 429 | 502 | 504)
                    .then(|| FormErrors::one("content", e.public_message()))
            });
            let Some(errors) = errors else {
                return Err(e);
            };
            let url = item_url(&ctx, kind, &id);
            let mut page = item_page(&s, &user, &ctx, kind, id).await?;
            page.message_content = f.content;
            page.message_errors = errors;
            Ok(shown_at(render_status(e.status(), &page)?, &url))
        }
    }
}

/// The model a conversation's agent answers with, for the page ("" when unknown).
async fn conversation_model(s: &AppState, ctx: &OrgContext, agent_id: &str) -> String {
    let Some(id) = crate::domain::ResourceId::parse(agent_id) else {
        return String::new();
    };
    match svc::get(&s.svc, ctx, ResourceKind::Agent, id).await {
        Ok(v) => match &v.resource.fields {
            crate::db::repo::resources::Fields::Agent(a) => a
                .model
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the organization's default model".into()),
            _ => String::new(),
        },
        Err(_) => String::new(),
    }
}
