"""OpenAI-compatible ``/v1/videos`` API (being written)."""

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["openai"])
