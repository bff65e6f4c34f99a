"""/docs and /redoc work without internet: a headless Chromium that may reach only the API
renders the operations of both pages."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import pytest
from servers import api_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_stack import CHROMIUM_ARGS, chromium_path  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory, redis_url) -> Iterator[str]:
    env = {"DATA_DIR": str(tmp_path_factory.mktemp("docs") / "data"), "REDIS_URL": redis_url}
    with api_server(env) as (url, _proc):
        yield url


@pytest.fixture(scope="module")
def offline_page(base):
    """A browser page whose every request to another host fails, as on a machine offline."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    api_host = urlparse(base).netloc
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page()

        def only_the_api(route) -> None:  # noqa: ANN001
            if urlparse(route.request.url).netloc == api_host:
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        page.route("**/*", only_the_api)
        yield page, blocked
        browser.close()


def test_swagger_ui_shows_the_operations_offline(base, offline_page):
    page, blocked = offline_page
    page.goto(f"{base}/docs")
    page.locator(".opblock-summary-path", has_text="/api/jobs/{job_id}/cancel").first.wait_for(timeout=20000)
    assert page.locator(".opblock").count() >= 15
    assert blocked == []


def test_redoc_shows_the_operations_offline(base, offline_page):
    page, blocked = offline_page
    page.goto(f"{base}/redoc")
    page.get_by_role("heading", name="Create Job").first.wait_for(timeout=20000)
    assert page.get_by_role("heading", name="Resume Job").count() >= 1
    assert blocked == []
