"""Collectors: they speak a protocol (SMTP, IMAP) and put raw messages into the spool.

They never parse: what a message is, the pipeline alone decides (DESIGN.md).
"""
