"""The route table: every /api/v1 endpoint with what the OpenAPI document
needs to describe it. The app registers routes from this table and the
document is built from it, so the two cannot disagree."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api import (
    audit,
    code_search,
    configs,
    history,
    members,
    notebook_files,
    notebook_logs,
    notebook_teams,
    notebooks,
    offers,
    organization,
    sessions,
    stop_all,
    teams,
    trash,
    usage,
    webhooks,
)
from api.audit import Audited
from api.context import Ctx, Handler
from api.errors import BadRequest, PreconditionFailed, echoed
from api.validation import Schema, obj, read_body

BASE = "/api/v1"
EMPTY = obj({})


def bodiless(handler: Handler) -> Handler:
    """A DELETE takes no body: none or `{}` is fine, anything else is refused
    (a `{"force": true}` silently ignored would mislead its client)."""

    @functools.wraps(handler)  # keeps `revokes_access`
    async def checked(ctx: Ctx) -> web.StreamResponse:
        await read_body(ctx.request, EMPTY)
        return await handler(ctx)

    return checked


PAGE_PARAMETERS = frozenset({"limit", "marker"})


def query_checked(handler: Handler, allowed: frozenset[str]) -> Handler:
    """Only the query parameters a route takes, each once: one misspelt
    (`?limt=5`) or sent twice (`?limit=1&limit=50`) is refused, not ignored
    or read one way of two."""

    @functools.wraps(handler)
    async def checked(ctx: Ctx) -> web.StreamResponse:
        query = ctx.request.query
        for name in query:
            if name not in allowed:
                raise BadRequest(
                    f"This route takes no query parameter {echoed(name)}.",
                    code="unknown_parameter",
                    field=echoed(name),
                )
            if len(query.getall(name)) > 1:  # one of `allowed`: safe to echo as it is
                raise BadRequest(
                    f"The query parameter {name} is given more than once.",
                    code="repeated_parameter",
                    field=name,
                )
        return await handler(ctx)

    return checked


def no_etag(handler: Handler) -> Handler:
    """A write to a route that keeps no ETag: an `If-Match` naming a tag can
    never hold, and RFC 9110 13.1.1 says the method is then not performed
    (ignoring it would write what the client meant to make conditional).
    `*` (any current representation) is left to the route's own 404."""

    @functools.wraps(handler)
    async def checked(ctx: Ctx) -> web.StreamResponse:
        if_match = ctx.request.headers.get("If-Match")
        if if_match is not None and if_match.strip() != "*":
            raise PreconditionFailed(
                "This route has no ETag to match; If-Match is taken by PATCH and DELETE of a"
                " notebook.",
                code="etag_mismatch",
                field="If-Match",
            )
        return await handler(ctx)

    return checked


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # under BASE
    handler: Handler
    summary: str
    status: int  # success status
    response: str | None  # component schema name of the success body
    body: Schema | None = None
    body_required: bool = False
    paginated: bool = False
    errors: tuple[int, ...] = ()  # beyond 400/401 (and 404 when the path has ids)
    tag: str = "notebooks"
    etag: bool = False  # the handler judges If-Match itself
    # The success body's media type when it is not JSON (a string, then).
    media: str | None = None
    # Query parameters of its own beyond a page's: name -> OpenAPI parameter.
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    # What its success records in the organization's audit (api/audit.py).
    audit: Audited | None = None

    @property
    def checked_handler(self) -> Handler:
        """The handler behind the checks every route of its kind gets: the
        query first (lists take a page's parameters, every other route
        none), then a write's If-Match where it has no ETag, then a
        DELETE's body."""
        handler = bodiless(self.handler) if self.method == "DELETE" else self.handler
        if self.method != "GET" and not self.etag:
            handler = no_etag(handler)
        own = frozenset(name for name, _ in self.query)
        return query_checked(handler, (PAGE_PARAMETERS if self.paginated else frozenset()) | own)


# A table, one operation per entry: kept as written, not reformatted.
# fmt: off
NB = "/workloads/notebooks"
TRASH = "/workloads/deleted-notebooks"  # docs/api.md "Recently deleted"
OPS: list[Op] = [
    Op("GET", NB, notebooks.list_notebooks, "List the notebooks the caller can see", 200,
       "NotebookList", paginated=True,
       query=(("status", notebooks.STATUS_PARAMETER), ("owner", notebooks.OWNER_PARAMETER),
              ("q", notebooks.NAME_SEARCH_PARAMETER))),
    Op("POST", NB, notebooks.create_notebook, "Create a notebook (status stopped)", 201,
       "NotebookDescribe", body=notebooks.CREATE_SCHEMA, body_required=True,
       errors=(403, 415)),
    Op("GET", NB + "/{id}", notebooks.get_notebook, "Describe a notebook", 200,
       "NotebookDescribe", errors=(304,)),
    Op("PATCH", NB + "/{id}", notebooks.update_notebook, "Update a notebook", 200,
       "NotebookDescribe", body=notebooks.UPDATE_SCHEMA, errors=(403, 409, 415), etag=True),
    Op("DELETE", NB + "/{id}", notebooks.delete_notebook, "Delete a notebook", 204, None,
       errors=(403,), etag=True),
    Op("POST", NB + "/{id}/start", notebooks.start_notebook, "Start a notebook", 202,
       "NotebookDescribe", body=EMPTY, errors=(403, 409, 415)),
    Op("POST", NB + "/{id}/stop", notebooks.stop_notebook, "Stop a notebook", 202,
       "NotebookDescribe", body=EMPTY, errors=(403, 409, 415)),
    Op("POST", NB + "/{id}/open", sessions.open_notebook,
       "Get a short-lived single-use URL that opens the notebook", 200, "OpenResult",
       body=EMPTY, errors=(409, 415)),
    Op("POST", NB + "/{id}/ping", sessions.ping_notebook,
       "Record that the caller has the notebook open", 204, None, body=EMPTY,
       errors=(409, 415)),
    Op("GET", NB + "/{id}/file", notebook_files.get_notebook_file,
       "Download the notebook's file, as last copied (while it runs, and as it stops), or an"
       " earlier version", 200, None, errors=(304, 403), media=notebook_files.MEDIA_TYPE,
       query=(("version", notebook_files.VERSION_PARAMETER),)),
    Op("GET", NB + "/{id}/file/versions", notebook_files.list_file_versions,
       "List the versions kept of the notebook's file, newest first", 200,
       "NotebookFileVersionList", errors=(403,)),
    Op("POST", NB + "/{id}/file/restore", notebook_files.restore_file_version,
       "Restore an earlier version of the notebook's file, written at its next start", 200,
       "NotebookFileVersionList", body=notebook_files.RESTORE_SCHEMA, body_required=True,
       errors=(403, 409, 415)),
    Op("DELETE", NB + "/{id}/file/versions", notebook_files.forget_file_versions,
       "Forget every version of the notebook's file but the newest", 204, None,
       errors=(403,)),
    Op("GET", NB + "/{id}/logs", notebook_logs.get_notebook_logs,
       "Read the output of the notebook's Sail and Marimo, as last read (as it stopped, or"
       " when asked)", 200, "NotebookLogs", errors=(403,)),
    Op("POST", NB + "/{id}/logs", notebook_logs.ask_notebook_logs,
       "Ask a worker to read the running notebook's logs now", 202, "NotebookLogs",
       body=EMPTY, errors=(403, 409, 415)),
    Op("GET", "/workloads/code-search", code_search.search_code,
       "Find text in the code of the notebooks the caller may see (their kept files), most"
       " recently kept first", 200, "CodeSearch", query=(("q", code_search.Q_PARAMETER),)),
    Op("GET", TRASH, trash.list_trash,
       "List the recently deleted notebooks the caller could have deleted (their own, those of"
       " a team they are an admin of; an org admin: the organization's), newest first", 200,
       "DeletedNotebookList", paginated=True),
    Op("GET", TRASH + "/{id}/file", trash.trashed_file,
       "Download a recently deleted notebook's file", 200, None, errors=(304,),
       media=notebook_files.MEDIA_TYPE),
    Op("POST", TRASH + "/{id}/restore", trash.bring_back,
       "Bring a recently deleted notebook back, as a new notebook", 201, "NotebookDescribe",
       body=trash.BRING_BACK_SCHEMA, errors=(403, 409, 415)),
    Op("DELETE", TRASH + "/{id}", trash.forget_trashed,
       "Forget a recently deleted notebook now", 204, None, errors=(403,)),
    Op("GET", NB + "/{id}/events", history.list_notebook_events,
       "List a notebook's status changes, newest first", 200, "NotebookEventList",
       paginated=True),
    Op("GET", NB + "/{id}/teams", notebook_teams.list_notebook_teams,
       "List the teams a notebook is shared with", 200, "TeamList", paginated=True),
    Op("POST", NB + "/{id}/teams", notebook_teams.add_notebook_teams,
       "Share a notebook with teams (idempotent)", 200, "TeamList",
       body=notebook_teams.LINK_SCHEMA, body_required=True, errors=(403, 415)),
    Op("DELETE", NB + "/{id}/teams/{team}", notebook_teams.remove_notebook_team,
       "Stop sharing a notebook with a team", 204, None, errors=(403,)),
    Op("PUT", NB + "/{id}/offer", offers.put_offer,
       "Offer a notebook to a colleague (its owner; they accept or decline)", 200, "Offer",
       body=offers.OFFER_SCHEMA, body_required=True, errors=(403, 415)),
    Op("GET", NB + "/{id}/offer", offers.get_offer, "The notebook's pending offer", 200,
       "Offer"),
    Op("DELETE", NB + "/{id}/offer", offers.delete_offer,
       "Withdraw an offer (its owner) or decline it (its recipient)", 204, None,
       errors=(403,)),
    Op("POST", NB + "/{id}/offer/accept", offers.accept_offer,
       "Accept an offer: the notebook becomes the caller's", 200, "NotebookDescribe",
       body=EMPTY, errors=(403, 409, 415)),
    Op("GET", "/workloads/teams/{team}/notebooks", notebook_teams.list_team_notebooks,
       "List the notebooks shared with a team", 200, "NotebookList", paginated=True,
       errors=(403,), query=(("status", notebooks.STATUS_PARAMETER),
                             ("q", notebooks.NAME_SEARCH_PARAMETER))),
    Op("GET", "/audit", audit.list_audit,
       "List the organization's administration (members, tokens, teams, workload configs,"
       " limits, webhooks: who changed what), newest first", 200, "AuditList",
       paginated=True, errors=(403,), tag="members",
       query=(("actor", audit.ACTOR_PARAMETER),)),
    Op("GET", "/events", history.list_org_events,
       "The organization's activity: every notebook's history, newest first", 200,
       "ActivityList", paginated=True, errors=(403,),
       query=(("actor", history.ACTOR_PARAMETER), ("notebook", history.NOTEBOOK_PARAMETER))),
    Op("GET", "/usage", usage.org_usage,
       "How long the organization's notebooks held servers in a window, by owner and notebook",
       200, "Usage", errors=(403,),
       query=(("from", usage.FROM_PARAMETER), ("to", usage.TO_PARAMETER))),
    Op("GET", "/usage/export", usage.org_usage_export,
       "Every notebook's usage in a window, one CSV line each (org admins)", 200, None,
       errors=(403,), media=usage.CSV_MEDIA_TYPE,
       query=(("from", usage.FROM_PARAMETER), ("to", usage.TO_PARAMETER))),
    Op("POST", "/webhooks", webhooks.create_webhook,
       "Add a webhook: the URL is told of the organization's notebooks' status changes (org"
       " admins); its signing secret is answered once", 201, "WebhookCreated",
       body=webhooks.CREATE_SCHEMA, body_required=True, errors=(403, 409, 415), tag="members",
       audit=Audited("webhook.created", "webhook", None)),
    Op("GET", "/webhooks", webhooks.list_webhooks, "List the organization's webhooks (org admins)",
       200, "WebhookList", errors=(403,), tag="members"),
    Op("PATCH", "/webhooks/{id}", webhooks.update_webhook,
       "Change a webhook's URL, description or statuses, keeping its secret and deliveries, or"
       " disable or enable it (org admins)", 200, "Webhook", body=webhooks.UPDATE_SCHEMA,
       body_required=True, errors=(403, 415), tag="members",
       audit=Audited("webhook.updated", "webhook", "id")),
    Op("DELETE", "/webhooks/{id}", webhooks.delete_webhook,
       "Delete a webhook, and its deliveries (org admins)", 204, None, errors=(403,),
       tag="members",
       audit=Audited("webhook.deleted", "webhook", "id")),
    Op("POST", "/webhooks/{id}/secret", webhooks.rotate_secret,
       "Give a webhook a new signing secret, answered once; the old one signs beside it for a"
       " day (org admins)", 200, "WebhookCreated", body=EMPTY, errors=(403, 415),
       tag="members",
       audit=Audited("webhook.secret_renewed", "webhook", "id")),
    Op("POST", "/webhooks/{id}/test", webhooks.test_webhook,
       "Send a webhook a test delivery (type webhook.test), as any other (org admins)", 202,
       "WebhookTestDelivery", body=EMPTY, errors=(403, 409, 415), tag="members"),
    Op("GET", "/webhooks/{id}/deliveries", webhooks.list_deliveries,
       "A webhook's newest deliveries (50), how each went (org admins)", 200,
       "WebhookDeliveryList", errors=(403,), tag="members"),
    Op("GET", "/organization", organization.get_organization,
       "The caller's organization, the running limits, timeout caps and default timeouts that"
       " apply", 200,
       "Organization",
       tag="members"),
    Op("PATCH", "/organization", organization.update_organization,
       "Set the organization's own running limits, timeout caps and default timeouts (org"
       " admins)", 200,
       "Organization",
       body=organization.UPDATE_SCHEMA, errors=(403, 415), tag="members",
       audit=Audited("organization.updated", "organization", "organization")),
    Op("GET", "/me", members.me, "The calling member", 200, "Me", tag="members"),
    Op("GET", "/me/usage", usage.my_usage,
       "How long the caller's own notebooks held servers in a window", 200, "Usage",
       tag="members", query=(("from", usage.FROM_PARAMETER), ("to", usage.TO_PARAMETER))),
    Op("GET", "/me/usage/export", usage.my_usage_export,
       "Every notebook of the caller's usage in a window, one CSV line each", 200, None,
       media=usage.CSV_MEDIA_TYPE, tag="members",
       query=(("from", usage.FROM_PARAMETER), ("to", usage.TO_PARAMETER))),
    Op("GET", "/me/offers", offers.list_my_offers,
       "List the notebooks offered to the caller, newest first", 200, "OfferList",
       paginated=True, tag="members"),
    Op("GET", "/members", members.list_members, "List the organization's members", 200,
       "MemberList", paginated=True, errors=(403,), tag="members",
       query=(("q", members.SEARCH_PARAMETER), ("disabled", members.DISABLED_PARAMETER))),
    Op("POST", "/organization/stop-notebooks", stop_all.stop_all,
       "Stop every starting, running, idle or detached notebook of the organization, or of one"
       " member (org admins), as their owners' Stop would", 200, "StoppedAll",
       body=stop_all.STOP_ALL_SCHEMA, errors=(403, 415), tag="members",
       audit=Audited("organization.notebooks_stopped", "organization", "organization")),
    Op("POST", "/members", members.create_member, "Add a member", 201, "Member",
       body=members.MEMBER_SCHEMA, body_required=True, errors=(403, 409, 415),
       tag="members",
       audit=Audited("member.added", "member", None)),
    Op("PATCH", "/members/{member}", members.update_member,
       "Rename a member, or make them an organization admin or not", 200, "Member",
       body=members.MEMBER_UPDATE_SCHEMA, errors=(403, 409, 415), tag="members",
       audit=Audited("member.updated", "member", "member")),
    Op("DELETE", "/members/{member}", members.disable_member,
       "Disable a member (its tokens stop working at once)", 204, None, errors=(403, 409),
       tag="members",
       audit=Audited("member.disabled", "member", "member")),
    Op("POST", "/members/{member}/handover", notebooks.hand_on_all,
       "Hand every notebook a member owns on to another member", 200, "HandedOn",
       body=notebooks.HAND_ON_ALL_SCHEMA, body_required=True, errors=(403, 409, 415),
       tag="members",
       audit=Audited("member.notebooks_handed_on", "member", "member")),
    Op("POST", "/members/{member}/enable", members.enable_member,
       "Enable a disabled member again (their old tokens are revoked)", 200, "Member",
       body=EMPTY, errors=(403, 409, 415), tag="members",
       audit=Audited("member.enabled", "member", "member")),
    Op("POST", "/members/{member}/tokens", members.create_token,
       "Create an API token (the secret is shown once)", 201, "NewToken",
       body=members.TOKEN_SCHEMA, body_required=True, errors=(403, 415), tag="members",
       audit=Audited("token.created", "token", None, others_only=True)),
    Op("GET", "/members/{member}/tokens", members.list_tokens,
       "List a member's live API tokens (never the secrets)", 200, "TokenList",
       paginated=True, errors=(403,), tag="members"),
    Op("DELETE", "/members/{member}/tokens/{token}", members.revoke_token,
       "Revoke an API token", 204, None, errors=(403,), tag="members",
       audit=Audited("token.revoked", "token", "token", others_only=True)),
    Op("GET", "/teams", teams.list_teams, "List the organization's teams", 200, "TeamList",
       paginated=True, tag="teams"),
    Op("POST", "/teams", teams.create_team, "Create a team", 201, "Team",
       body=teams.TEAM_SCHEMA, body_required=True, errors=(403, 409, 415), tag="teams",
       audit=Audited("team.created", "team", None)),
    Op("PATCH", "/teams/{team}", teams.rename_team, "Rename a team", 200, "Team",
       body=teams.TEAM_SCHEMA, body_required=True, errors=(403, 409, 415), tag="teams",
       audit=Audited("team.renamed", "team", "team")),
    Op("DELETE", "/teams/{team}", teams.delete_team,
       "Delete a team (its memberships and notebook shares go with it)", 204, None,
       errors=(403,), tag="teams",
       audit=Audited("team.deleted", "team", "team")),
    Op("GET", "/teams/{team}/members", teams.list_team_members, "List a team's members",
       200, "TeamMembershipList", paginated=True, tag="teams"),
    Op("PUT", "/teams/{team}/members/{member}", teams.put_team_member,
       "Add a member to a team or change its role", 200, "TeamMembership",
       body=teams.ROLE_SCHEMA, body_required=True, errors=(403, 415), tag="teams",
       audit=Audited("team.member_set", "member", "member")),
    Op("DELETE", "/teams/{team}/members/{member}", teams.delete_team_member,
       "Remove a member from a team", 204, None, errors=(403,), tag="teams",
       audit=Audited("team.member_removed", "member", "member")),
    Op("GET", "/workloads/configs", configs.list_configs, "List workload configs", 200,
       "WorkloadConfigList", paginated=True, tag="configs"),
    Op("POST", "/workloads/configs", configs.create_config, "Create a workload config", 201,
       "WorkloadConfig", body=configs.CREATE_SCHEMA, body_required=True,
       errors=(403, 409, 415), tag="configs",
       audit=Audited("workload_config.created", "workload_config", None)),
    Op("GET", "/workloads/configs/{config}", configs.get_config, "Describe a workload config",
       200, "WorkloadConfig", tag="configs"),
    Op("PATCH", "/workloads/configs/{config}", configs.update_config,
       "Update a workload config (applies at each notebook's next start)", 200,
       "WorkloadConfig", body=configs.UPDATE_SCHEMA, errors=(403, 409, 415), tag="configs",
       audit=Audited("workload_config.updated", "workload_config", "config")),
    Op("DELETE", "/workloads/configs/{config}", configs.delete_config,
       "Delete a workload config not used by any notebook", 204, None, errors=(403, 409),
       tag="configs",
       audit=Audited("workload_config.deleted", "workload_config", "config")),
]
# fmt: on
