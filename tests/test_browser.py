"""The page in a real headless Chromium (Debian's, driven by Playwright): pick a photo, see the
preview, Classify, and read category, confidence and time without a page reload; and the
same through a plain form post with JavaScript off.

Needs `playwright` (pip; its driver ships in the wheel, no `playwright install`) and
/usr/bin/chromium (apt-get install chromium). Skipped without them unless
GGCTL_REQUIRE_BROWSER=1 (CI), where a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LiveServer, image_bytes

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("GGCTL_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("GGCTL_SCREENSHOT_DIR", "/tmp"))
TIMEOUT_MS = 15_000


def _unavailable(reason: str) -> None:
    if os.environ.get("GGCTL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"GGCTL_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(
        CHROMIUM
    ):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True, timeout=60_000)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def photo_file(tmp_path: Path) -> Path:
    path = tmp_path / "dinner.jpg"
    path.write_bytes(image_bytes("JPEG", (800, 600), seed=3))
    return path


def _block_outside(page, base_url: str) -> list[str]:
    """Abort any request that is not to the service under test; return what was tried."""
    outside: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith(base_url):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return outside


def test_classify_without_reload(browser, live_server: LiveServer, photo_file: Path) -> None:
    expected = live_server.predict(photo_file.read_bytes()).json()
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    outside = _block_outside(page, live_server.base_url)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    navigations: list[str] = []
    page.on("framenavigated", lambda f: navigations.append(f.url))
    try:
        page.goto(live_server.url("/"))
        assert page.title().startswith("GourmetGram")
        assert page.locator("#result").is_hidden()
        assert page.locator("#preview").is_hidden()

        page.set_input_files("#file", str(photo_file))
        preview = page.locator("#preview")
        preview.wait_for(state="visible")
        page.wait_for_function(
            "() => { const i = document.getElementById('preview');"
            " return i.complete && i.naturalWidth > 0; }"
        )
        assert page.evaluate("document.getElementById('preview').naturalWidth") == 800
        # A marker that a full page load would wipe out.
        page.evaluate("window.__still_here = 42")
        page.click("#classify")

        category = page.locator("#category")
        category.wait_for(state="visible")
        assert category.inner_text() == expected["class"]
        confidence = page.locator("#confidence").inner_text()
        assert confidence == f"{expected['confidence'] * 100:.1f}%"
        time_text = page.locator("#inference-time").inner_text()
        assert time_text.endswith(" ms") and float(time_text[:-3]) > 0
        assert page.evaluate("window.__still_here") == 42, "the page reloaded"
        assert navigations == [live_server.url("/")], navigations
        assert page.locator("#classify").is_enabled()
        page.screenshot(path=str(SCREENSHOTS / "ggctl-page-js.png"), full_page=True)

        # A bad file shows the server's error in place, still without a reload.
        page.set_input_files(
            "#file",
            files=[
                {"name": "notes.txt", "mimeType": "image/jpeg", "buffer": b"this is not a photo"}
            ],
        )
        page.click("#classify")
        err = page.locator("#error")
        err.wait_for(state="visible")
        assert "not an image" in err.inner_text()
        assert page.locator("#category").count() == 0
        assert page.evaluate("window.__still_here") == 42
        assert errors == [], errors
        assert outside == [], outside
    finally:
        context.close()


def test_form_post_without_javascript(browser, live_server: LiveServer, photo_file: Path) -> None:
    expected = live_server.predict(photo_file.read_bytes()).json()
    context = browser.new_context(java_script_enabled=False, viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    outside = _block_outside(page, live_server.base_url)
    try:
        page.goto(live_server.url("/"))
        page.set_input_files("#file", str(photo_file))
        with page.expect_navigation():
            page.click("#classify")
        assert page.url == live_server.url("/predict")
        assert page.locator("#category").inner_text() == expected["class"]
        assert page.locator("#confidence").inner_text() == (f"{expected['confidence'] * 100:.1f}%")
        assert page.locator("#inference-time").inner_text().endswith(" ms")
        # The result page still offers the form for the next photo.
        assert page.locator("#upload-form input[type=file][name=file]").count() == 1
        page.screenshot(path=str(SCREENSHOTS / "ggctl-page-nojs.png"), full_page=True)
        assert outside == [], outside
    finally:
        context.close()
