"""``/docs`` works without internet: Swagger UI's assets are served by the API itself
(issue 20, item 7: the page loaded them from a CDN and stayed blank offline)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.api_fixtures import Harness


def test_docs_page_and_its_assets_come_from_the_api(h: Harness) -> None:
    with TestClient(h.app()) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        html = page.text
        assert "cdn." not in html and "https://" not in html.replace("https://fastapi", "")
        assert "/docs/static/swagger-ui-bundle.js" in html and "/openapi.json" in html
        js = client.get("/docs/static/swagger-ui-bundle.js")
        css = client.get("/docs/static/swagger-ui.css")
        assert js.status_code == 200 and "SwaggerUIBundle" in js.text
        assert css.status_code == 200 and ".swagger-ui" in css.text
        assert client.get("/redoc").status_code == 404  # ReDoc is CDN-only: not served
        assert client.get("/openapi.json").status_code == 200


def test_the_docs_routes_are_not_in_the_openapi_document(h: Harness) -> None:
    with TestClient(h.app()) as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/docs")]
