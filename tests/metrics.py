"""Reading /metrics in tests: one figure by name and labels (0 when absent)."""

import re


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def figure(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    suffix = re.escape("{" + wanted + "}") if labels else ""
    found = re.search(rf"^{re.escape(name)}{suffix} (\S+)$", text, flags=re.M)
    return float(found.group(1)) if found else 0.0
