"""Browser tests drive Debian's chromium (apt-get install chromium), never a downloaded one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")


BROWSER_FIXTURES = {"page", "browser", "context", "new_context", "browser_context_args"}


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Without Debian's chromium the tests that drive it cannot run: on a developer's machine
    they are skipped saying how to get it; under REQUIRE_SERVICES=1 (CI, which installs it)
    they run, and fail on the missing executable."""
    if CHROMIUM.exists() or os.environ.get("REQUIRE_SERVICES") == "1":
        return
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing: apt-get install chromium (never `playwright install`)"
    )
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {
        "executable_path": str(CHROMIUM),
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


def login(page: Any, live_server: Any, username: str, password: str = "pw") -> None:
    """Log in through the login form, as a person would."""
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")


# Screenshots for the docs are taken by the tests that show the feature. They are written to
# docs/screenshots/ only when asked (`make screenshots`: UPDATE_SCREENSHOTS=1), so that running
# the tests leaves the checkout as it was; otherwise to var/screenshots/, to look at.
_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = (
    _ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else _ROOT / "var" / "screenshots"
)


def screenshot(target: Any, name: str, **kwargs: Any) -> None:
    """Save a PNG of a page or an element as docs/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled", **kwargs)


def logged_in_page(new_context: Any, live_server: Any, username: str, **context_args: Any) -> Any:
    """A page in a browser context of its own (own cookies), logged in as `username`: two of
    them are two people at two computers. `context_args` go to browser.new_context
    (java_script_enabled=False, viewport=...)."""
    page = new_context(**context_args).new_page()
    login(page, live_server, username)
    return page
