"""The supervisor's dashboard in Chromium: its charts render, and its figures are the day's tickets counted
by hand."""

from __future__ import annotations

import zoneinfo
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from app.extensions import db
from tests.ticketing.pagekit import sign_in
from ticketing.models import Ticket

ALL_DAY = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
CHARTS = ("chart-hours", "chart-waits", "chart-counters", "chart-urgent")


def chart_data(page, canvas_id: str):
    return page.evaluate(
        """(id) => {
            const c = Chart.getChart(id);
            return c ? {labels: c.data.labels, datasets: c.data.datasets.map(d => d.data)} : null;
        }""",
        canvas_id,
    )


@pytest.mark.browser
def test_dashboard_charts_the_days_tickets_as_counted_by_hand(kit, live_server, browser):
    site = kit.site(weekly_hours=ALL_DAY)
    with httpx.Client(base_url=live_server + "/api/v1", timeout=10) as api:
        for service in (site.passport, site.passport, site.passport, site.other, site.other):
            assert api.post(
                f"/centres/{site.centre.id}/tickets", json={"service": service.code}, headers=site.kiosk
            ).is_success
        clerk = site.headers["clerk"]
        codes = [site.passport.code, site.other.code]
        api.post(f"/staff/counters/{site.counters[0]}/open", json={"services": codes}, headers=clerk)
        for _ in range(2):  # two served
            ticket = api.post(f"/staff/counters/{site.counters[0]}/call-next", headers=clerk).json()
            api.post(f"/staff/tickets/{ticket['id']}/start", headers=clerk)
            api.post(f"/staff/tickets/{ticket['id']}/complete", headers=clerk)
        ticket = api.post(f"/staff/counters/{site.counters[0]}/call-next", headers=clerk).json()
        api.post(f"/staff/tickets/{ticket['id']}/no-show", headers=clerk)  # one did not come
        stats = api.get(f"/staff/centres/{site.centre.id}/stats", headers=site.headers["supervisor"]).json()
    assert stats["tickets"] == 5

    # The hand count, from the tickets themselves.
    tickets = kit.call(
        lambda: [
            (t.issued_at, t.status, t.service_code)
            for t in db.session.scalars(select(Ticket).where(Ticket.centre_id == site.centre.id))
        ]
    )
    zone = zoneinfo.ZoneInfo(site.centre.timezone)
    issued_by_hour = Counter(f"{issued.astimezone(zone).hour:02d}:00" for issued, _, _ in tickets)
    served = sum(1 for _, status, _ in tickets if status == "done")
    no_shows = sum(1 for _, status, _ in tickets if status == "no_show")
    waiting = sum(1 for _, status, _ in tickets if status == "waiting")
    assert (len(tickets), served, no_shows, waiting) == (5, 2, 1, 2)

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{live_server}/staff/dashboard?lang=en")
    sign_in(page, site.supervisor)
    page.wait_for_selector("body[data-refreshes]", timeout=10_000)
    for canvas in CHARTS:
        assert chart_data(page, canvas) is not None, canvas
        assert page.eval_on_selector(f"#{canvas}", "c => c.width > 0 && c.height > 0"), canvas
    assert page.text_content("#f-issued") == "5"
    assert page.text_content("#f-served") == str(served)
    assert page.text_content("#f-waiting") == str(waiting)
    assert page.text_content("#f-no-show") == f"{round(100 * no_shows / (served + no_shows), 1)}%"
    assert page.text_content("#f-satisfaction") == "—"  # nobody rated yet

    hours = chart_data(page, "chart-hours")
    drawn = {label: n for label, n in zip(hours["labels"], hours["datasets"][0], strict=True) if n}
    assert drawn == dict(issued_by_hour)
    assert sum(hours["datasets"][1]) == served

    rows = {
        row["service"]: row
        for row in page.eval_on_selector_all(
            "#services-table tbody tr",
            "rows => rows.map(r => ({service: r.dataset.service,"
            " cells: [...r.cells].map(c => c.textContent)}))",
        )
    }
    by_service = Counter(code for _, _, code in tickets)
    for code, count in by_service.items():
        assert rows[code]["cells"][1] == str(count), code

    floor = chart_data(page, "chart-counters")["datasets"][0]
    assert floor == [1, 0, 0]  # one counter open, nobody paused, nobody at it since the no-show
    urgent = chart_data(page, "chart-urgent")["datasets"][0]
    assert urgent[0] == 0  # no urgent pass used today
    page.close()
