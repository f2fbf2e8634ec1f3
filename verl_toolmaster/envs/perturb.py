"""Perturbations that make tools unfamiliar (spec key ``"perturb": {"seed": int, ...options}``).

The model sees renamed tools and parameters, reworded or shuffled descriptions and optional distractor
tools; its calls are mapped back to the real tool before they reach the backend (``canonical``), and
errors the environment writes about argument names are mapped back to the names the model saw. Everything
is a pure function of the seed and the real tool's name, so a tool revealed at a later turn gets the same
disguise in every copy of the task, and two runs with the same seed agree exactly.

Only top-level parameters are renamed; nested object properties keep their names.
"""

from __future__ import annotations

import copy
import json
import random
import re
import string
import time
from dataclasses import dataclass, fields
from typing import Any

from .base import Observation, ToolEnv, decode_arguments, unknown_tool
from .wrapper import EnvWrapper


@dataclass(frozen=True)
class PerturbOptions:
    """What to perturb. Built from the spec's ``perturb`` object; unknown keys are an error."""

    seed: int  # everything below is deterministic given this seed
    rename_tools: bool = True  # give tools new names
    rename_params: bool = True  # give top-level parameters new names
    name_style: str = "random"  # "random": opaque identifiers (like Hammer's masked names); "typo": misspelt originals (like RoTBench)
    descriptions: str = "paraphrase"  # "keep" | "paraphrase" (synonyms, deterministic) | "shuffle" (sentence order) | "drop"
    distractors: int = 0  # extra plausible tools that are not part of the task
    shuffle_tools: bool = True  # present tools in a seed-dependent order

    @classmethod
    def parse(cls, opts: dict[str, Any]) -> "PerturbOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise ValueError(f"perturb options {unknown} are unknown; known: {sorted(known)}")
        if not isinstance(opts.get("seed"), int):
            raise ValueError(f"perturb needs an integer 'seed', got {opts.get('seed')!r}")
        out = cls(**opts)
        if out.name_style not in ("random", "typo"):
            raise ValueError(f"perturb name_style must be 'random' or 'typo', got {out.name_style!r}")
        if out.descriptions not in ("keep", "paraphrase", "shuffle", "drop"):
            raise ValueError(f"perturb descriptions must be keep|paraphrase|shuffle|drop, got {out.descriptions!r}")
        if not isinstance(out.distractors, int) or not 0 <= out.distractors <= len(DISTRACTORS):
            raise ValueError(f"perturb distractors must be an integer in [0, {len(DISTRACTORS)}], got {out.distractors!r}")
        return out


# Word-level rewrites for "paraphrase": each entry is interchangeable in tool documentation.
SYNONYMS = [
    ("retrieve", "fetch", "obtain", "look up"),
    ("retrieves", "fetches", "obtains", "looks up"),
    ("get", "fetch", "obtain"),
    ("gets", "fetches", "obtains"),
    ("return", "give back", "produce"),
    ("returns", "gives back", "produces"),
    ("calculate", "compute", "work out"),
    ("calculates", "computes", "works out"),
    ("find", "locate", "search for"),
    ("finds", "locates", "searches for"),
    ("provide", "supply", "give"),
    ("provides", "supplies", "gives"),
    ("specified", "given", "requested"),
    ("specific", "particular", "given"),
    ("advanced", "extended", "enhanced"),
    ("comprehensive", "thorough", "complete"),
    ("tool", "utility", "function"),
    ("information", "details", "data"),
    ("default", "fallback", "standard"),
    ("defaults", "falls back", "is by default"),
    ("optional", "not required", "can be omitted"),
    ("number", "count", "amount"),
    ("list", "collection", "sequence"),
    ("name", "label", "identifier"),
    ("whether", "if", "flag for whether"),
    ("user", "person", "account holder"),
    ("create", "make", "set up"),
    ("creates", "makes", "sets up"),
    ("update", "modify", "change"),
    ("delete", "remove", "erase"),
    ("search", "query", "look up"),
    ("convert", "transform", "translate"),
    ("extract", "pull out", "take"),
    ("extracts", "pulls out", "takes"),
    ("format", "layout", "shape"),
    ("type", "kind", "category"),
]
_SYN = {w: alts for row in SYNONYMS for w, alts in [(row[0], row[1:])]}
_WORD = re.compile(r"[A-Za-z]+")

# Distractor tools: plausible, generic, and unrelated to any benchmark's answers.
DISTRACTORS = [
    ("send_email", "Send an email message to a recipient.", {"to": ("string", "Recipient address."), "subject": ("string", "Subject line."), "body": ("string", "Message text.")}, ["to", "body"]),
    ("get_weather_forecast", "Get the weather forecast for a city.", {"city": ("string", "City name."), "days": ("integer", "Number of days ahead.")}, ["city"]),
    ("translate_text", "Translate text into another language.", {"text": ("string", "Text to translate."), "target_language": ("string", "ISO code of the target language.")}, ["text", "target_language"]),
    ("convert_currency", "Convert an amount between two currencies.", {"amount": ("number", "Amount to convert."), "from_currency": ("string", "Source currency code."), "to_currency": ("string", "Target currency code.")}, ["amount", "from_currency", "to_currency"]),
    ("search_web", "Search the web and list matching pages.", {"query": ("string", "Search terms."), "max_results": ("integer", "How many results to list.")}, ["query"]),
    ("create_calendar_event", "Create an event in the user's calendar.", {"title": ("string", "Event title."), "start_time": ("string", "Start, ISO 8601."), "duration_minutes": ("integer", "Length in minutes.")}, ["title", "start_time"]),
    ("get_stock_quote", "Get the latest quote of a stock ticker.", {"symbol": ("string", "Ticker symbol.")}, ["symbol"]),
    ("shorten_url", "Shorten a long URL.", {"url": ("string", "The URL to shorten.")}, ["url"]),
    ("set_reminder", "Set a reminder for later.", {"message": ("string", "What to remind about."), "minutes_from_now": ("integer", "Delay in minutes.")}, ["message", "minutes_from_now"]),
    ("get_news_headlines", "List current news headlines for a topic.", {"topic": ("string", "Topic or keyword."), "country": ("string", "Country code.")}, ["topic"]),
    ("compute_route", "Compute a travel route between two places.", {"origin": ("string", "Start location."), "destination": ("string", "End location."), "mode": ("string", "driving, walking or transit.")}, ["origin", "destination"]),
    ("lookup_definition", "Look up the dictionary definition of a word.", {"word": ("string", "The word."), "language": ("string", "Language code.")}, ["word"]),
]


def _opaque(rng: random.Random) -> str:
    return rng.choice(string.ascii_lowercase) + "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(rng.randint(7, 11)))


def _typo(rng: random.Random, name: str) -> str:
    """Misspell ``name``: one or two edits (swap, drop, double, replace) in its alphabetic characters."""
    chars = list(name)
    for _ in range(rng.randint(1, 2)):
        letters = [i for i, c in enumerate(chars) if c.isalpha()]
        if len(letters) < 2:
            chars.append(rng.choice(string.ascii_lowercase))
            continue
        i = rng.choice(letters[:-1])
        op = rng.choice(("swap", "drop", "double", "replace"))
        if op == "swap" and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op == "drop":
            del chars[i]
        elif op == "double":
            chars.insert(i, chars[i])
        else:
            chars[i] = rng.choice([c for c in string.ascii_lowercase if c != chars[i].lower()])
    return "".join(chars)


class PerturbedEnv(EnvWrapper):
    """Shows disguised tools; maps calls on them back to the real ones."""

    def __init__(self, inner: ToolEnv, options: dict[str, Any] | PerturbOptions, _tables: dict | None = None):
        super().__init__(inner)
        self.options = options if isinstance(options, PerturbOptions) else PerturbOptions.parse(options)
        # real tool -> (surface name, {real param: surface param}, perturbed schema); filled lazily per tool
        self._tables: dict[str, Any] = _tables if _tables is not None else {"tools": {}, "taken": set(), "distractors": None}

    # -------------------------------------------------------------------------------------- disguises
    def _rng(self, *parts: str) -> random.Random:
        return random.Random("|".join((str(self.options.seed), *parts)))

    def _fresh_name(self, real: str, rng: random.Random) -> str:
        taken = self._tables["taken"]
        for _ in range(100):
            cand = _opaque(rng) if self.options.name_style == "random" else _typo(rng, real)
            if cand != real and cand not in taken and cand.isidentifier():
                taken.add(cand)
                return cand
        raise RuntimeError(f"could not find an unused name for {real!r}")

    def _disguise(self, tool: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
        fn = tool["function"]
        real = fn["name"]
        cached = self._tables["tools"].get(real)
        if cached is not None:
            return cached
        opts = self.options
        surface = self._fresh_name(real, self._rng("tool", real)) if opts.rename_tools else real
        if not opts.rename_tools:
            self._tables["taken"].add(real)
        params = copy.deepcopy(fn.get("parameters") or {"type": "object", "properties": {}})
        props = params.get("properties") or {}
        pmap: dict[str, str] = {}
        if opts.rename_params and props:
            used: set[str] = set()
            for p in props:
                rng = self._rng("param", real, p)
                for _ in range(100):
                    cand = _opaque(rng)[:8] if opts.name_style == "random" else _typo(rng, p)
                    if cand not in used and cand not in props and cand.isidentifier():
                        break
                used.add(cand)
                pmap[p] = cand
            params["properties"] = {pmap[p]: self._describe_param(v, real, p) for p, v in props.items()}
            if isinstance(params.get("required"), list):
                params["required"] = [pmap.get(r, r) for r in params["required"]]
        else:
            params["properties"] = {p: self._describe_param(v, real, p) for p, v in props.items()}
        schema = {"type": "function", "function": {**fn, "name": surface, "description": self._reword(fn.get("description", ""), real), "parameters": params}}
        out = (surface, pmap, schema)
        self._tables["tools"][real] = out
        return out

    def _describe_param(self, prop: Any, tool: str, param: str) -> Any:
        if not isinstance(prop, dict) or "description" not in prop:
            return prop
        return {**prop, "description": self._reword(prop["description"], tool, param)}

    def _reword(self, text: str, *where: str) -> str:
        mode = self.options.descriptions
        if mode == "keep" or not isinstance(text, str):
            return text
        if mode == "drop":
            return ""
        rng = self._rng("desc", *where)
        if mode == "shuffle":
            sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
            rng.shuffle(sentences)
            return " ".join(sentences)

        def swap(m: re.Match) -> str:
            w = m.group(0)
            alts = _SYN.get(w.lower())
            if not alts:
                return w
            alt = rng.choice(alts)
            return alt[0].upper() + alt[1:] if w[0].isupper() else alt

        return _WORD.sub(swap, text)

    def _distractors(self) -> dict[str, dict[str, Any]]:
        """surface name -> schema of the distractor tools (fixed per seed)."""
        if self._tables["distractors"] is None:
            rng = self._rng("distractors")
            real_names = set(self.inner.tool_names())
            picked = [d for d in rng.sample(DISTRACTORS, len(DISTRACTORS)) if d[0] not in real_names][: self.options.distractors]
            out = {}
            for name, desc, props, required in picked:
                surface = self._fresh_name(name, self._rng("distractor", name)) if self.options.rename_tools else name
                schema = {"type": "object", "properties": {p: {"type": t, "description": d} for p, (t, d) in props.items()}, "required": required}
                out[surface] = {"type": "function", "function": {"name": surface, "description": self._reword(desc, "distractor", name), "parameters": schema}}
            self._tables["distractors"] = out
        return self._tables["distractors"]

    # ------------------------------------------------------------------------------------------ API
    def tools(self) -> list[dict[str, Any]]:
        shown = [self._disguise(t)[2] for t in self.inner.tools()] + list(self._distractors().values())
        if self.options.shuffle_tools:
            shown.sort(key=lambda t: t["function"]["name"])
            self._rng("order", str(len(shown))).shuffle(shown)
        return shown

    def mapping(self) -> dict[str, Any]:
        """The disguise of every tool visible now: {surface tool: {"tool": real, "params": {surface: real}}}."""
        out = {}
        for t in self.inner.tools():
            surface, pmap, _ = self._disguise(t)
            out[surface] = {"tool": t["function"]["name"], "params": {s: r for r, s in pmap.items()}}
        for surface in self._distractors():
            out[surface] = {"tool": None, "params": {}}
        return out

    def _real(self, surface: str) -> tuple[str, dict[str, str]] | None:
        for t in self.inner.tools():
            s, pmap, _ = self._disguise(t)
            if s == surface:
                return t["function"]["name"], pmap
        return None

    def canonical(self, name: str, arguments: dict[str, Any] | str) -> tuple[str, dict[str, Any] | str]:
        found = self._real(name)
        if found is None:
            return name, arguments
        real, pmap = found
        args, err = decode_arguments(name, arguments)
        if err is not None:
            return self.inner.canonical(real, arguments)
        back = {s: r for r, s in pmap.items()}
        return self.inner.canonical(real, {back.get(k, k): v for k, v in args.items()})

    async def call(self, name: str, arguments: dict[str, Any] | str) -> Observation:
        started = time.perf_counter()
        found = self._real(name)
        if found is None:
            distractor = self._distractors().get(name)
            if distractor is None and name in self.callable_names():  # an unlisted tool: never disguised
                return self._finish(await self.inner.call(name, arguments), started)
            if distractor is None:
                return self._finish(unknown_tool(name, [t["function"]["name"] for t in self.tools()]), started)
            return self._finish(await self._call_distractor(distractor, arguments), started)
        real, pmap = found
        args, err = decode_arguments(name, arguments)
        if err is not None:
            return self._finish(err, started)
        back = {s: r for r, s in pmap.items()}
        obs = await self.inner.call(real, {back.get(k, k): v for k, v in args.items()})
        if not obs.ok and obs.error_kind in ("schema", "bad_arguments", "unknown_tool"):
            obs = Observation(obs.ok, self._disguise_text(obs.text, real, pmap, name), obs.error_kind, obs.latency_s)
        return self._finish(obs, started)

    def _disguise_text(self, text: str, real: str, pmap: dict[str, str], surface: str) -> str:
        """Environment-written errors name real tools and parameters; show the model the names it saw."""
        names = {real: surface, **pmap}
        for r in sorted(names, key=len, reverse=True):
            if r != names[r]:
                text = re.sub(rf"(?<![\w]){re.escape(r)}(?![\w])", names[r], text)
        return text

    async def _call_distractor(self, schema: dict[str, Any], arguments: Any) -> Observation:
        from .schema_env import SchemaEnv

        checker = SchemaEnv({"kind": "schema", "tools": [schema]})
        obs = await checker.call(schema["function"]["name"], arguments)
        if not obs.ok:
            return obs
        return Observation(True, json.dumps({"results": []}))

    def fork(self) -> "PerturbedEnv":
        twin = PerturbedEnv(self.inner.fork(), self.options, _tables=self._tables)
        twin.turn = self.turn
        return twin
