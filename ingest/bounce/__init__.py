"""Bounces: who bounced, and why."""
from ingest.bounce.extract import looks_like_bounce, parse_bounce

__all__ = ["looks_like_bounce", "parse_bounce"]
