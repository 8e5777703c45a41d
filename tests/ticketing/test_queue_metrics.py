"""/metrics shows tickets issued and called, the queue waiting per centre and the open display streams."""

from tests.metrics import figure, scrape

API = "/api/v1"


def test_tickets_issued_called_and_waiting_per_centre(client, kit):
    site = kit.site()
    before = scrape(client)
    for _ in range(2):
        issued = client.post(
            f"{API}/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk
        )
        assert issued.status_code == 201
    waiting = scrape(client)
    assert figure(waiting, "sanad_queue_waiting", centre=site.centre.id) == 2
    assert (
        figure(waiting, "sanad_tickets_issued_total", via="ticket")
        - figure(before, "sanad_tickets_issued_total", via="ticket")
        == 2
    )
    opened = client.post(
        f"{API}/staff/counters/{site.counters[1]}/open",
        json={"services": [site.other.code]},
        headers=site.headers["clerk"],
    )
    assert opened.status_code == 200
    assert (
        client.post(
            f"{API}/staff/counters/{site.counters[1]}/call-next", headers=site.headers["clerk"]
        ).status_code
        == 200
    )
    after = scrape(client)
    assert figure(after, "sanad_queue_waiting", centre=site.centre.id) == 1
    assert figure(after, "sanad_tickets_called_total") - figure(before, "sanad_tickets_called_total") == 1


def test_open_display_streams_are_counted(client, kit):
    site = kit.site()
    before = figure(scrape(client), "sanad_sse_streams_open")
    stream = client.get(f"{API}/centres/{site.centre.id}/queue/stream", buffered=False)
    chunks = iter(stream.response)
    assert b"snapshot" in next(chunks)
    assert figure(scrape(client), "sanad_sse_streams_open") == before + 1
    stream.close()
    assert figure(scrape(client), "sanad_sse_streams_open") == before
