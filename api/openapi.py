"""The OpenAPI 3.1 document, built from the route table and the very schemas
request bodies are validated against."""

from __future__ import annotations

import re
from typing import Any

from api.routes import BASE, OPS, Op
from api.validation import DEFAULT_TIMEOUT_SCHEMA, ID_SCHEMA, TIMEOUT_CAP_SCHEMA, Schema
from common.statuses import Status

STATUSES = [s.value for s in Status]
AUDIT_ACTIONS = sorted({op.audit.action for op in OPS if op.audit})
AUDIT_TARGETS = sorted({op.audit.target_type for op in OPS if op.audit})
TIME: Schema = {"type": "string", "format": "date-time"}
NULLABLE_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
ID: Schema = {"type": "string", "pattern": ID_SCHEMA["pattern"]}
NULLABLE_ID: Schema = {"type": ["string", "null"], "pattern": ID_SCHEMA["pattern"]}
LIMIT: Schema = {"type": "integer", "minimum": 0}  # a running limit; 0: none


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def closed(props: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
        "additionalProperties": False,
    }


def plain_list(item: str, included: Schema | None = None) -> Schema:
    props: dict[str, Schema] = {
        "total": {"type": "integer", "minimum": 0},
        "items": {"type": "array", "items": ref(item)},
        "marker": {"type": "string"},
    }
    if included is not None:
        props["included"] = included
    return closed(props, optional=("marker",))


def activity_list() -> Schema:
    """The history's shape, with the page's notebooks, and `totalCapped`:
    `total` counts up to 10,000 (api/history.py)."""
    return capped_list(
        "NotebookEvent",
        {
            "members": {"type": "array", "items": ref("MemberSummary")},
            "notebooks": {"type": "array", "items": ref("Notebook")},
        },
    )


def capped_list(item: str, included: dict[str, Schema]) -> Schema:
    """A list whose `total` counts up to 10,000, then says `totalCapped`."""
    schema = plain_list(item, closed(included))
    schema["properties"]["totalCapped"] = {
        "type": "boolean",
        "const": True,
        "description": "Present when there are more entries than `total` (10,000) says.",
    }
    return schema


# Schemas written compactly, a few fields to a line: kept as written.
# fmt: off
WEBHOOK: dict[str, Schema] = {
    "id": ID, "url": {"type": "string"}, "description": {"type": "string"},
    "statuses": {"type": "array", "items": {"type": "string", "enum": STATUSES}},
    "createdAt": TIME, "createdBy": ID,
    # while the secret before the last rotation still signs beside the new one
    "previousSecretUntil": NULLABLE_TIME,
    # a disabled webhook is told of nothing: by an admin, or by the workers
    # once no delivery succeeded for days (`disabledReason` says which)
    "enabled": {"type": "boolean"}, "disabledAt": NULLABLE_TIME,
    "disabledReason": {"type": ["string", "null"]},
}

INCLUDED = closed({
    "notebooks": {"type": "array", "items": ref("Notebook")},
    "teams": {"type": "array", "items": ref("Team")},
    "workloadConfigs": {"type": "array", "items": ref("WorkloadConfig")},
    "members": {"type": "array", "items": ref("MemberSummary")},
})
RESOURCES = closed({"image": {"type": "string"}, "cpu": {"type": "string"},
                    "memory": {"type": "string"}}, optional=("image", "cpu", "memory"))

COMPONENTS: dict[str, Schema] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `field` names the offending input.",
        "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                       "status": {"type": "integer"}, "detail": {"type": "string"},
                       "code": {"type": "string"}, "field": {"type": "string"}},
        "required": ["type", "title", "status", "detail", "code"],
    },
    "Notebook": closed({
        "id": ID, "organizationId": ID, "memberId": ID, "workloadConfigId": ID,
        "name": {"type": "string"}, "description": {"type": "string"},
        "status": {"type": "string", "enum": STATUSES}, "statusMessage": {"type": "string"},
        "idleTimeoutSeconds": {"type": "integer"}, "detachedTimeoutSeconds": {"type": "integer"},
        "lastActiveAt": NULLABLE_TIME, "sessionId": NULLABLE_ID,
        "createdAt": TIME, "createdBy": ID, "updatedAt": TIME, "updatedBy": ID,
    }),
    "NotebookRef": closed({"notebookId": ID, "teamIds": {"type": "array", "items": ID},
                           "workloadConfigId": ID}),
    "Included": INCLUDED,
    "NotebookList": closed({
        "total": {"type": "integer", "minimum": 0},
        "items": {"type": "array", "items": ref("NotebookRef")},
        "included": ref("Included"), "marker": {"type": "string"},
    }, optional=("marker",)),
    "NotebookDescribe": closed({"item": ref("NotebookRef"), "included": ref("Included")}),
    "OpenResult": closed({"url": {"type": "string"}, "expiresAt": TIME,
                          "mode": {"type": "string", "enum": ["edit", "view"]}}),
    "NotebookEvent": closed({
        "id": {"type": "string", "pattern": "^[0-9]{1,20}$"}, "notebookId": ID,
        "fromStatus": {"type": ["string", "null"], "enum": [*STATUSES, None]},
        "notebookName": {"type": ["string", "null"], "description":
                         "Its name then (null: recorded before names were kept)."},
        "toStatus": {"type": "string", "enum": STATUSES}, "reason": {"type": "string"},
        "actor": {"type": "string", "description": "The member who asked, or `reconciler`."},
        "createdAt": TIME,
    }),
    "NotebookEventList": plain_list("NotebookEvent", closed(
        {"members": {"type": "array", "items": ref("MemberSummary")}})),
    "ActivityList": activity_list(),
    "CodeMatch": closed({
        "notebookId": ID, "name": {"type": "string"}, "keptAt": TIME,
        # its first matching line: number (from 1) and text (200 characters at most,
        # from a little before the match)
        "line": {"type": "integer", "minimum": 1}, "text": {"type": "string"},
        "lines": {"type": "integer", "minimum": 1},  # how many lines match
    }),
    "CodeSearch": closed({"q": {"type": "string"},
                          "items": {"type": "array", "items": ref("CodeMatch")},
                          "more": {"type": "boolean"},
                          # past 64 MiB of code, the most recently kept were searched
                          "partial": {"type": "boolean"},
                          "searched": {"type": "integer", "minimum": 0}}),
    "AuditEntry": closed({
        "id": {"type": "string", "pattern": "^[0-9]{1,20}$"},
        "action": {"type": "string", "enum": AUDIT_ACTIONS},
        "targetType": {"type": "string", "enum": AUDIT_TARGETS}, "targetId": ID,
        # a team's or workload config's name now, or (deleted) the last one recorded
        "targetName": {"type": ["string", "null"]},
        # a membership's team, named so
        "teamName": {"type": ["string", "null"]},
        # the path's other ids, the fields sent, and names, roles, flags and limits as applied
        "detail": {"type": "object"},
        "actor": ID, "tokenId": ID, "createdAt": TIME,
    }),
    "AuditList": capped_list(
        "AuditEntry", {"members": {"type": "array", "items": ref("MemberSummary")}}),
    "Usage": closed({
        "from": TIME, "to": TIME, "seconds": {"type": "integer", "minimum": 0},
        "notebooks": {"type": "integer", "minimum": 0},
        "byMember": {"type": "array", "items": closed({
            "memberId": NULLABLE_ID, "seconds": {"type": "integer", "minimum": 0},
            "notebooks": {"type": "integer", "minimum": 0}})},
        "byNotebook": {"type": "array", "items": closed({
            "notebookId": ID, "name": {"type": ["string", "null"]}, "memberId": NULLABLE_ID,
            "deleted": {"type": "boolean"}, "seconds": {"type": "integer", "minimum": 0}})},
        "included": closed({"members": {"type": "array", "items": ref("MemberSummary")}}),
    }),
    "Team": closed({"id": ID, "organizationId": ID, "name": {"type": "string"},
                    "createdAt": TIME, "createdBy": NULLABLE_ID}),
    "TeamList": plain_list("Team"),
    "Webhook": closed(WEBHOOK),
    # answered by a create or a new secret only: the secret signs every delivery
    "WebhookCreated": closed({**WEBHOOK, "secret": {"type": "string", "pattern": "^whsec_"}}),
    "WebhookList": plain_list("Webhook"),
    "WebhookTestDelivery": closed({"id": {"type": "string"}}),
    "WebhookDeliveryList": closed({"items": {"type": "array", "items": closed({
        "id": {"type": "string"},
        "type": {"type": "string", "enum": ["notebook.status_changed", "webhook.test"]},
        "eventId": {"type": ["string", "null"]},
        "notebookId": NULLABLE_ID, "notebookName": {"type": ["string", "null"]},
        "toStatus": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
        "attempts": {"type": "integer", "minimum": 0}, "lastAttemptAt": NULLABLE_TIME,
        "nextAttemptAt": NULLABLE_TIME, "responseStatus": {"type": ["integer", "null"]},
        # waiting for its webhook to be enabled again
        "held": {"type": "boolean"},
        "lastError": {"type": ["string", "null"]}, "createdAt": TIME,
        "deliveredAt": NULLABLE_TIME})}}),
    "DeletedNotebook": closed({
        "notebookId": ID, "name": {"type": "string"}, "description": {"type": "string"},
        "memberId": ID, "deletedBy": NULLABLE_ID, "deletedAt": TIME, "keptUntil": TIME,
        "fileKeptAt": TIME, "bytes": {"type": "integer", "minimum": 0},
        "workloadConfigId": ID, "teamIds": {"type": "array", "items": ID},
    }),
    "DeletedNotebookList": plain_list("DeletedNotebook", closed(
        {"members": {"type": "array", "items": ref("MemberSummary")}})),
    "TeamMembership": closed({"teamId": ID, "memberId": ID,
                              "role": {"type": "string", "enum": ["admin", "editor", "viewer"]}}),
    "MemberSummary": closed({"id": ID, "organizationId": ID, "email": {"type": "string"},
                             "name": {"type": "string"}, "organizationAdmin": {"type": "boolean"},
                             "disabled": {"type": "boolean"}}),
    "Member": closed({"id": ID, "organizationId": ID, "email": {"type": "string"},
                      "name": {"type": "string"}, "organizationAdmin": {"type": "boolean"},
                      "createdAt": TIME, "disabledAt": NULLABLE_TIME}),
    "MemberList": plain_list("Member"),
    "HandedOn": closed({"handedOn": {"type": "integer", "minimum": 0}}),
    "StoppedAll": closed({"stopped": {"type": "integer", "minimum": 0}}),
    "OfferParty": closed({"id": ID, "name": {"type": "string"}, "email": {"type": "string"}}),
    "Offer": closed({
        "notebookId": ID, "notebookName": {"type": "string"},
        "notebookStatus": {"type": "string", "enum": STATUSES},
        "fromMember": ref("OfferParty"), "toMember": ref("OfferParty"),
        "offeredAt": TIME, "expiresAt": TIME,
    }),
    "OfferList": plain_list("Offer"),
    "Organization": closed({
        "id": ID, "name": {"type": "string"},
        "maxRunningPerMember": LIMIT, "maxRunning": LIMIT,
        "maxIdleTimeoutSeconds": TIMEOUT_CAP_SCHEMA,
        "maxDetachedTimeoutSeconds": TIMEOUT_CAP_SCHEMA,
        # a new notebook's timeouts, under the caps (null: the platform's, 1 h and 4 h)
        "defaultIdleTimeoutSeconds": DEFAULT_TIMEOUT_SCHEMA,
        "defaultDetachedTimeoutSeconds": DEFAULT_TIMEOUT_SCHEMA,
        # what applies where the organization sets none (api/org_limits.py)
        "platformDefaultIdleTimeoutSeconds": {"type": "integer", "minimum": 0},
        "platformDefaultDetachedTimeoutSeconds": {"type": "integer", "minimum": 0},
        "platformMaxRunningPerMember": LIMIT, "platformMaxRunning": LIMIT,
        # how long a deleted notebook can be brought back (NOTEBOOKS_TRASH_DAYS; 0: not at all)
        "trashDays": {"type": "integer", "minimum": 0},
        "createdAt": TIME, "updatedAt": NULLABLE_TIME, "updatedBy": NULLABLE_ID,
        "updatedByName": {"type": ["string", "null"]},
    }),
    "Me": closed({
        "id": ID, "organizationId": ID, "email": {"type": "string"}, "name": {"type": "string"},
        "organizationAdmin": {"type": "boolean"},
        "teams": {"type": "array", "items": closed({
            "teamId": ID, "role": {"type": "string", "enum": ["admin", "editor", "viewer"]}})},
        # the token of this call: a script learns what it may do, and until when
        "token": closed({"id": ID, "readOnly": {"type": "boolean"}, "expiresAt": NULLABLE_TIME}),
    }),
    "NewToken": closed({"id": ID, "name": {"type": "string"}, "token": {"type": "string"},
                        "prefix": {"type": "string"}, "createdAt": TIME,
                        "createdBy": NULLABLE_ID, "madeWith": NULLABLE_ID,
                        "expiresAt": NULLABLE_TIME, "readOnly": {"type": "boolean"}}),
    "Token": closed({"id": ID, "name": {"type": "string"}, "prefix": {"type": "string"},
                     "createdAt": TIME, "createdBy": NULLABLE_ID, "madeWith": NULLABLE_ID,
                     "lastUsedAt": NULLABLE_TIME, "expiresAt": NULLABLE_TIME,
                     "readOnly": {"type": "boolean"}}),
    "TokenList": plain_list("Token"),
    "NotebookFileVersion": closed({"version": {"type": "string"}, "keptAt": TIME,
                                   "sessionId": {"type": "string"},
                                   "bytes": {"type": "integer", "minimum": 0},
                                   # a restore: when the version it came from was kept
                                   "restoredFrom": NULLABLE_TIME}),
    "NotebookFileVersionList": plain_list("NotebookFileVersion"),
    "NotebookLogs": closed({
        "notebookId": ID, "status": {"type": "string", "enum": STATUSES},
        # when a worker last read them (null: never yet), from which session
        "capturedAt": NULLABLE_TIME, "sessionId": NULLABLE_ID,
        # the last ask, and whether a worker has yet to answer it
        "requestedAt": NULLABLE_TIME, "waiting": {"type": "boolean"},
        "sail": ref("ComponentLog"), "marimo": ref("ComponentLog")}),
    # the last 64 KiB of its output (null: none read), or why none was read
    "ComponentLog": closed({"text": {"type": ["string", "null"]},
                            "problem": {"type": ["string", "null"]}}),
    "TeamMembershipList": plain_list("TeamMembership", closed(
        {"members": {"type": "array", "items": ref("MemberSummary")}})),
    "WorkloadConfig": closed({
        "id": ID, "organizationId": ID, "name": {"type": "string"},
        "description": {"type": "string"},
        "mode": {"type": "string", "enum": ["standalone", "cluster"]},
        "sail": RESOURCES, "marimo": RESOURCES, "workers": {"type": "integer"},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        # names only: a secret variable's value is never answered
        "secretEnvNames": {"type": "array", "items": {"type": "string"}},
        # who may use it: those teams' members (and org admins); null, everyone
        "teamIds": {"type": ["array", "null"], "items": ID},
        "createdAt": TIME, "createdBy": NULLABLE_ID, "updatedAt": TIME,
        "updatedBy": NULLABLE_ID,
    }),
    "WorkloadConfigList": plain_list("WorkloadConfig"),
}
# fmt: on

ERROR_TEXT = {
    400: "Bad input (field named in `field`)",
    401: "Missing, unknown or revoked token",
    403: "Visible but not allowed",
    404: "Not found or not visible",
    409: "State conflict (stable `code`)",
    412: "If-Match does not match the ETag (or the route has none)",
    413: "Body over 1 MiB",
    415: "Body is not application/json",
    503: "Database unavailable, timed out or in conflict, or (code search) busy (`Retry-After`)",
}


def _operation(op: Op) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": dict(ID_SCHEMA)}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.paginated:
        params += [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 0, "maximum": 100, "default": 100},
            },
            {
                "name": "marker",
                "in": "query",
                "required": False,
                "description": "Opaque marker from the previous page.",
                "schema": {"type": "string"},
            },
        ]
    params += [{"name": name, "in": "query", **spec} for name, spec in op.query]
    if op.etag:
        params.append(
            {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}}
        )
    responses: dict[str, Any] = {}
    success: dict[str, Any] = {"description": op.summary}
    if op.response:
        success["content"] = {"application/json": {"schema": ref(op.response)}}
    if op.media:
        success["content"] = {op.media: {"schema": {"type": "string"}}}
        success["headers"] = {
            name: {"schema": {"type": "string"}}
            for name in ("ETag", "Last-Modified", "Content-Disposition")
        }
    if op.response == "NotebookDescribe":
        success["headers"] = {"ETag": {"schema": {"type": "string"}}}
    responses[str(op.status)] = success
    # Any request may meet a database outage (503); a write, a concurrent
    # request that took a name or removed what it refers to (409
    # `already_exists`, `reference_gone`); a body, the size limit (413);
    # a DELETE, a body it does not take (400, 415); a write, an If-Match
    # that does not hold (412).
    codes = {400, 401, 503, *op.errors}
    if op.method != "GET":
        codes |= {403, 409, 412}  # 403: a read-only token (read_only_token), at least
    if op.body is not None:
        codes.add(413)
    if op.method == "DELETE":  # no body is taken; one sent is still read and judged
        codes |= {413, 415}
    if any(p["in"] == "path" for p in params):
        codes.add(404)
    for code in sorted(codes):
        if code == 304:
            responses["304"] = {"description": "Not modified (If-None-Match matched)"}
            continue
        responses[str(code)] = {
            "description": ERROR_TEXT[code],
            "content": {"application/problem+json": {"schema": ref("Problem")}},
        }
    out: dict[str, Any] = {
        "operationId": op.handler.__name__.replace("_", " ").title().replace(" ", ""),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
    }
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": op.body}},
        }
    return out


def build_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPS:
        paths.setdefault(BASE + op.path, {})[op.method.lower()] = _operation(op)
    plain = {"security": [], "tags": ["operations"]}
    paths["/healthz"] = {
        "get": {
            **plain,
            "operationId": "Healthz",
            "summary": "Liveness",
            "responses": {"200": {"description": "Alive"}},
        }
    }
    paths["/readyz"] = {
        "get": {
            **plain,
            "operationId": "Readyz",
            "summary": "Database reachable and migrations current",
            "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}},
        }
    }
    # /metrics is not here: it is served on a listener of its own, not this server.
    paths[BASE + "/openapi.json"] = {
        "get": {
            **plain,
            "operationId": "OpenApi",
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Notebooks API",
            "version": "1",
            "description": "Hosted Marimo notebooks backed by Sail. See docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
