"""``POST /api/callbacks/{provider}/{token}``: vendors calling back when a job ends.

The token is the one issued for the video's attempt (see :mod:`reelforge.callbacks`);
the provider checks the vendor's signature where the vendor signs. A good callback
nudges the video's worker to poll now; the body is never trusted for the result.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from reelforge.api.deps import RuntimeDep
from reelforge.api.schemas import error_responses
from reelforge.errors import NotFoundError
from reelforge.providers.base import CallbackProvider

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["callbacks"])


@router.post(
    "/callbacks/{provider}/{token}",
    # Vendors call without our key: 401 here is a signature that does not verify.
    responses=error_responses(404, 503),
)
async def vendor_callback(
    provider: str, token: str, request: Request, rt: RuntimeDep
) -> dict[str, bool]:
    """A vendor's completion callback for one video (Replicate and fal webhooks, Luma
    callbacks, Veo's Gemini API webhooks)."""
    if provider not in rt.settings.providers:
        raise NotFoundError("no such callback", code="not_found")
    video_id = await rt.callbacks.video_for(provider, token)
    adapter = rt.provider(provider)
    if not isinstance(adapter, CallbackProvider):
        raise NotFoundError("no such callback", code="not_found")
    await adapter.verify_callback(dict(request.headers), await request.body())
    await rt.callbacks.nudge(video_id)
    return {"received": True}
