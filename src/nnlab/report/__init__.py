"""Runs as tables, groups and statistics, and a sweep's dashboard (no torch)."""
