"""The status page in a headless browser (Debian's chromium): it renders the section, the schedule line and
meters that move, and an action typed with the token is applied.

``LATENTD_SCREENSHOT=docs/images/web-status.png`` also writes the screenshot there (the README's image).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.web.conftest import TOKEN, LiveDaemon

pytestmark = [pytest.mark.jack, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromium-driver are not installed (tools/system-deps.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=420,1400"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_the_page_renders_live_status_and_takes_an_action(live: LiveDaemon, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By

    browser.get(live.url + "/")

    def text(element_id: str) -> str:
        return browser.find_element(By.ID, element_id).text

    section = live.wait_for(lambda: text("section") if text("section") not in ("", "—") else None, "section")
    assert section == live.status()["section"]
    assert "open around the clock" in text("schedule") and text("state") in ("playing", "fading in")
    assert "next opening" in text("next")

    # FL's RMS bar, read twice a few statuses apart: the meters follow the audio (the noise on FR moves).
    def heights() -> list[str]:
        return [r.get_attribute("height") for r in browser.find_elements(By.CSS_SELECTOR, "rect.rms")]

    def playing() -> list[str] | None:
        now = heights()
        return now if len(now) == 4 and float(now[0]) > 0 else None

    first = live.wait_for(playing, "meters")
    live.wait_for(lambda: heights() != first, "the meters moving")
    assert float(heights()[2]) == 0.0  # BL plays nothing
    # Read-only without the token: the refusal says why.
    browser.find_element(By.CSS_SELECTOR, "button[data-action='next']").click()
    live.wait_for(lambda: "refused" in text("result") and "token" in text("result"), "the refusal")
    assert text("section") == section
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "save").click()
    browser.find_element(By.CSS_SELECTOR, "button[data-action='next']").click()
    live.wait_for(lambda: text("result") == "next: applied", "the action applied")
    live.wait_for(lambda: text("section") not in ("", "—", section), "the next section in the page")
    time.sleep(1.0)  # a second more of history in the picture
    browser.execute_script("plot(); window.scrollTo(0, 0);")
    time.sleep(0.3)
    shot = tmp_path / "web-status.png"
    browser.set_window_size(420, int(browser.execute_script("return document.body.scrollHeight")) + 20)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    wanted = os.environ.get("LATENTD_SCREENSHOT")
    if wanted:
        Path(wanted).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, wanted)
