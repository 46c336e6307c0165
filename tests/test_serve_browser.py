"""The web page in a real browser: Debian's chromium driven by Playwright (its driver only; the browser is the
system's, installed by .ci/run). Skipped only where /usr/bin/chromium is absent.

WORDBRUSH_SERVE_SCREENSHOT=docs/images/serve-page.png keeps the screenshot (otherwise it goes to tmp_path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from test_serve import KEY, running
from wordbrush import TextToImagePipeline
from wordbrush.serve.app import create_app
from wordbrush.serve.settings import ServeSettings

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does)")


def test_page_draws_images_in_chromium(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    pipe = TextToImagePipeline.from_pretrained("shapes")
    pipe.sampling = pipe.sampling_options(candidates=1)  # the model's own options, without best-of-4: 4x faster
    shot = Path(os.environ.get("WORDBRUSH_SERVE_SCREENSHOT") or tmp_path / "serve-page.png")
    with running(create_app(ServeSettings(api_key=KEY), pipe)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            page.goto(base + "/")
            expect(page.locator("#model-info")).to_have_text("enter the API key below")

            page.fill("#prompt", "a red circle to the left of a blue square")
            page.fill("#seed", "3")
            page.click("#generate")  # no key yet: the server's 401 message is shown
            expect(page.locator("#error")).to_contain_text("API key")
            expect(page.locator("#error")).to_be_visible()

            page.fill("#api-key", KEY)
            page.dispatch_event("#api-key", "change")
            expect(page.locator("#model-info")).to_have_text("model: shapes")
            page.fill("#n", "4")
            page.fill("#guidance", "2")
            page.click("#generate")
            images = page.locator("#gallery img.result")
            expect(images).to_have_count(4, timeout=60_000)
            expect(page.locator("#error")).to_be_hidden()
            sizes = images.evaluate_all("els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
            assert sizes == [[True, 64, 64]] * 4
            links = page.locator("#gallery a[download]")
            assert links.count() == 4
            names = sorted(links.evaluate_all("els => els.map(e => e.download)"))
            assert names == [f"a-red-circle-to-the-left-of-a-blue-square-seed{s}.png" for s in (3, 4, 5, 6)]

            page.fill("#prompt", "a red circle")
            page.fill("#n", "99")
            page.click("#generate")  # the server's limit, shown to the user
            expect(page.locator("#error")).to_contain_text("n must be at most 8")
            page.fill("#n", "2")
            page.click("#generate")
            expect(images).to_have_count(6, timeout=60_000)
            expect(page.locator("#error")).to_be_hidden()
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
