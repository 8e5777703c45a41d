"""Screenshots of the centre floor's pages for the README: `make screens` (not part of `make test`).

Runs as a pytest module on the test fixtures (a fresh SQLite app served on loopback, Debian's Chromium):
a centre with the demo's nine services and four counters, a morning of tickets, then each page at
1920×1080 (Arabic) and 1366×768 (English), and the printed ticket in both languages.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
import zoneinfo
from pathlib import Path

import httpx
import pytest

from app import clock
from tests.ticketing.pagekit import pdftoppm, sign_in
from tests.ticketing.test_floor_pages import nine_services

HERE = Path(__file__).resolve().parent
ALL_DAY = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SIZES = (
    ("1920x1080", {"width": 1920, "height": 1080}, "ar"),
    ("1366x768", {"width": 1366, "height": 768}, "en"),
)
COUNT_PRINTS = "window.print = () => { window.__prints = (window.__prints || 0) + 1; };"


def _morning(kit, make, live_server):
    """A centre's day so far: tickets each of the last five hours, about two thirds served, the rest waiting.

    The earlier hours are made with the clock moved back and the queue's own functions (a token minted now
    would not yet be valid then); the present through the API."""
    from tests.ticketing.conftest import principal_of
    from ticketing import counters, services

    site = kit.site(counters=4, weekly_hours=ALL_DAY)
    codes = nine_services(kit, make, site)
    zone = zoneinfo.ZoneInfo(site.centre.timezone)
    now = dt.datetime.now(zone)
    clerks = [principal_of(site.clerk), principal_of(site.clerk2)]

    def at(hour: int, minute: int) -> None:
        clock.travel_to(dt.datetime.combine(now.date(), dt.time(hour, minute), tzinfo=zone))

    hours = [h for h in range(now.hour - 5, now.hour) if h >= 0]
    try:
        for hour, issued in zip(hours, (9, 16, 22, 18, 14)[-len(hours) :], strict=True):
            at(hour, 0)
            for i, clerk in enumerate(clerks):
                kit.call(counters.open_counter, counter_id=site.counters[i], services=codes, principal=clerk)
            for n in range(issued):
                at(hour, (n * 55) // issued)
                kit.call(services.issue_walk_in_ticket, centre_id=site.centre.id, service_code=codes[n % 9])
            for n in range(issued * 2 // 3):
                at(hour, 5 + (n * 50) // issued)
                clerk, counter_id = clerks[n % 2], site.counters[n % 2]
                ticket = kit.call(services.call_next_ticket, counter_id=counter_id, principal=clerk)
                if ticket is None:
                    continue
                if n % 9 == 8:
                    kit.call(services.mark_no_show, ticket_id=ticket.id, principal=clerk)
                    continue
                kit.call(services.start_ticket, ticket_id=ticket.id, principal=clerk)
                at(hour, 8 + (n * 50) // issued)
                kit.call(services.complete_ticket, ticket_id=ticket.id, principal=clerk)
    finally:
        clock.reset()
    with httpx.Client(base_url=live_server + "/api/v1", timeout=20) as api:
        for n in range(12):
            api.post(f"/centres/{site.centre.id}/tickets", json={"service": codes[n % 4]}, headers=site.kiosk)
        # The floor as the pages show it: counter 1 free for the console's screenshot, counter 2 paused
        # with its reason, counter 3 serving.
        clerk, clerk2 = site.headers["clerk"], site.headers["clerk2"]
        api.post(f"/staff/counters/{site.counters[0]}/close", headers=clerk)
        api.post(f"/staff/counters/{site.counters[1]}/pause", json={"reason": "prayer"}, headers=clerk2)
        supervisor = site.headers["supervisor"]
        api.post(f"/staff/counters/{site.counters[2]}/open", json={"services": codes}, headers=supervisor)
        called = api.post(f"/staff/counters/{site.counters[2]}/call-next", headers=supervisor)
        assert called.status_code == 200, called.text
        api.post(f"/staff/tickets/{called.json()['id']}/start", headers=supervisor)
    return site, codes


def _printed(pdf: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "ticket.pdf"
        source.write_bytes(pdf)
        command = [pdftoppm(), "-png", "-r", "150", "-singlefile", str(source), str(HERE / name)]
        subprocess.run(command, check=True)  # noqa: S603 (our own file names)


@pytest.mark.browser
def test_take_screenshots(kit, make, live_server, browser):
    site, codes = _morning(kit, make, live_server)
    token = site.kiosk["Authorization"].split()[1]
    for size, viewport, lang in SIZES:
        page = browser.new_page(viewport=viewport)
        page.add_init_script(COUNT_PRINTS)

        page.goto(f"{live_server}/centres/{site.centre.id}/display?lang={lang}")
        page.wait_for_selector("body[data-snapshots='1']", timeout=10_000)
        page.screenshot(path=str(HERE / f"display-{size}.png"))

        page.goto(f"{live_server}/centres/{site.centre.id}/kiosk?lang={lang}&token={token}")
        page.screenshot(path=str(HERE / f"kiosk-{size}.png"))
        page.click(f".service[data-service='{codes[1]}']")
        page.wait_for_selector("body[data-state='ticket']", timeout=10_000)
        page.wait_for_timeout(300)
        page.screenshot(path=str(HERE / f"kiosk-ticket-{size}.png"))
        _printed(page.pdf(prefer_css_page_size=True, print_background=True), f"printed-ticket-{lang}")
        public_id = page.get_attribute("body", "data-public-id")
        page.goto(f"{live_server}/t/{public_id}?lang={lang}")
        page.wait_for_selector("body[data-status='waiting']", timeout=10_000)
        page.screenshot(path=str(HERE / f"public-ticket-{size}.png"))

        page.goto(f"{live_server}/staff/console?lang={lang}")
        sign_in(page, site.clerk)
        page.wait_for_selector("#open:not([hidden])", timeout=10_000)
        page.select_option("#counter", str(site.counters[0]))
        for code in codes:
            page.check(f"#services input[value='{code}']")
        page.click("#open-submit")
        page.wait_for_selector("#desk:not([hidden])", timeout=10_000)
        page.click("#call-next")
        page.wait_for_function("document.getElementById('current-number').textContent !== '—'")
        page.click("#start")
        page.wait_for_timeout(1200)
        page.screenshot(path=str(HERE / f"console-{size}.png"))
        page.click("#complete")
        page.wait_for_timeout(300)
        page.click("#close-counter")
        page.click("#logout")

        page.goto(f"{live_server}/staff/dashboard?lang={lang}")
        sign_in(page, site.supervisor)
        page.wait_for_selector("body[data-refreshes]", timeout=10_000)
        page.wait_for_timeout(300)
        page.screenshot(path=str(HERE / f"dashboard-{size}.png"))
        page.click("#logout")
        page.close()
