"""The API's interactive documentation (``/docs``, Swagger UI) served from this machine.

FastAPI's default page loads Swagger UI's JavaScript and CSS from a CDN, so ``/docs`` is
blank without internet.  The assets come from the ``swagger-ui-bundle`` package instead,
mounted at ``/docs/static``.  (ReDoc, CDN-only as well, is not served.)
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

__all__ = ["STATIC", "mount_docs"]

#: Where the Swagger UI assets are served.
STATIC = "/docs/static"


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI over ``app.openapi_url``) with local assets.

    ``app`` must be built with ``docs_url=None`` and ``redoc_url=None``.
    """
    app.mount(STATIC, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - docs",
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon-32x32.png",
        )
