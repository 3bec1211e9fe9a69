"""The HTML report in a real browser: headless Chromium opens it from disk (no network), no
JavaScript error occurs, every panel renders and fits its box at 1400 and 1280 px, every axis
has a title, the table sorts.

Under CI=true a missing Chromium fails the test; elsewhere it skips. With
``TUNEOPS_SCREENSHOTS=DIR`` the readability test also saves a small PNG of every panel of its
three studies into DIR (how docs/report-screenshots/ is made)::

    TUNEOPS_SCREENSHOTS=docs/report-screenshots python -m pytest -p no:xdist \
        tests/report/test_report_browser.py -k readable
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import IN_CI
from report_studies import STUDIES, add, build

from tuneops.report import build_report, write_report

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

# Installed before any page script runs: every uncaught error and rejected promise is kept.
_CATCH_ERRORS = """
window.__errors = [];
window.addEventListener('error', function(e){ window.__errors.push(String(e.message || e)); });
window.addEventListener('unhandledrejection', function(e){
  window.__errors.push('rejection: ' + String(e.reason)); });
"""


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = "headless Chromium is not installed (Debian packages chromium, chromium-driver)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="tuneops-chromium-")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1300,1000",
        f"--user-data-dir={profile}",
        # WebGL (3D Pareto front, parallel coordinates) in software; the page is our own file.
        "--enable-unsafe-swiftshader",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _CATCH_ERRORS})
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_report(browser, path: Path) -> dict:
    browser.get(path.resolve().as_uri())
    browser.get_log("browser")  # drop what an earlier page logged
    return browser.execute_script("""
        return {
          errors: window.__errors,
          panels: Array.from(document.querySelectorAll('section.panel')).map(function(s){
            return {key: s.dataset.panel, drawn: s.dataset.drawn === '1',
                    svg: s.querySelectorAll('.js-plotly-plot .main-svg').length,
                    traces: s.querySelectorAll('.js-plotly-plot').length ?
                            s.querySelector('.js-plotly-plot').data.length : 0};
          }),
          rows: document.querySelectorAll('#trial-table tbody tr').length
        };""")


# Per drawn panel: its width against its box, the widest plot inside against the panel, and the
# axes without a title (cartesian, 3D scene and parallel-coordinates axes).
_LAYOUT_CHECK = """
var out = [];
document.querySelectorAll('section.panel').forEach(function(s){
  var untitled = [], plots = s.querySelectorAll('.js-plotly-plot'), widest = 0;
  plots.forEach(function(gd){
    widest = Math.max(widest, gd.scrollWidth);
    var L = gd._fullLayout;
    Object.keys(L).forEach(function(k){
      if (/^[xy]axis[0-9]*$/.test(k) && L[k].visible !== false) {
        if (!(L[k].title && String(L[k].title.text || '').trim())) untitled.push(gd.id + ':' + k);
      }
      if (/^scene[0-9]*$/.test(k)) ['xaxis','yaxis','zaxis'].forEach(function(a){
        if (!(L[k][a].title && String(L[k][a].title.text || '').trim()))
          untitled.push(gd.id + ':' + k + '.' + a);
      });
    });
    gd.data.forEach(function(tr){
      if (tr.type === 'parcoords') tr.dimensions.forEach(function(dim, i){
      if (!String(dim.label || '').trim()) untitled.push(gd.id + ':parcoords axis ' + i); }); });
  });
  out.push({key: s.dataset.panel, drawn: s.dataset.drawn === '1', scrollWidth: s.scrollWidth,
            clientWidth: s.clientWidth, widestPlot: widest, plots: plots.length,
            untitled: untitled});
});
return out;
"""


def layout_of(browser, path: Path) -> list[dict]:
    import time

    browser.get(path.resolve().as_uri())
    # open every <details>: their plots are drawn on opening (the toggle event, asynchronous)
    browser.execute_script(
        "document.querySelectorAll('details.more').forEach(function(d){ d.open = true; });"
    )
    for _ in range(240):
        time.sleep(0.5)
        if browser.execute_script(
            "return Array.from(document.querySelectorAll('.plot'))"
            ".every(function(el){ return el.classList.contains('js-plotly-plot'); });"
        ):
            break
    time.sleep(0.5)  # the last figure's resize
    return browser.execute_script(_LAYOUT_CHECK)


def save_panel_shots(browser, study: str, out: Path) -> None:
    """A small PNG of each drawn panel (resized to 760 px wide and reduced to 64 colours)."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 3200)  # tall enough that a panel is captured whole
    browser.execute_script(
        "document.querySelectorAll('details.more').forEach(function(d){ d.open = false; });"
    )
    for section in browser.find_elements("css selector", "section.panel[data-drawn='1']"):
        key = section.get_attribute("data-panel")
        browser.execute_script("arguments[0].scrollIntoView()", section)
        image = Image.open(io.BytesIO(section.screenshot_as_png)).convert("RGB")
        if key == "trials":
            image = image.crop((0, 0, image.width, min(image.height, 420)))
        width = 760
        image = image.resize(
            (width, max(1, round(image.height * width / image.width))), Image.LANCZOS
        )
        image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(
            out / f"{study}-{key}.png", optimize=True
        )


# Two widths of a 30-parameter report draw ~20 figures in software WebGL: minutes on a loaded
# 2-core machine, more than the suite's default 300 s.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", list(STUDIES))
def test_every_panel_is_readable_at_1400_and_1280_px(browser, tmp_path, name):
    path = write_report(STUDIES[name](), tmp_path / f"{name}.html")[0]
    shots = os.environ.get("TUNEOPS_SCREENSHOTS")
    try:
        for width in (1400, 1280):
            browser.set_window_size(width, 1000)
            panels = layout_of(browser, path)
            assert browser.execute_script("return window.__errors") == []
            drawn = [p for p in panels if p["drawn"]]
            assert len(drawn) >= 4 and any(p["key"] == "trials" for p in drawn)
            for p in drawn:
                assert p["scrollWidth"] <= p["clientWidth"] + 1, (width, p)  # nothing sticks out
                assert p["widestPlot"] <= p["clientWidth"] + 1, (width, p)
                assert p["untitled"] == [], (width, p)
                if p["key"] != "trials":
                    assert p["plots"] >= 1, p
            if name == "wide":  # 30 parameters: the top 8 drawn, the rest one click away
                slices = next(p for p in drawn if p["key"] == "slices")
                assert slices["plots"] == 1 + 3  # 22 more parameters in pages of 8
            if shots and width == 1280:
                save_panel_shots(browser, name, Path(shots))
    finally:
        browser.set_window_size(1300, 1000)


def check(browser, path: Path, shot: Path) -> dict:
    state = open_report(browser, path)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    browser.save_screenshot(str(shot))
    assert state["errors"] == [], state["errors"]
    assert severe == []
    for panel in state["panels"]:
        if panel["drawn"] and panel["key"] != "trials":  # the table is a panel without a figure
            assert panel["svg"] >= 1 and panel["traces"] >= 1, panel
    assert shot.stat().st_size > 10_000
    return state


def sort_by(browser, index: int) -> list[float]:
    header = browser.find_elements("css selector", "#trial-table th")[index]
    browser.execute_script("arguments[0].scrollIntoView()", header)
    header.click()
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#trial-table tbody tr'))"
        f".map(r => r.cells[{index}].dataset.v).filter(v => v !== '').map(parseFloat)"
    )


# Each page load parses ~5 MB of plotly.js: three pages cover the cases.
def test_multi_objective_report_renders_and_its_table_sorts(browser, tmp_path):
    study = build(60)  # pruned, failed, infeasible, running, warm-start trials, two workers
    path = write_report(study, tmp_path / "multi.html")[0]
    state = check(browser, path, tmp_path / "multi.png")
    drawn = {p["key"] for p in state["panels"] if p["drawn"]}
    assert drawn == {
        "history",
        "trials",
        "importances",
        "pareto_front",
        "parallel_coordinates",
        "slices",
        "contour",
        "intermediate_values",
        "workers",
    }
    assert state["rows"] == len(study.trials)
    assert browser.find_elements("css selector", "#trial-table th")[2].text == "accuracy"
    ascending = sort_by(browser, 2)
    assert len(ascending) == 48 and ascending == sorted(ascending)  # complete trials have values
    assert sort_by(browser, 2) == sorted(ascending, reverse=True)
    # offline report: no modebar button uploads a figure to Plotly's cloud
    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('.modebar-btn'))"
        ".map(b => b.getAttribute('data-title'))"
    )
    assert titles and not [t for t in titles if "cloud" in t.lower() or "share" in t.lower()]


def test_three_objective_front_in_3d(browser, tmp_path):
    import optuna

    three = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for i in range(12):
        add(
            three,
            i,
            {"lr": 10 ** -(i % 4), "depth": 1 + i % 10},
            [float(i % 5), float((i * 7) % 11), float(12 - i)],
        )
    state = check(browser, write_report(three, tmp_path / "three.html")[0], tmp_path / "three.png")
    assert {p["key"]: p["drawn"] for p in state["panels"]}["pareto_front"]
    assert (
        browser.execute_script("return document.querySelector('#panel-pareto_front').data[0].type")
        == "scatter3d"
    )


def test_one_trial_single_objective_report_explains_missing_panels(browser, tmp_path):
    import optuna

    study = optuna.create_study()
    add(study, 0, {"lr": 0.1}, [1.0])
    state = check(
        browser, write_report(build_report(study), tmp_path / "one.html")[0], tmp_path / "one.png"
    )
    assert [p["key"] for p in state["panels"] if p["drawn"]] == ["history", "trials"]
    text = browser.find_element("tag name", "body").text
    assert "Not shown: parameter importances needs at least 2 completed trials" in text
    assert "single-objective study has no trade-off" in text


def test_markup_in_the_data_is_shown_as_text_and_never_runs(browser, tmp_path):
    """Parameter names and category values holding markup ('<!--<script>' stopped the page's
    script: no table, no figure) and an <img onerror> (would run in the reader's browser)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    run = '<img src=x onerror="window.__ran=1">'
    words = ["<!--<script>", run, "</script><b>x", "plain"]
    dists = {"<!--<script>": CategoricalDistribution(words), run: FloatDistribution(0.0, 1.0)}
    study = optuna.create_study(study_name="markup" + run, directions=["maximize", "minimize"])
    for i in range(12):
        study.add_trial(optuna.trial.create_trial(
            values=[i / 12, (12 - i) / 12], distributions=dists,
            params={"<!--<script>": words[i % 4], run: i / 12},
        ))
    state = check(browser, write_report(build_report(study), tmp_path / "m.html")[0],
                  tmp_path / "m.png")
    assert state["rows"] == 12
    assert {"history", "parallel_coordinates"} <= {p["key"] for p in state["panels"] if p["drawn"]}
    assert browser.execute_script("return window.__ran") is None
    assert not browser.find_elements("css selector", "img")
    assert run in browser.find_element("css selector", "#trial-table").text
