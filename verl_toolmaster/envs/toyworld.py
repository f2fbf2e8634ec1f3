"""Kind ``toyworld``: small deterministic tools whose documentation may be wrong (see docs/toyworld.md).

Spec payload::

    {"kind": "toyworld",
     "tools": [OpenAI function schemas as the model sees them (names of parameters possibly stale)],
     "impl": {tool_name: {"op": one of OPS, "params": [[name, "integer"|"string"], ...],
                          "label": output label, "table": {key: value} (lookup only)}}}

The schema is documentation; ``impl`` is the truth. A call is checked against the true parameters, and every
argument error ends with the tool's real usage line (``Usage: name {"a": "integer", "b": "integer"} returns "sum".``),
so one failed probe tells a model which arguments the tool takes and what it returns. Names are always written
inside double quotes, in JSON, as in the model's own tool calls: a byte-level BPE then gives them the same tokens
in the error, the schema and the call, so copying a name from an observation is a plain token copy. Results are
JSON objects ``{label: value}``. The tools are our own pure
functions with bounded inputs (no sandbox needed).

Stateful tools (levels 4 and 5, modelled on account APIs whose actions persist): the payload's ``accounts``
(``{account: balance}``) is the real environment's state. ``deposit`` adds to a balance and ``transfer`` moves an
amount between two accounts; an impl may give ``defaults`` (a missing argument takes its default) and
``ignore_unknown`` (an argument the tool does not take is dropped and listed under ``"ignored"`` in the result
instead of failing the call), as many real JSON APIs do. Their results echo what was applied under the real names
and roles (``{"applied": {...}, "balance": 6}``, ``{"debited": ..., "credited": ..., ...}``), so reading a result
shows what a call really did. A wrong call that succeeds stays done: ``fork()`` copies the balances, so trials on the
fork leave the real ones untouched, and :func:`replay_accounts` recomputes the real final balances from the
execute calls of an episode (the scorer checks them, as BFCL's multi-turn checker checks state).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .base import Observation, ToolEnv, digest, register_env
from .schemas import tool_map

INTEGER, STRING = "integer", "string"
MAX_ABS_INT = 10**6  # integer arguments beyond this are refused (keeps every call's cost and output tiny)
MAX_STR_LEN = 40  # string arguments longer than this are refused
MAX_REPEAT = 5  # "repeat" writes its word at most this many times
MAX_AMOUNT = 99  # deposit / transfer amounts are 1..MAX_AMOUNT
STATEFUL_OPS = ("deposit", "transfer")  # ops that act on the environment's accounts


@dataclass(frozen=True)
class Op:
    """One behaviour a tool can have."""

    types: tuple[str, ...]  # parameter types, in order
    fn: Callable[..., Any]  # the pure function; raises ToolError for inputs outside its domain
    label: str | None  # output label; None: the tool's own ("lookup" tools name their attribute)


class ToolError(Exception):
    """A domain error of a tool (the arguments are well-formed but the tool cannot answer)."""


def _repeat(word: str, times: int) -> str:
    if not 1 <= times <= MAX_REPEAT:
        raise ToolError(f"the count must be between 1 and {MAX_REPEAT}, got {times}.")
    return " ".join([word] * times)


OPS: dict[str, Op] = {
    "add": Op((INTEGER, INTEGER), lambda a, b: a + b, "sum"),
    "multiply": Op((INTEGER, INTEGER), lambda a, b: a * b, "product"),
    "subtract": Op((INTEGER, INTEGER), lambda a, b: a - b, "difference"),
    "join": Op((STRING, STRING), lambda a, b: f"{a}-{b}", "joined"),
    "repeat": Op((STRING, INTEGER), _repeat, "repeated"),
    "lookup": Op((STRING,), None, None),  # table lookup; fn is bound per tool
    # stateful (the environment's accounts): fn is None, Impl.act runs them
    "deposit": Op((STRING, INTEGER), None, "balance"),  # (account, amount)
    "transfer": Op((STRING, STRING, INTEGER), None, "balance"),  # (from account, to account, amount)
}


@dataclass(frozen=True)
class Impl:
    """The true interface and behaviour of one tool (validated from the spec's ``impl`` entry)."""

    name: str  # tool name
    op: str  # key of OPS
    params: tuple[tuple[str, str], ...]  # (name, type) in order
    label: str  # output label shown with the result
    table: dict[str, str] | None  # lookup table (op "lookup" only)
    defaults: dict[str, Any] = field(default_factory=dict)  # parameter -> value a missing argument takes
    ignore_unknown: bool = False  # drop (and report) arguments the tool does not take instead of failing

    @property
    def stateful(self) -> bool:
        return self.op in STATEFUL_OPS

    def usage(self) -> str:
        return f"Usage: {self.name} {json.dumps(dict(self.params))} returns {json.dumps(self.label)}."

    def run(self, values: list[Any]) -> Any:
        if self.op == "lookup":
            key = values[0]
            if key not in self.table:
                raise ToolError(f"no entry for {json.dumps(key)}. Known: {', '.join(json.dumps(k) for k in sorted(self.table))}")
            return self.table[key]
        return OPS[self.op].fn(*values)

    def act(self, accounts: dict[str, int], args: dict[str, Any]) -> dict[str, Any]:
        """Apply a stateful op to ``accounts`` (in place); the result object echoes what was applied.
        ``ToolError`` (and no change) for an unknown account, a bad amount or too small a balance."""
        names = [n for n, _ in self.params]
        values = [args[n] for n in names]
        amount = values[-1]
        if not 1 <= amount <= MAX_AMOUNT:
            raise ToolError(f"the amount must be between 1 and {MAX_AMOUNT}, got {amount}.")
        for account in values[:-1]:
            if account not in accounts:
                raise ToolError(f"no account {json.dumps(account)}. Known: {', '.join(json.dumps(k) for k in sorted(accounts))}")
        if self.op == "deposit":
            accounts[values[0]] += amount
            return {"applied": dict(zip(names, values)), "balance": accounts[values[0]]}
        source, target = values[0], values[1]
        if source == target:
            raise ToolError("the two accounts must differ.")
        if accounts[source] < amount:
            raise ToolError(f"{json.dumps(source)} has {accounts[source]}, less than {amount}.")
        accounts[source] -= amount
        accounts[target] += amount
        return {"debited": source, "credited": target, "amount": amount,
                "balances": {source: accounts[source], target: accounts[target]}}


def parse_impl(name: str, raw: Any, where: str) -> Impl:
    """Validate one ``impl`` entry; ``ValueError`` names the tool and the problem."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: impl of tool {name!r} must be an object, got {type(raw).__name__}")
    op = raw.get("op")
    if op not in OPS:
        raise ValueError(f"{where}: tool {name!r} has unknown op {op!r}; known: {sorted(OPS)}")
    params = raw.get("params")
    if not isinstance(params, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in params):
        raise ValueError(f"{where}: tool {name!r}: 'params' must be a list of [name, type] pairs")
    types = tuple(t for _, t in params)
    if types != OPS[op].types:
        raise ValueError(f"{where}: tool {name!r}: op {op!r} takes parameter types {list(OPS[op].types)}, impl says {list(types)}")
    names = [n for n, _ in params]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"{where}: tool {name!r}: parameter names must be unique and non-empty, got {names}")
    label = raw.get("label") or OPS[op].label
    if not isinstance(label, str) or not label:
        raise ValueError(f"{where}: tool {name!r}: op {op!r} needs a 'label' string")
    table = raw.get("table")
    if op == "lookup":
        if not isinstance(table, dict) or not table or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
            raise ValueError(f"{where}: lookup tool {name!r} needs a non-empty 'table' of strings")
    elif table is not None:
        raise ValueError(f"{where}: tool {name!r}: only lookup tools have a 'table'")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict) or any(k not in names for k in defaults):
        raise ValueError(f"{where}: tool {name!r}: 'defaults' must map some of its parameters {names} to values, got {defaults!r}")
    kinds = dict((n, t) for n, t in params)
    for k, v in defaults.items():
        if _type_name(v) != kinds[k]:
            raise ValueError(f"{where}: tool {name!r}: default of {k!r} must be {kinds[k]}, got {v!r}")
    ignore = raw.get("ignore_unknown", False)
    if not isinstance(ignore, bool):
        raise ValueError(f"{where}: tool {name!r}: 'ignore_unknown' must be true or false, got {ignore!r}")
    return Impl(name, op, tuple((n, t) for n, t in params), label, table, dict(defaults), ignore)


def parse_accounts(raw: Any, where: str) -> dict[str, int]:
    """Validate the payload's ``accounts`` (``{name: non-negative integer balance}``); ``ValueError`` names the problem."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and k and _type_name(v) == INTEGER and 0 <= v <= MAX_ABS_INT for k, v in raw.items()):
        raise ValueError(f"{where}: 'accounts' must map account names to integer balances in 0..{MAX_ABS_INT}, got {raw!r}")
    return dict(raw)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return STRING
    if value is None:
        return "null"
    return {list: "array", dict: "object"}.get(type(value), type(value).__name__)


def check_value(impl: Impl, param: str, kind: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``param`` (None when it is)."""
    got = _type_name(value)
    if got != kind:
        return f"{json.dumps(param)} must be {'an' if kind == INTEGER else 'a'} {kind}, got {got}"
    if kind == INTEGER and abs(value) > MAX_ABS_INT:
        return f"{json.dumps(param)} must be between {-MAX_ABS_INT} and {MAX_ABS_INT}"
    if kind == STRING and not 0 < len(value) <= MAX_STR_LEN:
        return f"{json.dumps(param)} must have 1 to {MAX_STR_LEN} characters"
    return None


def execute(impl: Impl, args: dict[str, Any], accounts: dict[str, int] | None = None) -> Observation:
    """Run one decoded call against the true interface (a stateful op changes ``accounts`` in place). Argument
    errors carry the usage line; an impl with ``ignore_unknown`` drops unknown arguments and ``defaults`` fill
    missing ones instead."""
    accepted = [n for n, _ in impl.params]
    unexpected = [k for k in args if k not in accepted]
    if unexpected and not impl.ignore_unknown:
        what = ", ".join(json.dumps(k) for k in unexpected)
        return Observation(False, f"Error: unknown argument {what}. {impl.usage()}", "schema")
    args = {**impl.defaults, **{k: v for k, v in args.items() if k in accepted}}
    missing = [n for n in accepted if n not in args]
    if missing:
        what = ", ".join(json.dumps(k) for k in missing)
        return Observation(False, f"Error: missing argument {what}. {impl.usage()}", "schema")
    for n, kind in impl.params:
        problem = check_value(impl, n, kind, args[n])
        if problem is not None:
            return Observation(False, f"Error: {problem}. {impl.usage()}", "schema")
    try:
        if impl.stateful:
            if accounts is None:
                raise ToolError("this environment has no accounts.")
            body = impl.act(accounts, args)
            if unexpected:
                body["ignored"] = unexpected
            return Observation(True, json.dumps(body))
        result = impl.run([args[n] for n, _ in impl.params])
    except ToolError as e:
        return Observation(False, f"Error: {e}", "exception")
    return Observation(True, json.dumps({impl.label: result}))


def replay_accounts(spec: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, int]:
    """The real final balances after ``calls`` (an episode's call log: only ``execute``-phase calls with object
    arguments touch the real environment; trials ran on a fork), recomputed from the spec's initial ``accounts``."""
    where = f"toyworld environment{' ' + repr(spec['id']) if 'id' in spec else ''}"
    accounts = parse_accounts(spec.get("accounts"), where)
    impl = {name: parse_impl(name, raw, where) for name, raw in (spec.get("impl") or {}).items()}
    for c in calls:
        if c.get("phase") != "execute" or c.get("name") not in impl or not isinstance(c.get("arguments"), dict):
            continue
        execute(impl[c["name"]], c["arguments"], accounts)
    return accounts


@register_env("toyworld")
class ToyWorldEnv(ToolEnv):
    """Deterministic toy tools; the schemas shown may disagree with the true interface (``impl``)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        where = f"toyworld environment{' ' + repr(spec['id']) if 'id' in spec else ''}"
        self._tools = tool_map(spec.get("tools", []), where)
        impl = spec.get("impl")
        if not isinstance(impl, dict):
            raise ValueError(f"{where}: 'impl' must map tool names to implementations, got {type(impl).__name__}")
        missing = sorted(set(self._tools) - set(impl))
        if missing:
            raise ValueError(f"{where}: no impl for tools {missing}")
        self._impl = {name: parse_impl(name, impl[name], where) for name in self._tools}
        self.accounts = parse_accounts(spec.get("accounts"), where)  # the real state (stateful ops)
        self.stateful = any(i.stateful for i in self._impl.values())  # the cache then keys on the call history

    def tools(self) -> list[dict[str, Any]]:
        return list(self._tools.values())

    async def call(self, name: str, arguments: dict[str, Any] | str) -> Observation:
        started = time.perf_counter()
        args, err = self._checked(name, arguments, self._impl)
        if err is not None:
            return self._finish(err, started)
        return self._finish(execute(self._impl[name], args, self.accounts), started)

    def fork(self) -> "ToyWorldEnv":
        """A scratch copy: the (immutable) tools are shared, the balances copied."""
        twin = ToyWorldEnv.__new__(ToyWorldEnv)
        ToolEnv.__init__(twin, self.spec)
        twin._tools, twin._impl, twin.turn, twin.stateful = self._tools, self._impl, self.turn, self.stateful
        twin.accounts = copy.deepcopy(self.accounts)
        return twin

    def positional_params(self, name: str) -> list[str]:
        """The true parameter order (the schema's may list stale names)."""
        impl = self._impl.get(name)
        return [n for n, _ in impl.params] if impl else super().positional_params(name)

    def fingerprint(self, name: str) -> str:
        impl = self._impl.get(name)
        return digest({"kind": self.kind, "tool": self._tools.get(name), "impl": self.spec["impl"].get(name) if impl else None,
                       "accounts": self.spec.get("accounts") if impl is not None and impl.stateful else None})
