"""Probes: liveness with database reachability, and Prometheus metrics."""
