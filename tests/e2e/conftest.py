"""Browser tests against the real stack: Redis, `python -m backend` serving the built SPA, and
`python -m worker`, driven by Python Playwright through Debian's Chromium (WebGL2 through
SwiftShader). Screenshots and server logs land in test-artifacts/e2e/."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # e2e_*.py, without making tests a package

from e2e_stack import ARTIFACTS, CHROMIUM_ARGS, Stack, chromium_path, ensure_frontend_built, running_stack  # noqa: E402

API_TOKEN = "e2e-secret-token"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001 - pytest hook
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("FAILED-*.png"):  # from an earlier run
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="session")
def frontend_dist() -> Path:
    return ensure_frontend_built()


def _keep_logs(stack: Stack, artifacts: Path, prefix: str) -> None:
    for log in (stack.api_log, stack.worker_log):
        if log.exists():
            shutil.copy(log, artifacts / f"{prefix}-{log.name}")


@pytest.fixture(scope="session")
def stack(frontend_dist: Path, artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e-stack")) as s:
        try:
            yield s
        finally:
            _keep_logs(s, artifacts, "stack")


@pytest.fixture(scope="session")
def secured_stack(frontend_dist: Path, artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API with API_TOKEN set (no worker): every route but health needs the bearer token."""
    with running_stack(tmp_path_factory.mktemp("e2e-secured"), api_token=API_TOKEN, worker=False) as s:
        try:
            yield s
        finally:
            _keep_logs(s, artifacts, "secured")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _new_page(browser, base_url: str, request: pytest.FixtureRequest, artifacts: Path):  # noqa: ANN001
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base_url, accept_downloads=True)
    ctx.set_default_timeout(30_000)
    page = ctx.new_page()
    page.errors = []  # uncaught exceptions in the app fail the test
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return ctx, page


@pytest.fixture
def page(browser, stack: Stack, request: pytest.FixtureRequest, artifacts: Path):  # noqa: ANN001
    ctx, pg = _new_page(browser, stack.base_url, request, artifacts)
    yield pg
    _finish(ctx, pg, request, artifacts, stack)


@pytest.fixture
def secured_page(browser, secured_stack: Stack, request: pytest.FixtureRequest, artifacts: Path):  # noqa: ANN001
    ctx, pg = _new_page(browser, secured_stack.base_url, request, artifacts)
    yield pg
    _finish(ctx, pg, request, artifacts, secured_stack)


def _finish(ctx, pg, request: pytest.FixtureRequest, artifacts: Path, stack: Stack) -> None:  # noqa: ANN001
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        try:
            pg.screenshot(path=str(artifacts / f"FAILED-{request.node.name}.png"), full_page=True)
        except Exception:  # noqa: BLE001 - the page may be gone; the logs still help
            pass
        print(stack.logs())
    errors = list(pg.errors)
    ctx.close()
    if rep is not None and rep.passed:
        assert not errors, f"uncaught errors in the app: {errors}"
