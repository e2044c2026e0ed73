"""Mailbox providers: which provider a recipient domain's mail goes to.

By the domain list first (the big consumer domains), then — for custom domains, see
`ProviderResolver` — by the host names of the domain's MX records.
"""
from __future__ import annotations

# provider -> its consumer domains
DOMAINS: dict[str, tuple[str, ...]] = {
    "google": ("gmail.com", "googlemail.com"),
    "microsoft": ("outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk", "hotmail.fr",
                  "hotmail.de", "hotmail.it", "hotmail.es", "live.co.uk", "live.fr", "outlook.fr",
                  "outlook.de", "passport.com", "windowslive.com"),
    "yahoo": ("yahoo.com", "ymail.com", "rocketmail.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de",
              "yahoo.it", "yahoo.es", "yahoo.co.jp", "yahoo.com.br", "aol.com", "aim.com", "aol.co.uk",
              "aol.fr", "aol.de", "verizon.net", "att.net", "sbcglobal.net", "bellsouth.net"),
    "apple": ("icloud.com", "me.com", "mac.com"),
    "gmx": ("gmx.de", "gmx.net", "gmx.com", "gmx.at", "gmx.ch", "web.de", "mail.com"),
    "orange": ("orange.fr", "wanadoo.fr", "voila.fr"),
    "mailru": ("mail.ru", "inbox.ru", "list.ru", "bk.ru"),
    "yandex": ("yandex.ru", "yandex.com", "ya.ru", "yandex.ua", "yandex.by", "yandex.kz"),
    "comcast": ("comcast.net", "xfinity.com"),
    "proton": ("proton.me", "protonmail.com", "pm.me"),
    "zoho": ("zoho.com", "zohomail.com"),
    "fastmail": ("fastmail.com", "fastmail.fm"),
}
BY_DOMAIN: dict[str, str] = {d: p for p, ds in DOMAINS.items() for d in ds}
OTHER = "other"


def provider_for_domain(domain: str | None) -> str | None:
    """The provider of a consumer domain by the list alone; None when the list does not know it."""
    if not domain:
        return None
    return BY_DOMAIN.get(domain.strip().lower().rstrip("."))
