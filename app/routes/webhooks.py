"""Webhook administration under /api/v1: endpoints, their delivery log, sending again; and the
callback a registered endpoint receives, documented in the OpenAPI. Thin: app.store keeps the
outbox, app.webhooks delivers it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from app import store
from app.routes.access import Admin
from app.routes.deps import SessionDep, SettingsDep
from app.routes.openapi import operation_id
from app.schemas import AttemptPublic, DeliveryPublic, ErrorBody, WebhookBody, WebhookCreate, WebhookPublic
from app.tables import WebhookEndpoint
from app.webhooks import check_destination

ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody} for status in (401, 403, 404, 409, 422)}

router = APIRouter(prefix="/api/v1", responses=ERRORS)


def webhook_public(endpoint: WebhookEndpoint) -> WebhookPublic:
    return WebhookPublic.from_row(endpoint)


def delivery_public(entry: store.DeliveryLog) -> DeliveryPublic:
    d = entry.delivery
    return DeliveryPublic(
        id=d.id,
        endpoint_id=d.endpoint_id,
        event=d.event,
        meeting_id=d.meeting_id,
        result_version=d.result_version,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        created_at=d.created_at,
        delivered_at=d.delivered_at,
        last_status_code=d.last_status_code,
        log=[
            AttemptPublic(number=a.number, at=a.at, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms)
            for a in entry.attempts
        ],
    )


# Documents what a registered endpoint receives (OpenAPI callbacks); never served by this app.
receiver = APIRouter(generate_unique_id_function=operation_id)


@receiver.post("{$request.body#/url}", status_code=200)
def result_event(
    body: WebhookBody,
    x_onsite_ballot_event: Annotated[str, Header(description="meeting.closed or meeting.reopened")],
    x_onsite_ballot_delivery: Annotated[str, Header(description="the same on every retry: deduplicate by it")],
    x_onsite_ballot_timestamp: Annotated[str, Header(description="Unix seconds when this attempt was signed")],
    x_onsite_ballot_signature: Annotated[
        str, Header(description='"sha256=" + hex HMAC-SHA256(secret, timestamp + "." + raw body)')
    ],
) -> None:
    """Answer 2xx once processed; anything else, or no answer within the timeout, is retried with
    backoff for at least 24 hours."""


@router.post("/webhooks", status_code=201, tags=["webhooks"], callbacks=receiver.routes)
def create_webhook(
    body: WebhookCreate, session: SessionDep, settings: SettingsDep, principal: Admin
) -> WebhookPublic:
    """Register an endpoint. Every delivery is signed with `secret` (see the README); the secret
    is not shown again. A host on this machine or a private network is refused unless
    ONSITE_BALLOT_WEBHOOK_ALLOWED_HOSTS names it."""
    check_destination(body.url, settings.allowed_webhook_hosts)
    endpoint = store.create_webhook(
        session=session, actor=principal.name, url=body.url, secret=body.secret, events=body.events
    )
    return webhook_public(endpoint)


@router.get("/webhooks", tags=["webhooks"])
def list_webhooks(session: SessionDep, _: Admin) -> list[WebhookPublic]:
    return [webhook_public(endpoint) for endpoint in store.list_webhooks(session=session)]


@router.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"])
def delete_webhook(webhook_id: int, session: SessionDep, principal: Admin) -> Response:
    """Stop sending to the endpoint; pending deliveries are cancelled, the log is kept."""
    store.delete_webhook(session=session, actor=principal.name, webhook_id=webhook_id)
    return Response(status_code=204)


@router.get("/webhooks/{webhook_id}/deliveries", tags=["webhooks"])
def list_deliveries(webhook_id: int, session: SessionDep, _: Admin) -> list[DeliveryPublic]:
    """The delivery log, newest first: each attempt's time, status code or error kind."""
    return [delivery_public(entry) for entry in store.list_deliveries(session=session, webhook_id=webhook_id)]


@router.get("/webhook-deliveries/{delivery_id}", tags=["webhooks"])
def get_delivery(delivery_id: str, session: SessionDep, _: Admin) -> DeliveryPublic:
    return delivery_public(store.get_delivery(session=session, delivery_id=delivery_id))


@router.post("/webhook-deliveries/{delivery_id}/resend", tags=["webhooks"])
def resend_delivery(delivery_id: str, request: Request, session: SessionDep, principal: Admin) -> DeliveryPublic:
    """Send again now, with the same delivery id and body (receivers deduplicate by the id)."""
    entry = store.resend_delivery(session=session, actor=principal.name, delivery_id=delivery_id)
    worker = getattr(request.app.state, "webhooks", None)
    if worker is not None:
        worker.wake()
    return delivery_public(entry)
