"""`makeflow report`: a self-contained HTML page of a real build, opened in a real headless
Chromium through Selenium. Without a browser these tests skip on a developer's machine;
with CI set, a missing browser fails them."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from conftest import restore_by_changing_back

FAILING = """\
    from makeflow import rule

    rule("prepare", outputs="data.txt", shell="echo data > {outputs}")

    @rule(inputs="data.txt", outputs="model.txt", params={"alpha": 0.5})
    def train(step):
        step.outputs[0].write_text("model")

    rule("evaluate", inputs="model.txt", outputs="score.txt",
         shell="echo evaluating; echo 'ValueError: the score is broken' >&2; exit 3")
    rule("publish", inputs="score.txt", outputs="published.txt", shell="cp {inputs} {outputs}")
    rule("side", inputs="data.txt", outputs="side.txt", shell="echo side > {outputs}")
    rule("all", inputs=["published.txt", "side.txt"], default=True)
"""

MANY = """\
    from makeflow import rule, expand

    rule("src", outputs="src.txt", shell="echo s > {outputs}")
    rule("part", inputs="src.txt", outputs="parts/{n}.txt", shell="echo {wildcards.n} > {outputs}")
    rule("bad", inputs="parts/7.txt", outputs="bad.txt", shell="echo nope; exit 1")
    rule("all", inputs=[*expand("parts/{n}.txt", n=range(%d)), "bad.txt"], default=True)
"""


def _browser_missing(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the browser tests cannot run: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from Debian's chromium and chromium-driver packages."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _browser_missing("selenium is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        _browser_missing("chromium and chromedriver are not installed "
                         "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1800"):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def open_report(browser, path):
    """Load the page; return the console messages it logged while loading."""
    browser.get_log("browser")  # drop what an earlier page said
    browser.get(path.as_uri())
    assert browser.find_element("css selector", "body").get_attribute("data-ready") == "1"
    return browser.get_log("browser")


def errors(logs):
    return [e for e in logs if e["level"] in ("SEVERE", "ERROR")]


def step_ids(browser):
    return set(browser.execute_script(
        "return JSON.parse(document.getElementById('report-data').textContent)"
        ".steps.map(s => s.id)"))


@pytest.fixture
def failed_build(project):
    project.rules(FAILING)
    done = project.run("build", "-k")
    assert done.code == 1, done.text
    return project


def test_report_of_a_failed_build_in_chromium(failed_build, browser, tmp_path):
    done = failed_build.run("report")
    assert done.code == 0, done.text
    page = failed_build.root / "makeflow-report.html"
    logs = open_report(browser, page)
    assert errors(logs) == []
    steps = {"prepare", "train", "evaluate", "publish", "side"}
    assert step_ids(browser) == steps
    nodes = browser.find_elements("css selector", "#graph .node")
    assert {n.get_attribute("data-key") for n in nodes} == steps
    classes = {n.get_attribute("data-key"): n.get_attribute("class") for n in nodes}
    assert "failed" in classes["evaluate"] and "skipped" in classes["publish"]
    assert "ran" in classes["train"]
    rows = browser.find_elements("css selector", "#steps-body tr")
    assert {r.get_attribute("data-step") for r in rows} == steps
    assert browser.find_element("id", "count-failed").text == "1"
    # choosing the failed step in the graph shows its reason, command and log tail
    browser.find_element("css selector", "#graph .node[data-key='evaluate']").click()
    tail = browser.find_element("id", "log-tail").text
    assert "ValueError: the score is broken" in tail
    details = browser.find_element("id", "details").text
    assert "exit status 3" in details and "never ran" in details
    # parameters and code digest of a Python step
    browser.find_element("css selector", "tr[data-step='train']").click()
    details = browser.find_element("id", "details").text
    assert '"alpha":0.5' in details and "code:" in details
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    assert errors(browser.get_log("browser")) == []


def test_report_shows_a_step_restored_from_the_run_cache(project, browser, tmp_path):
    """Build, change a parameter, build, change it back, build: the last run's report shows
    the restored steps as restored, in the summary, the graph and the table."""
    restore_by_changing_back(project)
    done = project.run("report", "-o", "restored.html")
    assert done.code == 0, done.text
    logs = open_report(browser, project.root / "restored.html")
    assert errors(logs) == []
    assert step_ids(browser) == {"prepare", "train", "evaluate"}
    assert browser.find_element("id", "count-restored").text == "2"
    assert browser.find_element("id", "count-ran").text == "0"
    assert browser.find_element("id", "count-fresh").text == "1"
    nodes = browser.find_elements("css selector", "#graph .node")
    classes = {n.get_attribute("data-key"): n.get_attribute("class").split() for n in nodes}
    assert "restored" in classes["train"] and "restored" in classes["evaluate"]
    assert "fresh" in classes["prepare"]
    rows = {r.get_attribute("data-step"): r.text
            for r in browser.find_elements("css selector", "#steps-body tr")}
    assert "restored" in rows["train"] and "parameter alpha: 0.3 → 0.1" in rows["train"]
    browser.find_element("css selector", "tr[data-step='train']").click()
    details = browser.find_element("id", "details").text
    assert "restored" in details and '"alpha":0.1' in details
    assert browser.save_screenshot(str(tmp_path / "restored.png"))
    assert errors(browser.get_log("browser")) == []


def test_table_sorts_and_filters(failed_build, browser):
    assert failed_build.run("report").code == 0
    open_report(browser, failed_build.root / "makeflow-report.html")
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "f-status")).select_by_value("ran")
    shown = [r.get_attribute("data-step")
             for r in browser.find_elements("css selector", "#steps-body tr")]
    assert sorted(shown) == ["prepare", "side", "train"]
    Select(browser.find_element("id", "f-status")).select_by_value("")
    browser.find_element("css selector", "th[data-key='id']").click()
    shown = [r.get_attribute("data-step")
             for r in browser.find_elements("css selector", "#steps-body tr")]
    assert shown == sorted(shown)
    browser.find_element("css selector", "th[data-key='id']").click()
    shown = [r.get_attribute("data-step")
             for r in browser.find_elements("css selector", "#steps-body tr")]
    assert shown == sorted(shown, reverse=True)
    browser.find_element("id", "f-text").send_keys("publ")
    shown = [r.get_attribute("data-step")
             for r in browser.find_elements("css selector", "#steps-body tr")]
    assert shown == ["publish"]


def test_a_stray_network_load_is_a_console_error(failed_build, browser, tmp_path):
    """The Content-Security-Policy forbids every load: a tampered page shows the error."""
    assert failed_build.run("report").code == 0
    text = (failed_build.root / "makeflow-report.html").read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text
    tampered = tmp_path / "tampered.html"
    tampered.write_text(text.replace("<main>", "<main><img src='http://127.0.0.1:9/x.png'>"))
    logs = open_report(browser, tampered)
    assert any("Content Security Policy" in e["message"] for e in errors(logs)), logs


def test_a_big_build_collapses_the_graph_to_rules_and_pages_the_table(project, browser,
                                                                      tmp_path):
    project.rules(MANY % 400)
    done = project.run("build", "-k", timeout=300)
    assert done.code == 1, done.text
    done = project.run("report", "-o", "big.html", "--no-dot")
    assert done.code == 0, done.text
    assert "402 steps" in done.out
    logs = open_report(browser, project.root / "big.html")
    assert errors(logs) == []
    nodes = {n.get_attribute("data-key")
             for n in browser.find_elements("css selector", "#graph .node")}
    assert nodes == {"src", "part", "bad"}
    assert len(step_ids(browser)) == 402
    assert len(browser.find_elements("css selector", "#steps-body tr")) == 100
    assert "of 5 (402 steps)" in browser.find_element("id", "page-info").text
    # choosing the rule with the failed step lists its steps and shows the failure
    browser.find_element("css selector", "#graph .node[data-key='bad']").click()
    assert "nope" in browser.find_element("id", "log-tail").text
    browser.save_screenshot(str(tmp_path / "big.png"))


def test_report_of_a_no_op_build_lists_every_step_fresh(failed_build, browser):
    failed_build.write("Makeflow.py", failed_build.read("Makeflow.py").replace(
        "exit 3", "echo 1 > {outputs}"))
    assert failed_build.run("build").code == 0
    assert failed_build.run("build").code == 0
    done = failed_build.run("report", "-o", "noop.html")
    assert done.code == 0, done.text
    logs = open_report(browser, failed_build.root / "noop.html")
    assert errors(logs) == []
    assert len(step_ids(browser)) == 5
    assert browser.find_element("id", "count-fresh").text == "5"


def test_report_of_an_earlier_run(failed_build):
    failed_build.write("Makeflow.py", failed_build.read("Makeflow.py").replace(
        "exit 3", "echo 1 > {outputs}"))
    assert failed_build.run("build").code == 0
    done = failed_build.run("report", "1", "-o", "first.html")
    assert done.code == 0, done.text
    text = (failed_build.root / "first.html").read_text()
    assert "makeflow run 1: failed" in text
    assert re.search(r"ValueError: the score is broken", text)


def test_report_of_an_unknown_run_is_a_user_error(failed_build):
    done = failed_build.run("report", "99")
    assert done.code == 2
    assert "run 99 is not in the run history" in done.err and "makeflow runs" in done.err


def test_report_before_any_build_is_a_user_error(project):
    project.rules('from makeflow import rule\nrule("a", outputs="a.txt", shell="true")\n')
    done = project.run("report")
    assert done.code == 2 and "no build is in the run history" in done.err
    assert "Traceback" not in done.err
