"""Reasoning texts of the scripted teacher: several phrasings per situation, picked with the task's seeded RNG.

Slots are filled with real data only: tool and parameter names, the calls the teacher makes, and excerpts of the
observations the environment returned (:func:`excerpt` keeps them short and free of tag characters, so a text can
never open or close a protocol tag).
"""

from __future__ import annotations

import random
import re
from typing import Any

from verl_toolmaster.envs.calls import format_call

from .probes import EXTRA, MISSING, RENAMED, WRONG_TYPE

TEMPLATES: dict[str, tuple[str, ...]] = {
    # failed probe, by mistake kind
    f"probe.{MISSING}": (
        "`{tool}` is new to me. I'll call it with {given} to see which arguments it really needs.",
        "Let me see what `{tool}` returns with {given}; `{param}` may well be optional.",
        "A minimal call first: `{tool}` with {given}, to learn its required inputs.",
        "Before relying on `{tool}`, I'll try it without `{param}` and look at the response.",
    ),
    f"probe.{RENAMED}": (
        "I'll try `{tool}`, passing the {label} as `{wrong}`, and see how it responds.",
        "Let me probe `{tool}` with `{wrong}` to check how it names its inputs.",
        "A test call of `{tool}` using `{wrong}` will show how it names its parameters.",
    ),
    f"probe.{WRONG_TYPE}": (
        "Let me see how `{tool}` handles `{param}` given as {shown_value}.",
        "I'll test `{tool}` with `{param}` = {shown_value} to learn the format it expects.",
        "A quick probe of `{tool}` with `{param}` as {shown_value}, to check the input format it accepts.",
    ),
    f"probe.{EXTRA}": (
        "Let me try `{tool}` with an extra `{param}` option to see which options it accepts.",
        "I'll probe `{tool}` to find out whether it supports `{param}`.",
        "Does `{tool}` take a `{param}` option? A trial call will tell.",
    ),
    # what the error taught, by mistake kind
    f"fix.{MISSING}": ("`{param}` is required", "it needs `{param}` as well", "`{param}` cannot be left out"),
    f"fix.{RENAMED}": ("the parameter is called `{param}`, not `{wrong}`", "`{tool}` expects `{param}` rather than `{wrong}`"),
    f"fix.{WRONG_TYPE}": ("`{param}` must be {expected_phrase}", "`{param}` has to be passed as {expected_phrase}"),
    f"fix.{EXTRA}": ("`{tool}` has no `{param}` option", "`{param}` is not a parameter of `{tool}`, so it goes"),
    # a trial that corrects the failed probe
    "retry": (
        "The probe failed ({error}): {fix}. Trying {call}.",
        "Error from `{tool}` ({error}). {Fix}; retrying with the corrected arguments.",
        "That did not work ({error}); {fix}. Let me check the corrected call.",
    ),
    # a correct trial without a failed probe before it
    "probe.ok": (
        "Let me try `{tool}` on a scratch copy first: {call}.",
        "A trial call of `{tool}` to see what it returns before acting.",
        "I'll check how `{tool}` responds to {given} before the real run.",
    ),
    # the first execute turn
    "execute.after_trial": (
        "The trial showed how `{tool}` works; now I run {call} for real.",
        "Trials done. Executing {call}.",
        "`{tool}` behaves as expected on the scratch copy, so I execute it on the real environment.",
    ),
    "execute.after_failed_probe": (
        "The probe failed ({error}): {fix}. Executing the corrected call {call}.",
        "From the error ({error}) I learned that {fix}. Running {call} for real.",
    ),
    "execute.after_other_trial": (
        "Trials done. Executing, starting with {call}.",
        "Now the real run, beginning with `{tool}`.",
    ),
    "execute.direct": (
        "I'll use `{tool}` for this: {call}.",
        "Calling {call}.",
        "`{tool}` fits this request; executing it.",
    ),
    # an execute turn whose call failed and is corrected
    "execute.retry": (
        "That call failed ({error}): {fix}. Retrying.",
        "The call was rejected ({error}); {fix}. Running it again.",
    ),
    # later execute turns (after a step whose result says little, "execute.next_plain")
    "execute.next_plain": ("Next step: {call}.", "Now `{tool}`.", "Then {call}."),
    "execute.next": (
        "`{prev_tool}` returned {obs}. Next: {call}.",
        "Got {obs} from `{prev_tool}`; now `{tool}`.",
        "With {obs} from `{prev_tool}`, I call `{tool}` next.",
        "Next step: {call}.",
    ),
    # final answers without a gold reply text
    "answer.calls": (
        "Done: {calls}. The tool reported: {obs}",
        "I ran {calls}; result: {obs}",
        "Completed with {calls}. Last response: {obs}",
    ),
    "answer.no_tool": (
        "None of the tools available to me can do this yet. Once a suitable tool is available I can carry it out.",
        "I can't do that with the tools I have right now; I need a tool that supports it.",
    ),
    "answer.missing_info": (
        "I can't do this yet: the request leaves out a value I need. Please provide it and I'll continue.",
        "Some information this step needs is missing from the request; tell me the missing details and I'll proceed.",
    ),
}


def pick(rng: random.Random, key: str, **slots: Any) -> str:
    """One phrasing of ``key`` with its slots filled (``{Fix}`` is ``{fix}`` capitalised)."""
    if "fix" in slots:
        slots["Fix"] = slots["fix"][:1].upper() + slots["fix"][1:]
    text = rng.choice(TEMPLATES[key]).format(**slots)
    return " ".join(text.split())


_TAG_CHARS = re.compile(r"[<>]")


def excerpt(text: str, limit: int = 120) -> str:
    """A one-line, tag-free excerpt of an observation: its lines joined ("- " bullets dropped), at most ``limit``
    characters, without a leading "Error:" (the reasoning around it says it is an error)."""
    lines = [ln.strip().removeprefix("- ") for ln in str(text).splitlines() if ln.strip()]
    line = " ".join(" ".join(lines).split())
    line = _TAG_CHARS.sub("", line)
    for prefix in ("Error during execution:", "Error:"):
        if line.startswith(prefix):
            line = line[len(prefix) :].strip()
            break
    line = line.rstrip(".:; ")
    return line if len(line) <= limit else line[: limit - 3].rstrip(".:; ") + "..."


def show_call(name: str, arguments: dict[str, Any], limit: int = 80) -> str:
    """A call as Python-style text for reasoning (``f(a=1)``), shortened and tag-free."""
    try:
        text = format_call(name, arguments)
    except ValueError:  # a tool name no call string can carry: show it as it is
        text = f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"
    text = _TAG_CHARS.sub("", text)
    return text if len(text) <= limit else text[: limit - 4].rstrip() + "...)"


def show_value(value: Any, limit: int = 60) -> str:
    text = _TAG_CHARS.sub("", repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_phrase(expected: str | None) -> str:
    return {
        "integer": "an integer",
        "number": "a number",
        "string": "a string",
        "boolean": "true or false",
        "array": "a list",
        "object": "an object",
    }.get(expected or "", "of the documented type")
