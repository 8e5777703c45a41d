"""The clerk's console on the centre floor, in Chromium: a held counter refused then taken over by a
supervisor, a pause with its reason, the other counters' state, the shortcuts and the no-show confirm."""

from __future__ import annotations

import httpx
import pytest

from tests.ticketing.pagekit import sign_in

ALL_DAY = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def open_console(browser, live_server, account):
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{live_server}/staff/console?lang=en")
    sign_in(page, account)
    page.wait_for_selector("#open:not([hidden])", timeout=10_000)
    return page


def choose_counter(page, counter_id: int, service_code: str) -> None:
    page.select_option("#counter", str(counter_id))
    page.check(f"#services input[value='{service_code}']")
    page.click("#open-submit")


@pytest.mark.browser
def test_a_held_counter_is_refused_then_a_supervisor_takes_it_over(kit, live_server, browser):
    site = kit.site(weekly_hours=ALL_DAY)
    with httpx.Client(base_url=live_server + "/api/v1", timeout=10) as api:
        held = api.post(
            f"/staff/counters/{site.counters[0]}/open",
            json={"services": [site.other.code]},
            headers=site.headers["clerk"],
        )
        assert held.status_code == 200
    # Another clerk is told who holds it, and cannot force.
    page = open_console(browser, live_server, site.clerk2)
    choose_counter(page, site.counters[0], site.other.code)
    page.wait_for_selector("#taken:not([hidden])", timeout=10_000)
    assert site.clerk.full_name in page.text_content("#taken-text")
    assert page.is_hidden("#force")
    assert page.is_hidden("#desk")
    page.close()
    # A supervisor is told the same, and may take it over.
    page = open_console(browser, live_server, site.supervisor)
    choose_counter(page, site.counters[0], site.other.code)
    page.wait_for_selector("#force:not([hidden])", timeout=10_000)
    assert site.clerk.full_name in page.text_content("#taken-text")
    page.click("#force")
    page.wait_for_selector("#desk:not([hidden])", timeout=10_000)
    page.close()
    with httpx.Client(base_url=live_server + "/api/v1", timeout=10) as api:
        floor = api.get(
            f"/staff/centres/{site.centre.id}/counters", headers=site.headers["supervisor"]
        ).json()
    taken = next(c for c in floor["counters"] if c["id"] == site.counters[0])
    assert (taken["state"], taken["account_id"]) == ("open", site.supervisor.id)


def wait_estimate(api, ticket) -> int:
    return api.get(f"/public-tickets/{ticket['public_id']}").json()["estimated_wait_minutes"]


@pytest.mark.browser
def test_pause_with_a_reason_and_the_other_counters_state(kit, live_server, browser):
    site = kit.site(weekly_hours=ALL_DAY)
    with httpx.Client(base_url=live_server + "/api/v1", timeout=10) as api:
        api.post(
            f"/staff/counters/{site.counters[1]}/open",
            json={"services": [site.passport.code, site.other.code]},
            headers=site.headers["clerk2"],
        )
        tickets = [
            api.post(
                f"/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk
            ).json()
            for _ in range(3)
        ]
        page = open_console(browser, live_server, site.clerk)
        choose_counter(page, site.counters[0], site.other.code)
        page.wait_for_selector("#desk:not([hidden])", timeout=10_000)
        assert page.text_content("#call-next kbd") == "N"  # shortcuts are shown on the buttons
        other = f"#counters li[data-counter='{site.counters[1]}']"
        page.wait_for_selector(f"{other}[data-state='open']", timeout=5_000)
        assert site.clerk2.full_name in page.text_content(other)
        both_working = wait_estimate(api, tickets[2])  # two ahead, two counters

        page.select_option("#pause-reason", "prayer")
        page.evaluate("document.activeElement.blur()")  # shortcuts do not fire while a field has focus
        page.keyboard.press("p")
        page.wait_for_selector("#paused-badge:not([hidden])", timeout=5_000)
        assert "Prayer" in page.text_content("#current-status")
        assert page.is_disabled("#call-next")
        floor = api.get(f"/staff/centres/{site.centre.id}/counters", headers=site.headers["clerk"]).json()
        paused = next(c for c in floor["counters"] if c["id"] == site.counters[0])
        assert (paused["state"], paused["pause_reason"]) == ("paused", "prayer")
        # A paused counter shortens no wait: the third visitor's estimate is that of one counter.
        assert both_working > 0 and wait_estimate(api, tickets[2]) == 2 * both_working
        # The other clerk's console shows this counter paused, with its reason.
        watcher = open_console(browser, live_server, site.clerk2)
        choose_counter(watcher, site.counters[1], site.other.code)  # back at their own counter
        mine = f"#counters li[data-counter='{site.counters[0]}']"
        watcher.wait_for_selector(f"{mine}[data-state='paused']", timeout=10_000)
        assert "Prayer" in watcher.text_content(mine) and site.clerk.full_name in watcher.text_content(mine)
        watcher.close()

        page.click("#resume")
        page.wait_for_selector("#paused-badge[hidden]", state="attached", timeout=5_000)
        assert not page.is_disabled("#call-next")
        assert wait_estimate(api, tickets[2]) == both_working

        # A called visitor who does not come: the no-show asks first (Escape keeps the ticket).
        page.keyboard.press("n")
        page.wait_for_function(
            "document.getElementById('current-number').textContent === 'C-001'", timeout=5_000
        )
        assert page.text_content("#d-marks") == "Walk-in"
        page.keyboard.press("x")
        page.wait_for_selector("#confirm-no-show:not([hidden])", timeout=2_000)
        page.keyboard.press("Escape")
        assert page.is_hidden("#confirm-no-show")
        assert page.text_content("#current-number") == "C-001"
        page.keyboard.press("x")
        page.click("#no-show-yes")
        page.wait_for_function("document.getElementById('current-number').textContent === '—'", timeout=5_000)
    page.close()
