"""Which rule patterns can match a diagnostic, without running a thousand regexes.

Python's `re` tries every branch of an alternation at every position, so a rule set of
~1,500 phrases costs milliseconds per bounce. Nearly every pattern contains a literal run
("user unknown", " has been replaced by "); a pattern can only match a text that contains
its literal. The index maps one three-letter piece of each literal to its patterns; a text
looks up its own pieces, keeps the patterns whose whole literal it contains, and only those
(plus the few patterns without a literal) are run, in file order.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from itertools import chain

_META = set(".^$*+?{}[]()|\\")
_QUANT = set("*+?{")
_ESCAPED_LITERAL = set(".^$*+?{}[]()|\\-/ '\"#:;,<>=@!%&~`_")
_PLAIN = re.compile(r"[^.^$*+?{}\[\]()|\\]*").fullmatch  # no metacharacter at all


def literal_of(pattern: str) -> str | None:
    """The longest literal run a match of `pattern` must contain (lower case), or None.

    Only top-level runs count: nothing inside groups or classes, nothing before a quantifier,
    and nothing at all when the pattern has a top-level `|`.
    """
    if _PLAIN(pattern):  # most rule patterns are plain phrases
        return pattern.lower() if len(pattern) >= 3 else None
    runs: list[str] = []
    run: list[str] = []
    depth = 0
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            token, width = (nxt, 2) if (depth == 0 and nxt in _ESCAPED_LITERAL) else (None, 2)
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            token, width = None, j + 1 - i
        elif c == "{":
            j = pattern.find("}", i)
            token, width = None, (j + 1 - i) if j > 0 else 1
        elif c == "(":
            depth += 1
            token, width = None, 1
        elif c == ")":
            depth -= 1
            token, width = None, 1
        elif c == "|" and depth == 0:
            return None
        elif c in _META or depth > 0:
            token, width = None, 1
        else:
            token, width = c, 1
        quantified = i + width < n and pattern[i + width] in _QUANT
        if token is not None and not quantified:
            run.append(token)
        else:
            if run:
                runs.append("".join(run))
            run = []
        i += width
    if run:
        runs.append("".join(run))
    best = max(runs, key=len, default="")
    return best.lower() if len(best) >= 3 else None


# Letters from most to least common in English; spaces, digits and signs are common in SMTP
# replies ("550 ", "5.1.1"), so a piece made of them is a poor key.
_COMMON = " etaoinsrhldcumfpgwybvkxjqz"


def _rarity(ch: str) -> int:
    if ch in _COMMON:
        return _COMMON.index(ch)
    return 2 if ch.isdigit() or not ch.isalnum() else 20


class _Rarity(dict):
    def __missing__(self, ch: str) -> int:
        value = self[ch] = _rarity(ch)
        return value


_RARITY = _Rarity()


def _pieces(text: str) -> list[str]:
    return list(map("".join, zip(text, text[1:], text[2:])))  # twice as fast as slicing


def _keys(literals: set[str]) -> dict[str, str]:
    """Each literal's least common three-letter piece, so few texts share it by chance.

    A piece many literals of the rule set share ("unk", "box", "cip") is a common word of
    bounce text, and every text that has it would have to test all of them: the least shared
    piece wins, and among those the one of the rarest letters (three letters' rarity is below
    100, so the count decides first).
    """
    pieces = {lit: _pieces(lit) for lit in literals}
    shared = Counter(chain.from_iterable(map(set, pieces.values())))
    rarity = _RARITY
    score = {g: n * 100 - rarity[g[0]] - rarity[g[1]] - rarity[g[2]] for g, n in shared.items()}
    return {lit: min(lit_pieces, key=score.__getitem__) for lit, lit_pieces in pieces.items()}


class Matcher:
    """For a text, the (rule index, pattern index) pairs worth running, by rule."""

    def __init__(self, rules) -> None:
        self.index: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        self.always: dict[int, list[int]] = defaultdict(list)  # patterns without a literal
        self.bare: list[int] = []  # rules with conditions and no patterns
        literals: list[tuple[int, int, str]] = []
        seen: dict[str, str | None] = {}  # a `like` block repeats an earlier block's patterns
        for r, rule in enumerate(rules):
            if not rule.patterns:
                self.bare.append(r)
            for p, pattern in enumerate(rule.patterns):
                lit = seen[pattern] if pattern in seen else seen.setdefault(pattern, literal_of(pattern))
                if lit is None:
                    self.always[r].append(p)
                else:
                    literals.append((r, p, lit))
        keys = _keys({lit for _, _, lit in literals})
        for r, p, lit in literals:
            self.index[keys[lit]].append((r, p, lit))
        self.keys = frozenset(self.index)

    def candidates(self, text: str) -> dict[int, list[int]]:
        """Rule index -> its pattern indexes that may match `text` (in file order)."""
        found: dict[int, list[int]] = {r: [] for r in self.bare}
        low = text.lower()
        if not low:
            return found
        for r, ps in self.always.items():
            found[r] = list(ps)
        index = self.index
        pieces = self.keys.intersection(map("".join, zip(low, low[1:], low[2:])))  # its 3-letter pieces
        hits = [(r, p) for piece in pieces for r, p, lit in index[piece] if lit in low]
        hits.sort()
        for r, p in hits:
            ps = found.get(r)
            if ps is None:
                found[r] = [p]
            else:
                ps.append(p)
                if len(ps) > 1 and ps[-2] > p:
                    ps.sort()
        return found
