"""Exchanges, inboxes, campaigns and withdrawals over HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.actions import logged_as
from api.deps import (
    CurrentClient,
    DataAccess,
    DeploymentDep,
    PurposeHeader,
    access_with,
)
from api.downloads import CsvDownload
from api.schemas import (
    ERRORS,
    JSON_ERRORS,
    CampaignIn,
    CampaignOut,
    DelimiterQuery,
    DeliveryOut,
    EncodingQuery,
    ExchangeOut,
    RejectOut,
    WithdrawIn,
)
from api.upload import held_for, paced, stream_body
from audit import Action
from tiers import campaigns, exchanges, inbox
from tiers.inbox import DeliveryRecord

router = APIRouter(prefix="/v1", responses=ERRORS)


def _delivery(record: DeliveryRecord) -> DeliveryOut:
    return DeliveryOut(
        id=record.id,
        kind=record.kind,
        name=record.name,
        rows=record.rows,
        sha256=record.sha256,
        sender=record.sender,
        created_at=record.created_at.isoformat(),
        acked=record.acked_at is not None,
    )


@router.post(
    "/exchanges",
    name="exchange_send",
    response_model=ExchangeOut,
    tags=["partner"],
    openapi_extra=logged_as(
        Action.EXCHANGE_SEND,
        requestBody={"content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}}},
    ),
)
async def send(
    request: Request,
    deployment: DeploymentDep,
    client: CurrentClient,
    exchange_type: Annotated[str, Query(alias="type", max_length=32, examples=["purchases"])],
    purpose: PurposeHeader = None,
    delimiter: DelimiterQuery = None,
    encoding: EncodingQuery = "utf-8",
) -> ExchangeOut:
    """Send a CSV (the request body, `text/csv`) of an exchange type to the hub. Identifiers
    become hub linking keys; rejected rows come back to your inbox, and register or enrol
    nothing."""
    access = access_with(request, purpose, required=True)
    report = await stream_body(
        paced(request.stream(), deployment.settings),
        lambda stream: exchanges.send_exchange(
            deployment,
            access=access,
            domain=client.domain or "",
            exchange_type=exchange_type,
            source=stream,
            delimiter=delimiter,
            encoding=encoding,
        ),
        held_for(request, deployment),
    )
    return ExchangeOut(
        rows_in=report.rows_in,
        rows_out=report.rows_out,
        rows_rejected=report.rows_rejected,
        first_rejects=[
            RejectOut(line=r.line, column=r.column, code=r.code) for r in report.first_rejects
        ],
    )


@router.get(
    "/inbox",
    name="inbox_read",
    openapi_extra=logged_as(Action.INBOX_READ),
    response_model=list[DeliveryOut],
    tags=["partner", "hub"],
)
def list_deliveries(
    deployment: DeploymentDep, access: DataAccess, include_acked: bool = False
) -> list[DeliveryOut]:
    """Deliveries waiting in your inbox, oldest first."""
    return [
        _delivery(d)
        for d in inbox.list_inbox(deployment, access=access, include_acked=include_acked)
    ]


@router.get(
    "/inbox/{delivery_id}",
    name="inbox_get",
    openapi_extra=logged_as(Action.INBOX_GET),
    response_class=CsvDownload,
    responses=JSON_ERRORS,
    tags=["partner", "hub"],
)
def get_delivery(delivery_id: str, deployment: DeploymentDep, access: DataAccess) -> CsvDownload:
    """One delivery's CSV (streamed)."""
    handle = inbox.delivery_file(deployment, access=access, delivery_id=delivery_id)
    return CsvDownload(handle, f"{delivery_id}.csv")


@router.post(
    "/inbox/{delivery_id}/ack",
    name="inbox_ack",
    openapi_extra=logged_as(Action.INBOX_ACK),
    response_model=DeliveryOut,
    tags=["partner", "hub"],
)
def ack(delivery_id: str, deployment: DeploymentDep, access: DataAccess) -> DeliveryOut:
    """Acknowledge a delivery: it is purged after the retention period."""
    return _delivery(inbox.ack_delivery(deployment, access=access, delivery_id=delivery_id))


@router.post(
    "/campaigns",
    name="campaign_send",
    openapi_extra=logged_as(Action.CAMPAIGN_SEND),
    response_model=CampaignOut,
    tags=["hub"],
)
def campaign(
    request: Request,
    body: CampaignIn,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> CampaignOut:
    """Route linking keys to each customer's attached SG only; counts per SG, keys dropped."""
    access = access_with(request, body.purpose or purpose, required=True)
    report = campaigns.send_campaign(
        deployment, access=access, name=body.name, linking_keys=body.linking_keys
    )
    return CampaignOut(per_sg=report.per_sg, dropped=report.dropped)


@router.post(
    "/customers/withdraw",
    name="customer_withdraw",
    openapi_extra=logged_as(Action.CUSTOMER_WITHDRAW),
    tags=["partner"],
)
def withdraw(
    request: Request,
    body: WithdrawIn,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> dict[str, int]:
    """A customer leaves the alliance through their SG: links removed, hub keys retired, and a
    withdrawal notice delivered to the hub."""
    access = access_with(request, body.purpose or purpose, required=True)
    return {
        "hub_keys_withdrawn": exchanges.withdraw_customer(
            deployment, access=access, domain=client.domain or "", card=body.card
        )
    }
