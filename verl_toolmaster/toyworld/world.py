"""ToyWorld's world: a procedurally generated world of unfamiliar tools whose documentation may be wrong
(docs/toyworld.md).

A *world* (one integer seed) has two disjoint tool catalogues, ``train`` and ``test``: every tool draws its own name
and behaviour (operation, output label, lookup table, the stale name its documentation uses). A *task* asks one
question whose answer only a tool call gives ("What is the code of "open"?"), at a difficulty level:

* level 1: one tool, documented correctly;
* level 2: one tool whose documentation names one parameter wrongly (a stale name): a call written from the
  schema fails, and the error's usage line gives the real names;
* level 3: two or three tools with the same signature and vague descriptions (and stale names): only calling
  them shows which one computes what the question asks;
* level 4 (side effects): a ``deposit`` tool on the task's accounts whose documentation names the amount wrongly;
  like many JSON APIs it ignores an argument it does not take and a missing amount defaults to 1, so a call written
  from the docs *succeeds* and deposits 1 (the result echoes what was applied, under the real names). The deposit
  stays: only a further deposit of the difference repairs the balance;
* level 5 (silent misdocumentation): a ``transfer`` tool whose documentation swaps the roles of its two accounts, so
  a call written from the docs succeeds and moves the money the wrong way (the result says which account was
  debited); undoing it takes a transfer back.

Levels 4 and 5 are scored on the real final balances as well as the answer; trials run on a fork of the accounts.

Tasks are :class:`~verl_toolmaster.data.task.Task` records (env kind ``toyworld``, data source ``toyworld``); the
generator (:mod:`.generate`) turns them into RL and SFT rows.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data.schemas import function_tool
from ..data.task import Task
from ..data.toyworld import SOURCE
from ..envs.toyworld import INTEGER, OPS, STATEFUL_OPS, STRING, parse_impl

SPLITS = ("train", "test")
LEVELS = (1, 2, 3, 4, 5)
LEVEL_OPS = {4: "deposit", 5: "transfer"}  # the one op of each stateful level; levels 1-3 use the stateless ops
DEPOSIT_DEFAULT = 1  # what a level-4 deposit applies when the amount is missing (written under a stale name)
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
    "deposit": "Into {0}, deposit {1}. What is the balance of {0} now?",
    "transfer": "From {0} to {1}, move {2}. What is the balance of {1} now?",
}
# Accurate descriptions (levels 1-2) and vague ones by signature (level 3).
DESCRIPTIONS = {
    "add": "Returns the sum of two integers.",
    "multiply": "Returns the product of two integers.",
    "subtract": "Returns the difference of two integers.",
    "join": "Joins two words.",
    "repeat": "Repeats a word.",
    "lookup": "Returns the {label} of an item.",
    "deposit": "Adds an amount to the balance of an account.",
    "transfer": "Moves an amount from one account to another.",
}
# Level-5 parameter descriptions of a transfer tool, by true role; the documentation swaps the two accounts'.
ROLE_TEXT = ("the account the amount is taken from", "the account the amount goes to", "how much to move")
VAGUE = {(INTEGER, INTEGER): "Takes two integers.", (STRING, STRING): "Takes two words.", (STRING, INTEGER): "Takes a word and a count.", (STRING,): "Takes a word."}

# Short system texts (the protocol's default ones cost ~300 tokens of the tiny tokenizer). Both arms are told the
# same fact about the world; only the protocol differs.
# The hint is the same for every arm (the protocol sentences differ); what a call does to the accounts is kept.
HINT = "Tool docs may be wrong. Tool actions are kept. If a call fails or does not do what was asked, read the result and fix it."
SYSTEM_TRIAL = (
    HINT + " Start each reply with one tag: <trial>note</trial> and tool calls to probe tools on a scratch copy (not kept), "
    "<execute>note</execute> and tool calls to do the task, or <answer>result</answer> to finish. Trials come first."
)
SYSTEM_DIRECT = HINT + " Call tools to do the task. Finish with <answer>result</answer>."


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
    max_int: int = 9  # integer arguments (and level 4-5 amounts, from 2) are drawn from 1..max_int (few tokens)
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
        """The env spec's ``impl`` entry (a deposit ignores unknown arguments and defaults its amount, as level 4 says)."""
        out: dict[str, Any] = {"op": self.op, "params": self.params, "label": self.label}
        if self.table is not None:
            out["table"] = self.table
        if self.op == "deposit":
            out["defaults"] = {self.params[1][0]: DEPOSIT_DEFAULT}
            out["ignore_unknown"] = True
        return out

    def documented_params(self, level: int) -> list[str]:
        """Parameter names in the order the level's schema lists them (the order a reader fills the question's
        values into): stale names at levels 2-4; at level 5 a transfer's two accounts swapped."""
        names = [self.stale.get(n, n) if level in (2, 3, 4) else n for n, _ in self.params]
        if level == 5:
            names[0], names[1] = names[1], names[0]
        return names

    def schema(self, level: int) -> dict[str, Any]:
        """The OpenAI schema shown at ``level``: stale names at levels 2-4, a vague description at level 3, swapped
        account roles at level 5 (the only level whose parameters carry descriptions)."""
        props: dict[str, Any] = {}
        for i, shown in enumerate(self.documented_params(level)):
            props[shown] = {"type": self.params[i][1]}  # level 5 swaps the two accounts: both strings
            if level == 5:
                props[shown]["description"] = ROLE_TEXT[i]
        desc = VAGUE[tuple(k for _, k in self.params)] if level == 3 else DESCRIPTIONS[self.op].format(label=self.label)
        return function_tool(self.name, desc, {"type": "object", "properties": props, "required": list(props)})

    def documented_arguments(self, arguments: dict[str, Any], level: int) -> dict[str, Any]:
        """``arguments`` (true names, in parameter order) as a reader of the level's schema writes them."""
        return dict(zip(self.documented_params(level), arguments.values()))


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
        params, stale = _parameter_names(rng, [w for w in pool if w not in words], types, op)
        label = OPS[op].label or rng.choice(ATTRIBUTES)
        table = None
        if op == "lookup":
            keys = rng.sample(VALUE_WORDS, table_size)
            table = {k: rng.choice(VALUE_WORDS) for k in keys}
        tools.append(ToyTool(name, op, params, stale, label, table))
    return tools


def _parameter_names(rng: random.Random, pool: list[str], types: tuple[str, ...], op: str = "") -> tuple[list[list[str]], dict[str, str]]:
    """True parameter names and one stale documented name, both in alphabetical order.

    RL rows store the env spec with sorted keys (``rl_row``), so a schema's properties reach the model sorted; the
    names are chosen so that sorting keeps the true parameter order (the order the question lists the values in)
    for the real names and for the documented ones alike. A deposit's stale name is its amount's (level 4); a
    transfer's names sort with its two accounts swapped, the order its level-5 documentation lists them in.
    """
    while True:
        names = sorted(rng.sample(pool, len(types)))
        if op == "transfer":
            return [[names[1], types[0]], [names[0], types[1]], [names[2], types[2]]], {}
        i = len(names) - 1 if op == "deposit" else rng.randrange(len(names))
        wrong = rng.choice([w for w in pool if w not in names])
        documented = names[:i] + [wrong] + names[i + 1 :]
        if documented == sorted(documented):
            return [[n, t] for n, t in zip(names, types)], {names[i]: wrong}


def build_world(seed: int, tools_per_split: int = 512, table_size: int = 4, vocabulary: str = "shared") -> World:
    return World(seed, {s: build_catalogue(seed, s, tools_per_split, table_size, vocabulary) for s in SPLITS}, vocabulary)


def _draw_arguments(tool: ToyTool, rng: random.Random, max_int: int, accounts: list[str] | None = None) -> dict[str, Any]:
    values: list[Any] = []
    if tool.op == "deposit":
        values = [rng.choice(accounts or []), rng.randint(DEPOSIT_DEFAULT + 1, max(max_int, DEPOSIT_DEFAULT + 1))]
    elif tool.op == "transfer":
        values = [*rng.sample(accounts or [], 2), rng.randint(2, max(max_int, 2))]
    elif tool.op == "lookup":
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
    if level in LEVEL_OPS:
        target = rng.choice([t for t in catalogue if t.op == LEVEL_OPS[level]])
    else:
        target = rng.choice([t for t in catalogue if t.op not in STATEFUL_OPS])
    tools = [target]
    if level == 3:
        # tools with the same signature and another output label: arithmetic ops among themselves, lookups of
        # other attributes (join and repeat have no such sibling: those tasks fall back to level 2)
        same = [t for t in catalogue if t is not target and t.op not in STATEFUL_OPS and OPS[t.op].types == OPS[target.op].types
                and t.label != target.label]
        if not same:
            level = 2
        else:
            by_label: dict[str, list[ToyTool]] = {}
            for t in same:
                by_label.setdefault(t.label, []).append(t)
            labels = rng.sample(sorted(by_label), min(len(by_label), rng.randint(1, 2)))
            tools += [rng.choice(by_label[lb]) for lb in labels]  # every tool of the task has its own output label
            rng.shuffle(tools)
    accounts: dict[str, int] = {}
    if target.op in STATEFUL_OPS:  # three accounts with balances no wrong-way transfer can overdraw
        accounts = {w: rng.randint(10, 30) for w in rng.sample(VALUE_WORDS, 3)}
    arguments = _draw_arguments(target, rng, max_int, sorted(accounts))
    impl = parse_impl(target.name, target.impl(), f"toyworld task {index}")
    final: dict[str, int] | None = None
    if impl.stateful:
        final = dict(accounts)
        impl.act(final, dict(arguments))
        answer: Any = final[list(arguments.values())[-2]]  # the deposit's account / the transfer's target
    else:
        answer = impl.run(list(arguments.values()))
    env: dict[str, Any] = {"kind": "toyworld", "tools": [t.schema(level) for t in tools], "impl": {t.name: t.impl() for t in tools}}
    if accounts:
        env["accounts"] = accounts
    # the key order RL rows store (rl_row sorts keys): SFT rows then render the tools exactly as rollouts do
    env = json.loads(json.dumps(env, sort_keys=True))
    return Task(
        id=f"toyworld-s{world.seed}-{split}-{index:05d}",
        source=SOURCE,
        query=_question(target, arguments),
        env=env,
        ground_truth={"answer": str(answer), "level": level, "op": target.op, "tool": target.name,
                      **({"accounts": final} if final is not None else {})},
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




def write_tasks(tasks: list[Task], path: Path) -> None:
    """One Task record per line (what ``prepare.py --dataset toyworld`` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for t in tasks:
            f.write(json.dumps(t.to_dict(), sort_keys=True) + "\n")
