"""Readers of the mailbox providers' own reports about our mail: Google Postmaster Tools (API
v2 responses, JSON) and Microsoft SNDS (the data export and the IP status list, CSV).

They only read: each returns the figures it understood and one error per record it could not
(with where it was), never raising for a bad record. Storing and judging them is the
analysis's work (analysis/provider_feeds.py)."""
