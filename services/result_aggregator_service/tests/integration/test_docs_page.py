"""The docs page works offline: /docs loads Swagger UI from the service itself, and a real browser that
can reach nothing but the service renders the API's routes."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from result_aggregator_service.tests.integration.api_support import Client
from result_aggregator_service.tests.integration.browser import rendered_dom

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra
JS, CSS = "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"


class RenderedOperations(HTMLParser):
    """The text of Swagger UI's operation paths (`.opblock-summary-path`) and of the document's title."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.titles: list[str] = []
        self._open: list[tuple[str, list[str]]] = []  # (tag, collected text) of elements being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if "opblock-summary-path" in classes or (tag == "h2" and "title" in classes):
            self._open.append((tag, []))
        elif self._open and tag == self._open[-1][0]:
            self._open.append((tag, self._open[-1][1]))  # the same tag nested: share the text

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            opened, text = self._open.pop()
            if not self._open or self._open[-1][1] is not text:
                (self.titles if opened == "h2" else self.paths).append("".join(text).replace("\u200b", "").strip())

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][1].append(data)


async def test_the_docs_page_points_at_assets_the_service_serves_without_auth(client: Client) -> None:
    page = await (await client.get("/docs")).get_data(as_text=True)
    assert f'src="{JS}"' in page and f'href="{CSS}"' in page
    assert not re.search(r"(src|href)=\"https?://", page), "the page still loads something from elsewhere"
    for path, kind in ((JS, "javascript"), (CSS, "text/css")):
        response = await client.get(path)  # no auth headers
        assert response.status_code == 200 and kind in response.content_type
        assert len(await response.get_data()) > 10_000
    missing = await client.get("/docs/assets/secret.txt")
    assert missing.status_code == 404 and (await missing.get_json())["error"] == "not_found"
    document = await (await client.get("/openapi.json")).get_json()
    assert not [path for path in document["paths"] if path.startswith("/docs")]


def test_a_browser_that_reaches_only_the_service_renders_every_route(served_api: str, tmp_path: Path) -> None:
    documented = set(httpx.get(f"{served_api}/openapi.json", timeout=10).json()["paths"])
    assert "/internal/v1/batches/{batch_id}/status" in documented

    page = RenderedOperations()
    page.feed(rendered_dom(f"{served_api}/docs", tmp_path / "chromium-profile"))

    assert set(page.paths) == documented, f"rendered {page.paths}"
    assert any("Result Aggregator Service: internal query API" in title for title in page.titles), page.titles
