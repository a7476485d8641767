"""The chat page end to end: headless Debian chromium (driven by Selenium) picks the checkpoint,
sends a prompt, and watches the reply stream in. Skipped without chromium + chromedriver
(`make browser` installs them) unless PARROT_REQUIRE_BROWSER=1, as in CI, where it fails instead.
Writes outputs/test_artifacts/chat_page.png."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from parrot_lm.serve.settings import Settings
from tests.helpers import ROOT
from tests.helpers.chat import LAST, long_seed, serve, shared_tiny_outputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Debian's packages (make browser); elsewhere point these variables at a matching pair.
CHROMIUM = Path(os.environ.get("PARROT_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("PARROT_CHROMEDRIVER", "/usr/bin/chromedriver"))
SCREENSHOT = ROOT / "outputs" / "test_artifacts" / "chat_page.png"


def _missing() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        return f"{' and '.join(missing)} missing (make browser installs Debian's chromium)"
    for module in ("selenium", "fastapi", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    why = _missing()
    if why is None:
        return
    if os.environ.get("PARROT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"PARROT_REQUIRE_BROWSER=1 but {why}.")
    pytest.skip(why)


@pytest.fixture(scope="module")
def server(browser_ready, tmp_path_factory, small_data_dir):
    from parrot_lm.serve.app import create_app

    outputs = shared_tiny_outputs(tmp_path_factory, small_data_dir)
    with serve(create_app(Settings(outputs_dir=outputs))) as url:
        yield url


@pytest.fixture
def driver(server, tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager must not look for (or download) anything: both paths are given.
    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",  # without these chromium floods the closed network
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-quic",
        "--window-size=1280,860",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "driver.log"))
    browser = webdriver.Chrome(service=service, options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


# Records the reply's length at every DOM change, in the page itself: the partial states the
# reader saw, however fast they came.
WATCH = """
const target = document.querySelector(arguments[0]);
window.__lengths = [];
new MutationObserver(() => {
  const node = document.querySelector(arguments[1]);
  if (node) window.__lengths.push(node.textContent.length);
}).observe(target, {childList: true, subtree: true, characterData: true});
"""


def _send_and_watch(driver, container: str, reply: str, timeout: float = 60) -> tuple[str, list]:
    """Click Send; wait until the page is idle again; return the reply and its lengths seen."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script(WATCH, container, reply)
    polled = set()
    driver.find_element(By.ID, "send").click()
    deadline = time.monotonic() + timeout
    while driver.find_element(By.TAG_NAME, "body").get_attribute("data-busy") != "false" or (
        not driver.find_element(By.ID, "status").text
    ):
        if time.monotonic() > deadline:
            raise AssertionError("The reply did not finish streaming in time.")
        texts = driver.find_elements(By.CSS_SELECTOR, reply)
        if texts:
            polled.add(len(texts[-1].text))
    WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "status").text)
    error = driver.find_element(By.ID, "error").text
    assert not error, error
    text = driver.find_elements(By.CSS_SELECTOR, reply)[-1].text
    lengths = driver.execute_script("return window.__lengths")
    print(f"lengths seen in the page: {lengths[:12]}...; polled: {sorted(polled)[:12]}")
    return text, lengths


def test_chat_page_streams_a_reply(server, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    started = time.perf_counter()
    driver.get(server + "/")
    WebDriverWait(driver, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#checkpoint option[value="{LAST}"]')
    )
    Select(driver.find_element(By.ID, "checkpoint")).select_by_value(LAST)
    info = driver.find_element(By.ID, "checkpoint-info").text
    assert "runs/tiny-chat" in info and "Step" in info and "Val loss" in info, info
    # What the page will send (top-p stays at the server's default 0.95, top-k off), so a seed
    # that runs to max_tokens can be picked first: the reply is sure to have text to watch.
    sent = {"model": LAST, "max_tokens": 160, "temperature": 1, "top_p": 0.95}
    completion = {**sent, "prompt": "Once upon a time"}
    chat = {**sent, "messages": [{"role": "user", "content": "Tell me a story about a dog."}]}

    def fill(field: str, value) -> None:
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(str(value))

    fill("max-tokens", 160)
    fill("temperature", 1)

    # Complete mode: the continuation grows in #output as tokens arrive.
    driver.find_element(By.CSS_SELECTOR, "label[for=mode-complete]").click()
    fill("seed", long_seed(server, "/v1/completions", completion))
    prompt = driver.find_element(By.ID, "prompt")
    prompt.send_keys(completion["prompt"])
    text, lengths = _send_and_watch(driver, "#output", "#output .generated")
    assert len(text) > 20, text
    partial = sorted({n for n in lengths if 0 < n < len(text)})
    assert len(partial) >= 2, lengths  # seen growing, more than one partial state
    assert driver.find_element(By.CSS_SELECTOR, "#output .prompt-text").text == "Once upon a time"
    status = driver.find_element(By.ID, "status").text
    assert "tokens" in status and "finish:" in status, status

    # Chat mode: the user's message, then the model's reply streamed into a new bubble.
    driver.find_element(By.CSS_SELECTOR, "label[for=mode-chat]").click()
    fill("seed", long_seed(server, "/v1/chat/completions", chat))
    prompt.clear()
    prompt.send_keys(chat["messages"][0]["content"])
    reply, lengths = _send_and_watch(driver, "#messages", "#messages .msg.assistant .content")
    bubbles = driver.find_elements(By.CSS_SELECTOR, "#messages .msg")
    assert [b.get_attribute("class") for b in bubbles] == ["msg user", "msg assistant"]
    assert bubbles[0].text.endswith(chat["messages"][0]["content"])
    assert len(reply) > 20 and reply == reply.lstrip() and "User:" not in reply
    assert prompt.get_attribute("value") == ""
    elapsed = time.perf_counter() - started
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
    print(f"page round trip {elapsed:.2f} s; screenshot: {SCREENSHOT}")


def test_bad_request_shows_the_servers_sentence(server, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(server + "/")
    WebDriverWait(driver, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#checkpoint option[value="{LAST}"]')
    )
    box = driver.find_element(By.ID, "max-tokens")
    box.clear()
    box.send_keys("999999")
    driver.find_element(By.ID, "prompt").send_keys("Hello")
    driver.find_element(By.ID, "send").click()
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "error").text)
    assert "max_new_tokens_limit" in driver.find_element(By.ID, "error").text
    assert driver.find_element(By.ID, "send").is_enabled()
