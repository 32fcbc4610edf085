"""End to end in a real browser: Debian's chromium driven by Playwright against `python app.py`.

`make test` installs chromium (make sysdeps) and playwright (the dev extra). Outside CI the test is
skipped when either is missing; in CI (CI=true) that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _require_browser():
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem is None and not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
        problem = "chromium is not installed (make sysdeps)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`python app.py --port P` as a subprocess, its output kept in a log file."""

    def __init__(self, home: Path, log: Path):
        self.home, self.log, self.port = home, log, _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = None

    def start(self, timeout: float = 90) -> "App":
        env = {**os.environ, "LIPSYNC_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        env.pop("SPACE_ID", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "app.py", "--port", str(self.port)], cwd=REPO, env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"app.py exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"app.py not ready after {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture()
def browser_page():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            browser.close()


def test_image_job_in_the_browser(browser_page, tmp_path, lipsync_home, astronaut_png, speech_wav):
    page = browser_page
    app = App(lipsync_home, tmp_path / "app.log").start()
    try:
        assert "Lipsync Studio is ready at" in app.log.read_text()
        page.goto(app.url)
        page.get_by_role("tab", name="Talking image").click()
        page.locator("#image-image input[type=file]").set_input_files(str(astronaut_png))

        # Generate without audio: the message sits on the audio input, and the app keeps working.
        page.locator("#image-generate").click()
        page.locator("#image-audio").get_by_text("is required").wait_for()

        page.locator("#image-audio input[type=file]").set_input_files(str(speech_wav))
        cost = page.locator("#image-cost")
        page.wait_for_function("document.querySelector('#image-cost').innerText.includes('credits —')")
        assert "Hosted API cost: 10 credits" in cost.inner_text()
        assert "minimum 5 s applies" in cost.inner_text()
        page.locator("#image-resolution").get_by_text("720p").click()
        page.wait_for_function("document.querySelector('#image-cost').innerText.includes('20 credits')")

        page.locator("#image-generate").click()
        # A progress bar labelled with the stage (and later an ETA) sits on the result while it renders.
        result = page.locator("#image-result")
        result.get_by_text(re.compile("Reading media|Analysing audio|Rendering|Encoding")).wait_for(timeout=30_000)
        result.screenshot(path=str(tmp_path / "rendering.png"))
        video = page.locator("#image-result video")
        video.wait_for(timeout=120_000)
        assert video.get_attribute("src")
        page.locator("#image-info").get_by_text("Done in").wait_for()
        page.locator("#image-download").get_by_text(".mp4").wait_for()
        page.locator("#image-sync-text").get_by_text("Lip sync:").wait_for(timeout=90_000)
        page.screenshot(path=str(tmp_path / "result.png"), full_page=True)

        outputs = list((lipsync_home / "outputs").glob("*.mp4"))
        assert len(outputs) == 1 and outputs[0].stat().st_size > 10_000

        # The job is in History after a restart.
        app.stop()
        app.start()
        page.goto(app.url)
        page.get_by_role("tab", name="History").click()
        table = page.locator("#history-table")
        table.get_by_test_id("cell-0-1").get_by_text("Talking image").wait_for()  # row 0: Job
        assert table.get_by_test_id("cell-0-2").inner_text().strip() == "completed"
        assert table.get_by_test_id("cell-0-3").inner_text().strip() == "astronaut.png, speech.wav"
        assert table.get_by_test_id("cell-1-1").count() == 0  # one job, one row
        page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
    finally:
        app.stop()
    assert "Traceback" not in app.log.read_text()
