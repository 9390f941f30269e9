"""A headless Chromium driven by selenium (Debian's chromium and chromedriver), and what a report page
shows in it: where the verdict banner is, the charts' sizes, whether every image loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WIDTH, HEIGHT = 1100, 720           # a laptop's first screen


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WIDTH},{HEIGHT}", "--no-first-run", "--disable-background-networking"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_report(browser, path: Path) -> dict:
    """Open the report page; the banner's box, the viewport, each chart's box, each image's state."""
    browser.get(path.as_uri())
    return browser.execute_script("""
        const box = e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom, r.width, r.height]; };
        const banner = document.getElementById('verdict');
        const style = getComputedStyle(banner);
        return {banner: box(banner), viewport: window.innerHeight, scrolled: window.scrollY,
                shown: style.visibility === 'visible' && style.display !== 'none',
                charts: [...document.querySelectorAll('figure.chart')].map(f => [f.id, ...box(f.querySelector('svg'))]),
                images: [...document.images].map(i => [i.complete, i.naturalWidth])};""")


def banner_in_first_screen(seen: dict) -> bool:
    top, bottom, width, _ = seen["banner"]
    return seen["shown"] and seen["scrolled"] == 0 and 0 <= top and bottom <= seen["viewport"] and width > 600
