"""Every kind's text in Arabic and English, with every placeholder filled and routing data as strings."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from notifications.messages import KINDS, render, routing_data

ARABIC = re.compile(r"[\u0600-\u06FF]")
PARAMS = {
    "reference": "BK-7K2Q",
    "booking_id": 12,
    "request_id": 5,
    "ticket_id": 77,
    "centre_id": "amman-test",
    "service_code": "passport.renew",
    "start": dt.datetime(2026, 12, 1, 7, 30, tzinfo=dt.UTC),
    "until": dt.datetime(2027, 1, 1, 7, 30, tzinfo=dt.UTC),
    "date": "2026-12-03",
    "note": "Bring the medical report.",
    "number": "P-042",
    "ahead": 3,
    "counter": 4,
}


@pytest.fixture
def catalogue(make):
    make.centre(id="amman-test", name_ar="مركز المقابلين", name_en="Muqabalain Centre")
    make.service(code="passport.renew", name_ar="تجديد جواز السفر", name_en="Passport renewal")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_in_english(catalogue, ctx, kind):
    text = render(kind, PARAMS, "en")
    assert text.language == "en" and text.title and text.body
    assert "%(" not in text.title + text.body
    assert not ARABIC.search(text.title + text.body)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_in_arabic(catalogue, ctx, kind):
    """Needs the Arabic catalog (merged from /work/tr_notifications.json)."""
    text = render(kind, PARAMS, "ar")
    assert text.language == "ar"
    assert "%(" not in text.title + text.body
    assert ARABIC.search(text.title) and ARABIC.search(text.body)
    assert not re.search(r"\b(Your|Appointment|Ticket|please)\b", text.title + text.body)


def test_texts_use_the_centres_local_time_and_names(catalogue, ctx):
    en = render("booking_confirmed", PARAMS, "en")
    ar = render("booking_confirmed", PARAMS, "ar")
    assert en.body == (
        "Your appointment BK-7K2Q for Passport renewal at Muqabalain Centre "
        "is confirmed for 2026-12-01 10:30."
    )
    assert "مركز المقابلين" in ar.body and "تجديد جواز السفر" in ar.body and "2026-12-01 10:30" in ar.body
    assert render("ticket_called", PARAMS, "en").title == "Go to counter 4"
    assert render("ticket_called", PARAMS, "ar").title == "توجّه إلى الشباك 4"
    assert render("turn_near", PARAMS, "en").body == (
        "Ticket P-042: your turn is near (3 ahead of you). Please stay near the counters."
    )


def test_missing_params_leave_no_placeholder(ctx):
    text = render("urgent_rejected", {}, "en")
    assert "%(" not in text.body and "None" not in text.body


def test_unknown_kind_is_refused(ctx):
    with pytest.raises(ValueError):
        render("booking_exploded", {}, "en")


def test_routing_data_are_strings_the_app_routes_on():
    data = routing_data("ticket_called", PARAMS, {"screen": "ticket", "extra": 5})
    assert data == {
        "kind": "ticket_called",
        "reference": "BK-7K2Q",
        "booking_id": "12",
        "ticket_id": "77",
        "request_id": "5",
        "centre_id": "amman-test",
        "service_code": "passport.renew",
        "counter": "4",
        "number": "P-042",
        "screen": "ticket",
        "extra": "5",
    }
