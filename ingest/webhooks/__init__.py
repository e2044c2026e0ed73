"""ESP event webhooks read as facts: each provider's JSON, from (headers, raw body) to a
`ParseResult` of kind "webhook" whose `detail` is a `WebhookFacts` (ingest/webhooks/facts.py).

The HTTP part (routes, signatures, answers) is the sender's hooks blueprint (sender/hooks.py);
these functions only read.
"""
