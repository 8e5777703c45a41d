"""The kiosk, a ticket's public page and its QR code: served, in both languages, and (in Chromium) printed."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from app.extensions import db
from app.qr import qr_svg
from tests.ticketing.pagekit import pdf_page_sizes_mm, qr_texts_in_pdf
from ticketing.models import Ticket

ALL_DAY = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def test_kiosk_page_lists_the_centres_services_in_both_languages(kit, client):
    site = kit.site(weekly_hours=ALL_DAY)
    arabic = client.get(f"/centres/{site.centre.id}/kiosk?lang=ar").get_data(as_text=True)
    assert 'dir="rtl"' in arabic and site.centre.name_ar in arabic
    assert site.passport.name_ar in arabic and site.other.name_ar in arabic
    assert f'data-service="{site.passport.code}"' in arabic
    english = client.get(f"/centres/{site.centre.id}/kiosk", headers={"Accept-Language": "en"})
    assert english.status_code == 200
    html = english.get_data(as_text=True)
    assert 'dir="ltr"' in html and site.passport.name_en in html and "Take a ticket" in html
    assert "http://" not in html and "https://" not in html  # nothing from another host
    assert client.get("/centres/nowhere/kiosk").status_code == 404


def test_kiosk_page_refuses_a_token_of_another_centre(kit, make, client):
    site = kit.site(weekly_hours=ALL_DAY)
    elsewhere = make.centre()
    foreign = make.kiosk_headers(elsewhere)["Authorization"].split()[1]
    own = site.kiosk["Authorization"].split()[1]
    assert client.get(f"/centres/{site.centre.id}/kiosk?token={foreign}").status_code == 403
    assert client.get(f"/centres/{site.centre.id}/kiosk?token=ksk_wrong").status_code == 403
    assert client.get(f"/centres/{site.centre.id}/kiosk?token={own}").status_code == 200


def test_public_ticket_page_and_its_qr_code(client):
    page = client.get("/t/AbCdEf123456?lang=ar")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'dir="rtl"' in html and "/api/v1/public-tickets/AbCdEf123456" in html
    assert 'dir="ltr"' in client.get("/t/AbCdEf123456?lang=en").get_data(as_text=True)
    qr = client.get("/t/AbCdEf123456/qr.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml"
    assert qr.get_data(as_text=True) == qr_svg("http://localhost/t/AbCdEf123456", scale=4, border=2)
    assert client.get("/t/bad id!/qr.svg").status_code == 404
    assert client.get("/t/x").status_code == 404


def test_dashboard_page_is_served(client):
    page = client.get("/staff/dashboard?lang=en")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "vendor/chart.umd.js" in html and "staff-session.js" in html
    chart = client.get("/static/ticketing/vendor/chart.umd.js")
    assert chart.status_code == 200 and re.search(r"Chart\.js v4\.", chart.get_data(as_text=True))


# Headless Chromium's print() holds the page "being printed" (page.pdf then fails): count the calls instead.
COUNT_PRINTS = "window.print = () => { window.__prints = (window.__prints || 0) + 1; };"


def kiosk_page(browser, live_server, site, lang: str):
    token = site.kiosk["Authorization"].split()[1]
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.add_init_script(COUNT_PRINTS)
    page.goto(f"{live_server}/centres/{site.centre.id}/kiosk?lang={lang}&token={token}")
    return page


@pytest.mark.browser
def test_kiosk_prints_an_80_mm_ticket_whose_qr_code_opens_its_public_page(kit, live_server, browser):
    site = kit.site(weekly_hours=ALL_DAY)
    page = kiosk_page(browser, live_server, site, "en")
    assert "token=" not in page.url  # the token stays on the device, not on the screen
    page.click("#vulnerable")
    page.click(f".service[data-service='{site.other.code}']")
    page.wait_for_selector("body[data-state='ticket']", timeout=10_000)
    assert page.text_content("#t-number") == "C-001"
    assert page.text_content("#t-services") == site.other.name_en
    assert page.text_content("#t-position") == "1"
    assert page.text_content("#t-issued").strip()
    assert page.evaluate("window.__prints") == 1

    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    sizes = pdf_page_sizes_mm(pdf)
    assert len(sizes) == 1, sizes  # the ticket alone, on one page
    assert abs(sizes[0][0] - 80) < 0.5, sizes

    public_id = page.get_attribute("body", "data-public-id")
    issued = kit.call(lambda: db.session.scalar(select(Ticket).where(Ticket.centre_id == site.centre.id)))
    assert public_id == issued.public_id
    assert qr_texts_in_pdf(pdf) == [f"{live_server}/t/{public_id}"]
    page.close()


@pytest.mark.browser
def test_kiosk_checks_a_booking_in_by_reference(kit, make, live_server, browser):
    site = kit.site(weekly_hours=ALL_DAY)
    citizen = make.citizen()
    booking = kit.booking(site, citizen)
    page = kiosk_page(browser, live_server, site, "ar")
    assert page.get_attribute("html", "dir") == "rtl"
    page.fill("#reference", booking.reference.lower())
    page.click("#check-in-submit")
    page.wait_for_selector("body[data-state='ticket']", timeout=10_000)
    assert page.text_content("#t-number").startswith("C-")
    assert page.text_content("#t-marks").strip()  # "checked in: your appointment ticket"
    page.click("#done")
    page.wait_for_selector("body[data-state='choose']", timeout=5_000)
    page.close()


@pytest.mark.browser
def test_public_page_shows_the_counter_once_the_ticket_is_called(kit, live_server, browser):
    site = kit.site(weekly_hours=ALL_DAY)
    with httpx.Client(base_url=live_server + "/api/v1", timeout=10) as api:
        ticket = api.post(
            f"/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk
        ).json()
        page = browser.new_page(viewport={"width": 412, "height": 860})
        page.goto(f"{live_server}/t/{ticket['public_id']}?lang=en")
        page.wait_for_selector("body[data-status='waiting']", timeout=10_000)
        assert page.text_content("#number") == ticket["number"]
        assert page.text_content("#position") == "You are next"
        assert page.text_content("#services") == site.other.name_en
        assert page.is_hidden("#called-view")
        api.post(
            f"/staff/counters/{site.counters[1]}/open",
            json={"services": [site.other.code]},
            headers=site.headers["clerk"],
        )
        assert api.post(
            f"/staff/counters/{site.counters[1]}/call-next", headers=site.headers["clerk"]
        ).is_success
    page.wait_for_selector("body[data-status='called']", timeout=12_000)  # the next poll, ~5 s
    assert page.is_visible("#called-view")
    assert page.text_content("#counter") == "Counter 2"
    page.goto(f"{live_server}/t/{ticket['public_id']}?lang=ar")
    page.wait_for_selector("body[data-status='called']", timeout=10_000)
    assert page.get_attribute("html", "dir") == "rtl"
    assert page.text_content("#counter") == "الشباك 2"
    page.close()
