"""Display scenario: N hall screens on one centre's SSE stream, one clerk calling next.

Latency = the moment the `ticket.called` event for a ticket reaches a screen minus the moment the clerk's
`call-next` answer (naming that ticket) returned. Bounded: a fixed number of screens and calls, and a
deadline for the whole scenario. Loopback only. Client and server share the machine's cores, so the
figure includes the cost of parsing 500 streams in one Python process (an upper bound).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Any

import httpx


async def _viewer(
    client: httpx.AsyncClient,
    url: str,
    ready: asyncio.Queue,
    arrivals: dict[int, list[float]],
    stop: asyncio.Event,
) -> None:
    event = None
    announced = False
    try:
        async with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
            if response.status_code != 200:
                await ready.put(False)
                announced = True
                return
            async for line in response.aiter_lines():
                if stop.is_set():
                    return
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    if event == "snapshot" and not announced:
                        announced = True
                        await ready.put(True)
                    elif event == "ticket.called":
                        now = time.perf_counter()
                        try:
                            ticket_id = int(json.loads(line[5:]).get("ticket_id"))
                        except (ValueError, TypeError):
                            continue
                        arrivals[ticket_id].append(now)
    except (httpx.HTTPError, asyncio.CancelledError):
        pass
    finally:
        if not announced:
            await ready.put(False)


async def _run(
    base_url: str,
    centre_id: str,
    screens: int,
    calls: int,
    counter_id: int,
    clerk_token: str,
    deadline_s: float,
    pause_s: float,
    display_token: str | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    url = f"{base_url}/api/v1/centres/{centre_id}/queue/stream"
    if display_token:
        url += f"?token={display_token}"
    limits = httpx.Limits(max_connections=screens + 10, max_keepalive_connections=screens + 10)
    timeout = httpx.Timeout(connect=10.0, read=deadline_s, write=10.0, pool=10.0)
    arrivals: dict[int, list[float]] = defaultdict(list)
    stop = asyncio.Event()
    ready: asyncio.Queue = asyncio.Queue()
    async with (
        httpx.AsyncClient(limits=limits, timeout=timeout) as viewers,
        httpx.AsyncClient(base_url=base_url, timeout=10.0) as clerk,
    ):
        tasks = [asyncio.create_task(_viewer(viewers, url, ready, arrivals, stop)) for _ in range(screens)]
        connected = 0
        for _ in range(screens):
            remaining = deadline_s / 2 - (time.monotonic() - started)
            try:
                ok = await asyncio.wait_for(ready.get(), timeout=max(0.1, remaining))
            except TimeoutError:
                break
            connected += int(ok)
        connect_seconds = time.monotonic() - started
        headers = {"Authorization": f"Bearer {clerk_token}"}
        returned: dict[int, float] = {}
        statuses: dict[str, int] = defaultdict(int)
        current = None
        for _ in range(calls):
            if time.monotonic() - started > deadline_s * 0.8:
                break
            if current is not None:
                done = await clerk.post(f"/api/v1/staff/tickets/{current}/complete", headers=headers)
                statuses[f"complete_{done.status_code}"] += 1
                current = None
            response = await clerk.post(f"/api/v1/staff/counters/{counter_id}/call-next", headers=headers)
            at = time.perf_counter()
            statuses[f"call_{response.status_code}"] += 1
            if response.status_code == 409:  # counter_busy: a ticket left from an earlier scenario
                busy = response.json().get("error", {}).get("details", {}).get("ticket_id")
                if busy:
                    await clerk.post(f"/api/v1/staff/tickets/{busy}/complete", headers=headers)
                continue
            if response.status_code == 200:
                current = response.json()["ticket_id"]
                returned[current] = at
            await asyncio.sleep(pause_s)
        if current is not None:
            await clerk.post(f"/api/v1/staff/tickets/{current}/complete", headers=headers)
        await asyncio.sleep(min(2.0, max(0.5, deadline_s - (time.monotonic() - started))))
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies = []
    delivered = 0
    for ticket_id, at in returned.items():
        for arrived in arrivals.get(ticket_id, []):
            latencies.append((arrived - at) * 1000)
            delivered += 1
    latencies.sort()
    expected = connected * len(returned)

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 2)

    return {
        "screens_requested": screens,
        "screens_connected": connected,
        "connect_seconds": round(connect_seconds, 2),
        "calls": len(returned),
        "statuses": dict(statuses),
        "events_expected": expected,
        "events_delivered": delivered,
        "events_missed": expected - delivered,
        "latency_ms": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": latencies[-1] if latencies else None,
        },
        # An event can reach a screen before call-next's answer reaches the clerk: negative values are real.
        "note": "latency = event arrival at a screen - call-next answer at the clerk",
    }


def run_display(**kwargs: Any) -> dict[str, Any]:
    """Run the scenario (blocking); see `_run` for the arguments."""
    return asyncio.run(_run(**kwargs))
