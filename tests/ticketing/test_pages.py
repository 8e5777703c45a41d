"""The hall display and the staff console, in Debian's Chromium through Playwright."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import select

from app.extensions import db
from tests.factories import PASSWORD
from ticketing.models import Ticket

API = "/api/v1"


def test_pages_are_served_without_a_browser(kit, client):
    site = kit.site()
    arabic = client.get(f"/centres/{site.centre.id}/display")
    assert arabic.status_code == 200
    html = arabic.get_data(as_text=True)
    assert 'dir="rtl"' in html and 'lang="ar"' in html and site.centre.name_ar in html
    assert "/static/ticketing/display.js" in html
    english = client.get(f"/centres/{site.centre.id}/display?lang=en").get_data(as_text=True)
    assert 'dir="ltr"' in english and site.centre.name_en in english
    assert client.get("/centres/nowhere/display").status_code == 404
    assert client.get("/static/ticketing/display.js").status_code == 200
    console = client.get("/staff/console")
    assert console.status_code == 200 and "console.js" in console.get_data(as_text=True)
    # Self-contained: nothing is loaded from another host.
    assert "http://" not in html and "https://" not in html


@pytest.mark.browser
def test_display_shows_a_call_within_a_second(kit, live_server, browser):
    site = kit.site()
    page = browser.new_page()
    page.goto(f"{live_server}/centres/{site.centre.id}/display?lang=en")
    page.wait_for_selector("body[data-snapshots='1']", timeout=10_000)
    assert page.get_attribute("html", "dir") == "ltr"
    with httpx.Client(base_url=live_server + API, timeout=10) as api:
        api.post(f"/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk)
        count = f"document.querySelector(\"#services li[data-service='{site.other.code}'] .count\")"
        page.wait_for_function(f"{count}.textContent === '1'", timeout=5_000)
        opened = api.post(
            f"/staff/counters/{site.counters[1]}/open",
            json={"services": [site.other.code]},
            headers=site.headers["clerk"],
        )
        assert opened.status_code == 200
        started = time.monotonic()
        called = api.post(f"/staff/counters/{site.counters[1]}/call-next", headers=site.headers["clerk"])
        assert called.status_code == 200
        page.wait_for_function(
            "document.getElementById('latest-number').textContent === 'C-001'", timeout=1_000
        )
        assert time.monotonic() - started < 1.0
    assert page.text_content("#latest-counter") == "2"
    assert page.text_content("#calls li .number") == "C-001"
    assert page.get_attribute("body", "data-chimes") == "1"  # the chime played through WebAudio
    assert page.text_content(f"#services li[data-service='{site.other.code}'] .count") == "0"
    page.close()


@pytest.mark.browser
def test_display_is_arabic_right_to_left_by_default_and_rebuilds_from_the_snapshot(kit, live_server, browser):
    site = kit.site()
    with httpx.Client(base_url=live_server + API, timeout=10) as api:
        api.post(
            f"/centres/{site.centre.id}/tickets", json={"service": site.passport.code}, headers=site.kiosk
        )
        api.post(
            f"/staff/counters/{site.counters[0]}/open",
            json={"services": [site.passport.code]},
            headers=site.headers["clerk"],
        )
        api.post(f"/staff/counters/{site.counters[0]}/call-next", headers=site.headers["clerk"])
    page = browser.new_page()
    page.goto(f"{live_server}/centres/{site.centre.id}/display")
    page.wait_for_selector("body[data-snapshots='1']", timeout=10_000)
    assert page.get_attribute("html", "dir") == "rtl" and page.get_attribute("html", "lang") == "ar"
    # A screen switched on mid-day shows the latest call from the snapshot alone.
    assert page.text_content("#latest-number") == "P-001"
    assert page.text_content("#latest-counter") == "1"
    page.close()


@pytest.mark.browser
def test_console_opens_a_counter_and_calls_recalls_completes(kit, make, live_server, browser):
    site = kit.site()
    page = browser.new_page()
    page.goto(f"{live_server}/staff/console?lang=en")
    page.fill("#national_id", site.clerk.national_id)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#open:not([hidden])", timeout=10_000)
    page.select_option("#counter", str(site.counters[0]))
    page.check(f"#services input[value='{site.other.code}']")
    page.click("#open-submit")
    page.wait_for_selector("#desk:not([hidden])", timeout=10_000)

    with httpx.Client(base_url=live_server + API, timeout=10) as api:
        for _ in range(2):
            api.post(
                f"/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk
            )
    # The waiting list follows the live stream.
    page.wait_for_function("document.querySelectorAll('#waiting li').length === 2", timeout=5_000)

    page.click("#call-next")
    page.wait_for_function("document.getElementById('current-number').textContent === 'C-001'", timeout=5_000)
    page.wait_for_function("document.querySelectorAll('#waiting li').length === 1", timeout=5_000)
    first = kit.call(lambda: db.session.scalar(select(Ticket.id).where(Ticket.number == "C-001")))

    page.click("#recall")
    page.wait_for_function("!document.getElementById('recall').disabled", timeout=5_000)
    _wait_for(lambda: make.fresh(Ticket, first).recall_count == 1)

    page.click("#complete")
    page.wait_for_function("document.getElementById('current-number').textContent === '—'", timeout=5_000)
    _wait_for(lambda: make.fresh(Ticket, first).status == "done")

    page.click("#call-next")
    page.wait_for_function("document.getElementById('current-number').textContent === 'C-002'", timeout=5_000)
    page.close()


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.browser
def test_display_reconnects_by_itself_when_its_stream_drops(kit, app, live_server, browser):
    site = kit.site()
    app.config["QUEUE_STREAM_MAX_SECONDS"] = 2  # the server ends every stream after 2 s
    page = browser.new_page()
    page.goto(f"{live_server}/centres/{site.centre.id}/display?lang=en")
    page.wait_for_selector("body[data-snapshots='1']", timeout=10_000)
    # Nobody touches the screen: it reconnects on its own and starts again from a fresh snapshot.
    page.wait_for_function("Number(document.body.dataset.snapshots) >= 2", timeout=15_000)
    app.config["QUEUE_STREAM_MAX_SECONDS"] = 900
    page.wait_for_function("Number(document.body.dataset.snapshots) >= 3", timeout=15_000)
    with httpx.Client(base_url=live_server + API, timeout=10) as api:
        api.post(f"/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk)
        api.post(
            f"/staff/counters/{site.counters[1]}/open",
            json={"services": [site.other.code]},
            headers=site.headers["clerk"],
        )
        assert api.post(
            f"/staff/counters/{site.counters[1]}/call-next", headers=site.headers["clerk"]
        ).is_success
    # The reconnected stream carries live calls again.
    page.wait_for_function("document.getElementById('latest-number').textContent === 'C-001'", timeout=5_000)
    page.close()


@pytest.mark.browser
def test_the_pages_run_under_the_content_security_policy(kit, live_server, browser):
    """Swagger UI, the display and the console start from their files: the CSP refuses nothing they need."""
    site = kit.site()
    violations: list[str] = []
    page = browser.new_page(bypass_csp=False)
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{live_server}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() > 20
    page.goto(f"{live_server}/centres/{site.centre.id}/display?lang=en")
    page.wait_for_selector("body[data-snapshots='1']", timeout=10_000)
    page.goto(f"{live_server}/staff/console?lang=en")
    page.wait_for_load_state("networkidle")
    page.close()
    assert not violations, violations
