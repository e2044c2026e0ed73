"""The sender: composes and sends mail that honours the suppression list; serves the feed."""
