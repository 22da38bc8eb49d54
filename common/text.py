"""What a name or an email may be, for the API and the admin CLI alike.

A name is one line of text that starts and ends with something to see: no
control characters (C0, DEL, C1) anywhere, and no space or invisible
character (zero-width spaces and joiners, bidi marks, overrides and isolates,
word joiners, BOM, Hangul and Braille blanks, …) at either end, so two names
never look the same by a blank on one of them, and no name is all blank.
Invisible characters stay allowed inside a name: joiners and bidi marks are
part of how some scripts and emoji are written. Names are stored in Unicode
NFC, so a composed and a decomposed "é" are the same name.

An email has no control, space or invisible character at all (they would
reach an operator's terminal and a console's page as they are).

The patterns are also published in the OpenAPI document, so they keep to
what ECMAScript and Python regular expressions read the same way."""

from __future__ import annotations

import re
import unicodedata

CONTROL = r"\u0000-\u001f\u007f-\u009f"
INVISIBLE = (
    r"\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e"
    r"\u205f-\u206f\u2800\u3164\ufeff\uffa0"
)
_EDGE = rf"[^\s{CONTROL}{INVISIBLE}]"
# Line and paragraph separators break a line anywhere, not only at the ends.
_BREAKS = r"\u2028\u2029"
NAME_PATTERN = rf"^{_EDGE}(?:[^{CONTROL}{_BREAKS}]*{_EDGE})?$"
EMAIL_PATTERN = rf"^[^@\s{CONTROL}{INVISIBLE}]+@[^@\s{CONTROL}{INVISIBLE}]+$"

NAME = re.compile(NAME_PATTERN)
EMAIL = re.compile(EMAIL_PATTERN)


def normal_name(value: str) -> str:
    """The form a valid name is stored in."""
    return unicodedata.normalize("NFC", value)
