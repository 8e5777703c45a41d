"""/metrics counts holds, confirmations and refusals by code as citizens meet them."""

from tests.metrics import figure, scrape


def test_holds_confirms_and_refusals_are_counted(client, kit):
    slot = kit.slot(kit.offering())
    headers = kit.headers_for(kit.citizen_id())
    before = scrape(client)
    held = client.post(
        "/api/v1/bookings", json={"slot_id": slot.id}, headers={**headers, "Idempotency-Key": "k1"}
    )
    assert held.status_code == 201
    replayed = client.post(
        "/api/v1/bookings", json={"slot_id": slot.id}, headers={**headers, "Idempotency-Key": "k1"}
    )
    assert replayed.headers.get("Idempotent-Replayed") == "true"  # not a second hold
    assert (
        client.post(f"/api/v1/bookings/{held.json['reference']}/confirm", headers=headers).status_code == 200
    )
    refused = client.post("/api/v1/bookings", json={"slot_id": slot.id}, headers=headers)
    assert refused.status_code == 409
    assert client.post("/api/v1/bookings", json={"slot_id": 5.5}, headers=headers).status_code == 422
    after = scrape(client)

    def grew(name, **labels):
        return figure(after, name, **labels) - figure(before, name, **labels)

    assert grew("sanad_holds_total") == 1
    assert grew("sanad_confirms_total") == 1
    assert grew("sanad_refusals_total", code=refused.json["error"]["code"], status="409") == 1
    assert grew("sanad_refusals_total", code="validation_error", status="422") == 1
