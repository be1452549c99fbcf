"""The search page in a real headless Chromium against `mcsan serve` started as a user starts it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

import mcsan
from mcsan.index import build_index, open_index
from mcsan.sources import open_source

CHROMIUM = os.environ.get("MCSAN_CHROMIUM", "/usr/bin/chromium")
# as root and without a network: no sandbox, nothing fetched in the background
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_checkpoint, tiny_prepared, tmp_path_factory):
    """`mcsan serve` in its own process on an index of the tiny test videos."""
    root, _ = tiny_prepared
    out = tmp_path_factory.mktemp("browser") / "index"
    torch.set_num_threads(1)
    build_index(mcsan.load(tiny_checkpoint.best_dir, device="cpu"),
                open_source(root, ["test"], progress=False), out, progress=False)
    port = free_port()
    mcsan_command = Path(sys.executable).with_name("mcsan")
    process = subprocess.Popen([str(mcsan_command), "serve", str(out), "--port", str(port),
                                "--device", "cpu"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"mcsan serve did not start: {process.stdout.read()}") from None
            time.sleep(0.2)
    yield url, open_index(out)
    process.terminate()
    process.wait(timeout=10)


def test_search_page_in_chromium(served, tmp_path):
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).is_file(), (
        f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package as root "
        "(apt-get install chromium); elsewhere install it, or point MCSAN_CHROMIUM at one")
    url, index = served
    query = "a dog chases a cat"
    fused = [h.video_id for h in index.search([query], k=12)[0].hits]
    # the level whose ranking alone differs most from the fused one: weighting only it must
    # reorder the cards
    solo = {}
    for level in index.levels:
        weights = {other: 0.0 for other in index.levels} | {level: 3.0}
        solo[level] = [h.video_id for h in index.search([query], k=12, weights=weights)[0].hits]
    level = max(solo, key=lambda name: sum(a != b for a, b in zip(solo[name], fused, strict=True)))
    assert solo[level] != fused

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_selector("#weights input[data-level='relationship']")
        page.fill("#query", query)
        page.press("#query", "Enter")
        page.wait_for_selector(".card")
        cards = page.locator(".card")
        assert [cards.nth(i).get_attribute("data-video") for i in range(cards.count())] == fused
        first = cards.nth(0)
        assert first.locator(".level").count() == 4  # one bar per level
        assert "dog|chase|cat" in page.inner_text("#parsed")
        page.screenshot(path=str(tmp_path / "page.png"))

        for other in index.levels:  # only `level` keeps a weight; each change re-runs the query
            slider = page.locator(f"#weights input[data-level='{other}']")
            slider.evaluate("(node, value) => { node.value = value; "
                            "node.dispatchEvent(new Event('change')); }",
                            "3" if other == level else "0")
        page.wait_for_function(
            "expected => [...document.querySelectorAll('.card')].map(c => c.dataset.video)"
            ".join(' ') === expected", arg=" ".join(solo[level]), timeout=15_000)
        assert page.inner_text("#error") == ""
        browser.close()
