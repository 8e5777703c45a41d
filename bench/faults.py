"""`python -m bench.faults` (`make faults`): a booking surge through injected faults, measured.

It starts everything it needs and nothing else: its own PostgreSQL (initdb in a temp dir, on a free port,
as the unprivileged `postgres` user when run as root), its own Redis (redis-server on a free port, no
persistence), the app under gunicorn -k gevent with 2 workers. It never touches the machine's
PostgreSQL or Redis, and stops what it started (also on Ctrl-C or an error).

Each run: a bounded booking surge like the mobile app's (hold → confirm → some cancels; an
`Idempotency-Key` on every hold; a replay of the same request on a 5xx, a reset or `409
idempotency_in_progress`, after `Retry-After`), with one fault injected a few seconds in:

    kill9            a gunicorn worker killed with SIGKILL
    redis_stop_10s   Redis stopped for 10 s
    pg_restart       PostgreSQL `pg_ctl restart -m immediate`
    pg_stop_15s      PostgreSQL stopped for 15 s
    streams_2000     2,000 anonymous display streams from 5 addresses (127.0.0.2-6)

plus a `baseline` run with no fault, and, per run: requests, 5xx other than 503 (must be 0), 503s,
non-JSON answers, resets, lost answers (flows that never got a final answer), oversold slots, seat drift,
orphan bookings no replay resolved, stuck keys (claimed, no stored answer), false abuse events, seconds
to recover after the store is back, and `/healthz` latency (p50/p99), the stream flood's accepted/refused
counts and Redis clients.

Every loop is bounded in time and count. Results: bench/results/faults/<timestamp>.json and
latest.json. RELIABILITY.md explains the runs and holds the last numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import queue as stdlib_queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "faults"
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
DB_NAME = "sanad_faults_harness"
SERVICE = "passport.renew"
RUNS = ("baseline", "kill9", "redis_stop_10s", "pg_restart", "pg_stop_15s", "streams_2000")
FLOOD_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 7)]


def log(message: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 4)


class Stores:
    """The harness's own PostgreSQL and Redis, on free ports, in a temp dir."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.pgdata = tmp / "pgdata"
        self.redis: subprocess.Popen | None = None
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _pg(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.as_user, str(PG_BIN / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def start_postgres(self) -> None:
        self.tmp.chmod(0o755)  # the postgres user must reach its data dir
        self.pgdata.mkdir()
        if self.as_user:
            shutil.chown(self.pgdata, "postgres", "postgres")
        self._pg(
            "initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8", timeout=120
        )
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.pg_port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.pgdata}'\nmax_connections = 120\n"
                # Durable as in production: a crash (restart -m immediate) must keep acknowledged commits.
                "fsync = on\nsynchronous_commit = on\n"
            )
        self.pg_start()
        self.psql(f"CREATE DATABASE {DB_NAME}", db="postgres")

    def pg_start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.pgdata), "-l", str(self.pgdata / "server.log"), "-w", "start")

    def pg_stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop", check=False)

    def pg_restart_immediate(self) -> None:
        self._pg(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.pgdata / "server.log"),
            "-m",
            "immediate",
            "-w",
            "restart",
        )

    def psql(self, sql: str, db: str = DB_NAME) -> str:
        out = subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.pg_port),
                "-U",
                "postgres",
                "-d",
                db,
                "-At",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip()

    def redis_start(self) -> None:
        self.redis = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "10000",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.redis_port), 0.2):
                return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def redis_stop(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()  # our process only
            self.redis.wait(timeout=10)
        self.redis = None

    def stop_all(self) -> None:
        self.redis_stop()
        if self.pgdata.exists():
            self.pg_stop()


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="sanad-faults-"))
        self.stores = Stores(self.tmp)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen | None = None
        self.results: dict[str, Any] = {
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()},
            "sizes": {
                "citizens_per_run": args.citizens,
                "flows_per_second": args.rate,
                "surge_seconds": args.surge_seconds,
                "slots": args.slots,
                "streams": args.streams,
            },
            "runs": {},
        }

    # ------------------------------------------------------------------ setup
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            APP_ENV="development",  # demo data is refused in production; the rest is production-shaped
            DATABASE_URL=f"postgresql://postgres@127.0.0.1:{self.stores.pg_port}/{DB_NAME}",
            REDIS_URL=f"redis://127.0.0.1:{self.stores.redis_port}/0",
            LOG_LEVEL="WARNING",
            LOG_JSON="true",
            SCHEDULER_ENABLED="false",
            ACCESS_TOKEN_SECONDS="14400",
            DB_POOL_SIZE="10",
            DB_MAX_OVERFLOW="10",
            # The surge comes from one loopback address: the per-address flood limits are lifted so that
            # what is measured is the faults, while the identity limits stay as in production.
            RATELIMIT_HOLDS_PER_ADDRESS="1000000 per minute",
            RATELIMIT_SEARCH_PER_ADDRESS="1000000 per minute",
            RATELIMIT_DEFAULT="1000000 per minute",
            BENCH_BIND=f"127.0.0.1:{self.port}",
            BENCH_WORKERS="2",
            PYTHONUNBUFFERED="1",
        )
        return env

    def flask(self, *argv: str) -> str:
        out = subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "wsgi", *argv],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"flask {' '.join(argv)} failed:\n{out.stderr[-3000:]}")
        return out.stdout

    def prepare(self) -> None:
        log(f"temp {self.tmp}: PostgreSQL on {self.stores.pg_port}, Redis on {self.stores.redis_port}")
        self.stores.start_postgres()
        self.stores.redis_start()
        self.flask("db", "upgrade")
        self.flask("demo-data")
        os.environ.update(self.env())
        from app import create_app
        from app.extensions import db
        from bench import prepare

        app = create_app()
        with app.app_context():
            total = self.args.citizens * len(self.args.runs)
            citizens = prepare.create_citizens(total)
            slots = prepare.bookable_slots(service=SERVICE)
            self.slots = [s[0] for s in slots[: self.args.slots]]
            db.session.remove()
            db.engine.dispose()
        self.citizens = citizens
        log(f"{len(citizens)} citizens, {len(self.slots)} slots of {SERVICE}")

    def start_server(self) -> None:
        cmd = [
            str(VENV_BIN / "gunicorn"),
            "-c",
            str(ROOT / "bench" / "gunicorn_conf.py"),
            "--no-control-socket",
            "wsgi:app",
        ]
        self.results["gunicorn"] = " ".join(cmd) + " (BENCH_WORKERS=2: -k gevent, 2 workers)"
        logfile = open(self.tmp / "gunicorn.log", "ab")  # noqa: SIM115 (closed with the process)
        self.server = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env(), stdout=logfile, stderr=logfile, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {self.tmp / 'gunicorn.log'}")
            if self.readyz() == 200:
                log(f"gunicorn up on {self.base}")
                return
            time.sleep(0.3)
        raise SystemExit("gunicorn not ready in 60 s")

    def readyz(self) -> int:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.base + "/readyz", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    def workers(self) -> list[int]:
        """The gunicorn master's children (our processes)."""
        if self.server is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(self.server.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop_server(self) -> None:
        if self.server is None or self.server.poll() is not None:
            return
        self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)  # the process group gunicorn leads: ours
            self.server.wait(timeout=10)

    # ------------------------------------------------------------------ faults
    def inject(self, name: str) -> tuple[float, float]:
        """Start the fault; returns (started, store back) in monotonic time (blocking for its duration)."""
        started = time.monotonic()
        if name == "baseline":  # no fault: the reference for the others
            return started, started
        if name == "kill9":
            victim = self.workers()[0]
            os.kill(victim, signal.SIGKILL)
            log(f"killed worker {victim} with SIGKILL")
            return started, started
        if name == "redis_stop_10s":
            self.stores.redis_stop()
            time.sleep(10)
            self.stores.redis_start()
            return started, time.monotonic()
        if name == "pg_restart":
            self.stores.pg_restart_immediate()
            return started, time.monotonic()
        if name == "pg_stop_15s":
            self.stores.pg_stop()
            time.sleep(15)
            self.stores.pg_start()
            return started, time.monotonic()
        if name == "streams_2000":
            return started, started  # the flood runs beside the surge (see `run`)
        raise ValueError(name)

    # ------------------------------------------------------------------ one run
    def run(self, name: str, citizens: list[tuple[int, str]]) -> dict[str, Any]:
        return asyncio.run(self._run(name, citizens))

    async def _run(self, name: str, citizens: list[tuple[int, str]]) -> dict[str, Any]:
        import httpx

        stats: dict[str, Any] = {
            "statuses": Counter(),
            "resets": 0,
            "timeouts": 0,
            "html": 0,
            "lost": 0,
            "flows": 0,
        }
        received: dict[int, set[str]] = {}
        surge_end = time.monotonic() + self.args.surge_seconds
        give_up = surge_end + self.args.replay_seconds
        # The probe and the stream flood run in processes of their own, so that neither the surge's event loop
        # nor the flood's 2,000 connections delay the probe's measure of the server.
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no loop or threads inherited
        stop = context.Event()
        probe_out, flood_out = context.Queue(), context.Queue()
        prober = context.Process(target=_probe_process, args=(self.base, stop, probe_out), daemon=True)
        prober.start()
        flood = None
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=self.base, timeout=15, limits=limits) as client:
            surge = asyncio.create_task(self._surge(client, citizens, stats, received, surge_end, give_up))
            await asyncio.sleep(self.args.fault_after)
            cpu_before = self.worker_cpu_seconds()
            if name == "streams_2000":
                flood_args = (
                    self.base,
                    self.args.streams,
                    self.args.flood_seconds,
                    self.stores.redis_port,
                    flood_out,
                )
                flood = context.Process(target=_flood_process, args=flood_args, daemon=True)
                flood.start()
                fault_started = fault_back = time.monotonic()
            else:
                fault_started, fault_back = await asyncio.to_thread(self.inject, name)
            await surge
        flood_result: dict[str, Any] = {}
        if flood is not None:
            try:
                flood_result = await asyncio.to_thread(flood_out.get, True, self.args.flood_seconds + 90)
            except stdlib_queue.Empty:
                flood_result = {"error": "the flood process gave no result in time"}
            flood.join(timeout=10)
            if flood.is_alive():
                flood.terminate()  # our child process
        cpu_used = self.worker_cpu_seconds() - cpu_before
        stop.set()
        probe = await asyncio.to_thread(probe_out.get, True, 30)
        prober.join(timeout=10)
        result = self._measure(
            name, citizens, stats, received, probe, fault_started, fault_back, flood_result
        )
        # What the app's workers spent from the fault to the end of the surge (a restarted worker's share
        # before its death is not counted): beside the baseline's, what the fault cost the server.
        result["worker_cpu_seconds"] = round(cpu_used, 2)
        return result

    def worker_cpu_seconds(self) -> float:
        """User + system CPU of the gunicorn workers (our children), from /proc."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.workers():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # a worker restarted in between
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    async def _surge(self, client, citizens, stats, received, surge_end: float, give_up: float) -> None:
        tasks = []
        interval = 1.0 / self.args.rate
        for cid, token in citizens:
            if time.monotonic() >= surge_end:
                break
            tasks.append(asyncio.create_task(self._flow(client, cid, token, stats, received, give_up)))
            await asyncio.sleep(interval)
        stats["flows"] = len(tasks)
        await asyncio.gather(*tasks)

    async def _call(self, client, method: str, path: str, stats, give_up: float, **kwargs):
        """One request of the app, replayed like the mobile app does until a final answer or give-up."""
        import httpx

        for _attempt in range(400):
            if time.monotonic() > give_up:
                return None
            try:
                r = await client.request(method, path, **kwargs)
            except httpx.TimeoutException:
                stats["timeouts"] += 1
                await asyncio.sleep(0.3 + random.random() * 0.3)
                continue
            except httpx.HTTPError:
                stats["resets"] += 1
                await asyncio.sleep(0.3 + random.random() * 0.3)
                continue
            stats["statuses"][r.status_code] += 1
            body = None
            with contextlib.suppress(ValueError):
                body = r.json()
            if r.status_code >= 500 and body is None:
                stats["html"] += 1
            code = (body or {}).get("error", {}).get("code") if isinstance(body, dict) else None
            if r.status_code >= 500 or (r.status_code == 409 and code == "idempotency_in_progress"):
                try:
                    wait = float(r.headers.get("Retry-After", "1"))
                except ValueError:
                    wait = 1.0
                await asyncio.sleep(min(max(wait, 0.2), 3.0) * (0.75 + random.random() / 2))
                continue
            return r
        return None

    async def _flow(self, client, cid: int, token: str, stats, received, give_up: float) -> None:
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Device-Id": f"harness-{cid}",
            "Accept-Language": "en",
        }
        key = {"Idempotency-Key": str(uuid.uuid4())}
        hold = await self._call(
            client,
            "POST",
            "/api/v1/bookings",
            stats,
            give_up,
            json={"slot_id": random.choice(self.slots)},
            headers={**headers, **key},
        )
        if hold is None:
            stats["lost"] += 1
            return
        if hold.status_code != 201:
            return
        reference = hold.json()["reference"]
        received.setdefault(cid, set()).add(reference)
        confirm = await self._call(
            client, "POST", f"/api/v1/bookings/{reference}/confirm", stats, give_up, headers=headers
        )
        if confirm is None:
            stats["lost"] += 1
            return
        if random.random() < 0.2:
            cancel = await self._call(
                client, "POST", f"/api/v1/bookings/{reference}/cancel", stats, give_up, headers=headers
            )
            if cancel is None:
                stats["lost"] += 1

    # ------------------------------------------------------------------ measures
    def _measure(
        self, name, citizens, stats, received, probe, fault_started, fault_back, flood
    ) -> dict[str, Any]:
        ids = [cid for cid, _ in citizens]
        id_list = ",".join(str(i) for i in ids) or "0"
        owners = ",".join(f"'citizen:{i}'" for i in ids) or "''"
        sql = self.stores.psql
        bookings = sql(f"SELECT account_id || ' ' || reference FROM bookings WHERE account_id IN ({id_list})")
        orphans = 0
        for line in filter(None, bookings.splitlines()):
            account, reference = line.split()
            if reference not in received.get(int(account), set()):
                orphans += 1
        abuse = sql(
            f"SELECT rule || ' ' || count(*) FROM abuse_events WHERE account_id IN ({id_list}) GROUP BY rule"
        )
        abuse_by_rule = {r.split()[0]: int(r.split()[1]) for r in filter(None, abuse.splitlines())}
        statuses = stats["statuses"]
        ready_after = [t for t, code in probe["ready_at"] if t >= fault_back and code == 200]
        recover = round(ready_after[0] - fault_back, 2) if ready_after else None
        during = [lat for t0, lat, code in probe["healthz"] if t0 >= fault_started]
        result = {
            "requests": sum(statuses.values()),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "5xx_not_503": sum(v for k, v in statuses.items() if k >= 500 and k != 503),
            "503": statuses.get(503, 0),
            "non_json_5xx": stats["html"],
            "resets": stats["resets"],
            "timeouts": stats["timeouts"],
            "flows": stats["flows"],
            "lost_answers": stats["lost"],
            "oversold_slots": int(sql("SELECT count(*) FROM slots WHERE booked > capacity")),
            "drift_slots": int(
                sql(
                    "SELECT count(*) FROM slots s WHERE booked <> (SELECT count(*) FROM bookings b "
                    "WHERE b.slot_id = s.id AND b.holds_seat)"
                )
            ),
            "orphans_unresolved": orphans,
            "stuck_keys": int(
                sql(
                    "SELECT count(*) FROM idempotency_keys "
                    f"WHERE response_status IS NULL AND owner IN ({owners})"
                )
            ),
            "false_abuse_events": sum(v for k, v in abuse_by_rule.items() if k != "rate_limit"),
            "abuse_events_by_rule": abuse_by_rule,
            "recover_seconds": recover,
            "fault_seconds": round(fault_back - fault_started, 2),
            "healthz_p50_ms": _ms(pct(during, 50)),
            "healthz_p99_ms": _ms(pct(during, 99)),
            "healthz_failed": sum(
                1 for t0, _lat, code in probe["healthz"] if t0 >= fault_started and code != 200
            ),
        }
        if flood:
            result["flood"] = flood
        if name == "kill9":
            result["workers_after"] = len(self.workers())
        return result

    # ------------------------------------------------------------------ main
    def main(self) -> int:
        try:
            self.prepare()
            self.start_server()
            per_run = self.args.citizens
            for index, name in enumerate(self.args.runs):
                share = self.citizens[index * per_run : (index + 1) * per_run]
                log(
                    f"run {name}: {len(share)} citizens at {self.args.rate}/s, "
                    f"fault at +{self.args.fault_after}s"
                )
                deadline = time.monotonic() + 30
                while self.readyz() != 200 and time.monotonic() < deadline:
                    time.sleep(0.5)
                result = self.run(name, share)
                self.results["runs"][name] = result
                log(f"run {name}: " + json.dumps({k: v for k, v in result.items() if k != "statuses"}))
        except Exception:
            self.results["error"] = traceback.format_exc()
            log(self.results["error"])
        finally:
            self.stop_server()
            self.stores.stop_all()
            with contextlib.suppress(OSError):
                lines = (self.tmp / "gunicorn.log").read_text(errors="replace").splitlines()
                self.results["app_log_counts"] = dict(
                    Counter(_log_message(line) for line in lines).most_common(20)
                )
                self.results["gunicorn_log_tail"] = lines[-30:]
            self.results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self.results["machine"]["loadavg_after"] = os.getloadavg()
            self.write()
            shutil.rmtree(self.tmp, ignore_errors=True)
        return 1 if "error" in self.results or not self.passed() else 0

    def passed(self) -> bool:
        zero = (
            "5xx_not_503",
            "non_json_5xx",
            "lost_answers",
            "oversold_slots",
            "drift_slots",
            "orphans_unresolved",
            "stuck_keys",
            "false_abuse_events",
        )
        return all(all(run.get(k) == 0 for k in zero) for run in self.results["runs"].values())

    def write(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.results["passed"] = self.passed()
        stamp = time.strftime("%Y%m%dT%H%M%S")
        text = json.dumps(self.results, indent=2, default=str)
        (RESULTS / f"{stamp}.json").write_text(text)
        (RESULTS / "latest.json").write_text(text)
        log(f"results: {RESULTS / (stamp + '.json')} (passed: {self.results['passed']})")
        table = render_table(self.results)
        print(table)
        if self.args.write_doc and self.results["runs"]:
            update_reliability_md(table, self.results, stamp)


def _probe_process(base: str, stop, out) -> None:
    """`/healthz` (latency) and `/readyz` (recovery) every 50 ms from 127.0.0.1 until told to stop."""
    import httpx

    probe: dict[str, list] = {"healthz": [], "ready_at": []}
    with httpx.Client(base_url=base, timeout=3) as client:
        for _ in range(20_000):  # bounded: 20,000 × ≥ 50 ms
            if stop.is_set():
                break
            t0 = time.monotonic()
            try:
                r = client.get("/healthz")
                probe["healthz"].append((t0, time.monotonic() - t0, r.status_code))
                ready = client.get("/readyz")
                probe["ready_at"].append((time.monotonic(), ready.status_code))
            except httpx.HTTPError:
                probe["healthz"].append((t0, time.monotonic() - t0, 0))
            stop.wait(0.05)
    out.put(probe)


def _flood_process(base: str, streams: int, seconds: float, redis_port: int, out) -> None:
    result: dict[str, Any] = {"outcomes": {}}
    try:
        asyncio.run(_flood(base, streams, seconds, redis_port, result))
    except BaseException as error:  # report what was seen, whatever stopped the flood
        result["error"] = repr(error)
    finally:
        out.put(result)


async def _flood(base: str, streams: int, seconds: float, redis_port: int, result: dict[str, Any]) -> None:
    """Anonymous display streams from 5 addresses, held open for `seconds`, then closed."""
    import httpx

    per_address = streams // len(FLOOD_ADDRESSES)
    started, cpu_started = time.monotonic(), time.process_time()
    answered: list[float] = []  # when each of the burst's answers arrived, from the start
    outcomes: Counter = Counter()
    refusal_seconds: list[float] = []
    hold_until = time.monotonic() + seconds
    clients = [
        httpx.AsyncClient(
            base_url=base,
            timeout=httpx.Timeout(20, read=seconds + 20),
            # The transport's own pool limits apply (a client's `limits` do not when a transport is given).
            transport=httpx.AsyncHTTPTransport(
                local_address=address,
                limits=httpx.Limits(max_connections=per_address + 10, max_keepalive_connections=0),
            ),
        )
        for address in FLOOD_ADDRESSES
    ]
    redis_clients: list[int] = []

    async def one(client) -> None:
        t0 = time.monotonic()
        try:
            async with client.stream("GET", "/api/v1/centres/amman-muqabalain/queue/stream") as r:
                outcomes[r.status_code] += 1
                answered.append(time.monotonic() - started)
                if r.status_code != 200:
                    refusal_seconds.append(time.monotonic() - t0)
                    return
                async for _chunk in r.aiter_bytes():
                    if time.monotonic() >= hold_until:
                        return
        except httpx.HTTPError as error:
            outcomes[type(error).__name__] += 1

    async def sample_redis() -> None:
        while time.monotonic() < hold_until:
            info = await asyncio.to_thread(
                subprocess.run,
                ["redis-cli", "-p", str(redis_port), "INFO", "clients"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            for line in info.stdout.splitlines():
                if line.startswith("connected_clients:"):
                    redis_clients.append(int(line.split(":")[1]))
            await asyncio.sleep(1)

    late: list[float] = []
    late_statuses: Counter = Counter()

    async def late_screens() -> None:
        """Once the burst is answered, one more screen at a time from a capped address, as a screen
        switched on during the flood would be: the refusal's own latency, without the flood client's queue
        of its 2,000 connections (which the burst's figures include)."""
        total = per_address * len(FLOOD_ADDRESSES)
        while time.monotonic() < hold_until - 4 and sum(outcomes.values()) < total:
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(
            base_url=base, timeout=10, transport=httpx.AsyncHTTPTransport(local_address=FLOOD_ADDRESSES[0])
        ) as client:
            for _ in range(20):
                if time.monotonic() >= hold_until - 0.5:
                    break
                t0 = time.monotonic()
                try:
                    async with client.stream("GET", "/api/v1/centres/amman-muqabalain/queue/stream") as r:
                        late_statuses[r.status_code] += 1
                        if r.status_code == 200:  # a place had freed: give it back at once
                            continue
                        await r.aread()
                    late.append(time.monotonic() - t0)
                except httpx.HTTPError as error:
                    late_statuses[type(error).__name__] += 1
                await asyncio.sleep(0.05)

    def record() -> None:
        result.update(
            streams=per_address * len(FLOOD_ADDRESSES),
            outcomes={str(k): v for k, v in outcomes.items()},
            refusal_p50_seconds=pct(refusal_seconds, 50),
            refusal_p99_seconds=pct(refusal_seconds, 99),
            # The burst's answers all arrived within `burst_answered_seconds`; the flood client itself (one
            # Python process, 2,000 httpx requests) spent `client_cpu_seconds` of CPU on the same cores.
            burst_answered_seconds=round(max(answered), 2) if answered else None,
            client_cpu_seconds=round(time.process_time() - cpu_started, 2),
            late_screens={str(k): v for k, v in late_statuses.items()},
            late_refusal_p50_ms=_ms(pct(late, 50)),
            late_refusal_max_ms=_ms(max(late)) if late else None,
            redis_clients_max=max(redis_clients) if redis_clients else None,
        )

    try:
        await asyncio.wait_for(
            asyncio.gather(
                sample_redis(), late_screens(), *(one(c) for c in clients for _ in range(per_address))
            ),
            timeout=seconds + 40,
        )
    except TimeoutError:
        outcomes["harness_timeout"] += 1
    finally:
        record()
        for c in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.aclose(), timeout=5)


def _log_message(line: str) -> str:
    """A log line's level and message (JSON lines from the app, plain lines from gunicorn)."""
    try:
        record = json.loads(line)
    except ValueError:
        return line[:120]
    return f"{record.get('level', '?')}: {str(record.get('message', ''))[:100]}"


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


COLUMNS = (
    ("requests", "requests"),
    ("5xx_not_503", "5xx≠503"),
    ("503", "503"),
    ("lost_answers", "lost"),
    ("oversold_slots", "oversold"),
    ("drift_slots", "drift"),
    ("orphans_unresolved", "orphans"),
    ("stuck_keys", "stuck keys"),
    ("false_abuse_events", "false abuse"),
    ("recover_seconds", "recover s"),
    ("healthz_p99_ms", "/healthz p99 ms"),
)


def render_table(results: dict[str, Any]) -> str:
    """The runs as a Markdown table (RELIABILITY.md)."""
    lines = ["| run | " + " | ".join(title for _, title in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, run in results["runs"].items():
        lines.append(f"| {name} | " + " | ".join(str(run.get(key, "")) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def update_reliability_md(table: str, results: dict[str, Any], stamp: str) -> None:
    """Put the table of this run between RELIABILITY.md's `faults:table` markers."""
    path = ROOT / "RELIABILITY.md"
    text = path.read_text()
    start, end = "<!-- faults:table -->", "<!-- /faults:table -->"
    if start not in text or end not in text:
        return
    load = results["machine"]
    flood = results["runs"].get("streams_2000", {}).get("flood")
    lines = [
        start,
        f"`bench/results/faults/{stamp}.json` — {results['started_at']}, {load['cpus']} CPUs, load average "
        f"{load['loadavg_before'][0]:.1f} before and {load['loadavg_after'][0]:.1f} after (a machine shared "
        f"with other work); passed: {results['passed']}.",
        "",
        table,
    ]
    if flood:
        lines += ["", f"Stream flood: {json.dumps(flood)}"]
    lines.append(end)
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(head + "\n".join(lines) + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--citizens", type=int, default=240, help="citizens per run (one flow each)")
    # A hold costs a worker ~14 ms of CPU (BENCHMARKS.md): 2 workers on a shared 2-core machine keep up with
    # a few flows a second; more measures the queueing, not the faults.
    parser.add_argument("--rate", type=float, default=6.0, help="flows started per second")
    parser.add_argument("--surge-seconds", type=float, default=28.0)
    parser.add_argument("--replay-seconds", type=float, default=40.0, help="how long replays go on after")
    parser.add_argument("--fault-after", type=float, default=4.0)
    parser.add_argument("--slots", type=int, default=200)
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--flood-seconds", type=float, default=15.0)
    parser.add_argument("--no-doc", dest="write_doc", action="store_false", help="leave RELIABILITY.md alone")
    args = parser.parse_args(argv)
    for tool in ("redis-server", "redis-cli", "psql", "pgrep"):
        if shutil.which(tool) is None:
            raise SystemExit(f"`make faults` needs `{tool}` on PATH")
    if not (PG_BIN / "initdb").exists():
        raise SystemExit(f"no initdb in {PG_BIN} (set PG_BIN)")
    return Harness(args).main()


if __name__ == "__main__":
    sys.exit(main())
