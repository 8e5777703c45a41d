"""The centre floor in Debian's Chromium: the hall display at two screen sizes, the kiosk's printed ticket
and its public page, the console's takeover and pause, the supervisor's dashboard.

With SANAD_SCREENS=docs/screens set, the tests also save the screenshots the README shows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.demo import SERVICES
from ticketing import counters, live, services

API = "/api/v1"
SIZES = {"1920x1080": {"width": 1920, "height": 1080}, "1366x768": {"width": 1366, "height": 768}}


def screenshot(page, name: str) -> None:
    """Save a screenshot for the README when asked to (SANAD_SCREENS names the folder)."""
    folder = os.environ.get("SANAD_SCREENS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def nine_services(kit, make, site):
    """The demo's nine services (their real, long names) offered at the site's centre, and only them."""
    from sqlalchemy import delete

    from app.catalogue.models import Offering
    from app.extensions import db

    def drop_site_services():
        db.session.execute(delete(Offering).where(Offering.centre_id == site.centre.id))
        db.session.commit()

    kit.call(drop_site_services)
    codes = []
    for spec in SERVICES:
        service = make.service(
            code=spec["code"],
            name_ar=spec["name_ar"],
            name_en=spec["name_en"],
            ticket_prefix=spec["prefix"],
            avg_service_minutes=spec["minutes"],
        )
        make.offering(site.centre, service)
        codes.append(service.code)
    return codes


def _tile_is_whole(page, code: str) -> bool:
    """The service's tile and its count lie inside the viewport and inside the waiting panel (not cut)."""
    return page.evaluate(
        """(code) => {
            const tile = document.querySelector(`#services li[data-service='${code}']`);
            if (!tile) return false;
            const panel = document.getElementById('services').getBoundingClientRect();
            const inside = (r, box) => r.width > 0 && r.height > 0
                && r.left >= box.left - 1 && r.right <= box.right + 1
                && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
            const screen = {left: 0, top: 0, right: window.innerWidth, bottom: window.innerHeight};
            const count = tile.querySelector('.count').getBoundingClientRect();
            const box = tile.getBoundingClientRect();
            return inside(box, panel) && inside(box, screen) && inside(count, box);
        }""",
        code,
    )


@pytest.mark.browser
def test_display_shows_every_service_count_at_both_screen_sizes(kit, make, live_server, browser):
    site = kit.site(counters=4)
    codes = nine_services(kit, make, site)
    per_service = {code: 30 + i for i, code in enumerate(codes)}

    def fill():
        for code, n in per_service.items():
            for _ in range(n):
                services.issue_walk_in_ticket(centre_id=site.centre.id, service_code=code)

    kit.call(fill)
    kit.call(
        counters.open_counter,
        counter_id=site.counters[0],
        services=codes,
        principal=_principal(kit, site.clerk),
    )
    for code in codes[:3]:
        kit.call(
            services.call_next_ticket, counter_id=site.counters[0], principal=_principal(kit, site.clerk)
        )
        kit.call(
            services.complete_ticket,
            ticket_id=_current(kit, site.counters[0]),
            principal=_principal(kit, site.clerk),
        )
    expected = kit.call(lambda: live.waiting_counts(centre_id=site.centre.id))
    for size, lang in (("1920x1080", "en"), ("1366x768", "ar")):
        page = browser.new_page(viewport=SIZES[size])
        page.goto(f"{live_server}/centres/{site.centre.id}/display?lang={lang}")
        page.wait_for_selector("body[data-snapshots='1']", timeout=10_000)
        screenshot(page, f"display-{lang}-{size}")
        assert page.get_attribute("body", "data-pages") == "1"
        for code in codes:
            count = page.text_content(f"#services li[data-service='{code}'] .count")
            assert count == str(expected[code]), (size, code)
            assert _tile_is_whole(page, code), (size, code)
        assert page.text_content("#total") == str(sum(expected.values()))
        assert sum(expected.values()) >= 9 * 30 - 3
        assert page.eval_on_selector_all("#services li", "nodes => nodes.length") == 9
        assert page.text_content("#calls li .number") is not None
        assert page.eval_on_selector("html", "e => e.dir") == ("rtl" if lang == "ar" else "ltr")
        # Each language keeps its own direction: the English footer is LTR inside an Arabic page.
        assert page.eval_on_selector("footer p[lang='en']", "e => getComputedStyle(e).direction") == "ltr"
        assert page.eval_on_selector("footer p[lang='ar']", "e => getComputedStyle(e).direction") == "rtl"
        page.close()


def _principal(kit, account):
    from tests.ticketing.conftest import principal_of

    return principal_of(account)


def _current(kit, counter_id):
    from sqlalchemy import select

    from app.extensions import db
    from ticketing.models import Ticket

    return kit.call(
        lambda: db.session.scalar(
            select(Ticket.id).where(Ticket.counter_id == counter_id, Ticket.status.in_(("called", "serving")))
        )
    )
