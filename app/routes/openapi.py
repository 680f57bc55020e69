"""The OpenAPI document as other systems build clients from it: short, stable operation ids
(`results.list`, `ballots.submit`), an example on every request and response body, and every
error described as what it is (our ErrorBody).

A generated client names its functions after the operation ids, so they are part of the API: a
new route must be given one here (creating the app fails otherwise), and none may change.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id

from app.schemas import RESULT_EXAMPLE
from app.templates import default_template

# route function name -> operation id; only for routes in the schema (the pages are not).
OPERATION_IDS: dict[str, str] = {
    "submit_ballot": "ballots.submit",
    "create_unit": "units.create", "list_units": "units.list", "update_unit": "units.update",
    "delete_unit": "units.delete", "import_units": "units.import",
    "list_templates": "templates.list", "get_template": "templates.get", "create_template": "templates.create",
    "create_meeting": "meetings.create", "list_meetings": "meetings.list", "get_meeting": "meetings.get",
    "open_meeting": "meetings.open", "close_meeting": "meetings.close", "reopen_meeting": "meetings.reopen",
    "void_meeting": "meetings.void", "delete_meeting": "meetings.delete",
    "mint_tokens": "meetings.mint_tokens", "void_tokens": "meetings.void_tokens", "mint_cards": "meetings.cards",
    "screen_links": "meetings.screen", "get_tally": "meetings.tally", "get_result": "meetings.result",
    "events": "meetings.events", "report_json": "meetings.report", "audit_export": "meetings.audit_export",
    "list_results": "results.list", "result_schema": "results.schema", "overview": "results.overview",
    "composite_grade": "results.composite",
    "list_accounts": "accounts.list", "create_account": "accounts.create", "update_account": "accounts.update",
    "list_api_keys": "api_keys.list", "create_api_key": "api_keys.create", "revoke_api_key": "api_keys.revoke",
    "audit_log": "audit.list",
    "create_webhook": "webhooks.create", "list_webhooks": "webhooks.list", "delete_webhook": "webhooks.delete",
    "list_deliveries": "webhooks.deliveries", "get_delivery": "webhooks.delivery",
    "resend_delivery": "webhooks.resend", "result_event": "webhooks.result_event",
    "healthz": "health.live", "readyz": "health.ready",
}


def operation_id(route: APIRoute) -> str:
    if not route.include_in_schema:
        return generate_unique_id(route)  # pages and phone routes: never in a client
    try:
        return OPERATION_IDS[route.name]
    except KeyError:
        raise LookupError(f"route {route.name} ({route.path}) has no operation id in app.routes.openapi") from None


API_ERRORS = {
    400: "the body cannot be read", 401: "no valid API key or session", 403: "not allowed for this role",
    404: "not found", 409: "not in a state that allows it", 413: "the body is too large",
    422: "the input breaks a rule, named in the answer", 429: "too many wrong ballot codes from here",
}
ERROR_EXAMPLES = {
    400: ("request_invalid", "请求内容无法读取"), 401: ("not_authenticated", "需要 API 密钥或登录"),
    403: ("forbidden", "当前角色无权执行此操作"), 404: ("meeting_not_found", "找不到评议会 2"),
    409: ("meeting_transition", "评议会当前状态为“已结束”，不能执行“结束”"),
    413: ("request_too_large", "请求内容超过 65536 字节"),
    422: ("ballot_missing_point", "测评要点 p07 尚未打分"),
    429: ("too_many_guesses", "错误的测评码过多，请 30 秒后再试"),
}


def documented(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with every error answer described as our ErrorBody and an example on
    every body that has none of its own."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.get("components", {}).get("schemas", {})
        error_body = {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
        for url, path in schema.get("paths", {}).items():
            for operation in path.values():
                answers = operation.setdefault("responses", {})
                if "422" in answers:
                    answers["422"]["content"] = {"application/json": dict(error_body)}
                # Any API call may meet these answers of the error handlers (app.errors): say so.
                for status, description in API_ERRORS.items():
                    if url.startswith("/api/") and str(status) not in answers:
                        answers[str(status)] = {"description": description,
                                                "content": {"application/json": dict(error_body)}}
                _examples(operation, components)
                for callback in operation.get("callbacks", {}).values():
                    for callback_path in callback.values():
                        for callback_operation in callback_path.values():
                            _examples(callback_operation, components)
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def _examples(operation: dict[str, Any], components: dict[str, Any]) -> None:
    bodies = [("request", operation.get("requestBody", {}))]
    bodies += [(status, answer) for status, answer in operation.get("responses", {}).items()]
    for status, body in bodies:
        for media, content in body.get("content", {}).items():
            if "example" in content or "examples" in content:
                continue
            example = BY_OPERATION.get((operation.get("operationId", ""), status))
            if example is None:
                example = _example_of(status, media, content.get("schema", {}), components)
            if example is not None:
                content["example"] = example


def _example_of(status: str, media: str, schema: dict[str, Any], components: dict[str, Any]) -> Any:
    if status.isdigit() and int(status) >= 400:
        code, detail = ERROR_EXAMPLES.get(int(status), ("internal", "服务器内部错误"))
        return {"code": code, "detail": detail, "problems": [detail] if int(status) == 422 else []}
    if media in MEDIA_EXAMPLES:
        return MEDIA_EXAMPLES[media]
    # An optional body is "one of this model, or nothing": its example is the model's.
    schema = next((option for option in schema.get("anyOf", []) if "$ref" in option), schema)
    if "$ref" in schema:
        return _component_example(schema["$ref"], components)
    if schema.get("type") == "array" and "$ref" in schema.get("items", {}):
        item = _component_example(schema["items"]["$ref"], components)
        return None if item is None else [item]
    return None


def _component_example(ref: str, components: dict[str, Any]) -> Any:
    name = ref.rsplit("/", 1)[1]
    if name in EXAMPLES:
        return EXAMPLES[name]
    examples = components.get(name, {}).get("examples")
    return examples[0] if examples else None


_DIGEST = "9f2c6a0d3b1e4f5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b"
_FIGURE = {"rounded": "79.85", "exact": "79.85"}
_POINT = {"id": "p01", "name": "履行第一责任人职责", "max": "6", "average": {"rounded": "4.65", "exact": "4.65"}}
_FIGURES = {
    "ballots": 10, "counted": 8, "dropped": 2, "flagged": 9, "excluded_flagged": 0, "status": "ok", "message": None,
    "score": _FIGURE, "component": {"rounded": "31.94", "exact": "31.94"}, "component_weight": "0.4",
    "total_sum": "638.8",
    "items": [{"id": "i1", "name": "一、履行主体责任", "max": "20", "average": {"rounded": "15.85", "exact": "15.85"},
               "points": [_POINT]}],
    "groups": [{"key": "representatives", "name": "党员群众代表", "weight": None, "ballots": 6,
                "score": {"rounded": "83.33", "exact": "250/3"}}],
    "distribution": [{"label": "70–80", "low": "70", "high": "80", "count": 3}],
}
_UNIT = {"code": "JL001", "name": "省直机关事务管理局", "category": "party_gov", "category_name": "党政机关",
         "reviewed_years": [2024]}
_MEETING = {
    "id": 2, "unit_code": "JL001", "unit_name": "省直机关事务管理局", "category": "party_gov", "year": 2026,
    "date": "2026-12-03", "title": "省直机关事务管理局2026年度党建工作述职评议会", "template_id": "default",
    "template_version": 1, "mode": "cards", "attendance": 35,
    "groups": [{"key": "leaders", "name": "党组（党委）班子成员", "weight": None}], "trim": 1,
    "component_weight": "0.4", "flagged_rule": "count", "state": "open",
}
_KEY = {"id": 2, "name": "主评分系统", "scopes": "export", "created_at": "2026-12-02T04:04:00Z",
        "last_used_on": None, "revoked": False}
_COMPARISON = {"peer_average": {"rounded": "76.40", "exact": "76.4"}, "rank": 2, "of": 6}
_DELIVERY = {
    "id": "0b7f6c1e-6a1d-4c47-9d5e-2f3a9c8b7d61", "endpoint_id": 1, "event": "meeting.closed", "meeting_id": 2,
    "result_version": 1, "status": "delivered", "attempts": 1, "next_attempt_at": None,
    "created_at": "2026-12-03T03:41:08Z", "delivered_at": "2026-12-03T03:41:08Z", "last_status_code": 200,
    "log": [{"number": 1, "at": "2026-12-03T03:41:08Z", "status_code": 200, "error": None, "duration_ms": 84}],
}

# Examples of the bodies whose models carry none of their own; tests/test_openapi.py validates each
# against its model, so an example cannot drift from what the API really answers.
EXAMPLES: dict[str, Any] = {
    "UnitCreate": {"code": "JL001", "name": "省直机关事务管理局", "category": "party_gov"},
    "UnitUpdate": {"name": "中共省直机关事务管理局", "category": "party_gov", "reviewed_years": [2023, 2024]},
    "UnitPublic": _UNIT,
    "ImportReport": {"imported": 2, "created": 1, "updated": 1, "unchanged": 131, "units": [_UNIT]},
    "TemplateSummary": {"id": "default", "version": 1, "name": "党建工作述职评议测评票", "versions": [1]},
    "BallotTemplate": json.loads(default_template().to_json()),
    "MeetingPublic": _MEETING,
    "ReopenBody": {"reason": "计票时发现一张测评卡被误作废，经评议组同意重新开启"},
    "VoidMeetingBody": {"reason": "评议组成员未按规定人数到会，经党委研究决定本场作废，另行组织"},
    "MintBody": {"count": 40},
    "MintedTokens": {"tokens": [{"code": "K7MQ2X9PAR", "printable": "K7MQ-2X9P-AR", "group": None,
                                 "url": "https://ballot.example.gov.cn/b/K7MQ2X9PAR"}]},
    "BallotReceipt": {"status": "counted", "message": "您的测评票已计入。投票是匿名的，任何人都无法知道您的选择。"},
    "TallyPublic": {"meeting_id": 2, "state": "open", "attendance": 35, "tokens_issued": 35, "ballots_counted": 12,
                    "k": 5, "published_at_count": 10, "figures": _FIGURES},
    "ResultPublic": {"meeting_id": 2, "version": 1, "digest": _DIGEST, "digest_format": 2, "versions": [1],
                     "closed_at": "2026-12-03T03:41:07.512000Z", "figures": _FIGURES},
    "ScreenLinks": {"meeting_id": 3, "mode": "screen", "claim_url": "https://ballot.example.gov.cn/s/3-k7mq2x9par",
                    "screen_url": "https://ballot.example.gov.cn/s/3-k7mq2x9par/screen", "attendance": 40,
                    "claimed": 12},
    "AccountCreate": {"username": "li", "display_name": "李书记", "password": "a-long-first-password",
                      "role": "secretary", "categories": ["party_gov"]},
    "AccountUpdate": {"role": "viewer", "categories": ["party_gov", "central"], "active": True},
    "AccountPublic": {"id": 2, "username": "li", "display_name": "李书记", "role": "secretary",
                      "categories": ["party_gov"], "active": True},
    "ApiKeyCreate": {"name": "主评分系统", "scopes": "export"},
    "ApiKeyPublic": _KEY,
    "ApiKeyCreated": {**_KEY, "key": "ob_0Yx1c9Tq4mWcV7rA2bLk5sNf8hJd3gPe6uZi1oQ4wE"},
    "AuditEventPublic": {"id": 41, "at": "2026-12-03T04:04:00Z", "actor": "user:li", "action": "meeting.close",
                         "meeting_id": 2, "detail": {"version": 1, "ballots": 33}},
    "VoidBody": {"group": None},
    "VoidReport": {"voided": 5},
    "FeedbackReport": {
        "meeting_id": 2, "unit_code": "JL001", "unit_name": "省直机关事务管理局", "category": "党政机关", "year": 2026,
        "title": "省直机关事务管理局2026年度党建工作述职评议会", "result_version": 1,
        "digest": _DIGEST,
        "verification_code": "9F2C-6A0D-3B1E", "closed_at": "2026-12-03T03:41:07Z", "score": _FIGURE,
        "component": {"rounded": "31.94", "exact": "31.94"}, "score_comparison": _COMPARISON, "peers": 6, "k": 5,
        "items": [{"id": "i1", "name": "一、履行主体责任", "max": "20",
                   "average": {"rounded": "15.85", "exact": "15.85"}, "comparison": _COMPARISON,
                   "points": [{"id": "p01", "number": 1, "name": "履行第一责任人职责", "max": "6",
                               "average": {"rounded": "4.65", "exact": "4.65"}, "share": "77.5", "weakest": True,
                               "below_peers": True, "comparison": _COMPARISON}]}],
        "weakest": ["p01", "p07", "p12"], "comments": ["希望进一步加强基层党组织标准化建设"],
    },
    "OverviewPage": {"year": 2026, "category": "party_gov", "years": [2026, 2025, 2024], "overdue": ["JL003"],
                     "units": [{"unit_code": "JL001", "unit_name": "省直机关事务管理局", "category": "party_gov",
                                "category_name": "党政机关", "reviewed": {"2026": True, "2025": False, "2024": True},
                                "meeting_id": 2, "score": _FIGURE, "component": {"rounded": "31.94", "exact": "31.94"},
                                "rank": 1, "overdue": False, "history_known": True}]},
    "CompositePublic": {
        "unit_code": "JL001", "year": 2026, "meeting_id": 2, "result_version": 1,
        "digest": _DIGEST,
        "onsite": {"score": _FIGURE, "weight": "0.4", "weighted": {"rounded": "31.94", "exact": "31.94"}},
        "inspection": {"score": {"rounded": "88.50", "exact": "88.5"}, "weight": "0.3",
                       "weighted": {"rounded": "26.55", "exact": "26.55"}},
        "key_tasks": {"score": {"rounded": "92.00", "exact": "92"}, "weight": "0.3",
                      "weighted": {"rounded": "27.60", "exact": "27.6"}},
        "grade": {"rounded": "86.09", "exact": "86.09"},
    },
    "WebhookPublic": {"id": 1, "url": "https://scoring.example.gov.cn/hooks/onsite",
                      "events": ["meeting.closed", "meeting.reopened"], "created_at": "2026-12-01T02:00:00Z"},
    "DeliveryPublic": _DELIVERY,
    "ResultPage": {"schema_version": 1, "results": [RESULT_EXAMPLE], "next_cursor": None},
    "WebhookBody": {"schema_version": 1, "event": "meeting.closed", "delivery_id": _DELIVERY["id"],
                    "occurred_at": "2026-12-03T03:41:07Z", "result": RESULT_EXAMPLE},
}
# Bodies that are not JSON models.
MEDIA_EXAMPLES: dict[str, Any] = {
    "text/csv": "\ufeff单位编码 Unit code,单位名称 Unit name,…\r\nJL001,省直机关事务管理局,…\r\n",
    "text/html": "<!doctype html><html lang=\"zh-CN\">…the printable A4 card sheet…</html>",
    "text/event-stream": "event: tally\nid: 3f9a1c2e-1\ndata: {\"meeting_id\":2,\"state\":\"open\","
                         "\"ballots_counted\":12,\"tokens_issued\":35,\"attendance\":35,\"published_at_count\":10}\n\n",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "(an XLSX workbook)",
}
# Plain JSON bodies without a model: (operation id, "request" or the status) -> example.
BY_OPERATION: dict[tuple[str, str], Any] = {
    ("templates.create", "request"): json.loads(default_template().to_json()),
    ("results.schema", "200"): {"$id": "onsite-ballot/result/v1", "title": "ResultRecord", "type": "object"},
    ("health.live", "200"): {"status": "ok"},
    ("health.ready", "200"): {"status": "ok"},
    ("webhooks.result_event", "200"): {},  # whatever the receiver answers: only its 2xx status counts
    ("meetings.audit_export", "200"): {"format": "onsite-ballot/audit/v1", "meeting": {"id": 2}, "ballots": []},
}
