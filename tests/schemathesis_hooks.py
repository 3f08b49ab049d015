"""Schemathesis hooks for tests/integration/test_schemathesis.py (``SCHEMATHESIS_HOOKS``).

The OpenAPI document names two kinds of value no JSON Schema can describe: an
uploaded image file (multipart ``input_reference``, media type ``image/png``) and a
JSON ``input_reference.image_url`` (format ``image-data-url``). These give
schemathesis real, small PNG images to send for them, so schema-valid requests
are valid requests.
"""

from __future__ import annotations

import base64

import numpy as np
import schemathesis
from hypothesis import strategies as st

from reelforge.api.openapi import IMAGE_DATA_URL_FORMAT, WEBHOOK_URL_FORMAT
from reelforge.media.image import encode_png


@st.composite
def png_images(draw: st.DrawFn) -> bytes:
    width = draw(st.integers(min_value=1, max_value=48))
    height = draw(st.integers(min_value=1, max_value=48))
    colour = draw(st.tuples(*[st.integers(min_value=0, max_value=255)] * 3))
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = colour
    return encode_png(pixels)


schemathesis.openapi.media_type("image/png", png_images())
schemathesis.openapi.format(
    IMAGE_DATA_URL_FORMAT,
    png_images().map(lambda png: "data:image/png;base64," + base64.b64encode(png).decode()),
)

# Webhook URLs: the test server allow-lists localhost (``fetch_allow_hosts``), the
# one host that resolves here; every other valid-looking host would be refused.
schemathesis.openapi.format(
    WEBHOOK_URL_FORMAT,
    st.builds(
        "http://localhost:{}/{}".format,
        st.integers(min_value=1, max_value=65535),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", max_size=20),
    ),
)

# Where schemathesis.toml lets schema-valid requests get a 400, it may only be for
# these codes: the video's state (/v1 content and remix), or a rule between two
# query parameters (the usage range).
_ALLOWED_400 = {
    "/v1/videos/{video_id}/content": "video_not_ready",
    "/v1/videos/{video_id}/remix": "video_not_ready",
    "/api/usage": "invalid_range",
}


@schemathesis.check
def valid_data_is_refused_only_for_what_no_schema_states(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """A schema-valid request to one of those paths gets a 400 only with its code."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    allowed = _ALLOWED_400.get(case.operation.path)
    if allowed is None or response.status_code != 400:
        return
    code = response.json()["error"]["code"]
    if code != allowed:
        raise AssertionError(f"schema-valid request refused with 400 {code}: {response.text}")


# schemathesis 4.32's coverage scenario of this name fills every required form field
# it has no media-type strategy for with "" (whatever the field's schema says) and
# calls the case valid: here, an empty prompt, which the schema itself forbids.
_INVALID_SCENARIO = "Multipart body with custom encoding"


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """Skip that one generated case; every other multipart case still runs."""
    meta = case.meta
    data = getattr(meta.phase, "data", None) if meta is not None else None
    return getattr(data, "description", None) != _INVALID_SCENARIO
