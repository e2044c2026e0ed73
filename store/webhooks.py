"""What the webhooks remember between requests: the Mailgun tokens already seen, so a
replayed signature is refused by every web process that shares the store."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, delete
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.bulk import upsert_insert
from store.models import Base


class WebhookToken(Base):
    """A signature token a provider sent once (Mailgun's `signature.token`), kept while a
    signature with it would still be taken (its timestamp within the allowed age)."""

    __tablename__ = "webhook_tokens"

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    token: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)


def first_use(session: Session, provider: str, token: str, now: datetime, keep: timedelta) -> bool:
    """Remember `token`; True when it was not seen before. Tokens older than `keep` are
    forgotten (a signature that old is refused on its timestamp anyway)."""
    session.execute(delete(WebhookToken).where(WebhookToken.seen_at < now - keep))
    stmt = upsert_insert(session)(WebhookToken).values(provider=provider, token=token, seen_at=now)
    # RETURNING says whether the row went in (rowcount is not reliable through the ORM on every driver)
    stmt = stmt.on_conflict_do_nothing(index_elements=["provider", "token"]).returning(WebhookToken.token)
    return session.execute(stmt).first() is not None
