"""The Dash dashboard: pages that read rollups, scores and aggregates (dashboard/data.py)."""
