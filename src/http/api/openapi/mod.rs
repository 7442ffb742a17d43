//! The OpenAPI description of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and response types (utoipa), so a route, a field or a
//! status cannot change without the document changing with it.
//!
//! What JSON Schema says beyond a Rust type (lengths, patterns, the words of a closed list)
//! is written next to the field it describes; the schemas of values used in many places
//! (names, ids, the error envelope) are in `schemas`; `kinds` writes the `{type}` resource
//! routes out once per kind.
mod kinds;
mod schemas;

use std::sync::LazyLock;

use utoipa::openapi::RefOr;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use schemas::*;

use super::{
    admin, agents, audit, auth, llm, me, members, orgs, resources, security, usage, workflows,
};
use crate::domain::{Permission, Role, Visibility};
use kinds::PerKind;

/// The document, serialized once.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string(&ApiDoc::openapi()).unwrap_or_else(|_| "{}".to_string())
});

#[derive(OpenApi)]
#[openapi(
    info(
        title = "xagent API",
        description = "Organization layer of the xAgent platform. Authenticate with the session cookie `xagent_session` (state-changing calls then need the `X-CSRF-Token` header with the csrf_token from login) or with `Authorization: Bearer xa_...` (an API token acting in one organization). Errors are `{\"error\":{\"code\",\"message\",\"fields?\"}}`; another organization's objects are 404.",
    ),
    servers((url = "/")),
    security(("session" = [], "csrf" = []), ("token" = [])),
    paths(
        crate::http::healthz,
        crate::http::readyz,
        auth::signup,
        auth::login,
        auth::logout,
        me::me,
        me::set_current,
        me::list_tokens,
        me::create_token,
        me::revoke_token,
        me::list_sessions,
        me::revoke_session,
        security::forgot_password,
        security::reset_password,
        security::change_password,
        security::sign_out_everywhere,
        security::two_factor_status,
        security::start_totp,
        security::confirm_totp,
        security::regenerate_codes,
        security::disable_totp,
        orgs::list,
        orgs::create,
        orgs::show,
        orgs::update,
        orgs::delete_org,
        orgs::roles,
        members::list_members,
        members::get_member,
        members::update_member,
        members::remove_member,
        members::list_invitations,
        members::invite,
        members::cancel_invitation,
        members::accept,
        members::list_teams,
        members::create_team,
        members::get_team,
        members::update_team,
        members::delete_team,
        members::add_team_member,
        members::remove_team_member,
        audit::list,
        audit::export,
        llm::settings,
        llm::put_provider,
        llm::delete_provider,
        llm::test_org_provider,
        llm::patch_policy,
        llm::resolve,
        llm::my_keys,
        llm::put_my_key,
        llm::delete_my_key,
        llm::test_my_key,
        security::show,
        security::update,
        security::revoke_access,
        security::test_sso,
        usage::usage,
        usage::usage_csv,
        usage::show,
        usage::update,
        usage::invoices,
        usage::invoice,
        usage::list_credit_notes,
        usage::issue_credit_note,
        usage::notifications,
        usage::webhook_deliveries,
        usage::read_notification,
        me::move_to_org,
        resources::list,
        resources::create,
        resources::show,
        resources::update,
        resources::remove,
        resources::access,
        resources::content,
        resources::replace_content,
        agents::list_messages,
        agents::post_message,
        agents::kb_documents,
        agents::kb_add_by_body,
        agents::kb_add,
        agents::kb_remove,
        agents::kb_search,
        agents::memory_list,
        agents::memory_add,
        agents::memory_change,
        agents::memory_remove,
        workflows::start_run,
        workflows::list_runs,
        workflows::get_run,
        workflows::cancel_run,
        resources::limits,
        resources::summary,
        resources::accessible,
        resources::public,
        admin::list_orgs,
        admin::show_org,
        admin::change_org,
        admin::delete_org,
        admin::enter_org,
        admin::list_users,
        admin::show_user,
        admin::change_user,
        admin::sign_out_user,
        admin::reset_link,
        admin::reset_two_factor,
        admin::list_plans,
        admin::create_plan,
        admin::change_plan,
        admin::delete_plan,
        admin::list_prices,
        admin::create_price,
        admin::change_price,
        admin::delete_price,
        admin::settings,
        admin::change_settings,
        admin::test_mail,
        admin::audit,
        admin::audit_export,
    ),
    components(
        schemas(ErrorBody, Health, Role, Permission, Visibility, crate::domain::schemas::AuditAction, crate::domain::schemas::InstanceAuditAction),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            PayloadTooLarge,
            Unprocessable,
            TooManyRequests,
            InternalError
        )
    ),
    modifiers(&SecuritySchemes, &PerKind, &PathParametersRequired),
)]
struct ApiDoc;

/// The three ways to authenticate, named by every operation's `security`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::http::extract::SESSION_COOKIE,
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-CSRF-Token"))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("xa_...")
                    .build(),
            ),
        );
    }
}

/// A path parameter is always required (OpenAPI says so); a parameter whose schema is a
/// function's comes out optional.
struct PathParametersRequired;

impl Modify for PathParametersRequired {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                for p in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(p) = p
                        && p.parameter_in == ParameterIn::Path
                    {
                        p.required = utoipa::openapi::Required::True;
                    }
                }
            }
        }
    }
}

/// What the handlers' annotations name.
pub mod prelude {
    pub use super::{
        AnyResource, BadRequest, Binary, Conflict, ExportFormatQuery, Forbidden, Guarded, IdPath,
        IfMatch, InternalError, InvoicePath, KindPath, MethodNotAllowed, NotFound, OrgPath,
        PayloadTooLarge, ProviderPath, PublicResource, ResourceChange, ResourceCreate, Sent,
        TooManyRequests, Unauthorized, Unprocessable,
    };
    pub use crate::http::api::pagination::Page as PageQuery;
    pub use crate::http::api::{ItemsOnly, Page as ListPage};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        let text = DOCUMENT.as_str();
        let mut missing = Vec::new();
        for part in text.split("\"$ref\":\"#/components/").skip(1) {
            let target = part.split('"').next().unwrap();
            let mut node = &doc["components"];
            for key in target.split('/') {
                node = &node[key];
            }
            if node.is_null() {
                missing.push(target.to_string());
            }
        }
        assert!(missing.is_empty(), "dangling references: {missing:?}");
    }
}
