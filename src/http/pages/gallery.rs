//! The public gallery: public items of every organization, read-only, for every signed-in
//! user (`/gallery/{type}`), with search and pages.
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;

use super::resources::decode_after;
use super::{layout, render, see_other, urlencode};
use crate::db::repo::resources::{ListQuery, ResourceKind};
use crate::domain::format;
use crate::error::{AppError, Result};
use crate::http::api::pagination::encode_cursor;
use crate::http::extract::CurrentUser;
use crate::http::state::AppState;
use crate::http::views::{GalleryCard, GalleryPage, GalleryTab, KindLabel, short_time};
use crate::services::resources as svc;

/// Cards per page.
const PAGE_SIZE: i64 = 24;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/gallery",
            get(|| async { see_other("/gallery/agents").into_response() }),
        )
        .route("/gallery/{type}", get(index))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GalleryParams {
    q: String,
    cursor: String,
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// One line about the item itself, from the fields the gallery shows.
fn detail_of(kind: ResourceKind, v: &Value) -> String {
    match kind {
        ResourceKind::Agent => match v["model"].as_str() {
            Some(m) if !m.is_empty() => format!("model {m}"),
            _ => String::new(),
        },
        ResourceKind::Workflow => {
            let n = v["steps"].as_array().map_or(0, Vec::len);
            format!("{n} step{}", if n == 1 { "" } else { "s" })
        }
        ResourceKind::Document => {
            let size = v["size_bytes"].as_i64().unwrap_or(0);
            format!("{} · {}", str_of(v, "filename"), format::bytes(size))
        }
        ResourceKind::KnowledgeBase => match v["embedding_model"].as_str() {
            Some(m) if !m.is_empty() => format!("embeddings {m}"),
            _ => String::new(),
        },
        ResourceKind::Tool | ResourceKind::Conversation => String::new(),
    }
}

fn card(kind: ResourceKind, v: &Value) -> GalleryCard {
    GalleryCard {
        id: str_of(v, "id"),
        name: str_of(v, "name"),
        description: str_of(v, "description"),
        organization: v["organization"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        detail: detail_of(kind, v),
        created: short_time(&str_of(v, "created_at")),
    }
}

fn href(path: &str, q: &str, cursor: Option<String>) -> String {
    let mut pairs = Vec::new();
    if !q.is_empty() {
        pairs.push(format!("q={}", urlencode(q)));
    }
    if let Some(c) = cursor {
        pairs.push(format!("cursor={c}"));
    }
    if pairs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", pairs.join("&"))
    }
}

async fn index(
    State(s): State<AppState>,
    user: CurrentUser,
    Path(ty): Path<String>,
    Query(p): Query<GalleryParams>,
) -> Result<Response> {
    let kind = ResourceKind::from_path(&ty).ok_or_else(AppError::not_found)?;
    let q: String = p.q.trim().chars().take(200).collect();
    let mut rows = svc::public(
        &s.svc,
        kind,
        ListQuery {
            visibility: None,
            q: Some(q.clone()).filter(|q| !q.is_empty()),
            after: decode_after(&p.cursor),
            limit: PAGE_SIZE + 1,
        },
    )
    .await?;
    let base = format!("/gallery/{}", kind.path());
    let older_href = if rows.len() as i64 > PAGE_SIZE {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map(|v| {
            let key = format!("{}|{}", str_of(v, "created_at"), str_of(v, "id"));
            href(&base, &q, Some(encode_cursor(&key)))
        })
    } else {
        None
    };
    let newest_href = (!p.cursor.is_empty()).then(|| href(&base, &q, None));
    let label = KindLabel::of(kind);
    let title = format!("Gallery · {}", label.plural);
    render(&GalleryPage {
        layout: layout(&s, &user, &title, None).await?,
        tabs: ResourceKind::ALL
            .into_iter()
            .map(|k| GalleryTab {
                path: k.path().to_string(),
                label: KindLabel::of(k).plural,
                current: k == kind,
            })
            .collect(),
        cards: rows.iter().map(|v| card(kind, v)).collect(),
        kind: label,
        q,
        older_href,
        newest_href,
    })
}

#[cfg(test)]
mod tests {
    use askama::Template;
    use serde_json::json;

    use super::*;
    use crate::http::views::Layout;

    #[test]
    fn gallery_cards_name_the_item_and_its_organization_only() {
        let v = json!({
            "id": "a1", "type": "agent", "name": "Helper", "description": "Answers <everything>",
            "created_at": "2026-11-28T14:05:09.123456Z", "model": "gpt-4o",
            "organization": {"name": "Acme"}
        });
        let c = card(ResourceKind::Agent, &v);
        assert_eq!(c.detail, "model gpt-4o");
        assert_eq!(c.organization, "Acme");
        let page = GalleryPage {
            layout: Layout::default(),
            kind: KindLabel::of(ResourceKind::Agent),
            tabs: ResourceKind::ALL
                .into_iter()
                .map(|k| GalleryTab {
                    path: k.path().into(),
                    label: KindLabel::of(k).plural,
                    current: k == ResourceKind::Agent,
                })
                .collect(),
            cards: vec![c],
            q: "help".into(),
            older_href: Some("/gallery/agents?q=help&cursor=abc".into()),
            newest_href: None,
        };
        let html = page.render().unwrap();
        assert!(html.contains("id=\"gallery-cards\""));
        assert!(
            html.contains("Answers &#60;everything&#62;")
                || html.contains("Answers &lt;everything&gt;")
        );
        assert!(html.contains("href=\"/gallery/agents\" aria-current=\"page\""));
        assert!(html.contains("id=\"gallery-older\""));
        assert!(html.contains("value=\"help\""));
        assert!(html.contains("Acme"));
    }

    #[test]
    fn details_describe_the_item() {
        let v = json!({"filename": "a.txt", "size_bytes": 2048});
        assert_eq!(detail_of(ResourceKind::Document, &v), "a.txt · 2 KiB");
        let v = json!({"steps": [{}, {}]});
        assert_eq!(detail_of(ResourceKind::Workflow, &v), "2 steps");
        assert_eq!(
            href("/gallery/tools", "a b", None),
            "/gallery/tools?q=a%20b"
        );
    }
}
