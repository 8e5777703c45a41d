"""Release-day scenarios of `make bench` (SPEC §9): a crowd entering a draw, the draw itself, and waitlist
hand-over. Each is a method-like function of the `Bench` in bench/run.py, selected with `--only`.

* `draw_entries`: RELEASE_ENTRANTS citizens enter one draw through the API in one burst (wrk, one entry
  each, entries.lua); entries/s against hello in the same run, p99, worker CPU per request, duplicates.
* `draw_run`: the draw over those entries (RELEASE_SEATS seats) in a child process, wall time and peak
  RSS; then `/draws/{id}/result` is fetched over HTTP and the allocation recomputed from it alone.
* `waitlist_handover`: WAITLIST_WAITING citizens wait; WAITLIST_CANCELS confirmed bookings are cancelled
  over WAITLIST_SPAN_S seconds by real threads (release delay 0); each freed seat must be offered, within
  how long of the cancel, and never twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
import urllib.request
from typing import Any

RELEASE_CENTRE = "irbid"
RELEASE_SERVICE = "passport.renew"
RELEASE_ENTRANTS = 20_000
# BENCH_ENTRANTS shrinks the burst on a machine too busy to serve 20,000 entries in reasonable time;
# the draw always runs over RELEASE_ENTRANTS (the rest are written straight to the table).
BURST_ENTRANTS = int(os.environ.get("BENCH_ENTRANTS", RELEASE_ENTRANTS))
RELEASE_SEATS = 1_000
WAITLIST_SERVICE = "civil.non_conviction"
WAITLIST_WAITING = 1_000
WAITLIST_CANCELS = 200
WAITLIST_SPAN_S = 10.0


# ------------------------------------------------------------------------------------------ setup


def _ensure_citizens(bench, total: int) -> list[tuple[int, str]]:
    """At least `total` bench citizens with tokens (the run's own plus more)."""
    from bench import prepare

    def make():
        have = prepare.count_citizens()
        return prepare.create_citizens(max(total, have), start=have)

    return bench.in_app(make)


def _release_draw(bench) -> int:
    """An open draw at Irbid over days holding exactly RELEASE_SEATS free seats (made once per run)."""
    if getattr(bench, "release_draw_id", None):
        return bench.release_draw_id

    def make() -> int:
        from sqlalchemy import select, text

        from app import clock
        from app.catalogue.models import Offering
        from app.extensions import db
        from booking.draws import create_draw

        offering = db.session.scalar(
            select(Offering).where(
                Offering.centre_id == RELEASE_CENTRE, Offering.service_code == RELEASE_SERVICE
            )
        )
        offering.allocation = "draw"
        db.session.commit()
        today = clock.now().date()
        days_from, days_to = today + dt.timedelta(days=2), today + dt.timedelta(days=28)
        rows = db.session.execute(
            text(
                "SELECT id, capacity FROM slots WHERE offering_id = :o AND local_date BETWEEN :a AND :b "
                "AND open ORDER BY start, id"
            ),
            {"o": offering.id, "a": days_from, "b": days_to},
        ).all()
        seats, keep = 0, []
        for slot_id, capacity in rows:  # the first slots up to RELEASE_SEATS seats; the rest closed
            take = min(capacity, RELEASE_SEATS - seats)
            if take <= 0:
                break
            keep.append((slot_id, take))
            seats += take
        if seats < RELEASE_SEATS:
            raise RuntimeError(f"only {seats} seats at {RELEASE_CENTRE} {RELEASE_SERVICE}")
        db.session.execute(
            text("UPDATE slots SET open = false WHERE offering_id = :o AND local_date BETWEEN :a AND :b"),
            {"o": offering.id, "a": days_from, "b": days_to},
        )
        for slot_id, take in keep:
            db.session.execute(
                text("UPDATE slots SET open = true, capacity = :c, booked = 0 WHERE id = :i"),
                {"c": take, "i": slot_id},
            )
        db.session.commit()
        admin = db.session.scalar(text("SELECT id FROM accounts WHERE role = 'admin' ORDER BY id LIMIT 1"))
        now = clock.now()
        draw = create_draw(
            admin_id=admin,
            centre_id=RELEASE_CENTRE,
            service_code=RELEASE_SERVICE,
            days_from=days_from,
            days_to=days_to,
            entries_open_at=now - dt.timedelta(minutes=1),
            entries_close_at=now + dt.timedelta(hours=6),
        )
        return draw.id

    bench.release_draw_id = bench.in_app(make)
    return bench.release_draw_id


# ------------------------------------------------------------------------------------- scenarios


def draw_entries(bench) -> dict[str, Any]:
    from bench import prepare
    from bench.run import one

    citizens = _ensure_citizens(bench, RELEASE_ENTRANTS)[:BURST_ENTRANTS]
    draw_id = _release_draw(bench)
    tokens = prepare.write_lines(bench.tmp / "entrants.txt", [token for _, token in citizens])
    r = bench.wrk(
        "draw_entries",
        "entries.lua",
        f"/api/v1/draws/{draw_id}/entries",
        connections=bench.size["hello_clients"],
        threads=2,
        duration=600,  # a bound: wrk is stopped once every thread's citizens are all answered
        finished_threads=True,
        BENCH_TOKENS=str(tokens),
        BENCH_PATH=f"/api/v1/draws/{draw_id}/entries",
    )
    stats = r["stats"]
    entered = stats.get("entry_201", 0)
    # The worker CPU of the entries alone: the /healthz asks of a thread with nothing left to send are taken
    # out at hello-world's CPU per request in this run (when hello ran).
    entry_answers = sum(v for k, v in stats.items() if k.startswith("entry_") and k[6:7].isdigit())
    idle_answers = sum(v for k, v in stats.items() if k.startswith("idle_") and k != "idle_sent")
    hello_cpu = bench.results.get("worker_cpu_ms_per_request", {}).get("hello")
    per_entry = None
    if hello_cpu is not None and entry_answers and r["worker_cpu_ms_per_request"] is not None:
        spent = r["worker_cpu_ms_per_request"] * (entry_answers + idle_answers)
        per_entry = round((spent - hello_cpu * idle_answers) / entry_answers, 3)
        bench.results["worker_cpu_ms_per_request"]["draw_entries"] = per_entry
    answered = entry_answers
    span = float(
        one(
            "SELECT coalesce(extract(epoch FROM max(created_at) - min(created_at)), 0) FROM draw_entries "
            f"WHERE draw_id = {draw_id}"
        )
    )
    return {
        "draw_id": draw_id,
        "entrants": len(citizens),
        "clients": bench.size["hello_clients"],
        "seconds": r["seconds"],
        "entries_201": entered,
        "answers_per_s": round(answered / r["seconds"], 1) if r["seconds"] else None,
        # From the first to the last entry written: wrk's own time also counts its idle tail.
        "entries_per_s": round(entered / span, 1) if span else None,
        "first_to_last_entry_s": round(span, 2),
        "latency_ms": r["latency_ms"],
        "worker_cpu_ms_per_request": r["worker_cpu_ms_per_request"],
        "worker_cpu_ms_per_entry": per_entry,
        "idle_answers": idle_answers,
        "stats": stats,
        "errors": r["errors"],
        "entries_in_db": int(one(f"SELECT count(*) FROM draw_entries WHERE draw_id = {draw_id}")),
        "duplicate_entries": int(
            one(f"SELECT count(*) - count(DISTINCT national_id) FROM draw_entries WHERE draw_id = {draw_id}")
        ),
        "lost_entries": entered - int(one(f"SELECT count(*) FROM draw_entries WHERE draw_id = {draw_id}")),
    }


def _bulk_entries(bench, draw_id: int, citizens: list[tuple[int, str]]) -> None:
    """Entries written straight to the table (when `draw_entries` did not run in this invocation)."""

    def write():
        import secrets

        from sqlalchemy import insert, select

        from app import clock
        from app.accounts.models import Account
        from app.extensions import db
        from booking.release_models import DrawEntry

        ids = [cid for cid, _ in citizens]
        nids = dict(
            db.session.execute(select(Account.id, Account.national_id).where(Account.id.in_(ids))).all()
        )
        now = clock.now()
        rows = [
            dict(
                draw_id=draw_id,
                account_id=cid,
                national_id=nids[cid],
                service_group="passport",
                entry_token=secrets.token_hex(16),
                part_of_day=("any", "morning", "afternoon")[n % 3],
                status="entered",
                created_at=now,
            )
            for n, cid in enumerate(ids)
        ]
        for start in range(0, len(rows), 5000):
            db.session.execute(insert(DrawEntry), rows[start : start + 5000])
        db.session.commit()

    bench.in_app(write)


DRAW_CHILD = """
import json, resource, sys, time
from app import create_app
app = create_app()
with app.app_context():
    from booking.draw_run import run_draw
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    draw = run_draw(draw_id=int(sys.argv[1]), actor_id=None, actor_role="system")
    wall = time.perf_counter() - t0
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"status": draw.status, "wall_s": round(wall, 3),
                      "cpu_s": round(cpu.ru_utime + cpu.ru_stime, 3),
                      "rss_mb_before": round(before / 1024, 1),
                      "peak_rss_mb": round(cpu.ru_maxrss / 1024, 1)}))
"""


def recompute(result: dict[str, Any]) -> list[tuple[str, int]]:
    """The allocation recomputed from the published result alone (what any reader can do)."""
    seed = bytes.fromhex(result["seed"])
    if hashlib.sha256(seed).hexdigest() != result["seed_commitment"]:
        raise RuntimeError("seed does not match its commitment")
    part = {e["entry_token"]: e["part_of_day"] for e in result["entries"]}
    order = sorted(part, key=lambda t: hmac.new(seed, t.encode(), hashlib.sha256).hexdigest())
    if order != result["order"]:
        raise RuntimeError("published order is not the HMAC order")
    excluded = {e["entry_token"] for e in result["excluded"]}
    left = [[s["slot_id"], s["part_of_day"], s["seats"]] for s in result["seats"]]
    out = []
    for token in order:
        if token in excluded:
            continue
        for seat in left:
            if seat[2] and part[token] in ("any", seat[1]):
                seat[2] -= 1
                out.append((token, seat[0]))
                break
    return out


def draw_run(bench) -> dict[str, Any]:
    from bench.run import ROOT, VENV_BIN, one

    draw_id = _release_draw(bench)
    have = int(one(f"SELECT count(*) FROM draw_entries WHERE draw_id = {draw_id}"))
    if have < RELEASE_ENTRANTS:
        citizens = _ensure_citizens(bench, RELEASE_ENTRANTS)[:RELEASE_ENTRANTS]
        taken = {
            int(x)
            for x in one(
                "SELECT coalesce(string_agg(account_id::text, ','), '') FROM draw_entries "
                f"WHERE draw_id = {draw_id}"
            ).split(",")
            if x
        }
        _bulk_entries(bench, draw_id, [c for c in citizens if c[0] not in taken][: RELEASE_ENTRANTS - have])
    entries = int(one(f"SELECT count(*) FROM draw_entries WHERE draw_id = {draw_id}"))
    bench.results["commands"]["draw_run"] = (
        f"{VENV_BIN / 'python'} -c <bench/release.py DRAW_CHILD> {draw_id}"
    )
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "-c", DRAW_CHILD, str(draw_id)],
        cwd=ROOT,
        env=bench.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"draw child failed: {proc.stderr[-2000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    t0 = time.monotonic()
    with urllib.request.urlopen(f"{bench.base}/api/v1/draws/{draw_id}/result", timeout=60) as response:
        raw = response.read()
    result = json.loads(raw)
    fetch_s = time.monotonic() - t0
    published = sorted((a["entry_token"], a["slot_id"]) for a in result["allocations"])
    recomputed = sorted(recompute(result))
    return {
        "draw_id": draw_id,
        "entries": entries,
        "seats": sum(s["seats"] for s in result["seats"]),
        **child,
        "result_bytes": len(raw),
        "result_fetch_s": round(fetch_s, 2),
        "allocations": len(published),
        "recomputed_matches": published == recomputed,
        "bookings": int(
            one(
                f"SELECT count(*) FROM bookings b JOIN draw_entries e ON e.id = b.draw_entry_id "
                f"WHERE e.draw_id = {draw_id}"
            )
        ),
        "entries_seated_twice": int(
            one(
                "SELECT count(*) FROM (SELECT draw_entry_id FROM bookings WHERE draw_entry_id IS NOT NULL "
                "GROUP BY draw_entry_id HAVING count(*) > 1) x"
            )
        ),
        "slots_over_capacity": int(one("SELECT count(*) FROM slots WHERE booked > capacity")),
        "waitlisted": int(
            one(f"SELECT count(*) FROM draw_entries WHERE draw_id = {draw_id} AND status = 'waitlisted'")
        ),
        "notifications": int(
            one("SELECT count(*) FROM notifications WHERE kind IN ('draw_won', 'draw_waitlisted')")
        ),
    }


def waitlist_handover(bench) -> dict[str, Any]:
    from bench.run import CENTRE, one

    # Citizens with no passport business in this run: after the entrants (the first RELEASE_ENTRANTS, of
    # whom the draw's winners hold a passport seat, which refuses them another hold).
    citizens = _ensure_citizens(bench, RELEASE_ENTRANTS + WAITLIST_CANCELS + WAITLIST_WAITING)
    pool = citizens[RELEASE_ENTRANTS : RELEASE_ENTRANTS + WAITLIST_CANCELS + WAITLIST_WAITING]
    holders, waiting = pool[:WAITLIST_CANCELS], pool[WAITLIST_CANCELS:]

    def setup() -> list[tuple[int, str]]:
        from sqlalchemy import text

        from app import clock
        from app.extensions import db
        from booking import services, waitlist

        slots = db.session.execute(
            text(
                "SELECT s.id, s.capacity - s.booked FROM slots s JOIN offerings o ON o.id = s.offering_id "
                "WHERE o.centre_id = :c AND o.service_code = :s AND s.open AND s.start > :t "
                "AND s.booked < s.capacity ORDER BY s.start"
            ),
            {"c": CENTRE, "s": WAITLIST_SERVICE, "t": clock.now() + dt.timedelta(hours=3)},
        ).all()
        seats = [slot_id for slot_id, free in slots for _ in range(free)][: len(holders)]
        if len(seats) < len(holders):
            raise RuntimeError(f"only {len(seats)} free seats of {WAITLIST_SERVICE}")
        # Fill the slots these seats are in, so every freed seat has nowhere to go but a waiting citizen.
        booked = []
        for (citizen, _), slot_id in zip(holders, seats, strict=True):
            held = services.hold_slot(account_id=citizen, slot_id=slot_id)
            services.confirm_booking(account_id=citizen, reference=held.reference)
            booked.append((citizen, held.reference))
        db.session.execute(
            text(f"UPDATE slots SET capacity = booked WHERE id IN ({','.join(str(s) for s in set(seats))})")
        )
        db.session.commit()
        today = clock.now().date()
        for citizen, _ in waiting:
            waitlist.join_waitlist(
                account_id=citizen,
                service_code=WAITLIST_SERVICE,
                centre_id=CENTRE,
                date_from=today,
                date_to=today + dt.timedelta(days=29),
            )
        return booked

    booked = bench.in_app(setup)
    from app.extensions import db
    from booking import services

    app = bench.app
    app.config["CANCEL_RELEASE_DELAY_MINUTES"] = 0
    errors: list[str] = []
    started = time.monotonic()
    interval = WAITLIST_SPAN_S / len(booked)

    def cancel(n: int, citizen: int, reference: str) -> None:
        time.sleep(max(0.0, started + n * interval - time.monotonic()))
        with app.app_context():
            try:
                services.cancel_booking(account_id=citizen, reference=reference)
            except Exception as exc:  # counted and reported, never hidden
                errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=cancel, args=(n, citizen, ref)) for n, (citizen, ref) in enumerate(booked)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    span = time.monotonic() - started
    with app.app_context():
        db.engine.dispose()
    delays = _offer_delays(WAITLIST_SERVICE)
    delays.sort()

    def pct(p: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(p / 100 * len(delays)))] * 1000, 1) if delays else None

    return {
        "waiting": len(waiting),
        "cancels": len(booked),
        "cancel_span_s": round(span, 2),
        "errors": errors[:5],
        "offers": int(one("SELECT count(*) FROM bookings WHERE waitlist_entry_id IS NOT NULL")),
        "offer_delay_ms": {"p50": pct(50), "p99": pct(99), "max": pct(100)},
        "citizens_offered_twice": int(
            one(
                "SELECT count(*) FROM (SELECT account_id FROM bookings WHERE waitlist_entry_id IS NOT NULL "
                "GROUP BY account_id HAVING count(*) > 1) x"
            )
        ),
        "seats_freed_not_offered": int(
            one(
                "SELECT count(*) FROM slots s WHERE s.booked < s.capacity "
                "AND s.id IN (SELECT slot_id FROM bookings WHERE status = 'cancelled' "
                f"AND service_code = '{WAITLIST_SERVICE}')"
            )
        ),
        "seat_counter_drift": int(
            one(
                "SELECT count(*) FROM slots s LEFT JOIN (SELECT slot_id, count(*) n FROM bookings WHERE "
                "holds_seat GROUP BY slot_id) b ON b.slot_id = s.id WHERE s.booked <> coalesce(b.n, 0)"
            )
        ),
        "offered_in_join_order": _in_join_order(),
    }


def _offer_delays(service: str) -> list[float]:
    """Seconds from each cancel to the offer of its seat: per slot, the n-th cancel with the n-th offer."""
    from collections import defaultdict

    from bench.run import psql

    cancels, offers = defaultdict(list), defaultdict(list)
    rows = psql(
        "SELECT slot_id, waitlist_entry_id IS NOT NULL, extract(epoch FROM cancelled_at), "
        "extract(epoch FROM created_at) FROM bookings "
        f"WHERE service_code = '{service}' AND (status = 'cancelled' OR waitlist_entry_id IS NOT NULL)"
    ).splitlines()
    for row in rows:
        slot_id, is_offer, cancelled_at, created_at = row.split("|")
        if is_offer == "t":
            offers[slot_id].append(float(created_at))
        elif cancelled_at:
            cancels[slot_id].append(float(cancelled_at))
    delays = []
    for slot_id, times in cancels.items():
        for cancelled, offered in zip(sorted(times), sorted(offers.get(slot_id, [])), strict=False):
            delays.append(offered - cancelled)
    return delays


def _in_join_order() -> bool:
    from bench.run import one

    offered = one(
        "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM waitlist_entries "
        "WHERE status = 'offered'"
    )
    first = one(
        f"SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM (SELECT id FROM waitlist_entries "
        f"ORDER BY id LIMIT {WAITLIST_CANCELS}) x"
    )
    return offered == first


def summary_rows(s: dict[str, Any], row, hello) -> None:
    """The release-day figures for the BENCHMARKS table."""
    e = s.get("draw_entries") or {}
    row(
        f"draw entries ({e.get('entrants') or RELEASE_ENTRANTS:,} citizens, one burst)",
        e.get("entries_per_s"),
        "entries/s",
        hello,
        "hello",
        "≥ 0.3 × hello",
        e.get("entries_per_s") is not None and hello and e["entries_per_s"] >= 0.3 * hello,
        "draw_entries",
    )
    row(
        "  p50 / p99, draw entries",
        f"{(e.get('latency_ms') or {}).get('p50')} / {(e.get('latency_ms') or {}).get('p99')}",
        "ms",
        scenario="draw_entries",
    )
    row(
        "  duplicate / lost entries",
        f"{e.get('duplicate_entries')} / {e.get('lost_entries')}",
        "",
        target="0 / 0",
        ok=e.get("duplicate_entries") == 0 and e.get("lost_entries") == 0,
        scenario="draw_entries",
    )
    d = s.get("draw_run") or {}
    row(
        "the draw: 20,000 entries, 1,000 seats",
        d.get("wall_s"),
        "s",
        target="< 10 s",
        ok=d.get("wall_s") is not None and d["wall_s"] < 10,
        scenario="draw_run",
    )
    row("  peak RSS of the drawing process", d.get("peak_rss_mb"), "MB", scenario="draw_run")
    row(
        "  allocation recomputed from /result matches",
        d.get("recomputed_matches"),
        "",
        target="true",
        ok=d.get("recomputed_matches") is True,
        scenario="draw_run",
    )
    w = s.get("waitlist_handover") or {}
    p99 = (w.get("offer_delay_ms") or {}).get("p99")
    row(
        "waitlist: cancel → offer, p99 (200 cancels in 10 s, 1,000 waiting)",
        p99,
        "ms",
        target="< 1000",
        ok=p99 is not None and p99 < 1000,
        scenario="waitlist_handover",
    )
    row(
        "  offers / offered twice / freed seats not offered",
        f"{w.get('offers')} / {w.get('citizens_offered_twice')} / {w.get('seats_freed_not_offered')}",
        "",
        target="200 / 0 / 0",
        ok=w.get("offers") == 200
        and w.get("citizens_offered_twice") == 0
        and w.get("seats_freed_not_offered") == 0,
        scenario="waitlist_handover",
    )
