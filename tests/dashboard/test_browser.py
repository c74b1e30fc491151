"""A real browser against `retrofit dashboard`: Playwright drives Debian's Chromium, signs in, opens the
portfolio and a building page, switches the language, saves screenshots and checks what was rendered."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from retrofit.devservers import free_port
from tests.dashboard.conftest import PASSWORD, DashEnv

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture()
def dashboard_url(dash_env: DashEnv, tmp_path: Path) -> Iterator[str]:
    """`retrofit dashboard` as a subprocess on a free port, stopped by its process group afterwards."""
    port = free_port()
    log = open(tmp_path / "dashboard.log", "wb")  # noqa: SIM115 - held by the child
    proc = subprocess.Popen([sys.executable, "-m", "retrofit.cli", "dashboard", "--port", str(port)],
                            env=dict(os.environ), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "dashboard.log").read_text())
            time.sleep(0.3)
        else:
            raise TimeoutError("dashboard did not answer /_stcore/health")
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


def _settle(page) -> None:
    """Wait until Streamlit has finished the script run (the running indicator is gone)."""
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=60_000)


def test_sign_in_portfolio_and_building_in_chromium(dashboard_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.set_default_timeout(60_000)
            page.goto(dashboard_url)
            page.get_by_label("用户名").fill("alice")
            page.get_by_label("密码").fill(PASSWORD)
            page.get_by_role("button", name="登录").click()
            page.wait_for_selector("[data-testid='stMetric']")
            page.wait_for_selector("[data-testid='stPageLink']")  # the last element of the portfolio page
            _settle(page)
            page.screenshot(path=str(tmp_path / "portfolio.png"))
            metrics = page.locator("[data-testid='stMetric']").all_inner_texts()
            assert any("楼宇数" in m and "1" in m for m in metrics), metrics
            body = page.inner_text("body")
            assert "楼宇总览" in body and "解放碑渝信大厦" in body
            assert "华新商厦" not in body and "Huaxin" not in body  # another owner's building
            assert page.locator("[data-testid='stPlotlyChart']").count() >= 1  # the map

            page.get_by_role("link", name="楼宇详情").click()
            page.wait_for_selector("text=设备树")
            page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=60_000)  # the trend, drawn last
            _settle(page)
            page.screenshot(path=str(tmp_path / "building.png"))
            body = page.inner_text("body")
            assert "实时数据" in body or "趋势" in body
            assert "测点数" in body and page.locator("[data-testid='stExpander']").count() >= 5
            assert page.locator("[data-testid='stPlotlyChart']").count() >= 1  # trend chart

            page.get_by_text("English").click()
            page.wait_for_selector("text=Equipment tree")
            page.wait_for_selector("[data-testid='stMetricLabel']", timeout=60_000)
            _settle(page)
            page.screenshot(path=str(tmp_path / "building-en.png"))
            box = page.locator("[data-testid='stSelectbox']").first
            shown = (box.text_content() or "") + " ".join(i.input_value() for i in box.locator("input").all())
            assert "Jiefangbei Yuxin Tower" in shown, shown
            labels = page.locator("[data-testid='stMetricLabel']").all_inner_texts()
            assert {"Points", "Devices online", "Last update"} <= {x.strip() for x in labels}, labels
            assert page.locator("h1").first.inner_text().strip() == "Building"
        finally:
            browser.close()
    for name in ("portfolio.png", "building.png", "building-en.png"):
        assert (tmp_path / name).stat().st_size > 20_000
