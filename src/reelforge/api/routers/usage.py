"""A tenant's usage: ``GET /api/usage``."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from reelforge.api.deps import CurrentOwner, RuntimeDep
from reelforge.api.schemas import ErrorResponse, UsageReport
from reelforge.errors import InvalidRequestError

__all__ = ["router"]

router = APIRouter(
    prefix="/api",
    tags=["usage"],
    responses={400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}},
)

_DEFAULT_DAYS = 30


def _day(value: str | None, param: str, default: date) -> date:
    if value is None:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(
            f"{param} must be a date, YYYY-MM-DD", code="invalid_date", param=param
        ) from None


_DATE_DOC: dict[str, Any] = {"format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}


@router.get("/usage", response_model=UsageReport)
async def usage(
    rt: RuntimeDep,
    owner: CurrentOwner,
    start: Annotated[
        str | None, Query(alias="from", max_length=10, json_schema_extra=_DATE_DOC)
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", max_length=10, json_schema_extra=_DATE_DOC)
    ] = None,
) -> UsageReport:
    """Videos, seconds of video and spend of the caller's tenant, by UTC day and
    provider, from ``from`` to ``to`` inclusive (default: the last 30 days)."""
    today = datetime.fromtimestamp(time.time(), UTC).date()
    last = _day(end, "to", today)
    first = _day(start, "from", last - timedelta(days=_DEFAULT_DAYS - 1))
    days = await rt.quotas.usage(owner, first, last)
    totals: dict[str, dict[str, Any]] = {}
    for day in days:
        for provider, measures in day.providers.items():
            total = totals.setdefault(provider, {"videos": 0, "seconds": 0.0, "spend": 0.0})
            for name, value in measures.items():
                total[name] = round(total[name] + value, 6)
    return UsageReport(
        tenant=owner,
        start=first.isoformat(),
        end=last.isoformat(),
        days=[{"day": d.day, "providers": d.providers} for d in days],
        totals=totals,
    )
