"""Metrics: daily rollups, rates over windows, Prometheus exposition."""
