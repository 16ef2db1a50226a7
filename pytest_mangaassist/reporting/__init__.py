"""Reporting layer: the run log and its views (terminal, JSON, HTML)."""
