"""Prompt styles and templates: ``GET /api/styles``."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from reelforge.api.deps import CurrentOwner, SettingsDep
from reelforge.prompts.pipeline import placeholders

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["prompts"])


class StyleObject(BaseModel):
    name: str
    description: str
    additions: list[str]
    negative_prompt: list[str]
    fps: int | None
    size: str | None


class TemplateObject(BaseModel):
    name: str
    template: str
    placeholders: list[str]  # what template_vars must fill ({prompt} is the prompt)


class StyleList(BaseModel):
    object: str = "list"
    data: list[StyleObject]
    default_style: str | None  # applied when a request names none (this tenant's)
    templates: list[TemplateObject]


@router.get("/styles", response_model=StyleList)
async def list_styles(settings: SettingsDep, owner: CurrentOwner) -> StyleList:
    """The configured styles (``style``) and templates (``template``, ``template_vars``)."""
    prompts = settings.prompts
    return StyleList(
        data=[
            StyleObject(
                name=name,
                description=style.description,
                additions=style.additions,
                negative_prompt=style.negative,
                fps=style.fps,
                size=style.size,
            )
            for name, style in prompts.styles.items()
        ],
        default_style=prompts.tenant(owner).default_style or prompts.default_style,
        templates=[
            TemplateObject(name=name, template=text, placeholders=placeholders(text))
            for name, text in prompts.templates.items()
        ],
    )
