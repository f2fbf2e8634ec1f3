"""Call strings <-> name + arguments, and the environment registry."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from verl_toolmaster.envs import ENV_REGISTRY, make_env, parse_spec
from verl_toolmaster.envs.base import ToolEnv, decode_arguments, register_env
from verl_toolmaster.envs.calls import bind_arguments, format_call, parse_call_string


def test_parse_call_strings():
    assert parse_call_string("sort('final_report.pdf')") == ("sort", ["final_report.pdf"], {})
    assert parse_call_string("f(1, b=[1, -2.5, {'k': (1, 2)}], c=None, d=True)") == ("f", [1], {"b": [1, -2.5, {"k": (1, 2)}], "c": None, "d": True})
    assert parse_call_string("  Math.add(a=1,b=2) ") == ("Math.add", [], {"a": 1, "b": 2})
    assert parse_call_string('genealogy_lookup(\n    name="x",\n    max_results=1\n)') == ("genealogy_lookup", [], {"name": "x", "max_results": 1})


@pytest.mark.parametrize("bad, why", [
    ("f(", "not valid Python"),
    ("f", "not a single function call"),
    ("f(x)", "'x' is not a literal"),
    ("f(a=g(1))", "'g(1)' is not a literal"),
    ("f(**d)", "'d' is not a literal"),
    ("(lambda: 1)()", "dotted) name"),
])
def test_bad_call_strings_name_the_problem(bad, why):
    with pytest.raises(ValueError, match=f"call string {bad!r}".replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")) as e:
        parse_call_string(bad)
    assert why in str(e.value)


def test_bind_arguments():
    assert bind_arguments("f", ["a", "b", "c"], [1, 2], {"c": 3}) == {"a": 1, "b": 2, "c": 3}
    with pytest.raises(ValueError, match="passes 3 positional arguments but the tool has only 2"):
        bind_arguments("f", ["a", "b"], [1, 2, 3], {})
    with pytest.raises(ValueError, match=r"\['a'\] both positionally and by keyword"):
        bind_arguments("f", ["a", "b"], [1], {"a": 2})


_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8)


_param_names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True) | st.sampled_from(["if", "from", "in", "class", "global", "lambda", "None", "max-results", "", "2x", "ﬁle"]) | st.text(max_size=6)


# Every failure hypothesis ever found stays here as an @example (CI runs derandomized: tests/conftest.py).
@given(st.dictionaries(_param_names, _values, max_size=4))
@example({"if": None})  # a fresh-clone CI run drew it: format_call wrote tool_x(if=None)
@example({"from": 1, "to": 2, "in": [None], "max-results": 3})
@example({"ﬁle": "x"})  # NFKC: the parser reads the ligature as "file"
def test_format_then_parse_round_trips(kwargs):
    assert parse_call_string(format_call("tool_x", kwargs)) == ("tool_x", [], kwargs)
    assert parse_call_string(format_call("Math.tool_x", kwargs)) == ("Math.tool_x", [], kwargs)


@pytest.mark.parametrize("kwargs, text", [
    ({"if": None}, "f(**{'if': None})"),
    ({"a": 1, "from": "x", "lambda": 2}, "f(a=1, **{'from': 'x', 'lambda': 2})"),
    ({"max-results": 5}, "f(**{'max-results': 5})"),
])
def test_keyword_named_parameters_are_written_as_a_dict(kwargs, text):
    assert format_call("f", kwargs) == text
    assert parse_call_string(text) == ("f", [], kwargs)


@pytest.mark.parametrize("bad, why", [
    ("f(a=1, **{'a': 2})", "given twice"),
    ("f(**{1: 2})", "literal dict with string keys"),
    ("f(**[1])", "literal dict with string keys"),
])
def test_bad_unpacking_names_the_problem(bad, why):
    with pytest.raises(ValueError, match=why):
        parse_call_string(bad)


@pytest.mark.parametrize("name", ["get-weather", "if", "a..b", "", "2fa", "x.class"])
def test_tool_names_no_call_string_can_carry_are_refused(name):
    with pytest.raises(ValueError, match="cannot be written as a Python call string"):
        format_call(name, {})


def test_decode_arguments():
    assert decode_arguments("f", '{"a": 1}') == ({"a": 1}, None)
    assert decode_arguments("f", "") == ({}, None)
    assert decode_arguments("f", None) == ({}, None)
    args, err = decode_arguments("f", "[1, 2]")
    assert args is None and err.error_kind == "bad_arguments" and "must be a JSON object" in err.text


def test_registry_and_spec_errors():
    with pytest.raises(ValueError, match="unknown environment kind 'nope'"):
        make_env({"kind": "nope"})
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_spec("{kind")
    with pytest.raises(ValueError, match="'kind' key"):
        parse_spec(json.dumps([1]))
    with pytest.raises(ValueError, match="'perturb' must be an object"):
        make_env({"kind": "schema", "tools": [], "perturb": 3})

    @register_env("test_user_kind")
    class UserEnv(ToolEnv):
        def tools(self):
            return []

        async def call(self, name, arguments):
            raise AssertionError

        def fork(self):
            return self

    assert isinstance(make_env('{"kind": "test_user_kind"}'), UserEnv) and ENV_REGISTRY["test_user_kind"] is UserEnv
    with pytest.raises(ValueError, match="already registered"):
        register_env("test_user_kind")(type("Other", (UserEnv,), {}))


def test_importing_envs_stays_light():
    code = (
        "import sys, verl_toolmaster.envs as e; "
        "heavy = [m for m in ('jsonschema', 'aiohttp', 'bfcl_eval', 'ctypes', 'torch', 'verl_toolmaster.envs.sandbox_pool') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
