"""A manager approves a waiting filing step in the Prefect UI, the way the README tells them to.

``brokerflow up`` runs the whole stack; ``brokerflow filing submit`` starts the chain, which
suspends at the brokerage business office with a form.  Headless Chromium (Debian's packages,
no driver downloads) opens the suspended run, clicks Resume, fills the form Prefect renders from
``SignForm`` and submits it; the chain must then wait on the channel dept.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pyotp
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.browser import chromium
from tests.support.paths import ROSTER_CSV, console_script
from tests.support.stack_process import clean_env, prefect_api, running_stack

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: The README's screenshot is refreshed only on request (BROKERFLOW_UPDATE_SCREENSHOTS=1).
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "prefect-approval-form.png"
SUBJECT = "2027年度营销方案"
OPINION = "转渠道管理部"
T = TypeVar("T")


def _api(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``body`` as JSON to) the Prefect REST API (with its CSRF token)."""
    return prefect_api(port, path, body)


def _state(port: int, run_id: str) -> dict[str, Any]:
    """The flow run's current state (its ``id`` changes on every transition)."""
    state: dict[str, Any] = _api(port, f"/flow_runs/{run_id}")["state"]
    return state


def _poll(probe: Callable[[], T | None], *, timeout: float, what: str,
          interval: float = 0.5) -> T:
    """``probe()`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def _brokerflow(home: Path, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``brokerflow ARGS --as USER`` in a child process, with the sample secret pw-USER."""
    env = clean_env(home, BROKERFLOW_SECRET=f"pw-{user}")
    return subprocess.run([*console_script(), *args, "--as", user], env=env,
                          capture_output=True, text=True, timeout=120)


def _form_field(dialog: WebElement, label: str, control: str) -> WebElement:
    """The input of a field Prefect's schema form labels ``label`` (e.g. "Signer (Optional)").

    The ``<label for>`` ids do not point at the controls, so go from the label's text to the
    control inside the same field; the enum select comes with an empty placeholder twin.
    """
    field = dialog.find_element(By.XPATH, (
        ".//div[contains(concat(' ', normalize-space(@class), ' '), ' schema-form-property ')]"
        "[.//span[contains(@class, 'schema-form-property__label')]"
        f"[starts-with(normalize-space(), '{label}')]]"))
    return field.find_element(By.XPATH, f".//{control}[not(contains(@class, 'placeholder'))]")


def _fill(element: WebElement, text: str) -> None:
    element.clear()
    element.send_keys(text)
    assert element.get_attribute("value") == text


def _approve_in_prefect_ui(driver: webdriver.Chrome, url: str, screenshot: Path,
                           resumed: Callable[[], bool], code: Callable[[], str]) -> None:
    """Open the suspended run, Resume, fill the SignForm as bo1 with a current one-time code
    from ``code()`` (the stack is not in development mode), screenshot, Submit.

    ``resumed()`` tells from the API whether the run has left the Suspended state.
    """
    driver.get(url)
    wait = WebDriverWait(driver, 60)
    wait.until(ec.visibility_of_element_located(
        (By.XPATH, "//*[contains(@class, 'state-badge')][normalize-space()='Suspended']")))
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//button[normalize-space()='Resume']"))).click()
    dialog = wait.until(ec.visibility_of_element_located(
        (By.XPATH, "//*[@role='dialog'][.//*[normalize-space()='Resume Flow Run']]")))
    wait.until(lambda _: dialog.find_elements(By.TAG_NAME, "textarea"))
    text = dialog.text
    assert SUBJECT in text and "office_receive" in text, text  # the description markdown
    _fill(_form_field(dialog, "Signer", "textarea"), "bo1")
    # SecretStr gives the schema format "password", but Prefect 3.8's form ignores it and shows
    # a plain text box; the engine deletes the stored answer right after reading it.
    _fill(_form_field(dialog, "Secret", "textarea"), code())
    decision = Select(_form_field(dialog, "Decision", "select"))
    assert [o.get_attribute("value") for o in decision.options] == [
        "approve", "reject", "return"]
    decision.select_by_value("approve")
    _fill(_form_field(dialog, "Opinion", "textarea"), OPINION)
    driver.execute_script("arguments[0].scrollIntoView({block: 'end'})",
                          _form_field(dialog, "Opinion", "textarea"))
    assert driver.save_screenshot(str(screenshot))
    dialog.find_element(By.XPATH, ".//button[normalize-space()='Submit']").click()
    # The outcome that matters is the run leaving Suspended (asked of the API); the dialog
    # closing is the UI's side of it.  A person whose Submit did nothing clicks it again: so does
    # this test, once, and says so.
    accepted = lambda _: resumed() or not driver.find_elements(  # noqa: E731
        By.XPATH, "//*[@role='dialog']")
    try:
        WebDriverWait(driver, 30).until(accepted)
        return
    except TimeoutException:
        first = driver.find_element(By.TAG_NAME, "body").text
    print(f"Submit did not resume the run within 30 s; the page showed:\n{first[-2000:]}")
    for button in driver.find_elements(By.XPATH, "//*[@role='dialog']//button"
                                                 "[normalize-space()='Submit']"):
        button.click()
    try:
        WebDriverWait(driver, 60).until(accepted)
    except TimeoutException as timeout:
        page = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(
            "the Resume form was not accepted after two Submits; the page showed after the "
            f"first:\n{first[-2000:]}\nand after the second:\n{page[-2000:]}") from timeout


def _log_tails(home: Path, lines: int = 40) -> str:
    """The last lines of the stack's logs, for a failure report."""
    tails = []
    for log in sorted(home.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        tails.append(f"--- {log.name} ---\n" + "\n".join(tail))
    return "\n".join(tails)


@pytest.mark.slow
def test_a_manager_approves_a_suspended_filing_step_in_the_prefect_ui(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with running_stack(home) as stack:
        prefect_port = stack.prefect_port
        assert json.loads((home / "stack.json").read_text())["prefect_api"] == (
            f"http://127.0.0.1:{prefect_port}/api")
        _poll(lambda: "filing-chain" in [
            d["name"] for d in _api(prefect_port, "/deployments/filter", {})],
            timeout=120, what="the filing-chain deployment")
        loaded = subprocess.run([*console_script(), "roster", "load", str(ROSTER_CSV)],
                                env=clean_env(home), capture_output=True, text=True, timeout=120)
        assert loaded.returncode == 0, loaded.stderr  # up loads no users; the first load is open
        enrolled = _brokerflow(home, "bo1", "roster", "totp", "bo1")  # bo1's authenticator
        assert enrolled.returncode == 0, enrolled.stderr
        authenticator = pyotp.parse_uri(next(
            line for line in enrolled.stdout.splitlines() if line.startswith("otpauth://")))

        submitted = _brokerflow(home, "bk1", "filing", "submit", "--branch", "SZ01",
                                "--kind", "marketing_plan", "--subject", SUBJECT,
                                "--body", "全年营销预算 120 万元，分四个季度执行。")
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        filing = re.search(r"filing (\d+) submitted", submitted.stdout)
        run = re.search(r"flow run ([0-9a-f-]{36})", submitted.stdout)
        assert filing and run, submitted.stdout
        filing_id, run_id = filing.group(1), run.group(1)

        def suspended() -> dict[str, Any] | None:
            state = _state(prefect_port, run_id)
            assert state["type"] not in ("FAILED", "CRASHED", "COMPLETED", "CANCELLED"), state
            return state if state["type"] == "PAUSED" else None

        waiting = _poll(suspended, timeout=90, what=f"flow run {run_id} to suspend")

        screenshot = tmp_path / "prefect-approval-form.png"
        with chromium() as driver:
            try:
                _approve_in_prefect_ui(driver, f"http://127.0.0.1:{prefect_port}/runs/flow-run/"
                                               f"{run_id}", screenshot,
                                       lambda: _state(prefect_port, run_id)["id"] != waiting["id"],
                                       authenticator.now)
            except Exception as failure:  # keep what the browser and the stack showed
                driver.save_screenshot(str(tmp_path / "prefect-ui-failure.png"))
                (tmp_path / "prefect-ui-failure.html").write_text(driver.page_source)
                raise AssertionError(f"{failure!r}\n{_log_tails(home)}") from failure

        def advanced() -> dict[str, Any] | None:
            result = _brokerflow(home, "bm1", "filing", "status", filing_id, "--format", "json")
            assert result.returncode == 0, result.stdout + result.stderr
            report: dict[str, Any] = json.loads(result.stdout)
            waiting = report["waiting_on"] or {}
            return report if waiting.get("step") == "channel_review" else None

        report = _poll(advanced, timeout=90, interval=2, what="the chain to reach channel_review")
        assert report["status"] == "waiting"
        assert [(d["step"], d["signer_id"], d["decision"], d["opinion"])
                for d in report["decisions"]] == [
            ("office_receive", "bo1", "approve", OPINION)]
        assert screenshot.stat().st_size > 10_000
        if os.environ.get("BROKERFLOW_UPDATE_SCREENSHOTS") == "1":
            DOCS_SCREENSHOT.write_bytes(screenshot.read_bytes())

        assert stack.interrupt() == 0
    assert not (home / "stack.json").exists()
