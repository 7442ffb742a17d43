//! The audit vocabulary: every action an audit row can carry. Integrations filter on these
//! names, so they are a contract: the writer refuses any other (see `db::repo::audit`), and
//! tests hold the OpenAPI enum and the README table to these lists.

/// Actions written to an organization's log (`GET /api/v1/orgs/{org}/audit`).
pub const ORG_AUDIT_ACTIONS: &[&str] = &[
    "organization.created",
    "organization.updated",
    "member.invited",
    "invitation.cancelled",
    "member.joined",
    "member.role_changed",
    "member.permissions_changed",
    "member.removed",
    "member.left",
    "team.created",
    "team.updated",
    "team.deleted",
    "team.member_added",
    "team.member_removed",
    "api_token.created",
    "api_token.revoked",
    "agent.created",
    "agent.updated",
    "agent.deleted",
    "workflow.created",
    "workflow.updated",
    "workflow.deleted",
    "document.created",
    "document.updated",
    "document.deleted",
    "tool.created",
    "tool.updated",
    "tool.deleted",
    "knowledge_base.created",
    "knowledge_base.updated",
    "knowledge_base.deleted",
    "knowledge_base.document_added",
    "knowledge_base.document_removed",
    "conversation.created",
    "conversation.updated",
    "conversation.deleted",
    "conversation.message_added",
    WORKFLOW_RUN_STARTED,
    WORKFLOW_RUN_CANCELLED,
    WORKFLOW_RUN_FINISHED,
    "resources.moved_in",
    "resources.moved_out",
    "llm.provider.updated",
    "llm.provider.deleted",
    "llm.policy.updated",
    "llm.user_key.updated",
    "llm.user_key.deleted",
    "quota.updated",
    "quota.alert",
    "audit.purged",
];

/// A workflow run is queued by a member.
pub const WORKFLOW_RUN_STARTED: &str = "workflow.run_started";
/// A member asks a run to stop.
pub const WORKFLOW_RUN_CANCELLED: &str = "workflow.run_cancelled";
/// A run ends: succeeded, failed, cancelled or interrupted (no actor).
pub const WORKFLOW_RUN_FINISHED: &str = "workflow.run_finished";

/// Actions written to the instance log (what happens outside any one organization).
pub const INSTANCE_AUDIT_ACTIONS: &[&str] = &[
    "user.created",
    "auth.login",
    "auth.login_failed",
    "session.revoked",
    "organization.deleted",
    "instance.signup_changed",
];
