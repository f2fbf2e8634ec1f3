"""ToyWorld: a procedurally generated world of unfamiliar tools, sized for the tiny CPU model (docs/toyworld.md).

A *world* (one integer seed) has two disjoint tool catalogues, ``train`` and ``test``: tool names and parameter
names come from disjoint halves of a word pool, and every tool draws its own behaviour (operation, output label,
lookup table, the stale name its documentation uses). A *task* asks one question whose answer only a tool call
gives ("What is the code of "open"?"), at a difficulty level:

* level 1: one tool, documented correctly;
* level 2: one tool whose documentation names one parameter wrongly (a stale name): a call written from the
  schema fails, and the error's usage line gives the real names;
* level 3: two or three tools with the same signature and vague descriptions (and stale names): only calling
  them shows which one computes what the question asks.

Tasks become :class:`~verl_toolmaster.data.task.Task` records (env kind ``toyworld``, data source ``toyworld``), RL
rows (``rl_row``) and SFT rows in two flavours: ``direct`` (the gold call, no trial: :mod:`.sft`'s plain writer)
and ``trial`` (a probe, its correction, the answer, played through the real agent loop by a synthesis teacher).

``python -m verl_toolmaster.data.toyworld --out DIR`` writes everything; ``--help`` lists the options. The
adapter (``prepare.py --dataset toyworld --input DIR/tasks_test.jsonl``) reads the task files it writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..envs.toyworld import INTEGER, OPS, STRING, parse_impl
from .base import Adapter, RawRecord, files_in, iter_jsonl, register_adapter, require_keys
from .schemas import function_tool
from .task import Task

SOURCE = "toyworld"
SPLITS = ("train", "test")
LEVELS = (1, 2, 3)
# "shared": both catalogues build names from all NAME_WORDS, every tool name (word pair) belongs to one catalogue
# only; "disjoint": each catalogue has its own half of the words. With "disjoint", a held-out name is made of tokens
# that never were an SFT target, and a small model learns not to write them (docs/toyworld.md, the experiment).
VOCABULARIES = ("shared", "disjoint")

# Word pools. Every word is one token of the tiny tokenizer (verl_toolmaster.tiny) both bare and after a space,
# so a name costs one token wherever it appears (tests/toyworld checks this). NAME_WORDS name tools and
# parameters; a world either shares them between its train and test catalogues (tool names, i.e. word pairs,
# are then split between the catalogues) or splits the words themselves into disjoint halves (VOCABULARIES). VALUE_WORDS are task inputs and lookup
# contents, ATTRIBUTES the properties lookup tools return; both are shared by the splits (data, not tools).
NAME_WORDS = tuple(
    """heart stock health symptom family doctor location letter title period patient meeting book foo members sports
    march father john items child price person movie team author member blood band channel page director genre agenda
    month pressure johnson figure birth kick rate russell sibling reminder parent spouse license bar link artist april
    mother country role plants place golf media players game emily alphabet baron age emergency space bank balance
    city origin tour player alarm calendar gold hop repo college league king index husband peter house climate lee
    course scene asthma aid body amazon news daughter tree york susan herman smith western eastern latin saint chiang
    yang adele agnew moby nba amurri brienne morpheus alexandra vassar sarandon ampthill xingmi hsiao cyr ren lax dick
    breath infection pneumonia airways fatigue treatment biography literary cultural public october image film books
    comics summary section apache rugby drivers points marks celsius syndrome tournid""".split()
)
VALUE_WORDS = tuple(
    """free open left right down live old new best basic single exact great lower upper binary decimal special strict
    common complex narrow standard different various middle second last full empty valid""".split()
)
ATTRIBUTES = ("code", "score", "status", "level", "mode", "category")

# Questions per operation; {0}, {1} are the arguments in parameter order, {label} the tool's output label. Every
# question names the label, so the result a probe shows ({"sum": 7}) can be matched to what is asked.
QUESTIONS = {
    "add": "What is the sum of {0} and {1}?",
    "multiply": "What is the product of {0} and {1}?",
    "subtract": "What is the difference of {0} and {1}?",
    "join": "What is {0} joined with {1}?",
    "repeat": "What is {0} repeated {1} times?",
    "lookup": "What is the {label} of {0}?",
}
# Accurate descriptions (levels 1-2) and vague ones by signature (level 3).
DESCRIPTIONS = {
    "add": "Returns the sum of two integers.",
    "multiply": "Returns the product of two integers.",
    "subtract": "Returns the difference of two integers.",
    "join": "Joins two words.",
    "repeat": "Repeats a word.",
    "lookup": "Returns the {label} of an item.",
}
VAGUE = {(INTEGER, INTEGER): "Takes two integers.", (STRING, STRING): "Takes two words.", (STRING, INTEGER): "Takes a word and a count.", (STRING,): "Takes a word."}

# Short system texts (the protocol's default ones cost ~300 tokens of the tiny tokenizer). Both arms are told the
# same fact about the world; only the protocol differs.
SYSTEM_TRIAL = (
    "Tool docs may be wrong. Start each reply with one tag: <trial>note</trial> and tool calls to probe tools, "
    "<execute>note</execute> and tool calls to do the task, or <answer>result</answer> to finish. Trials come first."
)
SYSTEM_DIRECT = "Tool docs may be wrong. Call tools to do the task; if a call fails, read the error and retry. Finish with <answer>result</answer>."


def system_text(trial_mode: str) -> str:
    """The ToyWorld system prompt for ``trial_mode`` ("on": trial-and-execution, "off": direct execution)."""
    if trial_mode not in ("on", "off"):
        raise ValueError(f"trial_mode must be 'on' or 'off', got {trial_mode!r}")
    return SYSTEM_TRIAL if trial_mode == "on" else SYSTEM_DIRECT


@dataclass(frozen=True)
class WorldConfig:
    """Size and difficulty mix of a generated world."""

    seed: int = 0  # everything is a function of this seed
    tools_per_split: int = 512  # tools in each catalogue (train, test); at least one per operation
    train_tasks: int = 512  # tasks over the train catalogue
    test_tasks: int = 120  # tasks over the test catalogue
    levels: tuple[int, ...] = (1, 2)  # difficulty levels drawn uniformly per task
    max_int: int = 9  # integer arguments are drawn from 1..max_int (results stay small: few tokens)
    table_size: int = 4  # entries per lookup table
    vocabulary: str = "shared"  # name words: "shared" by the catalogues (names split) or "disjoint" halves

    def __post_init__(self) -> None:
        if not self.levels or any(lv not in LEVELS for lv in self.levels):
            raise ValueError(f"levels must be a non-empty subset of {LEVELS}, got {self.levels}")
        if self.tools_per_split < len(OPS):
            raise ValueError(f"tools_per_split must be at least {len(OPS)} (one per operation), got {self.tools_per_split}")
        if self.vocabulary not in VOCABULARIES:
            raise ValueError(f"vocabulary must be one of {VOCABULARIES}, got {self.vocabulary!r}")
        limit = max_tools(self.vocabulary)
        if self.tools_per_split > limit:
            raise ValueError(f"tools_per_split must be at most {limit} with the {self.vocabulary} vocabulary (tool names join two name words)")
        if self.train_tasks < 0 or self.test_tasks < 0:
            raise ValueError("task counts must be >= 0")
        if not 2 <= self.max_int <= 99:
            raise ValueError(f"max_int must be in 2..99, got {self.max_int}")
        if not 2 <= self.table_size <= len(VALUE_WORDS):
            raise ValueError(f"table_size must be in 2..{len(VALUE_WORDS)}, got {self.table_size}")


@dataclass
class ToyTool:
    """One tool of a catalogue: its truth (op, params, label, table) and its stale documentation."""

    name: str  # tool name
    op: str  # key of verl_toolmaster.envs.toyworld.OPS
    params: list[list[str]]  # true [name, type] pairs, in order
    stale: dict[str, str]  # true parameter name -> the wrong name documentation of level >= 2 shows
    label: str  # output label
    table: dict[str, str] | None = None  # lookup table (op "lookup")

    def impl(self) -> dict[str, Any]:
        """The env spec's ``impl`` entry."""
        out: dict[str, Any] = {"op": self.op, "params": self.params, "label": self.label}
        if self.table is not None:
            out["table"] = self.table
        return out

    def schema(self, level: int) -> dict[str, Any]:
        """The OpenAI schema shown at ``level``: stale names from level 2, a vague description at level 3."""
        props = {}
        for name, kind in self.params:
            shown = self.stale.get(name, name) if level >= 2 else name
            props[shown] = {"type": kind}
        if level >= 3:
            desc = VAGUE[tuple(k for _, k in self.params)]
        else:
            desc = DESCRIPTIONS[self.op].format(label=self.label)
        return function_tool(self.name, desc, {"type": "object", "properties": props, "required": list(props)})

    def documented_arguments(self, arguments: dict[str, Any], level: int) -> dict[str, Any]:
        """``arguments`` (true names) as a reader of the level's schema writes them."""
        return {(self.stale.get(k, k) if level >= 2 else k): v for k, v in arguments.items()}


@dataclass
class World:
    """Both catalogues of one seed."""

    seed: int
    catalogues: dict[str, list[ToyTool]]  # split -> tools
    vocabulary: str = "shared"  # see VOCABULARIES

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "vocabulary": self.vocabulary,
                "catalogues": {s: [asdict(t) for t in tools] for s, tools in self.catalogues.items()}}


def name_pools(seed: int, vocabulary: str = "shared") -> dict[str, list[str]]:
    """The name words of the train and test catalogues of world ``seed``: all of them for both ("shared") or
    disjoint halves ("disjoint")."""
    words = sorted(NAME_WORDS)
    if vocabulary == "shared":
        return {"train": list(words), "test": list(words)}
    if vocabulary != "disjoint":
        raise ValueError(f"vocabulary must be one of {VOCABULARIES}, got {vocabulary!r}")
    random.Random(f"toyworld:{seed}:pools").shuffle(words)
    half = len(words) // 2
    return {"train": words[:half], "test": words[half:]}


def name_split(seed: int, name: str) -> str:
    """The catalogue that owns tool name ``name`` in world ``seed`` with the shared vocabulary (a fixed coin per name)."""
    return SPLITS[hashlib.sha256(f"toyworld:{seed}:name:{name}".encode()).digest()[0] % 2]


def max_tools(vocabulary: str) -> int:
    """How many tools one catalogue can name (two different words per name)."""
    if vocabulary == "shared":
        return len(NAME_WORDS) * (len(NAME_WORDS) - 1) // 3  # half the ordered pairs, with room for the coin's luck
    half = len(NAME_WORDS) // 2
    return half * (half - 1) // 2


def build_catalogue(seed: int, split: str, n_tools: int, table_size: int = 4, vocabulary: str = "shared") -> list[ToyTool]:
    """``n_tools`` tools for ``split`` of world ``seed``: every operation at least once, names from the split's pool.

    Tool names join two pool words (``heart_stock``: unique within the catalogue, and with the shared vocabulary
    owned by this catalogue only, see ``name_split``); parameter and stale names are
    single pool words, drawn anew for every tool. With many more tools than pool words, no name says anything
    about a tool: a model can only learn to read (and, when the docs are stale, probe) each task's own tools.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"toyworld:{seed}:{split}:catalogue")
    pool = list(name_pools(seed, vocabulary)[split])
    ops = list(OPS)
    rng.shuffle(ops)
    ops = (ops * (n_tools // len(ops) + 1))[:n_tools]
    rng.shuffle(ops)
    tools: list[ToyTool] = []
    names_used: set[str] = set()
    for op in ops:
        while True:
            words = rng.sample(pool, 2)
            name = "_".join(words)
            if name not in names_used and (vocabulary == "disjoint" or name_split(seed, name) == split):
                names_used.add(name)
                break
        types = OPS[op].types
        params, stale = _parameter_names(rng, [w for w in pool if w not in words], types)
        label = OPS[op].label or rng.choice(ATTRIBUTES)
        table = None
        if op == "lookup":
            keys = rng.sample(VALUE_WORDS, table_size)
            table = {k: rng.choice(VALUE_WORDS) for k in keys}
        tools.append(ToyTool(name, op, params, stale, label, table))
    return tools


def _parameter_names(rng: random.Random, pool: list[str], types: tuple[str, ...]) -> tuple[list[list[str]], dict[str, str]]:
    """True parameter names and one stale documented name, both in alphabetical order.

    RL rows store the env spec with sorted keys (``rl_row``), so a schema's properties reach the model sorted; the
    names are chosen so that sorting keeps the true parameter order (the order the question lists the values in)
    for the real names and for the documented ones alike.
    """
    while True:
        names = sorted(rng.sample(pool, len(types)))
        i = rng.randrange(len(names))
        wrong = rng.choice([w for w in pool if w not in names])
        documented = names[:i] + [wrong] + names[i + 1 :]
        if documented == sorted(documented):
            return [[n, t] for n, t in zip(names, types)], {names[i]: wrong}


def build_world(seed: int, tools_per_split: int = 512, table_size: int = 4, vocabulary: str = "shared") -> World:
    return World(seed, {s: build_catalogue(seed, s, tools_per_split, table_size, vocabulary) for s in SPLITS}, vocabulary)


def _draw_arguments(tool: ToyTool, rng: random.Random, max_int: int) -> dict[str, Any]:
    values: list[Any] = []
    if tool.op == "lookup":
        values = [rng.choice(sorted(tool.table or {}))]
    elif tool.op == "repeat":
        values = [rng.choice(VALUE_WORDS), rng.randint(2, 3)]
    elif tool.op == "join":
        values = rng.sample(VALUE_WORDS, 2)
    else:
        a, b = rng.randint(1, max_int), rng.randint(1, max_int)
        values = [max(a, b), min(a, b)] if tool.op == "subtract" else [a, b]  # results never negative
    return {name: v for (name, _), v in zip(tool.params, values)}


def _question(tool: ToyTool, arguments: dict[str, Any]) -> str:
    shown = [json.dumps(v) if isinstance(v, str) else str(v) for v in arguments.values()]  # words in quotes: same tokens as in calls
    return QUESTIONS[tool.op].format(*shown, label=tool.label)


def make_task(world: World, split: str, index: int, level: int, max_int: int = 9) -> Task:
    """Task ``index`` of ``split`` at ``level`` (deterministic in the world seed, split, index and level)."""
    catalogue = world.catalogues[split]
    rng = random.Random(f"toyworld:{world.seed}:{split}:task:{index}:{level}")
    target = rng.choice(catalogue)
    tools = [target]
    if level >= 3:
        # tools with the same signature and another output label: arithmetic ops among themselves, lookups of
        # other attributes (join and repeat have no such sibling: those tasks fall back to level 2)
        same = [t for t in catalogue if t is not target and OPS[t.op].types == OPS[target.op].types and t.label != target.label]
        if not same:
            level = 2
        else:
            by_label: dict[str, list[ToyTool]] = {}
            for t in same:
                by_label.setdefault(t.label, []).append(t)
            labels = rng.sample(sorted(by_label), min(len(by_label), rng.randint(1, 2)))
            tools += [rng.choice(by_label[lb]) for lb in labels]  # every tool of the task has its own output label
            rng.shuffle(tools)
    arguments = _draw_arguments(target, rng, max_int)
    impl = parse_impl(target.name, target.impl(), f"toyworld task {index}")
    answer = impl.run(list(arguments.values()))
    env = {"kind": "toyworld", "tools": [t.schema(level) for t in tools], "impl": {t.name: t.impl() for t in tools}}
    # the key order RL rows store (rl_row sorts keys): SFT rows then render the tools exactly as rollouts do
    env = json.loads(json.dumps(env, sort_keys=True))
    return Task(
        id=f"toyworld-s{world.seed}-{split}-{index:05d}",
        source=SOURCE,
        query=_question(target, arguments),
        env=env,
        ground_truth={"answer": str(answer), "level": level, "op": target.op},
        gold=[[[{"name": target.name, "arguments": arguments}]]],
        gold_answers=[str(answer)],
        split=split,
        tags={"level": level, "op": target.op, "tool": target.name, "world_seed": world.seed, "n_tools": len(tools)},
    )


def make_tasks(world: World, split: str, n: int, levels: tuple[int, ...], max_int: int = 9) -> list[Task]:
    """``n`` tasks of ``split``, levels cycling through ``levels`` (so every level gets an equal share)."""
    return [make_task(world, split, i, levels[i % len(levels)], max_int) for i in range(n)]


def tool_vocabulary(tasks: list[Task]) -> set[str]:
    """Every tool and parameter name (true and documented) the tasks use."""
    out: set[str] = set()
    for t in tasks:
        for name, impl in t.env["impl"].items():
            out.add(name)
            out.update(p for p, _ in impl["params"])
        for schema in t.env["tools"]:
            out.update(schema["function"]["parameters"]["properties"])
    return out


# ---------------------------------------------------------------------------------------------- adapter


@register_adapter("toyworld")
class ToyWorldAdapter(Adapter):
    """Reads the task files the generator writes (``tasks_<split>.jsonl``: one Task record per line)."""

    def records(self, path: Path | None) -> Iterator[RawRecord]:
        assert path is not None
        for f in files_in(path, ("tasks_*.jsonl",), "ToyWorld tasks_*.jsonl"):
            yield from iter_jsonl(f)

    def convert(self, record: RawRecord) -> Task:
        d = require_keys(record, ("id", "source", "query", "env", "ground_truth", "gold", "gold_answers"))
        if d["source"] != SOURCE:
            raise record.invalid("bad_source", f"source must be {SOURCE!r}, got {d['source']!r}")
        env = d["env"]
        if not isinstance(env, dict) or env.get("kind") != "toyworld":
            raise record.invalid("bad_env", "env must be a toyworld spec ({'kind': 'toyworld', 'tools': [...], 'impl': {...}})")
        try:
            from ..envs.toyworld import ToyWorldEnv

            ToyWorldEnv(env)
        except ValueError as e:
            raise record.invalid("bad_env", str(e)) from None
        gt = d["ground_truth"]
        if not isinstance(gt, dict) or not isinstance(gt.get("answer"), str):
            raise record.invalid("bad_ground_truth", "ground_truth must be an object with an 'answer' string")
        try:
            return Task.from_dict(d)
        except TypeError as e:
            raise record.invalid("bad_field", str(e)) from None


# ---------------------------------------------------------------------------------------------- trial teacher


@dataclass
class ProbeTeacher:
    """A synthesis teacher (``verl_toolmaster.synth.driver.Teacher``) for ToyWorld's trial flavour.

    It acts like a careful newcomer: one ``<trial>`` per tool of the task calls it as its schema documents it (the
    question's values under the documented names), the ``<execute>`` makes the gold call, which at level >= 2
    corrects the documented names with the usage line of the probe's error, and ``<answer>`` gives the result the
    execution returned. Reasoning texts are a few fixed words, so the tiny model spends its capacity on the calls.
    ``expected`` lists the planned outcome of every call, checked against what the environment really returned.
    """

    row: dict[str, Any]  # the RL row
    expected: list[dict[str, Any]] = field(default_factory=list)  # planned (phase, turn, name, ok) of every call
    _step: int = 0

    def __post_init__(self) -> None:
        info = self.row["extra_info"]
        self.spec = json.loads(info["env"])
        gold = json.loads(info["gold"])
        self.call = gold[0][0][0]
        self.answer = json.loads(info["gold_answers"])[0]
        self.level = int(json.loads(info["tags"])["level"])

    def _documented(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        schema = next(t for t in self.spec["tools"] if t["function"]["name"] == name)
        shown = list(schema["function"]["parameters"]["required"])  # documented names in parameter order
        return dict(zip(shown, arguments.values()))

    async def reply(self, request: Any) -> Any:
        from verl_toolmaster.protocol.render import turn_text
        from verl_toolmaster.synth.driver import Reply

        step, self._step = self._step, self._step + 1
        name, args = self.call["name"], self.call["arguments"]
        tools = [t["function"]["name"] for t in self.spec["tools"]]
        if step < len(tools):
            # one probe per trial turn: verl's multi-turn SFT dataset tokenizes consecutive tool messages one by one,
            # which does not reproduce the chat template's grouping of parallel results
            probe = {"name": tools[step], "arguments": self._documented(tools[step], args)}
            ok = probe["name"] == name and probe["arguments"] == args
            self.expected.append({"phase": "trial", "turn": 0, "name": probe["name"], "ok": ok or self._accepts(probe)})
            return Reply(turn_text("trial", "Probe the tool as documented.", [probe]))
        if step == len(tools):
            self.expected.append({"phase": "execute", "turn": 0, "name": name, "ok": True})
            probe_ok = next(e["ok"] for e in self.expected if e["phase"] == "trial" and e["name"] == name)
            note = "The probe worked; run it." if probe_ok else "Fix the call with the usage from the error."
            return Reply(turn_text("execute", note, [self.call]))
        if step == len(tools) + 1:
            return Reply(turn_text("answer", self.answer))
        raise RuntimeError(f"{self.row['extra_info']['task_id']}: the loop asked for a turn after the answer")

    def _accepts(self, call: dict[str, Any]) -> bool:
        """Whether a tool accepts a probe (a distractor with correct documentation and a matching signature does)."""
        impl = self.spec["impl"][call["name"]]
        return list(call["arguments"]) == [p for p, _ in impl["params"]] and not (impl["op"] == "lookup" and list(call["arguments"].values())[0] not in impl["table"])


async def _trial_rows(rows: list[dict[str, Any]], concurrency: int, progress: bool, err: TextIO) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Trial-flavour SFT rows: every RL row played by :class:`ProbeTeacher` through the real agent loop (trial_mode
    on) and kept only when the synthesis quality checks pass (answer scored correct by the ``toyworld`` scorer, a
    trial, the planned call outcomes, protocol round trip). Returns the rows and the drop counts by reason."""
    from verl_toolmaster.synth.driver import LoopSettings, compose_trainer_config, load_tokenizer, run_episode
    from verl_toolmaster.synth.quality import Rejected, Requirements, check, sft_row
    from verl_toolmaster.synth.runner import DROPPED, KEPT, Outcome, WorkItem, run_items, trajectory_stats

    tokenizer, model_type = load_tokenizer(None)
    cfg = compose_trainer_config(None, [], 4096, 1024)  # the loop's defaults: trial_mode on
    settings = LoopSettings(cfg, tokenizer, model_type)

    async def episode(item: WorkItem) -> Outcome:
        teacher = ProbeTeacher(item.row)
        result = await run_episode(item.row, teacher, settings)
        stale = teacher.level >= 2
        req = Requirements(trial=True, failed_probe=stale, expected_calls=teacher.expected)
        try:
            await check(item.row, result, req)
        except Rejected as e:
            return Outcome(item.key, DROPPED, e.reason, e.detail)
        return Outcome(item.key, KEPT, sft=sft_row(item.row, result, "toyworld-probe", 0), stats=trajectory_stats(result.record))

    items = [WorkItem(key=str(r["extra_info"]["task_id"]), order=i, row=r) for i, r in enumerate(rows)]
    outcomes, _ = await run_items(items, episode, concurrency=concurrency, progress=progress, desc="toyworld trial sft", err=err)
    dropped: dict[str, int] = {}
    for o in outcomes:
        if o.status != KEPT:
            dropped[o.reason or "unknown"] = dropped.get(o.reason or "unknown", 0) + 1
    return [o.sft for o in outcomes if o.status == KEPT and o.sft is not None], dropped


# ---------------------------------------------------------------------------------------------- generator CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m verl_toolmaster.data.toyworld",
        description="Generate a ToyWorld (unfamiliar tools with partly wrong docs): task files, RL parquet for both "
        "protocols, and SFT parquet in the direct and trial-and-execution flavours. Details: docs/toyworld.md.",
        epilog="Writes DIR/world.json, DIR/tasks_{train,test}.jsonl, DIR/{train,test}_{on,off}.parquet (RL rows with the "
        "trial / direct system text), DIR/sft_direct.parquet and DIR/sft_trial.parquet (train tasks only). The last stdout "
        "line is one JSON object of counts. Exit codes: 0 done, 2 bad options, 1 a gold trace failed in its environment.",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="world seed: names, behaviours and tasks (default 0)")
    p.add_argument("--tools", type=int, default=WorldConfig.tools_per_split, help="tools per catalogue (default %(default)s)")
    p.add_argument("--train-tasks", type=int, default=WorldConfig.train_tasks, help="tasks over the train tools (default %(default)s)")
    p.add_argument("--test-tasks", type=int, default=WorldConfig.test_tasks, help="tasks over the held-out test tools (default %(default)s)")
    p.add_argument("--levels", default="1,2", help="difficulty levels, comma-separated, from 1,2,3 (default 1,2)")
    p.add_argument("--vocabulary", choices=VOCABULARIES, default=WorldConfig.vocabulary,
                   help="name words shared by the train and test catalogues, tool names split between them (default), or "
                   "disjoint word halves per catalogue")
    p.add_argument("--max-int", type=int, default=WorldConfig.max_int, help="integer arguments are drawn from 1..N (default %(default)s)")
    p.add_argument("--trial-teacher", choices=("probe", "scripted"), default="probe",
                   help="teacher of the trial flavour: probe (default; ProbeTeacher: documented call as the probe, terse notes) or "
                   "scripted (the project's scripted teacher: a gold-derived failed probe and its correction, verbose notes)")
    p.add_argument("--no-sft", action="store_true", help="write task files and RL parquet only")
    p.add_argument("--concurrency", type=int, default=8, help="trajectories synthesised at once (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--levels must be comma-separated integers, got {text!r}") from None
    return levels


def write_tasks(tasks: list[Task], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for t in tasks:
            f.write(json.dumps(t.to_dict(), sort_keys=True) + "\n")


def direct_sft_rows(tasks: list[Task]) -> list[dict[str, Any]]:
    """Direct-flavour SFT rows: the gold call, its real observation, the answer (``data.sft``'s plain writer)."""
    from .sft import SFTUnavailable, replay_observations, sft_row

    rows = []
    for t in tasks:
        try:
            rows.append(sft_row(t, system_text("off"), replay_observations(t)))
        except SFTUnavailable as e:  # a gold call the environment rejects is a generator bug: never hidden
            raise RuntimeError(f"{t.id}: {e}") from None
    return rows


def _scripted_rows(rl_path: Path, out_path: Path, concurrency: int, progress: bool, out: TextIO, err: TextIO) -> dict[str, Any]:
    """Trial-flavour SFT with the project's scripted teacher (``python -m verl_toolmaster.synth scripted``)."""
    import io

    from verl_toolmaster.synth.cli import main as synth_main

    buf = io.StringIO()
    argv = ["scripted", "--data", str(rl_path), "--out", str(out_path), "--fix-in-trial", "0", "--execute-error", "0",
            "--concurrency", str(concurrency), "--prompt-length", "4096", "--response-length", "1024"]
    if not progress:
        argv.append("--no-progress")
    code = synth_main(argv, out=buf, err=err)
    text = buf.getvalue()
    out.write(text)
    if code != 0:
        raise RuntimeError(f"scripted synthesis failed with exit code {code}")
    return json.loads(text.strip().splitlines()[-1])


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> dict[str, Any]:
    import asyncio

    import verl_toolmaster.reward.scorers.toyworld  # noqa: F401  (registers the toyworld scorer for the quality checks)

    from .sft import write_rl_parquet, write_sft_parquet
    from .task import rl_row

    cfg = WorldConfig(args.seed, args.tools, args.train_tasks, args.test_tasks, _levels(args.levels), args.max_int,
                      vocabulary=args.vocabulary)
    world = build_world(cfg.seed, cfg.tools_per_split, cfg.table_size, cfg.vocabulary)
    outdir: Path = args.out
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "world.json").write_text(json.dumps({"config": asdict(cfg), **world.to_dict()}, indent=1))
    tasks = {"train": make_tasks(world, "train", cfg.train_tasks, cfg.levels, cfg.max_int), "test": make_tasks(world, "test", cfg.test_tasks, cfg.levels, cfg.max_int)}
    shared = ({t.name for t in world.catalogues["train"]} & {t.name for t in world.catalogues["test"]}
              if cfg.vocabulary == "shared" else tool_vocabulary(tasks["train"]) & tool_vocabulary(tasks["test"]))
    if shared:
        raise AssertionError(f"train and test tools share names {sorted(shared)}")
    summary: dict[str, Any] = {"seed": cfg.seed, "tasks": {s: len(v) for s, v in tasks.items()}}
    for split, part in tasks.items():
        write_tasks(part, outdir / f"tasks_{split}.jsonl")
        for mode in ("on", "off"):
            if part:
                write_rl_parquet([rl_row(t, i, system_text(mode)) for i, t in enumerate(part)], outdir / f"{split}_{mode}.parquet")
    if not args.no_sft and tasks["train"]:
        direct = direct_sft_rows(tasks["train"])
        write_sft_parquet(direct, outdir / "sft_direct.parquet")
        summary["sft_direct"] = len(direct)
        if args.trial_teacher == "probe":
            rl_rows = [rl_row(t, i, system_text("on")) for i, t in enumerate(tasks["train"])]
            trial, dropped = asyncio.run(_trial_rows(rl_rows, args.concurrency, not args.no_progress, err))
            if dropped:
                raise RuntimeError(f"the probe teacher's trajectories failed quality checks: {dropped}")
            write_sft_parquet(trial, outdir / "sft_trial.parquet")
            summary["sft_trial"] = len(trial)
        else:
            report = _scripted_rows(outdir / "train_on.parquet", outdir / "sft_trial.parquet", args.concurrency, not args.no_progress, out, err)
            summary["sft_trial"] = report["written"]
            summary["sft_trial_dropped"] = report["dropped"]
    return summary


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(args, out, err)
    except ValueError as e:
        print(f"error: {e}", file=err)
        return 2
    except RuntimeError as e:
        print(f"error: {e}", file=err)
        return 1
    print(json.dumps(summary, sort_keys=True), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
