"""A notebook's logs as kept and shown (docs/api.md "A notebook's logs"):
the last part of each component's output, made fit to keep and to show.
Pure: the runtime reads the bytes, the reconciler writes the text."""

from __future__ import annotations

import re

COMPONENTS = ("sail", "marimo")
# Of each component's output, the last this many bytes: the lines before a
# failure, a few minutes of a busy Sail. Kept in one row per notebook.
MAX_BYTES = 64 * 1024
# A member's ask is answered once a worker reads them; asks closer together
# than this enqueue no second read (a button pressed again, a script's loop).
ASK_SECONDS = 5
# A read waits this long for a runtime: a stop waits for it (before its
# teardown) and must not hang on an API server that does not answer.
READ_TIMEOUT_SECONDS = 10.0

# Terminal colours and cursor moves (CSI and OSC sequences): noise on a page.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# What a text column cannot hold, control codes a page shows as boxes (all
# but tab, newline and carriage return, C1 included), and the bidirectional
# overrides that would show a line as other than it is.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# A reason a read failed, as shown: one line's worth.
PROBLEM_CHARS = 300


def readable(data: bytes, secrets: tuple[str, ...] = (), max_bytes: int = MAX_BYTES) -> str:
    """The last `max_bytes` of `data` as a page shows it: from a whole line
    when cut, undecodable bytes replaced, terminal escapes and control codes
    removed, carriage returns as newlines (a progress bar's redraws), and
    `secrets` blanked (before the clean-up, which could split one, and
    after it, which could join one)."""
    cut = False
    if len(data) > max_bytes:
        at_a_line = data[-max_bytes - 1] == ord("\n")
        data = data[-max_bytes:]
        newline = data.find(b"\n")
        if not at_a_line and 0 <= newline < len(data) - 1:
            data = data[newline + 1 :]  # the rest of a line cut
        else:
            cut = not at_a_line  # inside a line longer than what is kept
    text = redacted(data.decode("utf-8", errors="replace"), secrets, cut=cut)
    text = _ESCAPES.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return redacted(_CONTROLS.sub("", text), secrets)


def problem_text(problem: str, secrets: tuple[str, ...] = ()) -> str:
    """Why a component's output was not read, as shown: one line, short."""
    text = _CONTROLS.sub("", _ESCAPES.sub("", problem)).replace("\r", " ").replace("\n", " ")
    text = redacted(text, secrets)
    return text if len(text) <= PROBLEM_CHARS else text[: PROBLEM_CHARS - 1] + "…"


# A secret's value shorter than this is not blanked (it would blank common
# words, and is no secret worth the name); status messages keep the same rule.
SECRET_MIN_CHARS = 4
_TOKEN_PARAM = re.compile(r"(access_token|token)=[^\s&\"']+", re.IGNORECASE)


def secret_values(secret_env: object) -> tuple[str, ...]:
    """A workload config's secret variables' values (its `secret_env`)."""
    values = secret_env.values() if isinstance(secret_env, dict) else ()
    return tuple(v for v in values if isinstance(v, str))


def redacted(text: str, secrets: tuple[str, ...], *, cut: bool = False) -> str:
    """`text` with each secret (the session's Marimo token, the workload
    config's secret values) and any `token=` in a URL shown as `***`; the
    longest first, so a value inside another goes as part of it. `cut`:
    the text begins inside a line, where a secret's end may begin it."""
    secrets = tuple(sorted((s for s in secrets if len(s) >= SECRET_MIN_CHARS), key=len))[::-1]
    for secret in secrets:
        text = text.replace(secret, "***")
    if cut:
        for secret in secrets:
            for size in range(len(secret) - 1, SECRET_MIN_CHARS - 1, -1):
                if text.startswith(secret[-size:]):
                    text = "***" + text[size:]
                    break
    return _TOKEN_PARAM.sub(r"\1=***", text)
