"""The web app in a real headless Chromium: upload a generated WAV, see the tags and the timeline.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium.
Without them it skips on a developer's machine but fails under CI (``CI`` set): a skipped browser
test is not a passing one. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
IN_CI = bool(os.environ.get("CI"))
INSTALL = "apt-get install chromium chromium-driver; pip install -e '.[test]' (selenium)"
try:
    from selenium import webdriver
except ImportError:
    if IN_CI:
        raise ImportError(f"the browser test needs selenium under CI: {INSTALL}") from None
    pytest.skip(f"selenium is not installed: {INSTALL}", allow_module_level=True)

from app_data import ExactIndex, NearestMeanHead, free_port, write_tracks  # noqa: E402
from eval_data import tiny_model  # noqa: E402

import maest  # noqa: E402
from maest.app.ui import build_app  # noqa: E402

CHROMIUM = Path(os.environ.get("MAEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("MAEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--disable-extensions", "--window-size=1400,2000"]
WAIT_SECONDS = 90


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.exists()):
        missing = f"chromium/chromedriver not installed ({CHROMIUM}, {CHROMEDRIVER}): {INSTALL}"
        if IN_CI:
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")  # selenium: no usage statistics
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def app_url(tmp_path):
    pipeline = maest.load_model(tiny_model(tmp_path / "tiny"), device="cpu")
    music = tmp_path / "music"
    tracks = write_tracks(music, per_tone=2, seconds=3.0)
    embeddings = np.stack([pipeline.embed(p, blocks=2) for p in tracks])
    index = ExactIndex([p.relative_to(music).as_posix() for p in tracks], embeddings)
    head = NearestMeanHead(["low", "mid", "high"], embeddings.reshape(3, 2, -1).mean(axis=1))
    app = build_app(pipeline, index, head, audio_root=music)
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield app.local_url, tracks, pipeline
    finally:
        app.close()


def test_upload_shows_label_table_and_timeline(browser, app_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, tracks, pipeline = app_url
    upload = tmp_path / "my song.wav"
    shutil.copy(tracks[4], upload)
    browser.get(url)
    wait = WebDriverWait(browser, WAIT_SECONDS)
    file_input = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#upload input[type=file]"))
    file_input.send_keys(str(upload))

    expected = [label for label, _ in pipeline.tag(tracks[4], top_k=4)]
    table = wait.until(lambda d: _text_if(d, "#style-table", expected[0]))
    assert all(label in table for label in expected)
    image = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline img[src]"))[0]
    wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image))
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 1200  # the timeline PNG
    assert "my song.wav" in browser.find_element(By.ID, "tag-status").text
    head_lines = browser.find_element(By.ID, "head-table").text.split("\n")
    assert head_lines[head_lines.index("on") + 1] == "high"  # the head ranks the track's own tone first
    screenshot = tmp_path / "app-tag.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000

    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Collection')]").click()
    wait.until(lambda d: _text_if(d, "body", "6 tracks in the index"))
    search = browser.find_element(By.CSS_SELECTOR, "#search textarea, #search input")
    search.send_keys("mid")
    wait.until(lambda d: _text_if(d, "#collection-status", "2 matches"))
    browser.find_element(By.CSS_SELECTOR, "#tracks input").click()
    option = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "li[role=option][aria-label='mid/mid_0.wav']"))
    option[0].click()
    neighbours = wait.until(lambda d: _text_if(d, "#neighbours", "mid/mid_1.wav"))
    assert neighbours.index("mid/mid_1.wav") < neighbours.index("low/") and "mid/mid_0.wav" not in neighbours
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#player audio[src], #player [data-testid='waveform-Listen']"))
    assert browser.save_screenshot(str(tmp_path / "app-collection.png"))
    # the page itself never reaches beyond the local server (no fonts, scripts or analytics from the internet)
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(name.startswith(url.rstrip("/")) or name.startswith(("data:", "blob:")) for name in resources)


def _text_if(driver, selector: str, needle: str) -> str | bool:
    from selenium.webdriver.common.by import By

    elements = driver.find_elements(By.CSS_SELECTOR, selector)
    text = elements[0].text if elements else ""
    return text if needle in text else False
