"""The catalogue: centres, counters, closures, services and offerings."""
