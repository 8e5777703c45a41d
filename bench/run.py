"""`python -m bench.run` (`make bench`): the booking surge, the counters and the display, measured as
ratios against this machine's own limits taken in the same run.

Production shape on loopback: PostgreSQL (database `sanad_bench`, recreated), Redis (db 13, flushed),
migrations, demo data plus bench citizens/clerks (bench/prepare.py), gunicorn with gevent workers
(bench/gunicorn_conf.py). Load: wrk with Lua scripts (bench/lua/), pgbench for the database reference,
an asyncio/httpx SSE pool for the display (bench/display.py). Every loop is bounded in time and count.

Results: bench/results/<timestamp>.json, bench/results/latest.json, and the table in BENCHMARKS.md
(between the `bench:table` markers). `--smoke` runs tiny sizes to prove the harness, nothing more.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
RESULTS = BENCH / "results"
VENV_BIN = Path(sys.executable).parent
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
# BENCH_DB / BENCH_REDIS_DB let two people measure side by side without dropping each other's data.
DB_NAME = os.environ.get("BENCH_DB", "sanad_bench")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "13"))
CENTRE = "amman-muqabalain"
HOT_SERVICE = "passport.renew"
FAMILY_SIZE = 3  # family_hold: the citizen and two children
# Tickets are issued only while a centre is open: the visits scenario issues at one open around the clock.
VISIT_CENTRE = "queen-alia-airport"
# Kiosk tickets are issued where the hall is open at any hour of a run (the airport's centre: 24 h).
KIOSK_CENTRE = VISIT_CENTRE
KIOSK_DEEP_QUEUE = 5000

FULL = dict(
    duration=20,
    warmup=3,
    citizens=4000,
    hot_slots=20,
    surge_clients=256,
    hello_clients=64,
    avail_clients=16,
    pg_clients=32,
    counters=20,
    queue_depth=40000,
    visit_depth=4000,
    kiosk_clients=32,
    screens=500,
    display_calls=100,
    display_pause=0.2,
    display_deadline=120,
    profile_seconds=10,
)
SMOKE = dict(
    duration=5,
    warmup=1,
    citizens=400,
    hot_slots=20,
    surge_clients=64,
    hello_clients=64,
    avail_clients=8,
    pg_clients=8,
    counters=20,
    queue_depth=900,
    visit_depth=400,
    kiosk_clients=8,
    screens=50,
    display_calls=8,
    display_pause=0.2,
    display_deadline=30,
    profile_seconds=3,
)

TARGETS = {
    "hold_ratio": 0.45,
    "hold_p99_ms": 150,
    "soldout_ratio": 0.6,
    "soldout_p99_ms": 25,
    "availability_p99_ms": 30,
    "availability_p99_vs_hello": 2,
    "availability_cpu_vs_hello": 2.5,
    "availability_uncached_cpu_ms": 2.0,
    # 0 and 10,000 cancelled bookings on the searched month: the same cost within the run-to-run noise.
    "availability_flat_ratio": 1.15,
    "calls_per_s": 1000,
    "display_p99_ms": 250,
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class NotRun(Exception):
    """A scenario that cannot run (a missing tool, an endpoint not ready): reported, never fatal."""


# ------------------------------------------------------------------------------------------ helpers


def psql(sql: str, db: str = DB_NAME, *, check: bool = True) -> str:
    cmd = [
        "psql",
        "-h",
        PG["host"],
        "-p",
        PG["port"],
        "-U",
        PG["user"],
        "-d",
        db,
        "-XtA",
        "-v",
        "ON_ERROR_STOP=1",
    ]
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()


def one(sql: str) -> Any:
    value = psql(sql).splitlines()
    return value[-1] if value else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
            return response.status
    except Exception:
        return 0


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.size = dict(SMOKE if args.smoke else FULL)
        for key in ("duration", "citizens", "screens"):
            if getattr(args, key, None):
                self.size[key] = getattr(args, key)
        self.tmp = Path(tempfile.mkdtemp(prefix="sanad-bench-"))
        self.port = args.port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen | None = None
        self.results: dict[str, Any] = {
            "mode": "smoke" if args.smoke else "full",
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "loadavg_before": os.getloadavg(),
            },
            "sizes": self.size,
            "commands": {},
            "scenarios": {},
        }
        self.env = self._app_env(ratelimits=False)

    # ------------------------------------------------------------------------------ environment

    def _app_env(self, *, ratelimits: bool) -> dict[str, str]:
        env = dict(os.environ)
        prom = self.tmp / ("prom-limits" if ratelimits else "prom")
        prom.mkdir(exist_ok=True)
        env.update(
            APP_ENV="development",  # production refuses demo data; everything else is production-shaped
            DATABASE_URL=f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{DB_NAME}",
            REDIS_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
            # Measuring the service, not the limiter: 256 clients from one loopback IP would be 429s.
            # `surge_limits_on` measures the limiter's own cost.
            RATELIMIT_ENABLED="true" if ratelimits else "false",
            LOG_LEVEL="WARNING",
            LOG_JSON="true",
            SCHEDULER_ENABLED="false",
            PROMETHEUS_MULTIPROC_DIR=str(prom),
            ACCESS_TOKEN_SECONDS="14400",  # tokens minted once must outlive the run
            # 4 workers x 16 = 64 PostgreSQL connections: under max_connections=100 with room for others.
            DB_POOL_SIZE=os.environ.get("BENCH_DB_POOL_SIZE", "16"),
            DB_MAX_OVERFLOW="0",
            BENCH_BIND=f"127.0.0.1:{self.port}",
            PYTHONUNBUFFERED="1",
        )
        return env

    def flask(self, *argv: str) -> str:
        out = subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "wsgi", *argv],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"flask {' '.join(argv)} failed:\n{out.stderr[-3000:]}")
        return out.stdout

    def prepare(self) -> None:
        for tool in ("wrk", "pgbench", "psql", "redis-cli"):
            if shutil.which(tool) is None:
                hint = (
                    "apt-get install wrk"
                    if tool == "wrk"
                    else "apt-get install postgresql-client redis-tools"
                )
                raise SystemExit(f"bench needs `{tool}` on PATH ({hint})")
        log(f"database {DB_NAME} (recreated), Redis db {REDIS_DB} (flushed), temp {self.tmp}")
        psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)", db="postgres")
        psql(f"CREATE DATABASE {DB_NAME}", db="postgres")
        subprocess.run(["redis-cli", "-n", str(REDIS_DB), "FLUSHDB"], check=True, capture_output=True)
        self.flask("db", "upgrade")
        self.flask("demo-data")
        self.results["postgres"] = {
            k: one(f"SHOW {k}")
            for k in ("server_version", "max_connections", "shared_buffers", "synchronous_commit")
        }
        os.environ.update(self.env)  # the in-process app (bench data, tokens) reads the same settings
        from app import create_app
        from app.extensions import db
        from bench import prepare

        app = create_app()
        with app.app_context():
            t0 = time.monotonic()
            citizens = prepare.create_citizens(self.size["citizens"])
            families = prepare.create_dependents(per_citizen=FAMILY_SIZE - 1)
            counters = prepare.create_counters_and_clerks(self.size["counters"])
            self.kiosk = prepare.kiosk_token(KIOSK_CENTRE)
            prepare.write_lines(self.tmp / "kiosk_services.txt", prepare.centre_services(KIOSK_CENTRE))
            self.display_token = prepare.display_token()
            self.services = prepare.centre_services()
            slots = prepare.bookable_slots(service=HOT_SERVICE)
            if len(slots) < self.size["hot_slots"]:
                raise SystemExit(
                    f"only {len(slots)} bookable {HOT_SERVICE} slots at {CENTRE}: slot generation?"
                )
            # Hot: the first 20 slots a week out (a release day); spread: the centre's whole month.
            week = [s for s in slots if s[2] > slots[0][2] + dt.timedelta(days=6)] or slots
            self.hot_slots = [s[0] for s in week[: self.size["hot_slots"]]]
            self.month_slots = [s[0] for s in slots]
            self.seats = {
                "hot": sum(s[1] for s in week[: self.size["hot_slots"]]),
                "month": sum(s[1] for s in slots),
            }
            from app.catalogue.services import centre_today, get_centre

            self.today = centre_today(get_centre(CENTRE))
            db.session.remove()
            db.engine.dispose()
            self.app = app
            log(
                f"{len(citizens)} citizens, {len(counters)} clerks/counters, "
                f"tokens minted in {time.monotonic() - t0:.1f}s"
            )
        prepare.write_lines(self.tmp / "citizens.txt", [token for _, token in citizens])
        prepare.write_lines(self.tmp / "families.txt", families)
        prepare.write_lines(self.tmp / "counters.txt", [f"{cid} {token}" for cid, token in counters])
        prepare.write_lines(self.tmp / "hot_slots.txt", self.hot_slots)
        prepare.write_lines(self.tmp / "month_slots.txt", self.month_slots)
        prepare.write_lines(self.tmp / "services.txt", self.services)
        self.counters = counters
        self.citizen_ids = [cid for cid, _ in citizens]
        self.results["data"] = {
            "citizens": len(citizens),
            "counters": len(counters),
            "hot_slots": len(self.hot_slots),
            "hot_seats": self.seats["hot"],
            "month_slots": len(self.month_slots),
            "month_seats": self.seats["month"],
        }

    def in_app(self, func, *args, **kwargs):
        from app.extensions import db

        with self.app.app_context():
            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()
                db.engine.dispose()

    # ---------------------------------------------------------------------------------- server

    def start_server(self, *, ratelimits: bool = False) -> None:
        env = self._app_env(ratelimits=ratelimits)
        cmd = [
            str(VENV_BIN / "gunicorn"),
            "-c",
            str(BENCH / "gunicorn_conf.py"),
            "--no-control-socket",
            "wsgi:app",
        ]
        self.results["commands"]["gunicorn" + ("_limits_on" if ratelimits else "")] = (
            f"RATELIMIT_ENABLED={env['RATELIMIT_ENABLED']} DB_POOL_SIZE={env['DB_POOL_SIZE']} "
            f"DB_MAX_OVERFLOW=0 " + " ".join(cmd)
        )
        logfile = open(self.tmp / "gunicorn.log", "ab")  # noqa: SIM115 (closed with the process)
        self.server = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=logfile, stderr=logfile, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {self.tmp / 'gunicorn.log'}")
            if http_get(self.base + "/readyz") == 200:
                log(f"gunicorn up on {self.base} (limits {'on' if ratelimits else 'off'})")
                return
            time.sleep(0.5)
        raise SystemExit(f"gunicorn not ready in 60 s; see {self.tmp / 'gunicorn.log'}")

    def stop_server(self) -> None:
        if self.server is None or self.server.poll() is not None:
            return
        self.server.send_signal(signal.SIGTERM)  # gunicorn's graceful stop, this process only
        try:
            self.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)  # the group we started (start_new_session)
            self.server.wait(timeout=10)
        self.server = None

    def worker_pids(self) -> list[int]:
        if self.server is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(self.server.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    # ------------------------------------------------------------------------------------ tools

    def wrk(
        self,
        name: str,
        lua: str,
        path: str,
        *,
        connections: int,
        threads: int,
        duration: int,
        finished_threads: bool = False,
        **env: str,
    ) -> dict[str, Any]:
        """One wrk run of `bench/lua/<lua>` (after common.lua) on `path`, its JSON summary and worker CPU.

        `finished_threads`: the script writes `<BENCH_OUT>.done<tid>` when a thread has nothing left to do;
        once every thread has, wrk is interrupted (SIGINT: it still reports), instead of sleeping out `-d`
        (wrk's `thread:stop()` ends a thread, not the run). `duration` stays the bound.
        """
        script = self.tmp / f"{name}.lua"
        script.write_text((LUA / "common.lua").read_text() + "\n" + (LUA / lua).read_text())
        out = self.tmp / f"{name}.json"
        out.unlink(missing_ok=True)
        threads = min(threads, connections)
        env = {"BENCH_OUT": str(out), "BENCH_THREADS": str(threads), **env}
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            self.base + path,
        ]
        shown = " ".join(f"{k}={v}" for k, v in env.items() if k != "BENCH_KIOSK_TOKEN")
        self.results["commands"][name] = f"{shown} " + " ".join(cmd).replace(
            str(script), f"<common.lua+bench/lua/{lua}>"
        )
        markers = [Path(f"{out}.done{tid}") for tid in range(threads)]
        for marker in markers:
            marker.unlink(missing_ok=True)
        cpu_before = self.worker_cpu_seconds()
        if finished_threads:
            proc = _run_until(cmd, {**os.environ, **env}, lambda: all(m.exists() for m in markers), duration)
        else:
            proc = subprocess.run(
                cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=duration + 120
            )
        cpu_used = self.worker_cpu_seconds() - cpu_before
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk {name} failed: {proc.stderr[-2000:]}{proc.stdout[-2000:]}")
        data = json.loads(out.read_text())
        seconds = data["duration_us"] / 1e6
        data["seconds"] = round(seconds, 2)
        data["rps"] = round(data["requests"] / seconds, 1) if seconds else 0.0
        data["latency_ms"] = {k: round(v / 1000, 2) for k, v in data.pop("latency_us").items()}
        # CPU the app's workers spent per answer (user + system, from /proc): unlike req/s it does not
        # depend on what else the shared cores run (wrk, PostgreSQL, other people).
        data["worker_cpu_ms_per_request"] = (
            round(cpu_used * 1000 / data["requests"], 3) if data["requests"] else None
        )
        self.results.setdefault("worker_cpu_ms_per_request", {})[name] = data["worker_cpu_ms_per_request"]
        self.settle()  # answers still in flight when wrk stopped land before anything is counted
        return data

    def worker_cpu_seconds(self) -> float:
        """User + system CPU of the gunicorn workers (children of the server we started), from /proc."""
        if self.server is None:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        children = Path(f"/proc/{self.server.pid}/task/{self.server.pid}/children")
        for pid in children.read_text().split() if children.exists() else []:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # a worker restarted in between
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / ticks

    def pgbench(self, name: str, sql: str, *, clients: int, duration: int, **defines: Any) -> dict[str, Any]:
        script = self.tmp / f"{name}.sql"
        script.write_text(sql)
        cmd = [
            "pgbench",
            "-h",
            PG["host"],
            "-p",
            PG["port"],
            "-U",
            PG["user"],
            "-n",
            "-M",
            "prepared",
            f"-c{clients}",
            "-j2",
            f"-T{duration}",
            "-f",
            str(script),
            *[f"-D{k}={v}" for k, v in defines.items()],
            DB_NAME,
        ]
        self.results["commands"][name] = " ".join(cmd).replace(str(script), f"<bench/run.py {name} script>")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed: {proc.stderr[-2000:]}")
        result: dict[str, Any] = {}
        for line in proc.stdout.splitlines():
            if line.startswith("tps = "):
                result["tps"] = round(float(line.split()[2]), 1)
            elif line.startswith("latency average"):
                result["latency_avg_ms"] = float(line.split("=")[1].split()[0])
            elif line.startswith("number of failed transactions"):
                result["failed"] = int(line.split(":")[1].split()[0])
            elif line.startswith("number of transactions actually processed"):
                result["transactions"] = int(line.split(":")[1].split("/")[0])
        return result

    def settle(self, limit_s: float = 60) -> None:
        """wrk stops sending at its deadline, not the server: wait until the app's queries have drained."""
        deadline = time.monotonic() + limit_s
        quiet = 0
        while time.monotonic() < deadline and quiet < 2:
            busy = int(
                one(
                    f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{DB_NAME}' "
                    "AND state NOT IN ('idle') AND pid <> pg_backend_pid()"
                )
            )
            quiet = quiet + 1 if busy == 0 else 0
            time.sleep(0.3)

    def availability_path(self) -> str:
        start = self.today + dt.timedelta(days=1)
        return (
            f"/api/v1/centres/{CENTRE}/slots?service={HOT_SERVICE}"
            f"&from={start}&to={start + dt.timedelta(days=29)}"
        )

    # -------------------------------------------------------------------------------- scenarios

    def scenario(self, name: str, func) -> None:
        if self.args.only and name not in self.args.only:
            return
        log(f"scenario {name}")
        t0 = time.monotonic()
        try:
            result = func()
        except NotRun as reason:
            result = {"not_run": str(reason)}
        except Exception as exc:  # one broken scenario must not hide the others
            result = {"not_run": f"{type(exc).__name__}: {exc}".strip()[:1500]}
            traceback.print_exc()
        result["wall_seconds"] = round(time.monotonic() - t0, 1)
        self.results["scenarios"][name] = result
        log("  -> " + json.dumps({k: v for k, v in result.items() if k != "samples"}, default=str)[:600])

    def ref_hello(self) -> dict[str, Any]:
        self.wrk(
            "hello_warmup", "hello.lua", "/healthz", connections=64, threads=2, duration=self.size["warmup"]
        )
        r = self.wrk(
            "hello",
            "hello.lua",
            "/healthz",
            connections=self.size["hello_clients"],
            threads=2,
            duration=self.size["duration"],
        )
        return {"rps": r["rps"], "latency_ms": r["latency_ms"], "stats": r["stats"], "errors": r["errors"]}

    def ref_pgbench(self) -> dict[str, Any]:
        """The app's hold SQL (account lock, slot lock, conditional seat UPDATE, booking INSERT) in pgbench.

        Run on copies of `slots`/`bookings` (same columns, indexes and checks, capacity lifted so seats
        never run out), so the reference never touches the app's own rows.
        """
        psql(
            "DROP TABLE IF EXISTS pgb_bookings, pgb_slots; DROP SEQUENCE IF EXISTS pgb_ref_seq;"
            "CREATE TABLE pgb_slots (LIKE slots INCLUDING ALL);"
            "CREATE TABLE pgb_bookings (LIKE bookings INCLUDING ALL);"
            "CREATE SEQUENCE pgb_ref_seq;"
            'INSERT INTO pgb_slots (id, offering_id, start, "end", local_date, capacity, booked, open) '
            'SELECT row_number() OVER (ORDER BY id), offering_id, start, "end", local_date, '
            "1000000000, 0, true "
            "FROM slots;"
        )
        nslots = int(one("SELECT count(*) FROM pgb_slots"))
        lo, hi = min(self.citizen_ids), max(self.citizen_ids)
        sql = (
            "\\set slot random(1, :nslots)\n"
            "\\set acc random(:acc_lo, :acc_hi)\n"
            "BEGIN;\n"
            "SELECT id FROM accounts WHERE id = :acc FOR UPDATE;\n"
            "SELECT id FROM pgb_slots WHERE id = :slot FOR UPDATE;\n"
            "UPDATE pgb_slots SET booked = booked + 1 WHERE id = :slot AND open AND booked < capacity;\n"
            "INSERT INTO pgb_bookings (reference, account_id, slot_id, offering_id, centre_id, service_code, "
            "service_group, kind, status, holds_seat, hold_expires_at, created_at) "
            "SELECT 'PG-' || nextval('pgb_ref_seq'), 1000000000 + currval('pgb_ref_seq'), "
            ":slot, offering_id, "
            "'amman-muqabalain', 'passport.renew', 'passport', 'regular', 'held', true, "
            "now() + interval '5 minutes', now() FROM pgb_slots WHERE id = :slot;\n"
            "COMMIT;\n"
        )
        d, c = self.size["duration"], self.size["pg_clients"]
        spread = self.pgbench(
            "pgbench_spread", sql, clients=c, duration=d, nslots=nslots, acc_lo=lo, acc_hi=hi
        )
        hot = self.pgbench(
            "pgbench_hot", sql, clients=c, duration=d, nslots=self.size["hot_slots"], acc_lo=lo, acc_hi=hi
        )
        psql("DROP TABLE IF EXISTS pgb_bookings, pgb_slots; DROP SEQUENCE IF EXISTS pgb_ref_seq;")
        return {"clients": c, "slots_spread": nslots, "spread": spread, "hot_20": hot}

    def _surge(
        self,
        name: str,
        slots_file: str,
        *,
        confirm: bool,
        clients: int | None = None,
        families: bool = False,
    ) -> dict[str, Any]:
        self.in_app(self._reset)
        r = self.wrk(
            name,
            "holds.lua",
            "/api/v1/bookings",
            connections=clients or self.size["surge_clients"],
            threads=2,
            duration=self.size["duration"],
            BENCH_TOKENS=str(self.tmp / "citizens.txt"),
            BENCH_SLOTS=str(self.tmp / slots_file),
            BENCH_CONFIRM="1" if confirm else "0",
            BENCH_APPLICANTS=str(self.tmp / "families.txt") if families else "",
        )
        stats = r["stats"]
        hold_answers = sum(v for k, v in stats.items() if k.startswith("hold_") and k != "hold_sent")
        confirm_answers = sum(v for k, v in stats.items() if k.startswith("confirm_") and k != "confirm_sent")
        slot_full = sum(v for k, v in stats.items() if k.startswith("hold_409_slot_full"))
        out = {
            "clients": clients or self.size["surge_clients"],
            "seconds": r["seconds"],
            "requests_per_s": r["rps"],
            "hold_answers_per_s": round(hold_answers / r["seconds"], 1),
            "holds_201": stats.get("hold_201", 0),
            "holds_per_s": round(stats.get("hold_201", 0) / r["seconds"], 1),
            "confirms_200": stats.get("confirm_200", 0),
            "confirms_per_s": round(stats.get("confirm_200", 0) / r["seconds"], 1),
            "confirm_answers": confirm_answers,
            "slot_full_share": round(slot_full / hold_answers, 4) if hold_answers else None,
            "latency_ms": r["latency_ms"],
            "stats": stats,
            "errors": r["errors"],
        }
        out["db"] = self._check_bookings(r["samples"])
        return out

    @staticmethod
    def _reset() -> None:
        from bench import prepare

        prepare.reset_bookings()

    def _check_bookings(self, samples: list[str]) -> dict[str, Any]:
        """Oversold seats, lost and duplicated bookings, counted from the database after the run."""
        time.sleep(0.5)
        held = [s.split(":", 1)[1] for s in samples if s.startswith("held:")]
        confirmed = [s.split(":", 1)[1] for s in samples if s.startswith("confirmed:")]
        rows = psql("SELECT reference, status, account_id, slot_id FROM bookings").splitlines()
        db_status = {}
        for row in rows:
            ref, status, _account, _slot = row.split("|")
            db_status[ref] = status
        check = {
            "bookings_in_db": len(db_status),
            "oversold_seats": int(
                one(
                    "SELECT coalesce(sum(greatest(n - s.capacity, 0)), 0) FROM slots s JOIN (SELECT slot_id, "
                    "sum(seats) n FROM bookings WHERE holds_seat GROUP BY slot_id) b ON b.slot_id = s.id"
                )
            ),
            "slots_over_capacity": int(one("SELECT count(*) FROM slots WHERE booked > capacity")),
            "seat_counter_drift": int(
                one(
                    "SELECT count(*) FROM slots s LEFT JOIN (SELECT slot_id, sum(seats) n FROM bookings "
                    "WHERE holds_seat GROUP BY slot_id) b ON b.slot_id = s.id "
                    "WHERE s.booked <> coalesce(b.n, 0)"
                )
            ),
            "duplicate_active_per_citizen": int(
                one(
                    "SELECT count(*) FROM (SELECT a.national_id FROM booking_applicants a "
                    "JOIN bookings b ON b.id = a.booking_id WHERE b.status IN ('held', 'confirmed') "
                    "AND b.kind = 'regular' GROUP BY a.national_id, b.service_group HAVING count(*) > 1) x"
                )
            ),
            "duplicate_references_answered": len(held) - len(set(held)),
            "lost_holds": sum(1 for ref in set(held) if ref not in db_status),
            "lost_confirms": sum(1 for ref in set(confirmed) if db_status.get(ref) != "confirmed"),
            # Written but never answered (a client timeout): not lost, reported so nothing hides.
            "unanswered_bookings": sum(1 for ref in db_status if ref not in set(held)),
            "abuse_events_written": int(one("SELECT count(*) FROM abuse_events")),
        }
        times = one(
            "SELECT extract(epoch FROM max(created_at) - min(created_at)) || '|' || "
            "coalesce(extract(epoch FROM max(confirmed_at) - min(confirmed_at))::text, '') FROM bookings"
        )
        if times and times.split("|")[0]:
            hold_span, confirm_span = (float(x) if x else 0.0 for x in times.split("|"))
            check["first_to_last_hold_s"] = round(hold_span, 2)
            check["first_to_last_confirm_s"] = round(confirm_span, 2)
        return check

    def booking_warmup(self) -> dict[str, Any]:
        """Every worker has served holds and confirms once (imports, pools, caches) before measuring."""
        self.in_app(self._reset)
        r = self.wrk(
            "booking_warmup",
            "holds.lua",
            "/api/v1/bookings",
            connections=32,
            threads=2,
            duration=self.size["warmup"] + 2,
            BENCH_TOKENS=str(self.tmp / "citizens.txt"),
            BENCH_SLOTS=str(self.tmp / "month_slots.txt"),
            BENCH_CONFIRM="1",
        )
        return {"stats": r["stats"]}

    def surge_hot(self) -> dict[str, Any]:
        return self._surge("surge_hot", "hot_slots.txt", confirm=True)

    def surge_month(self) -> dict[str, Any]:
        return self._surge("surge_month", "month_slots.txt", confirm=True)

    def family_hold(self) -> dict[str, Any]:
        """surge_month with every hold a family's (the citizen and two children: three seats, three
        eligibility checks, three applicant rows), to set beside the single holds."""
        out = self._surge("family_hold", "month_slots.txt", confirm=True, families=True)
        out["applicants_per_hold"] = FAMILY_SIZE
        return out

    def sold_out(self) -> dict[str, Any]:
        """Holds on the 20 hot slots once every seat is gone: what does a refusal cost?"""
        self.in_app(self._reset)
        psql(f"UPDATE slots SET booked = capacity WHERE id IN ({','.join(map(str, self.hot_slots))})")
        # The seats are "gone" without bookings behind them: only refusals can follow.
        time.sleep(1.2)
        before = self._db_writes()
        spy = self._spy("sold-out", self.size["duration"] - 1)
        # As many connections as the hello reference, so the ratio compares like with like; the hot
        # surge (256 clients, ~97 % refusals) shows the same path at the surge's concurrency.
        r = self.wrk(
            "sold_out",
            "holds.lua",
            "/api/v1/bookings",
            connections=self.size["hello_clients"],
            threads=2,
            duration=self.size["duration"],
            BENCH_TOKENS=str(self.tmp / "citizens.txt"),
            BENCH_SLOTS=str(self.tmp / "hot_slots.txt"),
            BENCH_CONFIRM="0",
        )
        time.sleep(1.2)  # PostgreSQL flushes table statistics about once a second
        after = self._db_writes()
        answers = sum(v for k, v in r["stats"].items() if k.startswith("hold_") and k != "hold_sent")
        delta = {k: after[k] - before[k] for k in before}
        psql(f"UPDATE slots SET booked = 0 WHERE id IN ({','.join(map(str, self.hot_slots))})")
        profile = {"profile": self._spy_done(*spy)} if spy else {}
        return {
            **profile,
            "clients": self.size["hello_clients"],
            "answers_per_s": round(answers / r["seconds"], 1),
            "latency_ms": r["latency_ms"],
            "stats": r["stats"],
            "errors": r["errors"],
            "db_delta": delta,
            "row_writes_per_refusal": round(
                (delta["tup_ins"] + delta["tup_upd"] + delta["tup_del"]) / answers, 4
            )
            if answers
            else None,
            "wal_bytes_per_refusal_clusterwide": round(delta["wal_bytes"] / answers, 1) if answers else None,
        }

    @staticmethod
    def _db_writes() -> dict[str, int]:
        row = one(
            "SELECT (SELECT coalesce(sum(n_tup_ins), 0) || '|' || coalesce(sum(n_tup_upd), 0) || '|' || "
            "coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables) || '|' || "
            "(SELECT xact_commit || '|' || xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database())"
            " || '|' || pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
        )
        ins, upd, dele, commits, rollbacks, wal = (int(float(x)) for x in row.split("|"))
        return {
            "tup_ins": ins,
            "tup_upd": upd,
            "tup_del": dele,
            "commits": commits,
            "rollbacks": rollbacks,
            "wal_bytes": wal,
        }

    def availability(self) -> dict[str, Any]:
        path = self.availability_path()
        with urllib.request.urlopen(self.base + path, timeout=10) as response:  # loopback
            body = json.loads(response.read())
        if not isinstance(body, list):
            raise NotRun(f"unexpected availability answer: {str(body)[:200]}")
        common = dict(BENCH_TOKENS=str(self.tmp / "citizens.txt"), BENCH_PATH=path)
        self.wrk(
            "availability_warmup",
            "slots.lua",
            path,
            connections=self.size["avail_clients"],
            threads=2,
            duration=self.size["warmup"],
            **common,
        )
        r = self.wrk(
            "availability",
            "slots.lua",
            path,
            connections=self.size["avail_clients"],
            threads=2,
            duration=self.size["duration"],
            **common,
        )
        return {
            "clients": self.size["avail_clients"],
            "slots_listed": len(body),
            "path": path,
            "rps": r["rps"],
            "latency_ms": r["latency_ms"],
            "stats": r["stats"],
            "errors": r["errors"],
        }

    # Availability with the micro-cache off, at two sizes of the searched month's history.
    CANCELLED_ON_MONTH = 10_000
    _CANCELLED_PREFIX = "BX"  # references of the seeded cancelled bookings (the app's have no such prefix)

    def availability_uncached(self) -> dict[str, Any]:
        """Availability with `AVAILABILITY_CACHE_SECONDS=0` (gunicorn restarted so): every answer from
        PostgreSQL. At 0 and at 10,000 cancelled bookings (seats released long ago) on the searched month,
        alternating 0, 10k, 0, 10k so that a change in the shared machine's load falls on both sizes."""
        path = self.availability_path()
        self.in_app(self._reset)
        self.stop_server()
        os.environ["AVAILABILITY_CACHE_SECONDS"] = "0"  # _app_env copies the environment
        try:
            self.start_server()
            self.results["commands"]["gunicorn_cache_off"] = (
                "AVAILABILITY_CACHE_SECONDS=0 " + self.results["commands"]["gunicorn"]
            )
            common = dict(BENCH_TOKENS=str(self.tmp / "citizens.txt"), BENCH_PATH=path)
            clients, seconds = self.size["avail_clients"], max(2, self.size["duration"] // 2)
            self.wrk(
                "availability_uncached_warmup",
                "slots.lua",
                path,
                connections=clients,
                threads=2,
                duration=self.size["warmup"],
                **common,
            )
            runs: dict[int, list[dict[str, Any]]] = {0: [], self.CANCELLED_ON_MONTH: []}
            for round_ in range(2):
                for cancelled in runs:
                    self._seed_cancelled(cancelled)
                    name = f"availability_uncached_{cancelled}_{round_}"
                    spy = (
                        self._spy(f"availability-uncached-{cancelled}", seconds - 1) if round_ == 0 else None
                    )
                    db_before = self._db_backend_cpu()
                    r = self.wrk(
                        name, "slots.lua", path, connections=clients, threads=2, duration=seconds, **common
                    )
                    db_used = self._db_backend_cpu(since=db_before)
                    if set(r["stats"]) != {"status_200"}:
                        raise RuntimeError(f"{path} answered {r['stats']}")
                    r["db_cpu_ms_per_request"] = (
                        round(db_used * 1000 / r["requests"], 3) if r["requests"] else None
                    )
                    if spy is not None:
                        r["profile"] = self._spy_done(*spy)
                    runs[cancelled].append(r)
            with urllib.request.urlopen(self.base + path, timeout=10) as response:  # loopback
                listed = len(json.loads(response.read()))
        finally:
            self._seed_cancelled(0)
            os.environ.pop("AVAILABILITY_CACHE_SECONDS", None)
            self.stop_server()
            self.start_server()
        out: dict[str, Any] = {"clients": clients, "path": path, "slots_listed": listed}
        for cancelled, measured in runs.items():
            requests = sum(r["requests"] for r in measured)
            cpu = sum(r["worker_cpu_ms_per_request"] * r["requests"] for r in measured)
            db_cpu = sum((r["db_cpu_ms_per_request"] or 0) * r["requests"] for r in measured)
            out[f"cancelled_{cancelled}"] = {
                "rps": round(sum(r["rps"] for r in measured) / len(measured), 1),
                "worker_cpu_ms_per_request": round(cpu / requests, 3) if requests else None,
                "db_cpu_ms_per_request": round(db_cpu / requests, 3) if requests else None,
                "each_round_cpu_ms": [r["worker_cpu_ms_per_request"] for r in measured],
                "each_round_db_cpu_ms": [r["db_cpu_ms_per_request"] for r in measured],
                "latency_ms": {
                    k: round(sum(r["latency_ms"][k] for r in measured) / len(measured), 2)
                    for k in ("p50", "p99")
                },
                "each_round_latency_ms": [r["latency_ms"] for r in measured],
                "profile": measured[0].get("profile"),
            }
        return out

    def _seed_cancelled(self, count: int) -> None:
        """`count` cancelled bookings spread over the searched month's slots, as the app leaves them once
        their seats are released (`holds_seat` false, each with its applicant row, inactive): nothing else."""
        start = self.today + dt.timedelta(days=1)
        psql(
            "DELETE FROM bookings WHERE reference LIKE '" + self._CANCELLED_PREFIX + "%';"
            if count == 0
            else f"""
            DELETE FROM bookings WHERE reference LIKE '{self._CANCELLED_PREFIX}%';
            WITH month AS (
                SELECT s.id, s.offering_id, o.centre_id, o.service_code, sv.service_group,
                       row_number() OVER (ORDER BY s.start) - 1 AS k, count(*) OVER () AS n
                FROM slots s JOIN offerings o ON o.id = s.offering_id
                JOIN services sv ON sv.code = o.service_code
                WHERE o.centre_id = '{CENTRE}' AND o.service_code = '{HOT_SERVICE}'
                  AND s.local_date BETWEEN '{start}' AND '{start + dt.timedelta(days=29)}'
            ), citizens AS (
                SELECT id, row_number() OVER (ORDER BY id) - 1 AS k, count(*) OVER () AS n
                FROM accounts WHERE role = 'citizen'
            )
            INSERT INTO bookings (reference, account_id, slot_id, offering_id, centre_id, service_code,
                service_group, kind, seats, status, holds_seat, hold_expires_at, seat_release_at, created_at,
                confirmed_at, cancelled_at)
            SELECT '{self._CANCELLED_PREFIX}' || lpad(i::text, 8, '0'), c.id, m.id, m.offering_id,
                m.centre_id, m.service_code, m.service_group, 'regular', 1, 'cancelled', false,
                now() - interval '47 hours 55 minutes', now() - interval '23 hours 30 minutes',
                now() - interval '48 hours', now() - interval '47 hours 59 minutes',
                now() - interval '24 hours'
            FROM generate_series(0, {count - 1}) AS i
            JOIN month m ON m.k = i % m.n JOIN citizens c ON c.k = i % c.n;
            INSERT INTO booking_applicants (booking_id, position, national_id, full_name_ar, full_name_en,
                date_of_birth, service_group, active)
            SELECT b.id, 1, a.national_id, a.full_name, a.full_name, a.date_of_birth, b.service_group, false
            FROM bookings b JOIN accounts a ON a.id = b.account_id
            WHERE b.reference LIKE '{self._CANCELLED_PREFIX}%';
            """
        )
        psql("VACUUM ANALYZE bookings")
        psql("VACUUM ANALYZE booking_applicants")
        seeded = int(one(f"SELECT count(*) FROM bookings WHERE reference LIKE '{self._CANCELLED_PREFIX}%'"))
        if seeded != count:
            raise RuntimeError(f"seeded {seeded} cancelled bookings, not {count}")

    @staticmethod
    def _db_backend_cpu(since: dict[int, int] | None = None) -> Any:
        """CPU ticks of this database's PostgreSQL backends (the app's pools), from /proc; with `since`,
        the seconds used since then (a backend started in between counts whole)."""
        pids = one(
            "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity "
            f"WHERE datname = '{DB_NAME}' AND pid <> pg_backend_pid()"
        )
        ticks = {}
        for pid in (pids or "").split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks[int(pid)] = int(fields[11]) + int(fields[12])
        if since is None:
            return ticks
        return sum(t - since.get(pid, 0) for pid, t in ticks.items()) / os.sysconf("SC_CLK_TCK")

    def _spy(self, name: str, seconds: int) -> tuple[subprocess.Popen, Path] | None:
        """With --profile: py-spy on one worker for `seconds` (raw stacks in bench/results/)."""
        spy = shutil.which("py-spy") or (str(VENV_BIN / "py-spy") if (VENV_BIN / "py-spy").exists() else None)
        pids = self.worker_pids()
        if not self.args.profile or spy is None or not pids:
            return None
        raw = RESULTS / f"profile-{name}-{self.stamp}.txt"
        cmd = [spy, "record", "--nonblocking", "-r", "200", "-d", str(max(1, seconds)), "-f", "raw"]
        cmd += ["-o", str(raw), "-p", str(pids[0])]
        self.results["commands"][f"profile_{name}"] = " ".join(cmd)
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), raw

    def _spy_done(self, proc: subprocess.Popen, raw: Path) -> dict[str, Any]:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        out = summarise_profile(raw) if raw.exists() else {"not_run": "py-spy wrote nothing"}
        out["raw"] = str(raw.relative_to(ROOT))
        return out

    def _open_counters(self) -> None:
        import httpx

        with httpx.Client(base_url=self.base, timeout=10) as client:
            for counter_id, token in self.counters:
                r = client.post(
                    f"/api/v1/staff/counters/{counter_id}/open",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"services": self.services},
                )
                if r.status_code != 200:
                    raise NotRun(
                        f"POST /staff/counters/{counter_id}/open answered {r.status_code}: {r.text[:300]}"
                    )

    def kiosk_tickets(self, waiting: int = 0) -> dict[str, Any]:
        """Kiosk walk-in tickets at a centre open around the clock (tickets are refused outside opening
        hours), with `waiting` tickets seeded in its queue first: each answer gives the ticket's place and
        wait, so the two depths show whether that cost grows with the queue. The centre's walk-ins are taken
        out afterwards, so the next scenario finds its queue as before."""
        name = "kiosk_tickets" if not waiting else f"kiosk_tickets_{waiting}"
        self.in_app(_clear_walk_ins, KIOSK_CENTRE)
        if waiting:
            self.in_app(_seed_at, waiting, KIOSK_CENTRE)
        before = int(
            one(f"SELECT count(*) FROM tickets WHERE centre_id = '{KIOSK_CENTRE}' AND status = 'waiting'")
        )
        duration = max(2, self.size["duration"] // 2)
        spy = self._spy(name.replace("_", "-"), duration - 1)
        try:
            r = self.wrk(
                name,
                "tickets.lua",
                f"/api/v1/centres/{KIOSK_CENTRE}/tickets",
                connections=self.size["kiosk_clients"],
                threads=2,
                duration=duration,
                BENCH_SERVICES=str(self.tmp / "kiosk_services.txt"),
                BENCH_KIOSK_TOKEN=self.kiosk,
                BENCH_CENTRE=KIOSK_CENTRE,
            )
            if not r["stats"].get("ticket_201"):
                raise NotRun(f"no ticket issued: {r['stats']}")
            numbers = one(
                "SELECT count(*) || '|' || count(DISTINCT (service_code, local_date, seq)) FROM tickets "
                f"WHERE centre_id = '{KIOSK_CENTRE}' AND source = 'walk_in'"
            )
            after = int(
                one(f"SELECT count(*) FROM tickets WHERE centre_id = '{KIOSK_CENTRE}' AND status = 'waiting'")
            )
        finally:
            self.in_app(_clear_walk_ins, KIOSK_CENTRE)
        total, distinct = (int(x) for x in numbers.split("|"))
        profile = self._spy_done(*spy) if spy is not None else None
        return {
            "centre": KIOSK_CENTRE,
            "clients": self.size["kiosk_clients"],
            "waiting_before": before,
            "waiting_after": after,
            "tickets_per_s": round(r["stats"]["ticket_201"] / r["seconds"], 1),
            "latency_ms": r["latency_ms"],
            "worker_cpu_ms_per_request": r["worker_cpu_ms_per_request"],
            "stats": r["stats"],
            "duplicate_numbers": total - distinct,
            "profile": profile,
        }

    def counters_scenario(self) -> dict[str, Any]:
        self._open_counters()
        seeded = self.in_app(self._seed, self.size["queue_depth"])
        waiting_before = int(
            one(f"SELECT count(*) FROM tickets WHERE centre_id = '{CENTRE}' AND status = 'waiting'")
        )
        mark = one("SELECT clock_timestamp()")
        n = len(self.counters)
        spy = self._spy("counters", self.size["duration"] - 1)
        r = self.wrk(
            "counters",
            "counters.lua",
            "/",
            connections=n,
            threads=n,
            duration=self.size["duration"],
            BENCH_COUNTERS=str(self.tmp / "counters.txt"),
        )
        answered = [s.split(":")[1] for s in r["samples"]]
        counted = Counter(answered)
        rows = psql(
            f"SELECT id, counter_id, called_at FROM tickets WHERE centre_id = '{CENTRE}' "
            f"AND called_at >= '{mark}' "
            "AND status IN ('called', 'serving', 'done', 'no_show') ORDER BY called_at"
        ).splitlines()
        called_in_db = {row.split("|")[0] for row in rows}
        last_of_counter = {row.split("|")[1]: row.split("|")[0] for row in rows}  # ordered by called_at
        unanswered = called_in_db - set(counted)
        # A call-next still in flight when wrk stopped is called in the database and never read here: at
        # most one per counter, its latest. Anything else called but never answered is lost.
        in_flight = {t for t in unanswered if t in set(last_of_counter.values())}
        calls = r["stats"].get("call_200", 0)
        return {
            "counters": n,
            "queue_seeded": seeded,
            "waiting_before": waiting_before,
            "calls": calls,
            "calls_per_s": round(calls / r["seconds"], 1),
            "requests_per_s": r["rps"],
            "latency_ms": r["latency_ms"],
            "stats": r["stats"],
            "errors": r["errors"],
            "duplicates": sum(c - 1 for c in counted.values() if c > 1),
            "lost": len(unanswered - in_flight),
            "in_flight_at_stop": len(in_flight),
            "answered_not_in_db": len(set(counted) - called_in_db),
            "queue_ran_dry": r["stats"].get("call_204", 0) > 0,
            "profile": self._spy_done(*spy) if spy is not None else None,
        }

    def visit_counters(self) -> dict[str, Any]:
        """Call-next at the airport with 30 % of tickets for two or three services in one visit: each
        completion of a service before the last puts the ticket back in the next service's queue, so a ticket
        is called once per service. Duplicates are a (ticket, service) called twice."""
        import httpx

        from bench import prepare

        floor = self.in_app(
            prepare.create_counters_and_clerks, self.size["counters"], centre=VISIT_CENTRE, nid_prefix="95"
        )
        codes = self.in_app(prepare.centre_services, VISIT_CENTRE)
        with httpx.Client(base_url=self.base, timeout=10) as client:
            for counter_id, token in floor:
                r = client.post(
                    f"/api/v1/staff/counters/{counter_id}/open",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"services": codes},
                )
                if r.status_code != 200:
                    raise NotRun(
                        f"POST /staff/counters/{counter_id}/open answered {r.status_code}: {r.text[:300]}"
                    )
        seeded = self.in_app(prepare.seed_visits, self.size["visit_depth"], multi_share=0.3)
        multi = int(
            one(f"SELECT count(*) FROM tickets WHERE centre_id = '{VISIT_CENTRE}' AND services_left > 0")
        )
        mark = one("SELECT clock_timestamp()")
        prepare.write_lines(self.tmp / "visit_counters.txt", [f"{cid} {token}" for cid, token in floor])
        r = self.wrk(
            "visit_counters",
            "counters.lua",
            "/",
            connections=len(floor),
            threads=len(floor),
            duration=self.size["duration"],
            BENCH_COUNTERS=str(self.tmp / "visit_counters.txt"),
        )
        # Samples are "counter:ticket:service".
        answered = Counter(tuple(sample.split(":")[1:3]) for sample in r["samples"])
        since = f"centre_id = '{VISIT_CENTRE}' AND ended_at >= '{mark}'"
        requeued = int(one(f"SELECT count(*) FROM ticket_services WHERE {since}"))
        served = requeued + int(one(f"SELECT count(*) FROM tickets WHERE {since} AND status = 'done'"))
        calls = r["stats"].get("call_200", 0)
        return {
            "centre": VISIT_CENTRE,
            "counters": len(floor),
            "tickets_seeded": seeded,
            "multi_service_tickets": multi,
            "calls": calls,
            "calls_per_s": round(calls / r["seconds"], 1),
            "latency_ms": r["latency_ms"],
            "stats": r["stats"],
            "errors": r["errors"],
            "duplicates": sum(c - 1 for c in answered.values() if c > 1),
            "services_served": served,
            "requeued": requeued,
            "queue_ran_dry": r["stats"].get("call_204", 0) > 0,
        }

    @staticmethod
    def _seed(depth: int) -> int:
        from bench import prepare

        return prepare.seed_queue(depth)

    def display(self) -> dict[str, Any]:
        from bench.display import run_display

        waiting = int(
            one(f"SELECT count(*) FROM tickets WHERE centre_id = '{CENTRE}' AND status = 'waiting'")
        )
        if waiting < self.size["display_calls"] + 5:
            self.in_app(self._seed, self.size["display_calls"] * 10)
        if "counters" not in self.results["scenarios"] or "not_run" in self.results["scenarios"]["counters"]:
            self._open_counters()
        counter_id, token = self.counters[-1]
        self.results["commands"]["display"] = (
            f"python -c 'bench.display.run_display(...)' screens={self.size['screens']} "
            f"calls={self.size['display_calls']} pause={self.size['display_pause']}s (asyncio + httpx)"
        )
        result = run_display(
            base_url=self.base,
            centre_id=CENTRE,
            screens=self.size["screens"],
            calls=self.size["display_calls"],
            counter_id=counter_id,
            clerk_token=token,
            deadline_s=self.size["display_deadline"],
            pause_s=self.size["display_pause"],
            display_token=self.display_token,
        )
        if result["screens_connected"] == 0:
            raise NotRun(f"no screen connected to the stream: {result}")
        return result

    def surge_limits_on(self) -> dict[str, Any]:
        """The hot surge again with Flask-Limiter on (Redis): the limiter's cost, and what a 429 writes."""
        self.stop_server()
        subprocess.run(["redis-cli", "-n", str(REDIS_DB), "FLUSHDB"], check=True, capture_output=True)
        self.start_server(ratelimits=True)
        try:
            out = self._surge("surge_hot_limits_on", "hot_slots.txt", confirm=True)
        finally:
            self.stop_server()
            self.start_server()  # the scenarios after this one measure with limits off, as before it
        answers = sum(v for k, v in out["stats"].items() if k.startswith("hold_") and k != "hold_sent")
        limited = sum(v for k, v in out["stats"].items() if k.startswith(("hold_429", "confirm_429")))
        out["rate_limited_share"] = round(limited / answers, 4) if answers else None
        return out

    def revocation(self) -> dict[str, Any]:
        """What the session-revocation check (one Redis MGET per request) costs: `GET /api/v1/me` with
        tokens that carry a session id (`sid`, checked) against the same tokens without one (not checked).

        Same citizens, same claims otherwise; the two kinds alternate, twice each, so that a change in the
        shared machine's load falls on both. The figure is worker CPU per request (and its ratio).
        """
        import uuid

        from app.tokens import issue_access_token

        ids = self.citizen_ids[:500]

        def mint(with_sid: bool) -> list[str]:
            return [
                issue_access_token(
                    account_id=account_id,
                    role="citizen",
                    centre_id=None,
                    language="ar",
                    session_id=uuid.uuid4().hex if with_sid else None,
                )[0]
                for account_id in ids
            ]

        kinds = {"no_sid": self.in_app(mint, False), "sid": self.in_app(mint, True)}
        for kind, tokens in kinds.items():
            path = self.tmp / f"me_{kind}.txt"
            path.write_text("\n".join(tokens) + "\n")
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        clients = self.size["hello_clients"]
        for round_ in range(3):  # round 0 warms both up (the first sid request copies the revoked set)
            for kind in kinds:
                # slots.lua: a GET of BENCH_PATH with a random token of BENCH_TOKENS, statuses counted.
                r = self.wrk(
                    f"me_{kind}_{round_}",
                    "slots.lua",
                    "/api/v1/me",
                    connections=clients,
                    threads=2,
                    duration=self.size["warmup"] if round_ == 0 else self.size["duration"],
                    BENCH_TOKENS=str(self.tmp / f"me_{kind}.txt"),
                    BENCH_PATH="/api/v1/me",
                )
                if set(r["stats"]) != {"status_200"}:
                    raise RuntimeError(f"GET /api/v1/me answered {r['stats']} with {kind} tokens")
                if round_:
                    runs[kind].append(r)
        out: dict[str, Any] = {}
        for kind, measured in runs.items():
            requests = sum(r["requests"] for r in measured)
            cpu = sum(r["worker_cpu_ms_per_request"] * r["requests"] for r in measured)
            out[kind] = {
                "rps": round(sum(r["rps"] for r in measured) / len(measured), 1),
                "worker_cpu_ms_per_request": round(cpu / requests, 3) if requests else None,
                "each_round_cpu_ms": [r["worker_cpu_ms_per_request"] for r in measured],
                "latency_ms": measured[-1]["latency_ms"],
            }
        with_sid, without = (
            out["sid"]["worker_cpu_ms_per_request"],
            out["no_sid"]["worker_cpu_ms_per_request"],
        )
        out["cpu_ratio"] = round(with_sid / without, 3) if with_sid and without else None
        # The check alone, in this process on the same Redis: smaller than the noise between wrk rounds on
        # a shared machine, so timed directly too, beside the token checks every request pays anyway.
        out["in_process_us"] = self.in_app(_time_session_check, kinds["sid"][0])
        return out

    def profile(self) -> dict[str, Any]:
        """py-spy on one worker during a month surge, then during availability: where the time goes."""
        spy = shutil.which("py-spy") or (str(VENV_BIN / "py-spy") if (VENV_BIN / "py-spy").exists() else None)
        if spy is None:
            raise NotRun("py-spy not installed (pip install --require-hashes -r requirements/bench.txt)")
        pids = self.worker_pids()
        if not pids:
            raise NotRun("no gunicorn worker found")
        out: dict[str, Any] = {"worker_pid": pids[0]}
        seconds = self.size["profile_seconds"]
        for name, lua, path, env in (
            (
                "holds",
                "holds.lua",
                "/api/v1/bookings",
                {"BENCH_SLOTS": str(self.tmp / "month_slots.txt"), "BENCH_CONFIRM": "1"},
            ),
            ("availability", "slots.lua", self.availability_path(), {"BENCH_PATH": self.availability_path()}),
        ):
            self.in_app(self._reset)
            raw = RESULTS / f"profile-{name}-{self.stamp}.txt"
            cmd = [
                spy,
                "record",
                "--nonblocking",
                "-r",
                "200",
                "-d",
                str(seconds),
                "-f",
                "raw",
                "-o",
                str(raw),
                "-p",
                str(pids[0]),
            ]
            self.results["commands"][f"profile_{name}"] = " ".join(cmd)
            spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.wrk(
                f"profile_{name}_load",
                lua,
                path,
                connections=self.size["surge_clients"],
                threads=2,
                duration=seconds + 1,
                BENCH_TOKENS=str(self.tmp / "citizens.txt"),
                **env,
            )
            try:
                spy_proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy_proc.kill()
            self.settle()
            out[name] = summarise_profile(raw) if raw.exists() else {"not_run": "py-spy wrote nothing"}
            out[name]["raw"] = str(raw.relative_to(ROOT))
        return out

    # ------------------------------------------------------------------------------------- main

    def run(self) -> int:
        self.stamp = time.strftime("%Y%m%dT%H%M%S")
        RESULTS.mkdir(exist_ok=True)
        try:
            self.prepare()
            self.scenario("pgbench", self.ref_pgbench)  # before gunicorn: its pools hold connections
            self.start_server()
            self.scenario("hello", self.ref_hello)
            self.scenario("revocation", self.revocation)
            self.scenario("availability", self.availability)
            self.scenario("availability_uncached", self.availability_uncached)
            self.scenario("booking_warmup", self.booking_warmup)
            self.scenario("surge_hot", self.surge_hot)
            self.scenario("sold_out", self.sold_out)
            self.scenario("surge_month", self.surge_month)
            self.scenario("family_hold", self.family_hold)
            if self.args.profile:
                self.scenario("profile", self.profile)
            self.scenario("kiosk_tickets", self.kiosk_tickets)
            self.scenario(f"kiosk_tickets_{KIOSK_DEEP_QUEUE}", lambda: self.kiosk_tickets(KIOSK_DEEP_QUEUE))
            self.scenario("counters", self.counters_scenario)
            self.scenario("visit_counters", self.visit_counters)
            self.scenario("display", self.display)
            if not self.args.no_limits:
                self.scenario("surge_limits_on", self.surge_limits_on)
            # Release day (SPEC §9), last: they change an offering to draws and fill slots.
            from bench import release

            self.scenario("draw_entries", lambda: release.draw_entries(self))
            self.scenario("draw_run", lambda: release.draw_run(self))
            self.scenario("waitlist_handover", lambda: release.waitlist_handover(self))
        finally:
            self.stop_server()
        self.results["machine"]["loadavg_after"] = os.getloadavg()
        self.results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.results["summary"] = summarise(self.results)
        text = json.dumps(self.results, indent=2, default=str)
        table = render_table(self.results)
        print(table)
        if self.args.only:  # a partial run is a measurement while working, not a result to publish
            self.args.keep = True
            (self.tmp / "results.json").write_text(text)
            log(f"partial run: results in {self.tmp / 'results.json'}; BENCHMARKS.md left as it was")
            return 0
        (RESULTS / f"{self.stamp}.json").write_text(text)
        (RESULTS / "latest.json").write_text(text)
        update_benchmarks_md(table)
        log(f"results: bench/results/{self.stamp}.json (and latest.json); table written to BENCHMARKS.md")
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return 0


def _time_session_check(token: str, calls: int = 3000) -> dict[str, float]:
    """CPU and wall µs per call: the revocation check (one MGET), and the access token's checks (verified
    once then remembered per worker, so a repeat costs the look-up; the first use costs the HMAC)."""
    from app.accounts import revocation
    from app.security import _verify_access_token, decode_access_token

    session_id = decode_access_token(token)["sid"]
    revocation.is_revoked(session_id)  # the first call may copy the revoked set from the database
    timed: dict[str, float] = {}
    for name, check in (
        ("mget", lambda: revocation.is_revoked(session_id)),
        ("token_remembered", lambda: decode_access_token(token)),
        ("token_first_use", lambda: _verify_access_token(token)),
    ):
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(calls):
            check()
        timed[f"{name}_cpu"] = round((time.process_time() - cpu) * 1e6 / calls, 1)
        timed[f"{name}_wall"] = round((time.perf_counter() - wall) * 1e6 / calls, 1)
    return timed


# ------------------------------------------------------------------------------------------ report

PROJECT_DIRS = ("app/", "booking/", "queue/", "ticketing/", "notifications/")


def _clear_walk_ins(centre_id: str) -> None:
    """The centre's walk-in tickets taken out (a kiosk scenario's own, and any queue it seeded)."""
    from sqlalchemy import text

    from app.extensions import db

    db.session.execute(
        text("DELETE FROM tickets WHERE centre_id = :c AND source = 'walk_in'"), {"c": centre_id}
    )
    db.session.commit()


def _seed_at(depth: int, centre_id: str) -> int:
    from bench import prepare

    return prepare.seed_queue(depth, centre_id)


def _run_until(
    cmd: list[str], env: dict[str, str], finished: Any, duration: int
) -> subprocess.CompletedProcess:
    """Run wrk and interrupt it (SIGINT: it reports as at its end) once `finished()`; `duration` bounds it."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + duration + 5
    while proc.poll() is None and time.monotonic() < deadline:
        if finished():
            time.sleep(0.2)  # the last answers' summaries reach the thread's counters
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.2)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def summarise_profile(raw: Path) -> dict[str, Any]:
    """py-spy raw stacks → share of samples per library at the leaf, and the project's own hot frames."""
    by_library: Counter = Counter()
    project: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        leaf = frames[-1] if frames else ""
        path = leaf.rsplit(" (", 1)[-1]
        by_library[path.split("/")[0].split(".")[0].rstrip(")") or "?"] += n
        seen = set()
        for frame in frames:
            where = frame.rsplit(" (", 1)[-1]
            if where.startswith(PROJECT_DIRS) and frame not in seen:
                seen.add(frame)
                project[frame] += n
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "leaf_library_share": {k: round(v / total, 3) for k, v in by_library.most_common(12)},
        "project_frames_inclusive": [
            {"frame": f, "share": round(v / total, 3)} for f, v in project.most_common(25)
        ],
    }


def _get(d: dict, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def summarise(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each figure beside its reference, the ratio, the target and pass/miss."""
    s = results["scenarios"]
    hello = _get(s, "hello", "rps")
    rows: list[dict[str, Any]] = []

    def row(figure, value, unit, reference=None, ref_name="", target=None, ok=None, scenario=None):
        not_run = _get(s, scenario, "not_run") if scenario else None
        ratio = round(value / reference, 3) if value is not None and reference else None
        rows.append(
            dict(
                figure=figure,
                value=value,
                unit=unit,
                reference=reference,
                reference_name=ref_name,
                ratio=ratio,
                target=target,
                result=("not run: " + not_run)
                if not_run
                else ("pass" if ok else "miss")
                if ok is not None
                else "-",
            )
        )

    row("hello-world GET /healthz", hello, "req/s", scenario="hello")
    row("pgbench hold SQL, spread", _get(s, "pgbench", "spread", "tps"), "tx/s", scenario="pgbench")
    row("pgbench hold SQL, 20 hot slots", _get(s, "pgbench", "hot_20", "tps"), "tx/s", scenario="pgbench")
    for name, label in (("surge_hot", "20 hot slots"), ("surge_month", "a centre's month")):
        v = _get(s, name, "hold_answers_per_s")
        p99 = _get(s, name, "latency_ms", "p99")
        db = _get(s, name, "db") or {}
        oversold = db.get("oversold_seats", None)
        integrity = [
            db.get(k)
            for k in (
                "oversold_seats",
                "lost_holds",
                "lost_confirms",
                "duplicate_active_per_citizen",
                "duplicate_references_answered",
            )
        ]
        row(
            f"POST /bookings answers, {label}",
            v,
            "req/s",
            hello,
            "hello",
            f"≥ {TARGETS['hold_ratio']} × hello",
            v is not None and hello and v >= TARGETS["hold_ratio"] * hello,
            name,
        )
        row(
            f"  holds / confirms per s, {label}",
            f"{_get(s, name, 'holds_per_s')} / {_get(s, name, 'confirms_per_s')}",
            "per s",
            scenario=name,
        )
        row(
            f"  p50 / p99, {label}",
            f"{_get(s, name, 'latency_ms', 'p50')} / {p99}",
            "ms",
            None,
            "",
            f"p99 < {TARGETS['hold_p99_ms']}",
            p99 is not None and p99 < TARGETS["hold_p99_ms"],
            name,
        )
        row(f"  slot_full share, {label}", _get(s, name, "slot_full_share"), "", scenario=name)
        row(
            f"  oversold / lost / duplicated, {label}",
            " / ".join(
                str(x)
                for x in (
                    oversold,
                    (db.get("lost_holds") or 0) + (db.get("lost_confirms") or 0),
                    (db.get("duplicate_active_per_citizen") or 0)
                    + (db.get("duplicate_references_answered") or 0),
                )
            ),
            "",
            None,
            "",
            "0 / 0 / 0",
            all(x == 0 for x in integrity) if db else None,
            name,
        )
    for figure, key in (
        ("POST /bookings answers, family of 3", "hold_answers_per_s"),
        ("  family holds (3 seats) per s", "holds_per_s"),
    ):
        row(figure, _get(s, "family_hold", key), "req/s", hello, "hello", scenario="family_hold")
    single = _get(s, "surge_month", "holds_per_s")
    family = _get(s, "family_hold", "holds_per_s")
    row(
        "  family holds / single holds, a centre's month",
        round(family / single, 3) if family is not None and single else None,
        "ratio",
        scenario="family_hold",
    )
    fdb = _get(s, "family_hold", "db") or {}
    row(
        "  oversold / lost / duplicated, family of 3",
        " / ".join(
            str(x)
            for x in (
                fdb.get("oversold_seats"),
                (fdb.get("lost_holds") or 0) + (fdb.get("lost_confirms") or 0),
                (fdb.get("duplicate_active_per_citizen") or 0)
                + (fdb.get("duplicate_references_answered") or 0),
            )
        ),
        "",
        None,
        "",
        "0 / 0 / 0",
        all(
            fdb.get(k) == 0
            for k in ("oversold_seats", "lost_holds", "lost_confirms", "duplicate_active_per_citizen")
        )
        if fdb
        else None,
        "family_hold",
    )
    v = _get(s, "sold_out", "answers_per_s")
    p99 = _get(s, "sold_out", "latency_ms", "p99")
    row(
        f"sold-out answers ({_get(s, 'sold_out', 'clients')} clients, as hello)",
        v,
        "req/s",
        hello,
        "hello",
        f"≥ {TARGETS['soldout_ratio']} × hello",
        v is not None and hello and v >= TARGETS["soldout_ratio"] * hello,
        "sold_out",
    )
    row(
        "  sold-out p99",
        p99,
        "ms",
        None,
        "",
        f"< {TARGETS['soldout_p99_ms']}",
        p99 is not None and p99 < TARGETS["soldout_p99_ms"],
        "sold_out",
    )
    row(
        "  row writes per refusal",
        _get(s, "sold_out", "row_writes_per_refusal"),
        "rows",
        None,
        "",
        "0",
        _get(s, "sold_out", "row_writes_per_refusal") == 0 if _get(s, "sold_out", "answers_per_s") else None,
        "sold_out",
    )
    v = _get(s, "availability", "rps")
    p99 = _get(s, "availability", "latency_ms", "p99")
    row("availability, 30 days (warm)", v, "req/s", hello, "hello", scenario="availability")
    row(
        "  availability p50 / p99",
        f"{_get(s, 'availability', 'latency_ms', 'p50')} / {p99}",
        "ms",
        None,
        "",
        f"p99 < {TARGETS['availability_p99_ms']}",
        p99 is not None and p99 < TARGETS["availability_p99_ms"],
        "availability",
    )
    cpu = results.get("worker_cpu_ms_per_request", {})
    hello_p99 = _get(s, "hello", "latency_ms", "p99")
    row(
        "  availability p99 vs hello's p99",
        p99,
        "ms",
        hello_p99,
        "hello p99",
        f"≤ {TARGETS['availability_p99_vs_hello']} × hello p99",
        p99 is not None and hello_p99 and p99 <= TARGETS["availability_p99_vs_hello"] * hello_p99,
        "availability",
    )
    warm, hello_cpu = cpu.get("availability"), cpu.get("hello")
    row(
        "  worker CPU per request, warm",
        warm,
        "ms",
        hello_cpu,
        "hello",
        f"≤ {TARGETS['availability_cpu_vs_hello']} × hello",
        warm is not None and hello_cpu and warm <= TARGETS["availability_cpu_vs_hello"] * hello_cpu,
        "availability",
    )
    cold = {n: _get(s, "availability_uncached", f"cancelled_{n}") or {} for n in (0, 10_000)}
    for n, label in ((0, "cache off"), (10_000, "cache off, 10,000 cancelled on the month")):
        ref = _get(cold, 0, "rps") if n else hello
        row(
            f"availability, 30 days, {label}",
            _get(cold, n, "rps"),
            "req/s",
            ref,
            "0 cancelled" if n else "hello",
            scenario="availability_uncached",
        )
        row(
            f"  p50 / p99, {label}",
            f"{_get(cold, n, 'latency_ms', 'p50')} / {_get(cold, n, 'latency_ms', 'p99')}",
            "ms",
            scenario="availability_uncached",
        )
    v = _get(cold, 0, "worker_cpu_ms_per_request")
    row(
        "  worker CPU per request, cache off",
        v,
        "ms",
        hello_cpu,
        "hello",
        f"≤ {TARGETS['availability_uncached_cpu_ms']} ms",
        v is not None and v <= TARGETS["availability_uncached_cpu_ms"],
        "availability_uncached",
    )
    flat = TARGETS["availability_flat_ratio"]
    for key, what in (("worker_cpu_ms_per_request", "worker"), ("db_cpu_ms_per_request", "PostgreSQL")):
        v, ref = _get(cold, 10_000, key), _get(cold, 0, key)
        row(
            f"  {what} CPU per request, cache off, 10,000 cancelled",
            v,
            "ms",
            ref,
            "0 cancelled",
            f"≤ {flat} × 0 cancelled",
            v is not None and ref and v <= flat * ref,
            "availability_uncached",
        )
    deep = f"kiosk_tickets_{KIOSK_DEEP_QUEUE}"
    for name, label in (("kiosk_tickets", "an empty queue"), (deep, f"{KIOSK_DEEP_QUEUE:,} waiting")):
        k = s.get(name) or {}
        row(
            f"kiosk walk-in tickets, {label} (then {k.get('waiting_after')})",
            k.get("tickets_per_s"),
            "tickets/s",
            hello,
            "hello",
            scenario=name,
        )
    row(
        "  duplicate ticket numbers, both depths",
        f"{_get(s, 'kiosk_tickets', 'duplicate_numbers')} / {_get(s, deep, 'duplicate_numbers')}",
        "",
        target="0 / 0",
        ok=_get(s, "kiosk_tickets", "duplicate_numbers") == 0 and _get(s, deep, "duplicate_numbers") == 0,
        scenario="kiosk_tickets",
    )
    shallow_cpu, deep_cpu = (
        _get(s, "kiosk_tickets", "worker_cpu_ms_per_request"),
        _get(s, deep, "worker_cpu_ms_per_request"),
    )
    row(
        f"  kiosk ticket CPU, {KIOSK_DEEP_QUEUE:,} waiting / empty queue",
        deep_cpu,
        "ms",
        shallow_cpu,
        "empty queue",
        "flat (≤ 1.25 ×)",
        deep_cpu is not None and shallow_cpu and deep_cpu <= 1.25 * shallow_cpu,
        deep,
    )
    v = _get(s, "counters", "calls_per_s")
    row(
        "call-next, 20 counters",
        v,
        "calls/s",
        hello,
        "hello",
        f"≥ {TARGETS['calls_per_s']}/s",
        v is not None and v >= TARGETS["calls_per_s"],
        "counters",
    )
    v = _get(s, "visit_counters", "calls_per_s")
    row("call-next, 30 % multi-service tickets", v, "calls/s", hello, "hello", scenario="visit_counters")
    dup = _get(s, "visit_counters", "duplicates")
    row(
        "  multi-service duplicates (ticket, service)",
        dup,
        "",
        None,
        "",
        "0",
        dup == 0 if dup is not None else None,
        "visit_counters",
    )
    dup, lost = _get(s, "counters", "duplicates"), _get(s, "counters", "lost")
    row(
        "  call-next duplicates / lost",
        f"{dup} / {lost}",
        "",
        None,
        "",
        "0 / 0",
        dup == 0 and lost == 0 if dup is not None else None,
        "counters",
    )
    p99 = _get(s, "display", "latency_ms", "p99")
    row(
        f"display p50 / p99, {_get(s, 'display', 'screens_connected')} screens",
        f"{_get(s, 'display', 'latency_ms', 'p50')} / {p99}",
        "ms",
        None,
        "",
        f"p99 < {TARGETS['display_p99_ms']}",
        p99 is not None and p99 < TARGETS["display_p99_ms"],
        "display",
    )
    row(
        "  display events missed",
        _get(s, "display", "events_missed"),
        "",
        None,
        "",
        "0",
        _get(s, "display", "events_missed") == 0 if _get(s, "display", "events_expected") else None,
        "display",
    )
    v = _get(s, "surge_limits_on", "hold_answers_per_s")
    ref = _get(s, "surge_hot", "hold_answers_per_s")
    row(
        "POST /bookings answers, hot, limits ON",
        v,
        "req/s",
        ref,
        "same, limits off",
        scenario="surge_limits_on",
    )
    row(
        "  share answered 429 / abuse rows written",
        f"{_get(s, 'surge_limits_on', 'rate_limited_share')} / "
        f"{_get(s, 'surge_limits_on', 'db', 'abuse_events_written')}",
        "",
        scenario="surge_limits_on",
    )
    row(
        "worker CPU per request: GET /me, session checked (sid: Redis MGET)",
        _get(s, "revocation", "sid", "worker_cpu_ms_per_request"),
        "ms",
        _get(s, "revocation", "no_sid", "worker_cpu_ms_per_request"),
        "same, token without sid",
        scenario="revocation",
    )
    row(
        "  the session check alone (one MGET), in-process CPU",
        _get(s, "revocation", "in_process_us", "mget_cpu"),
        "µs",
        _get(s, "revocation", "in_process_us", "token_first_use_cpu"),
        "a token's first verification",
        scenario="revocation",
    )
    # What each answer costs the app's workers in CPU, next to hello's: independent of the load the
    # shared cores carry, so this is the figure to compare between runs and machines.
    cpu = results.get("worker_cpu_ms_per_request", {})
    for name, label in (
        ("hello", "hello-world"),
        ("sold_out", "sold-out refusal"),
        ("surge_hot", "hold or confirm, 20 hot slots"),
        ("surge_month", "hold or confirm, a centre's month"),
        ("kiosk_tickets", "kiosk ticket"),
        (f"kiosk_tickets_{KIOSK_DEEP_QUEUE}", f"kiosk ticket, {KIOSK_DEEP_QUEUE:,} waiting"),
        ("counters", "call-next or complete"),
        ("draw_entries", "draw entry (the tail's /healthz asks taken out at hello's)"),
    ):
        if cpu.get(name) is not None:
            row(f"worker CPU per request: {label}", cpu[name], "ms", cpu.get("hello"), "hello", scenario=name)
    from bench import release

    release.summary_rows(s, row, hello)
    return rows


def render_table(results: dict[str, Any]) -> str:
    mode = results["mode"]
    machine, sizes = results["machine"], results["sizes"]
    label = (
        "SMOKE RUN — tiny sizes on a busy shared machine; proves the harness, measures nothing"
        if mode == "smoke"
        else "full run"
    )
    before = tuple(round(x, 2) for x in machine["loadavg_before"])
    after = tuple(round(x, 2) for x in machine.get("loadavg_after", (0, 0, 0)))
    citizens = results["data"]["citizens"] if "data" in results else "?"
    head = (
        f"Run `{results['started_at']}` ({label}), {machine['cpus']} CPUs, load average before {before}, "
        f"after {after}; sizes: {sizes['duration']} s per scenario, {sizes['surge_clients']} surge clients, "
        f"{citizens} citizens, {sizes['screens']} screens.\n\n"
    )
    lines = [
        "| figure | value | unit | reference | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["summary"]:
        ref = f"{r['reference']} ({r['reference_name']})" if r["reference"] is not None else ""
        lines.append(
            f"| {r['figure']} | {'' if r['value'] is None else r['value']} | {r['unit']} | {ref} | "
            f"{'' if r['ratio'] is None else r['ratio']} | {r['target'] or ''} | {r['result']} |"
        )
    return head + "\n".join(lines) + "\n"


def update_benchmarks_md(table: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    start, end = "<!-- bench:table:start -->", "<!-- bench:table:end -->"
    if not path.exists():
        return
    text = path.read_text()
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        path.write_text(f"{before}{start}\n{table}{end}{after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: proves the harness, measures nothing"
    )
    parser.add_argument("--duration", type=int, help="seconds per load scenario (default 20, smoke 3)")
    parser.add_argument("--citizens", type=int, help="bench citizens to create (default 4000)")
    parser.add_argument("--screens", type=int, help="SSE screens in the display scenario (default 500)")
    parser.add_argument("--port", type=int, help="gunicorn port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--only",
        nargs="*",
        help="run only these scenarios (pgbench hello revocation availability availability_uncached "
        "surge_hot sold_out surge_month profile kiosk_tickets counters display surge_limits_on "
        "draw_entries draw_run waitlist_handover kiosk_tickets_5000)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy a worker during a month surge, the sold-out refusals, the kiosk and the counters",
    )
    parser.add_argument("--no-limits", action="store_true", help="skip the rate-limits-on scenario")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dir (tokens, wrk scripts, gunicorn log)"
    )
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
