"""ToolRL notation parsing and free-form type names -> JSON Schema."""

from __future__ import annotations

import pytest

from verl_toolmaster.data.schemas import schema_from_type_name
from verl_toolmaster.data.toolrl_format import FormatError, parse_calls, parse_history, parse_reply, parse_tools, repeated_names


@pytest.mark.parametrize(
    "name, schema, optional",
    [
        ("str", {"type": "string"}, False),
        ("int, optional", {"type": "integer"}, True),
        ("List[int]", {"type": "array", "items": {"type": "integer"}}, False),
        ("List[List[float]]", {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}, False),
        ("Tuple[float, float]", {"type": "array"}, False),
        ("Dict", {"type": "object"}, False),
        ("['string', 'null']", {"type": ["string", "null"]}, True),
        ("List[Union[int, float]]", {"type": "array", "items": {"type": ["integer", "number"]}}, False),
        ("Optional[bool]", {"type": "boolean"}, True),
        ("Callable[[float], float]", {}, False),
    ],
)
def test_type_names(name, schema, optional):
    assert schema_from_type_name(name) == (schema, optional)


SYSTEM = """intro
**Available Tools**
In your response, you can use the following tools:
1. Name: Search
Description: Find things.
Parameters: {"q": {"description": "query", "type": "str", "default": ""}, "n": {"description": "count", "type": "int, optional", "default": 5}}
2. Name: Ping
Description: No args.
Parameters: {}

**Steps for Each Turn**
..."""


def test_tools_required_only_when_the_notation_marks_optional_ones():
    search, ping = parse_tools(SYSTEM)
    assert search["function"]["parameters"]["required"] == ["q"]
    assert search["function"]["parameters"]["properties"]["n"] == {"type": "integer", "description": "count", "default": 5}
    assert ping["function"]["parameters"] == {"type": "object", "properties": {}, "required": []}
    apibank_style = SYSTEM.replace('"type": "int, optional", "default": 5', '"type": "int"')
    assert parse_tools(apibank_style)[0]["function"]["parameters"]["required"] == []


def test_two_different_tools_with_one_name_are_both_kept():
    dup = SYSTEM.replace("2. Name: Ping", "2. Name: Search")
    tools = parse_tools(dup)
    assert [t["function"]["name"] for t in tools] == ["Search", "Search"]
    assert tools[0]["function"]["parameters"] != tools[1]["function"]["parameters"]
    assert repeated_names(tools) == ["Search"] and repeated_names(parse_tools(SYSTEM)) == []
    twice = SYSTEM.replace("**Steps for Each Turn**", SYSTEM[SYSTEM.index("2. Name: Ping") :].split("**Steps")[0].replace("2.", "3.") + "**Steps for Each Turn**")
    assert [t["function"]["name"] for t in parse_tools(twice)] == ["Search", "Ping"]  # identical repeat listed once


def test_api_bank_level_3_tool_lines():
    """ToolRL's API-Bank level 3 lists tools as 'N. ToolName: description' and a 'Parameters:' line."""
    system = """**Available Tools**
In your response, you can use the following tools:
1. QueryMeeting: The API for retrieving the meeting details from the user's calendar.
Parameters: {'user_name': {'type': 'str', 'description': 'Name of the user.'}}
2. AddMeeting: Make a reservation.Function：Allow users to book.
Parameters: {'meeting_topic': {'type': 'str', 'description': 'The title.'}, 'attendees': {'type': 'list(str)', 'description': 'Who.'}}

**Steps for Each Turn**
1. **Think:** Recall relevant context and analyze the current user goal."""
    query, add = parse_tools(system)
    assert query["function"]["name"] == "QueryMeeting"
    assert query["function"]["description"] == "The API for retrieving the meeting details from the user's calendar."
    assert query["function"]["parameters"]["properties"] == {"user_name": {"type": "string", "description": "Name of the user."}}
    assert add["function"]["name"] == "AddMeeting" and add["function"]["description"].endswith("Allow users to book.")
    assert add["function"]["parameters"]["properties"]["attendees"]["type"] == "array"


def test_history_split_at_last_user_with_trailing_observation():
    text = (
        "**Dialogue Records History**\n<user> first </user>\n<response> hi </response>\n<user> find x </user>\n"
        '<think> t </think>\n<tool_call>\n{"name": "Search", "parameters": {"q": "x"}}\n</tool_call>\n<obs> [1] </obs>'
    )
    context, request, trailing = parse_history(text)
    assert context == [{"role": "user", "content": "first"}, {"role": "assistant", "content": "hi"}]
    assert request == "find x"
    assert trailing == [
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "Search", "arguments": {"q": "x"}}}]},
        {"role": "tool", "content": "[1]"},
    ]


def test_malformed_history_and_calls_raise_format_errors():
    with pytest.raises(FormatError, match="follows no <tool_call>"):
        parse_history("<user> a </user><obs> x </obs>")
    with pytest.raises(FormatError, match="no <user>"):
        parse_history("<response> a </response>")
    with pytest.raises(FormatError, match="not JSON"):
        parse_calls('{"name": "a", "parameters": {}}\n{"name": broken')
    with pytest.raises(FormatError, match="string 'name'"):
        parse_calls('{"parameters": {}}')


def test_reply_calls_and_response():
    calls, response = parse_reply('<think>t</think>\n<tool_call>\n{"name": "A", "parameters": {"k": 1}}\n{"name": "B", "arguments": {}}\n</tool_call>')
    assert calls == [{"name": "A", "arguments": {"k": 1}}, {"name": "B", "arguments": {}}] and response is None
    assert parse_reply("<think>t</think><response> done </response>") == ([], "done")
