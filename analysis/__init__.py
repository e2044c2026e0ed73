"""Analysis: events become decisions — rollups, scores, suppressions, alerts, checks."""
