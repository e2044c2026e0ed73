"""postwatch: bounce, complaint and DMARC report processing and sender-reputation monitoring."""

__version__ = "0.1.0"
