"""Generate ToolHop-format records (the normalised release's JSONL layout) that are not in the repository.

Each record chains 2-4 small tools. Tool sources are Python text with example usage lines at the bottom (the
adapter strips them); gold calls are Python call strings mixing positional and keyword arguments, and schemas
list parameters in a different order than the function signature, so positional binding must follow the
signature. The expected answer is computed here with the same arithmetic, independently of the sandbox that
later runs the sources. About one record in ten has no gold trace.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable

# kind -> (input type, output type, parameter names (first is the chained value), default of the 2nd, source body, python fn)
TEMPLATES: dict[str, tuple[str, str, tuple[str, ...], Any, str, Callable[..., Any]]] = {
    "add": ("int", "int", ("number", "amount"), 3, "return number + amount", lambda x, a: x + a),
    "mul": ("int", "int", ("value", "factor"), 2, "return value * factor", lambda x, f: x * f),
    "digits": ("int", "int", ("n",), None, "return sum(int(d) for d in str(abs(n)))", lambda n: sum(int(d) for d in str(abs(n)))),
    "reverse": ("str", "str", ("text",), None, "return text[::-1]", lambda t: t[::-1]),
    "repeat": ("str", "str", ("text", "times"), 2, "return text * times", lambda t, k: t * k),
    "upper": ("str", "str", ("word", "keep_case"), False, "return word if keep_case else word.upper()", lambda w, k: w if k else w.upper()),
    "length": ("str", "int", ("s",), None, "return len(s)", lambda s: len(s)),
}
WORDS = ["tool", "river", "maple", "quartz", "ember", "lumen", "orbit", "cedar", "pixel", "delta"]


def _tool(kind: str, name: str, rng: random.Random) -> tuple[dict[str, Any], str]:
    in_t, _, params, default, body, _ = TEMPLATES[kind]
    sig = params[0] if len(params) == 1 else f"{params[0]}, {params[1]}={default!r}"
    source = (
        "import math\n\n\n"
        f"def {name}({sig}):\n"
        f'    """{kind} helper generated for the harness tests."""\n'
        f"    {body}\n\n\n"
        "# Example usage\n"
        f"result = {name}({'12' if in_t == 'int' else repr('abc')})\n"
        "print(result)\n"
    )
    types = {"int": "integer", "str": "string", "bool": "boolean"}
    props = {params[0]: {"type": types[in_t], "description": f"the {params[0]}"}}
    if len(params) == 2:
        props[params[1]] = {"type": types[type(default).__name__], "description": f"the {params[1]} (default {default!r})"}
    ordered = dict(reversed(list(props.items())))  # the reverse of the signature order
    doc = {"name": name, "description": f"Apply {kind} to the input.", "parameters": {"type": "object", "properties": ordered, "required": [params[0]]}}
    return doc, source


def _call_string(name: str, params: tuple[str, ...], args: list[Any], rng: random.Random) -> str:
    style = rng.choice(("positional", "keyword", "mixed"))
    parts = []
    for i, (p, a) in enumerate(zip(params, args)):
        positional = style == "positional" or (style == "mixed" and i == 0)
        parts.append(repr(a) if positional else f"{p}={a!r}")
    return f"{name}({', '.join(parts)})"


def record(i: int, rng: random.Random) -> dict[str, Any]:
    start_type = rng.choice(("int", "str"))
    value: Any = rng.randint(10, 999) if start_type == "int" else rng.choice(WORDS) + rng.choice(WORDS)
    question = f"Start from {value!r}."
    hops = rng.randint(2, 4)
    tools, functions, calls, sub_task = {}, [], [], {}
    current = start_type
    for h in range(hops):
        kind = rng.choice([k for k, t in TEMPLATES.items() if t[0] == current])
        _, out_t, params, default, _, fn = TEMPLATES[kind]
        name = f"{kind}_{rng.randrange(16**6):06x}"
        doc, source = _tool(kind, name, rng)
        args = [value]
        if len(params) == 2:
            if isinstance(default, bool):
                extra = rng.choice((True, False))
            elif isinstance(default, int):
                extra = rng.randint(2, 5)
            else:
                extra = default
            args.append(extra)
        calls.append(_call_string(name, params, args, rng))
        value = fn(*args)
        sub_q = f"Step {h + 1}: apply {name} to the previous result."
        tools[sub_q] = doc
        functions.append(source)
        sub_task[sub_q] = str(value)
        question += f" Then apply {name}."
        current = out_t
    return {
        "id": f"gen-{i:04d}",
        "question": question + " What is the result?",
        "answer": str(value),
        "answer_type": "number" if current == "int" else "string",
        "sub_task": sub_task,
        "tools": tools,
        "functions": functions,
        "gold_calls": [] if i % 10 == 9 else calls,
        "hop_count": hops,
        "domain": "Generated",
        "category": "synthetic",
    }


def write(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps(record(i, rng)) + "\n")
    return path
