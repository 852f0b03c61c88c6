"""Item text built the way UniSRec's ``process_amazon.py`` builds it, so that texts (and hence
PLM vectors and codes) of freshly processed raw data match the published atomic files."""
from __future__ import annotations

import html
import re
from typing import Mapping, Sequence

MAX_FIELD_CHARS = 2000  # UniSRec empties a cleaned field this long (it is usually a scrape error)
AMAZON_FIELDS = ("title", "category", "brand")
_DROP = re.compile(r'["\n\r]')


def clean_field(value) -> str:
    """One metadata value -> cleaned text ending in exactly one '.'.

    Lists are joined with spaces (2018 categories are lists), dicts use str(); HTML entities are
    unescaped; double quotes, newlines and carriage returns are removed; trailing dots collapse
    to one; a result of 2,000 characters or more becomes ''. An empty value gives '.', as in
    UniSRec."""
    if isinstance(value, list):
        text = " ".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = str(value)
    else:
        text = str(value)
    text = _DROP.sub("", html.unescape(text))
    # Trailing dots collapse to one; UniSRec's loop never strips the first character, so a value
    # made only of dots keeps one of them before the added '.' (reproduced for identical text).
    end = len(text)
    while end > 1 and text[end - 1] == ".":
        end -= 1
    text = text[:end] + "."
    return "" if len(text) >= MAX_FIELD_CHARS else text


def item_text(meta: Mapping[str, object], fields: Sequence[str] = AMAZON_FIELDS) -> str:
    """'title. category. brand.' from one metadata record; absent keys are skipped."""
    return " ".join(clean_field(meta[k]) for k in fields if k in meta).strip()
