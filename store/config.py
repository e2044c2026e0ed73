"""The configuration section the store reads (built by `postwatch/config.py`)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatabaseConfig:
    """[database]: where the facts are kept."""

    url: str = "sqlite:///var/postwatch.db"  # relative to the working directory
    echo: bool = False  # log every SQL statement
