"""The console in Debian's chromium (Playwright, never `playwright install`) on the local stack.

`stack` is the e2e fixture (moto server + localstripe + chalice local on free ports); these
tests get a stack of their own, so their test clock and ledger never disturb tests/e2e.
Screenshots go to a temporary directory, or to docs/console/ with UPDATE_CONSOLE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from infra.local.stack import LocalStack
from tests.e2e.conftest import stack
from tests.support.localstripe import stack_card

__all__ = ["stack"]

CHROMIUM = "/usr/bin/chromium"
REPO_ROOT = Path(__file__).resolve().parents[2]
AXE_SOURCE = Path(__file__).with_name("vendor") / "axe.min.js"
VIEWPORT = {"width": 1280, "height": 900}


@dataclass
class Api:
    """The public API over HTTP, for setting up what a story needs besides what it shows."""

    stack: LocalStack
    key: str

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.stack.config.api_url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {key or self.key}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer

    def card(self, profile_id: str, number: str) -> str:
        method_id = stack_card(self.stack, number)
        self.ok(
            "POST",
            f"/v1/profiles/{profile_id}/payment-methods",
            {"stripe_payment_method_id": method_id},
        )
        return method_id

    def customer(self, name: str, email: str, card: str | None = None) -> dict[str, Any]:
        profile: dict[str, Any] = self.ok(
            "POST", "/v1/profiles", {"kind": "customer", "name": name, "email": email}
        )
        if card:
            profile["card"] = self.card(profile["id"], card)
        return profile


@dataclass
class Console:
    """One signed-in browser page on the console, with the checks every page gets."""

    page: Page
    base_url: str
    screenshot_dir: Path
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("requestfailed", self._on_request_failed)
        self.pending: set[str] = set()
        self.page.on("request", lambda r: self.pending.add(r.url))
        self.page.on("requestfinished", lambda r: self.pending.discard(r.url))

    def _on_request_failed(self, request: Any) -> None:
        if request.failure == "net::ERR_ABORTED":
            return  # a request the page itself dropped when it navigated away
        self.problems.append(f"request failed: {request.url} {request.failure}")

    def _on_console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or (
            message.type == "error" and "Failed to load resource" not in text
        ):
            self.problems.append(f"console {message.type}: {text}")

    def expect_problem(self, containing: str) -> None:
        """A failure the test caused on purpose: there must be one, and it is not a problem."""
        matching = [problem for problem in self.problems if containing in problem]
        assert matching, (containing, self.problems)
        self.problems = [problem for problem in self.problems if containing not in problem]

    def open(self, route: str = "") -> None:
        target = f"{self.base_url}/console/#/{route}"
        if self.page.url == target:
            self.page.reload()  # a goto to the same URL and hash would not load anything
        else:
            self.page.goto(target)
        self.settle()

    def settle(self) -> None:
        """Wait until nothing on the page is loading.

        What a click starts may not be marked busy yet when the click returns: Preact runs an
        effect (a search's fetch, which marks the list busy) in a task after the next frame.
        So the page first gets a frame and a task, then the busy markers are looked for."""
        self.page.evaluate(
            "() => new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)))"
        )
        busy = self.page.locator('[aria-busy="true"]')
        try:
            expect(busy).to_have_count(0, timeout=15_000)
        except AssertionError as error:
            still = [busy.nth(i).evaluate("e => e.outerHTML") for i in range(busy.count())]
            raise AssertionError(
                f"still loading: {still}; problems: {self.problems}; pending {self.pending}"
            ) from error

    def sign_in(self, key: str) -> None:
        self.page.goto(f"{self.base_url}/console/")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("button", name="Sign out").wait_for()
        self.settle()

    def confirm(self, label: str) -> None:
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_role("button", name=label).click()
        dialog.wait_for(state="hidden")
        self.settle()

    def check_accessibility(self) -> None:
        """axe-core in the page: no serious or critical violation."""
        self.settle()
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            # Evaluated over the DevTools protocol, which the page's CSP does not govern.
            self.page.evaluate(AXE_SOURCE.read_text(encoding="utf-8"))
        violations = self.page.evaluate(
            """async () => {
                const result = await axe.run(document, {resultTypes: ['violations']});
                return result.violations
                  .filter(v => v.impact === 'serious' || v.impact === 'critical')
                  .map(v => ({id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
            }"""
        )
        assert violations == [], json.dumps(violations, indent=1)

    def screenshot(self, name: str) -> None:
        self.settle()
        self.page.screenshot(path=str(self.screenshot_dir / f"{name}.png"), full_page=True)


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    launched = playwright_session.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
    )
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("UPDATE_CONSOLE_SCREENSHOTS") == "1":
        target = REPO_ROOT / "docs" / "console"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return Path(tmp_path_factory.mktemp("console-screenshots"))


@pytest.fixture(scope="session")
def community(stack: LocalStack) -> dict[str, Any]:
    platform = Api(stack, stack.config.platform_api_key)
    created: dict[str, Any] = platform.ok("POST", "/v1/communities", {"name": "Harbour gym"})
    return created


@pytest.fixture(scope="session")
def api(stack: LocalStack, community: dict[str, Any]) -> Api:
    return Api(stack, community["api_key"]["secret"])


def _console(browser: Browser, stack: LocalStack, screenshot_dir: Path) -> Iterator[Console]:
    context = browser.new_context(viewport=VIEWPORT)
    console = Console(context.new_page(), stack.config.api_url, screenshot_dir)
    yield console
    context.close()
    assert console.problems == []


@pytest.fixture(scope="module")
def console(
    browser: Browser, stack: LocalStack, screenshot_dir: Path, community: dict[str, Any]
) -> Iterator[Console]:
    """The console signed in with the community's key (one page for a module's stories)."""
    for signed_in in _console(browser, stack, screenshot_dir):
        signed_in.sign_in(community["api_key"]["secret"])
        yield signed_in


@pytest.fixture(scope="module")
def platform_console(
    browser: Browser, stack: LocalStack, screenshot_dir: Path
) -> Iterator[Console]:
    """The console signed in with the platform key, in a tab of its own."""
    for signed_in in _console(browser, stack, screenshot_dir):
        signed_in.sign_in(stack.config.platform_api_key)
        yield signed_in
