"""Driving the dashboard in headless Chromium (Selenium): browser tests and docs screenshots.

Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/setup_browser.sh`` installs them)
and the ``selenium`` package (dev extra). Nothing is downloaded: the driver path is given, so
Selenium Manager is never asked to fetch a browser.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"


def browser_paths() -> tuple[str, str] | None:
    """(browser, driver) executables, or None when either is missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = shutil.which(DRIVER)
    return (browser, driver) if browser and driver else None


def make_driver(width: int = 1500, height: int = 1100):
    """A headless Chromium WebDriver (raises RuntimeError when chromium is not installed)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = browser_paths()
    if paths is None:
        raise RuntimeError(
            "chromium and chromedriver are needed: run scripts/setup_browser.sh "
            "(apt-get install chromium chromium-driver)"
        )
    os.environ.setdefault("SE_OFFLINE", "true")
    opts = webdriver.ChromeOptions()
    opts.binary_location = paths[0]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(paths[1]), options=opts)


def wait_for(fn, timeout: float = 60.0, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll ``fn()`` until it returns something truthy; TimeoutError after ``timeout`` s."""
    end = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < end:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:  # element not there yet, stale, ...
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last error: {last_exc})")


def _plain(value):
    """A typed-array spec (``{"dtype", "bdata", "shape"}``: how plotly sends float32 arrays)
    as nested lists, NaN as None (a blank cell); anything else unchanged."""
    if isinstance(value, dict) and "bdata" in value and "dtype" in value:
        import base64

        import numpy as np

        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if isinstance(shape, str):
            shape = [int(x) for x in shape.split(",")]
        a = a.reshape(shape) if shape else a
        return np.where(np.isnan(a), None, a.astype(object)).tolist()
    return value


def figure(driver, graph_id: str) -> dict:
    """The plotly figure a ``dcc.Graph`` shows right now: ``{"data": [...], "layout": {...}}``
    (typed arrays decoded to nested lists)."""
    fig = driver.execute_script(
        """
        const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
        if (!gd || !gd.data) return null;
        return {data: gd.data.map(t => ({type: t.type, z: t.z, x: t.x, y: t.y, name: t.name,
                 customdata: t.customdata, hovertemplate: t.hovertemplate})),
                layout: {title: gd.layout.title && (gd.layout.title.text || gd.layout.title),
                         xaxis: {ticktext: gd.layout.xaxis && gd.layout.xaxis.ticktext},
                         meta: gd.layout.meta}};
        """,
        graph_id,
    )
    for trace in (fig or {}).get("data", []):
        for key in ("z", "x", "y", "customdata"):
            trace[key] = _plain(trace.get(key))
    return fig


def click_cell(driver, graph_id: str, x: float, y: float) -> None:
    """A real mouse click on the plot of ``graph_id`` at data coordinates (x, y)."""
    from selenium.webdriver.common.action_chains import ActionChains

    el = driver.find_element("css selector", f"#{graph_id} .js-plotly-plot")
    dx, dy = driver.execute_script(
        """
        const gd = arguments[0], fl = gd._fullLayout, r = gd.getBoundingClientRect();
        return [fl.xaxis.l2p(arguments[1]) + fl.xaxis._offset - r.width / 2,
                fl.yaxis.l2p(arguments[2]) + fl.yaxis._offset - r.height / 2];
        """,
        el,
        x,
        y,
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    ActionChains(driver).move_to_element_with_offset(el, int(dx), int(dy)).click().perform()


def set_text(driver, element_id: str, text: str) -> None:
    """Replace the text of an input or textarea by typing, as a user would."""
    from selenium.webdriver.common.keys import Keys

    el = driver.find_element("id", element_id)
    el.click()
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(text)


def paste_text(driver, element_id: str, text: str) -> None:
    """Put ``text`` into an input or textarea at once, as a paste does (typing thousands of
    characters key by key takes minutes): React's own value setter, then an input event."""
    driver.execute_script(
        """
        const el = document.getElementById(arguments[0]);
        const proto = el.tagName === 'TEXTAREA' ? HTMLTextAreaElement : HTMLInputElement;
        Object.getOwnPropertyDescriptor(proto.prototype, 'value').set.call(el, arguments[1]);
        el.dispatchEvent(new Event('input', {bubbles: true}));
        """,
        element_id,
        text,
    )


def text_of(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def choose_options(driver, dropdown_id: str, values: list[str]) -> None:
    """Open a (Dash 4) multi-select dropdown, search and tick each of ``values``, close it.

    Long option lists are virtualized (only visible options exist in the page), so each value
    is typed into the dropdown's search box first, as a user would.
    """
    from selenium.webdriver.common.keys import Keys

    driver.find_element("id", dropdown_id).click()
    search = wait_for(
        lambda: driver.find_element("css selector", "input.dash-dropdown-search"), 10, what="search"
    )
    for value in values:
        search.send_keys(Keys.CONTROL, "a")
        search.send_keys(Keys.DELETE)
        search.send_keys(value)
        box = wait_for(
            lambda v=value: driver.find_element(
                "css selector", f'input.dash-options-list-option-checkbox[value="{v}"]'
            ),
            10,
            what=f"option {value}",
        )
        box.find_element("xpath", "./ancestor::label[1]").click()
    search.send_keys(Keys.ESCAPE)
