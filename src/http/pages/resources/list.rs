//! The list page of a resource kind: search, filter, pages, the new form and the upload.
use super::*;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ListParams {
    q: String,
    visibility: String,
    cursor: String,
    done: String,
    /// `1`: the create form starts open (where an empty list's link leads).
    new: String,
}

pub(super) async fn list_page(
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
            let cursor = encode_cursor(&time_key(v.resource.created_at, v.resource.id));
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
                updated: time_at(v.resource.updated_at),
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

pub(super) async fn index(
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
pub(super) async fn list_with_errors(
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

pub(super) async fn create(
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
pub(super) async fn read_upload_form(
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
pub(super) async fn upload(
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
