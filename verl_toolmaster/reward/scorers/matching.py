"""Normalisation and matching helpers shared by the rule scorers (answers, argument values, call sets)."""

from __future__ import annotations

import ast
import itertools
import json
import math
import re
import unicodedata
from typing import Any, Callable, Sequence

_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_QUOTES = " \t\r\n\"'`“”‘’"  # stripped from both ends of a numeric answer
_TRAILING = ".,;:!?"  # sentence punctuation stripped from its end


def parse_number(text: str) -> float | None:
    """``"324"``, ``"324.0"``, ``"1,000"``, ``"+3.5e2"`` -> float; anything else -> None."""
    s = text.strip(_QUOTES).rstrip(_TRAILING).strip(_QUOTES)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    if not _NUMBER.match(s):
        return None
    value = float(s)
    return value if math.isfinite(value) else None


_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_SEPARATORS = re.compile(r"[\W_]+")


def normalize_text(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form of free text.

    NFKD with combining marks dropped ("Renée" -> "renee"), casefolded, every run of characters that are not
    letters or digits (punctuation, symbols, whitespace, "_") replaced by one space. Articles are kept:
    ToolHop answers include single letters such as "a".
    """
    s = _COMBINING.sub("", unicodedata.normalize("NFKD", text)).casefold()
    return _SEPARATORS.sub(" ", s).strip()


def answers_match(gold: str, predicted: str) -> bool:
    """Final-answer equality: numerically when both sides are numbers, else on :func:`normalize_text`."""
    g_num, p_num = parse_number(gold), parse_number(predicted)
    if g_num is not None and p_num is not None:
        return math.isclose(g_num, p_num, rel_tol=1e-9, abs_tol=1e-9)
    g, p = normalize_text(gold), normalize_text(predicted)
    return bool(g) and g == p


def contains_phrase(haystack_tokens: Sequence[str], phrase: str) -> bool:
    """True when the normalised ``phrase`` occurs as a contiguous token run in ``haystack_tokens``."""
    needle = normalize_text(phrase).split()
    if not needle:
        return False
    n = len(needle)
    first = needle[0]
    for i, tok in enumerate(haystack_tokens):
        if tok == first and list(haystack_tokens[i : i + n]) == needle:
            return True
    return False


# ---------------------------------------------------------------- argument values


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numeric_string(s: str) -> float | None:
    t = s.strip()
    # "007" is an identifier, not the number 7
    if re.match(r"^[+-]?0\d", t):
        return None
    if not _NUMBER.match(t):
        return None
    value = float(t)
    return value if math.isfinite(value) else None


def _parse_structured(s: str) -> Any:
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(s)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return s


def values_match(gold: Any, pred: Any, _depth: int = 0) -> bool:
    """Argument-value equality used by call matching (documented in docs/reward.md).

    * numbers: ``5 == 5.0 == "5"`` (a numeric string equals the number; "007" is not 7);
    * booleans: ``True == "true" == "True"``, never equal to 1;
    * strings: equal after trimming and collapsing inner whitespace; case-sensitive (ids, passwords);
    * lists: same length, element-wise in order; dicts: same keys, values match;
    * a string against a list/dict: the string is parsed as JSON or a Python literal first
      (API-Bank stores ``"['John Smith', 'Jane Doe']"``).
    """
    if _depth > 32:
        return False
    if isinstance(gold, bool) or isinstance(pred, bool):
        if isinstance(gold, bool) and isinstance(pred, bool):
            return gold == pred
        other, flag = (pred, gold) if isinstance(gold, bool) else (gold, pred)
        return isinstance(other, str) and other.strip().lower() == str(flag).lower()
    if _is_number(gold) or _is_number(pred):
        a = gold if _is_number(gold) else (_numeric_string(gold) if isinstance(gold, str) else None)
        b = pred if _is_number(pred) else (_numeric_string(pred) if isinstance(pred, str) else None)
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(gold, str) and isinstance(pred, str):
        if " ".join(gold.split()) == " ".join(pred.split()):
            return True
        a, b = _numeric_string(gold), _numeric_string(pred)
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(gold, str) and isinstance(pred, (list, dict)):
        parsed = _parse_structured(gold)
        return not isinstance(parsed, str) and values_match(parsed, pred, _depth + 1)
    if isinstance(pred, str) and isinstance(gold, (list, dict)):
        parsed = _parse_structured(pred)
        return not isinstance(parsed, str) and values_match(gold, parsed, _depth + 1)
    if isinstance(gold, (list, tuple)) and isinstance(pred, (list, tuple)):
        return len(gold) == len(pred) and all(values_match(g, p, _depth + 1) for g, p in zip(gold, pred))
    if isinstance(gold, dict) and isinstance(pred, dict):
        return gold.keys() == pred.keys() and all(values_match(gold[k], pred[k], _depth + 1) for k in gold)
    return gold == pred


# ---------------------------------------------------------------- assignment


def best_assignment(
    gold: Sequence[Any], pred: Sequence[Any], pair_score: Callable[[Any, Any], float], exact_limit: int = 5040
) -> list[tuple[int, int, float]]:
    """Match gold items to predicted items one-to-one, maximising the summed ``pair_score``.

    Exhaustive over assignments when there are at most ``exact_limit`` of them; greedy (highest pair
    first) beyond that, which keeps a thousand spammed calls cheap. Pairs scoring 0 are dropped.
    Returns ``(gold_index, pred_index, score)`` triples.
    """
    if not gold or not pred:
        return []
    table = [[pair_score(g, p) for p in pred] for g in gold]
    n_g, n_p = len(gold), len(pred)
    if math.perm(max(n_g, n_p), min(n_g, n_p)) <= exact_limit:
        best: tuple[float, list[tuple[int, int, float]]] = (-1.0, [])
        if n_g <= n_p:
            for perm in itertools.permutations(range(n_p), n_g):
                total = sum(table[i][j] for i, j in enumerate(perm))
                if total > best[0]:
                    best = (total, [(i, j, table[i][j]) for i, j in enumerate(perm)])
        else:
            for perm in itertools.permutations(range(n_g), n_p):
                total = sum(table[i][j] for j, i in enumerate(perm))
                if total > best[0]:
                    best = (total, [(i, j, table[i][j]) for j, i in enumerate(perm)])
        return [t for t in best[1] if t[2] > 0]
    pairs = sorted(((table[i][j], i, j) for i in range(n_g) for j in range(n_p) if table[i][j] > 0), reverse=True)
    used_g: set[int] = set()
    used_p: set[int] = set()
    out = []
    for s, i, j in pairs:
        if i not in used_g and j not in used_p:
            used_g.add(i)
            used_p.add(j)
            out.append((i, j, s))
    return out
