"""Factories for queue tests: a centre with services and counters, its people, bookings, live servers."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from app import clock
from app.accounts.models import Account
from app.extensions import db
from app.security import Principal
from tests.factories import AROUND_THE_CLOCK

_n = itertools.count(1)
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


def principal_of(account: Account) -> Principal:
    """The principal a request by this account would carry."""
    return Principal(id=account.id, role=account.role, centre_id=account.centre_id, language=account.language)


@dataclass
class Site:
    """A centre with two services (P: passport.renew-like, C: another) and its staff."""

    centre: Any
    passport: Any
    other: Any
    counters: list[int]
    clerk: Any
    clerk2: Any
    supervisor: Any
    kiosk: dict[str, str]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)


class QueueKit:
    """Queue-specific factories on top of `make`."""

    def __init__(self, app, make) -> None:
        self.app = app
        self.make = make

    def site(
        self, *, counters: int = 2, remote: bool = False, urgent_reserve: int = 2, **centre_kw: Any
    ) -> Site:
        """A centre open around the clock (unless `weekly_hours` says otherwise): tickets are issued only
        while a centre is open, and the tests run at any hour."""
        n = next(_n)
        centre_kw.setdefault("weekly_hours", AROUND_THE_CLOCK)
        centre = self.make.centre(counters=counters, remote_tickets_enabled=remote, **centre_kw)
        passport = self.make.service(
            code=f"passport.q{n}", ticket_prefix="P", avg_service_minutes=12, high_demand=True
        )
        other = self.make.service(code=f"civil.q{n}", ticket_prefix="C", avg_service_minutes=6)
        self.make.offering(centre, passport, urgent_reserve_per_day=urgent_reserve)
        self.make.offering(centre, other)
        counter_ids = self.make.call(lambda: [c.id for c in db.session.get(type(centre), centre.id).counters])
        clerk = self.make.staff(centre)
        clerk2 = self.make.staff(centre)
        supervisor = self.make.staff(centre, role="supervisor")
        site = Site(
            centre=centre,
            passport=passport,
            other=other,
            counters=counter_ids,
            clerk=clerk,
            clerk2=clerk2,
            supervisor=supervisor,
            kiosk=self.make.kiosk_headers(centre),
        )
        site.headers = {
            "clerk": self.make.headers(clerk),
            "clerk2": self.make.headers(clerk2),
            "supervisor": self.make.headers(supervisor),
        }
        return site

    def booking(
        self,
        site: Site,
        account,
        *,
        service=None,
        starts_in: dt.timedelta = dt.timedelta(minutes=5),
        status: str = "confirmed",
    ):
        """A confirmed regular booking of a slot starting `starts_in` from now."""
        from app.catalogue.models import Offering

        service = service or site.other
        offering = self.make.call(
            lambda: db.session.scalar(
                select(Offering).where(
                    Offering.centre_id == site.centre.id, Offering.service_code == service.code
                )
            )
        )
        start = (clock.now() + starts_in).replace(microsecond=0)
        return self.make.confirmed_booking(account, offering, start, status=status)

    def call(self, func: Callable, *args, **kwargs):
        return self.make.call(func, *args, **kwargs)

    def race(self, func: Callable[..., Any], args: Iterable[Any], workers: int = 20) -> list[Any]:
        """Run func(arg) on real threads, each in its own app context; returns results or AppErrors."""
        return self.make.race(func, args, workers=workers)


@pytest.fixture
def kit(app, make) -> QueueKit:
    return QueueKit(app, make)


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The test app served over HTTP by werkzeug (threaded) on a free loopback port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium; missing → skip locally, fail under CI=true."""
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not path:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but Debian's chromium is not installed (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture
def browser(chromium_path) -> Iterator[Any]:
    """A headless Chromium driven by Playwright (never a downloaded browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but the playwright package is not installed")
        pytest.skip("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield _PagesWithoutCsp(browser)
        finally:
            browser.close()


class _PagesWithoutCsp:
    """Pages that ignore the Content-Security-Policy unless asked (`new_page(bypass_csp=False)`).

    Playwright's `wait_for_function` polls by evaluating its expression inside the page, which the CSP
    (no unsafe-eval) refuses; test_the_pages_run_under_the_content_security_policy keeps the CSP on.
    """

    def __init__(self, browser) -> None:
        self._browser = browser

    def new_page(self, **options):
        options.setdefault("bypass_csp", True)
        return self._browser.new_page(**options)

    def __getattr__(self, name):
        return getattr(self._browser, name)
