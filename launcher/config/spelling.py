"""The close known name to suggest in an error about a misspelt site, platform or key."""

from __future__ import annotations

import difflib
import typing


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
