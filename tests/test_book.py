"""The course site: built from the tiny profile's executed notebooks and opened in a real headless browser.

`make book` (panns_core.study.course.build_book) turns the executed notebooks of the last
profile run into a static HTML book whose table of contents is course/course.yml. Here it
is built from the session's tiny run (tests/tiny_pipeline.py) and every page is opened in
Chromium from the OS package manager: every page loads, every image has rendered
(naturalWidth > 0), the lessons that draw figures show them, and no page shows an error
output. Without Chromium and its driver the browser test is skipped, saying why.
"""

import functools
import http.server
import re
import shutil
import tempfile
import threading

import pytest

from panns_core.study.course import load_course
from tiny_pipeline import tiny_run

# One worker builds the site once: the three tests share it (a module fixture).
pytestmark = pytest.mark.xdist_group("course_site")

# Lessons that draw figures (matplotlib, inline): their pages must show rendered images.
DRAWS_FIGURES = ("02_pack_and_index", "03_train_system", "05_sampler_and_mixup", "06_metrics", "07_model_anatomy",
                 "21_transfer_tables_figures")
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from panns_core.study.course import build_book

    root = tiny_run(tmp_path_factory)[0]
    html = tmp_path_factory.mktemp("book") / "html"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the book is built where the pipeline ran (runs/last_profile.json)
        index = build_book(output=html, log=lambda line: None)
    return index


@pytest.mark.slow(95)
def test_the_site_has_every_course_notebook_in_the_course_order(site):
    text = site.read_text()
    links = re.findall(r'href="notebooks/(\d\d_[a-z0-9_]+)\.html"', text)
    order = list(dict.fromkeys(links))
    assert order == load_course().order
    for part in load_course().parts:
        assert part.caption in text
    for stem in order:
        assert (site.parent / "notebooks" / f"{stem}.html").exists()


def test_the_lesson_pages_hold_the_executed_outputs(site):
    page = (site.parent / "notebooks" / "03_train_system.html").read_text()
    text = re.sub(r"<[^>]+>", "", page)  # the code is highlighted token by token
    assert "def recipe_loop(config, data)" in text and "lesson run:" in text  # the lesson was executed for the book
    assert "not done yet" in text  # the exercises are blank, their checks say so
    assert page.count("<img") >= 1


def _browser_or_skip():
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("no headless Chromium and chromedriver on this machine (Debian: apt-get install chromium "
                    "chromium-driver; .ci/run installs them): the course site was built but not opened in a browser")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e .[dev]): the course site was not opened in a browser")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile_dir = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in BROWSER_FLAGS + (f"--user-data-dir={profile_dir}",):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options), profile_dir


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


PAGE_REPORT = """
const images = [...document.images].map(i => ({src: i.src, complete: i.complete, width: i.naturalWidth}));
const errors = document.querySelectorAll('.output.traceback, .output.error, .cell_output .traceback').length;
return {title: document.title, ready: document.readyState, images: images, errors: errors,
        text: document.body.innerText, h1: [...document.querySelectorAll('h1, h2')].map(h => h.innerText)};
"""


def test_every_page_renders_in_a_headless_browser(site, served):
    browser, profile_dir = _browser_or_skip()
    pages = ["index.html"] + [f"notebooks/{stem}.html" for stem in load_course().order]
    try:
        browser.set_page_load_timeout(60)
        figures = {}
        for page in pages:
            browser.get(f"{served}/{page}")
            report = browser.execute_script(PAGE_REPORT)
            assert report["ready"] == "complete", page
            assert report["h1"] and "404" not in report["title"], f"{page}: did not load ({report['title']!r})"
            broken = [i["src"] for i in report["images"] if not (i["complete"] and i["width"] > 0)]
            assert not broken, f"{page}: images that did not render: {broken[:3]}"
            assert report["errors"] == 0 and "Traceback (most recent call last)" not in report["text"], (
                f"{page}: shows an error output")
            figures[page] = len([i for i in report["images"] if "_images/" in i["src"]])
        for stem in DRAWS_FIGURES:
            assert figures[f"notebooks/{stem}.html"] >= 1, f"{stem}: its figures are not on its page"
    finally:
        browser.quit()
        shutil.rmtree(profile_dir, ignore_errors=True)
