"""`hwaksan serve` in a real headless browser: Debian's chromium driven by Playwright.

The page is served on a free loopback port; the test types a prompt, generates with the shipped
`shapes_t2i`, watches the progress bar count the sampler's steps, reads the gallery's images
(equal to `generate`'s with the same settings) and downloads one, then triggers bad inputs and
reads their one-sentence messages. Without gradio, playwright or /usr/bin/chromium it skips,
unless HWAKSAN_REQUIRE_BROWSER=1 (set by .ci/run), where it fails. HWAKSAN_SERVE_SCREENSHOT=PATH
saves the page after generating (scripts/serve_screenshot.sh: the README's docs/serve.png).
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import socket

import numpy as np
import pytest
from PIL import Image

import hwaksan as hk

# gradio's own pandas deprecations
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

CHROMIUM = "/usr/bin/chromium"
# headless as root, and no background calls out of a machine with a closed network
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
# not the page's defaults (the model's 25 steps, 4 images, seed 0): the fields reach generate
PROMPT, STEPS, COUNT, SEED = "a red circle to the left of a blue square", 20, 3, 7
# every "step k/n" the progress bar shows, collected as the page changes
WATCH_PROGRESS = """() => { window.steps = new Set(); new MutationObserver(() => {
    for (const el of document.querySelectorAll('[class*=progress]')) {
        const m = el.textContent.match(/step (\\d+)\\/(\\d+)/); if (m) window.steps.add(m[0]); }
}).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


def _missing() -> str | None:
    """What this machine lacks to run the page in a browser, or None."""
    for module, extra in (("gradio", "serve"), ("playwright", "test")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[{extra}]')"
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page():
    """The served page open in headless chromium (one server and browser for the module)."""
    missing = _missing()
    if missing:
        (pytest.fail if os.environ.get("HWAKSAN_REQUIRE_BROWSER") == "1" else pytest.skip)(missing)
    from playwright.sync_api import sync_playwright

    import hwaksan.serve
    from hwaksan.serve.models import Models

    with pytest.MonkeyPatch.context() as env:
        env.setenv("HWAKSAN_FUSED_KERNELS", "0")  # no first-use kernel build inside this test
        server = hwaksan.serve.launch(Models(["shapes_t2i"]), port=_free_port(), block=False)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                tab = browser.new_page(viewport={"width": 1280, "height": 860})
                tab.set_default_timeout(60_000)
                tab.goto(server.local_url)
                tab.wait_for_selector("#prompt textarea", state="visible")
                yield tab
                browser.close()
        finally:
            server.close()


def _set(tab, selector: str, value: str) -> None:
    tab.fill(selector, value)
    tab.press(selector, "Tab")  # a number field takes its value on leaving it


def _status(tab, starts: str) -> str:
    """The status line once it starts with `starts` (or as it is after 60 s)."""
    from playwright.sync_api import TimeoutError

    try:
        tab.wait_for_function(
            "s => document.querySelector('#status textarea').value.startsWith(s)", arg=starts
        )
    except TimeoutError:
        pass  # the caller's assert shows what the line says instead
    return tab.input_value("#status textarea")


def test_generate_shows_progress_then_the_images_of_generate(page, tmp_path):
    assert page.url.startswith("http://127.0.0.1:")  # bound to loopback
    assert not page.is_visible("#class_labels")  # a text model: prompt, no class
    page.fill("#prompt textarea", PROMPT)
    _set(page, "#steps input", str(STEPS))
    _set(page, "#count input[type=number]", str(COUNT))
    _set(page, "#seed input", str(SEED))
    page.evaluate(WATCH_PROGRESS)
    page.click("#generate")
    status = _status(page, f"{COUNT} image(s) in")
    assert status.startswith(f"{COUNT} image(s)") and f"ddim, {STEPS} steps, seed {SEED}" in status
    steps = page.evaluate("[...window.steps]")
    assert any(re.fullmatch(rf"step (\d+)/{STEPS}", s) for s in steps), steps  # a live bar
    sources = page.eval_on_selector_all("#gallery img", "imgs => imgs.map(i => i.src)")
    shown = [Image.open(io.BytesIO(page.request.get(src).body())) for src in sources]
    expected = hk.load("shapes_t2i").generate(
        COUNT, sampler="ddim", steps=STEPS, seed=SEED, prompt=PROMPT, guidance_scale=4.0
    )
    assert np.array_equal(np.stack(shown), np.stack([np.asarray(im) for im in expected]))
    if os.environ.get("HWAKSAN_SERVE_SCREENSHOT"):
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=os.environ["HWAKSAN_SERVE_SCREENSHOT"])
    page.click("#gallery img >> nth=0")
    with page.expect_download() as download:
        page.click("#gallery button[aria-label=Download]")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert np.array_equal(np.asarray(Image.open(saved)), np.asarray(expected[0]))


def test_bad_inputs_are_one_sentence_on_the_page(page):
    page.fill("#prompt textarea", "   ")
    page.click("#generate")
    empty = _status(page, "error: Prompt")
    assert empty == "error: Prompt is empty: write one, e.g. 'a red circle'"
    page.fill("#prompt textarea", "a red circle")
    _set(page, "#steps input", "5000")
    page.click("#generate")
    too_many = _status(page, "error: Steps")
    assert too_many == "error: Steps 5000 is more than the model's 1000 timesteps"
    page.click("#model input")
    page.get_by_role("option", name="digits", exact=True).click()  # the form follows the model
    page.wait_for_selector("#class_labels", state="visible")
    assert not page.is_visible("#prompt") and page.input_value("#steps input") == "50"


def test_a_shipped_controlnet_adds_its_image_field_and_steers(page, tmp_path):
    page.click("#model input")
    page.get_by_role("option", name="shapes_t2i_64", exact=True).click()
    page.wait_for_selector("#prompt textarea", state="visible")
    assert not page.is_visible("#control_image")
    page.get_by_text("Adapters: LoRA").click()  # open the accordion
    page.click("#adapters input")
    page.get_by_role("option", name="shapes_t2i_64_controlnet_seg", exact=True).click()
    page.wait_for_selector("#control_image", state="visible")  # the form follows the adapter
    mask = Image.new("RGB", (64, 64))
    mask.paste((255, 255, 255), (8, 8, 28, 28))
    mask.save(tmp_path / "mask.png")
    page.set_input_files("#control_image input[type=file]", str(tmp_path / "mask.png"))
    page.fill("#prompt textarea", "a red circle")
    _set(page, "#steps input", "3")
    _set(page, "#count input[type=number]", "1")
    page.click("#generate")
    status = _status(page, "1 image(s) in")
    assert status.endswith("ControlNet attached"), status
