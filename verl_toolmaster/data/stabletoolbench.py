"""StableToolBench solvable queries (``query``, ``query_id``, ``relevant APIs``, ``api_list``) -> http-env tasks.

Tools follow ToolBench's conventions, because StableToolBench's virtual API server and its response cache were
built with them: the function name is ``<api>_for_<tool>`` from standardised names (last 64 characters), parameter
names are standardised, ``NUMBER``/``STRING``/``BOOLEAN`` map to integer/string/boolean and every other type to
string, and a parameter's ``default`` is shown as ``example_value``. ToolBench's ``Finish`` pseudo-tool is not
added: the protocol's ``<answer>`` ends an episode.

Deliberate differences from StableToolBench's ``api_json_to_openai_json``: the tool part of a name is
``standardize(tool_name)`` (StableToolBench takes the tool's file name from its tool directory, which is not part
of the query file and normally equals it); optional parameters are listed even when an API has no required ones
(StableToolBench's loop drops them then); ``required`` holds no placeholder ``""`` entry; and names are unique: where
the 64-character shortening gives two APIs of a query one name (ToolBench then calls the first for both), the later
API is named by :func:`unique_name` (flagged ``tool_name_deduplicated``). The server is addressed through
``api_map``, so the name itself reaches no backend.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container, Iterator
from pathlib import Path
from typing import Any

from .base import Adapter, RawRecord, files_in, iter_json_array, register_adapter, require_keys
from .repairs import add_repair
from .schemas import function_tool
from .task import Task

SOURCE = "stabletoolbench"
_TYPE_MAP = {"NUMBER": "integer", "STRING": "string", "BOOLEAN": "boolean"}
_RESERVED = {"from", "class", "return", "false", "true", "id", "and"}
_DESCRIPTION_LIMIT = 256
_NAME_LIMIT = 64
_IDS_DIR = "test_query_ids"  # the release's id lists beside test_instruction/


def standardize(name: str) -> str:
    """ToolBench's identifier form: characters other than CJK, ASCII letters, digits, ``_`` and ``^`` -> ``_``,
    runs collapsed, lower case, no edge underscores, ``get_`` before a leading digit."""
    s = re.sub(r"[^\u4e00-\u9fa5a-zA-Z0-9_^]", "_", name)  # ToolBench's class also keeps "^"
    s = re.sub(r"_+", "_", s).lower().strip("_")
    if s and s[0].isdigit():
        s = "get_" + s
    return s


def _unreserved(name: str) -> str:
    return "is_" + name if name in _RESERVED else name


def tool_function_name(api: dict[str, Any]) -> str:
    """ToolBench's ``<api>_for_<tool>`` before shortening."""
    return f"{_unreserved(standardize(api['api_name']))}_for_{standardize(api['tool_name'])}"


def unique_name(full: str, taken: Container[str]) -> str:
    """A name for ``full`` of at most 64 characters that is not in ``taken``: a short hash of the full name, then
    as much of its end as fits (so ``_for_<tool>`` stays visible). ToolBench's plain ``[-64:]`` can give two long
    names one function name; then every API but the first gets this form."""
    for salt in range(100):
        prefix = hashlib.sha1(f"{full}#{salt}".encode() if salt else full.encode()).hexdigest()[:8] + "_"
        name = prefix + full[-(_NAME_LIMIT - len(prefix)) :]
        if name not in taken:
            return name
    raise ValueError(f"no free function name for {full!r}")  # would need 100 hash collisions


def convert_api(api: dict[str, Any], taken: Container[str] = ()) -> tuple[dict[str, Any], dict[str, str]]:
    """One ``api_list`` entry -> (OpenAI function tool, api_map entry); the function name avoids ``taken``."""
    tool_name = standardize(api["tool_name"])
    api_name = _unreserved(standardize(api["api_name"]))
    name = tool_function_name(api)[-_NAME_LIMIT:]
    if name in taken:
        name = unique_name(tool_function_name(api), taken)
    description = f'This is the subfunction for tool "{tool_name}", you can use this tool.'
    api_desc = str(api.get("api_description") or "").strip()
    if api_desc:
        description += f'The description of this function is: "{api_desc.replace(api["api_name"], name)[:_DESCRIPTION_LIMIT]}"'  # no space, as ToolBench writes it
    properties: dict[str, Any] = {}
    required: list[str] = []
    for group, is_required in (("required_parameters", True), ("optional_parameters", False)):
        for p in api.get(group) or []:
            pname = _unreserved(standardize(str(p["name"])))
            prop: dict[str, Any] = {"type": _TYPE_MAP.get(str(p.get("type")), "string"), "description": str(p.get("description") or "")[:_DESCRIPTION_LIMIT]}
            if str(p.get("default", "")) != "":
                prop["example_value"] = p["default"]
            properties[pname] = prop
            if is_required:
                required.append(pname)
    params = {"type": "object", "properties": properties, "required": required}
    entry = {
        "category": str(api.get("category_name", "")),
        "tool_name": tool_name,  # as the StableToolBench server expects them (standardised)
        "api_name": api_name,
        "source_tool_name": str(api["tool_name"]),  # as the query file names them ("relevant APIs")
        "source_api_name": str(api["api_name"]),
    }
    return function_tool(name, description, params), entry


@register_adapter("stabletoolbench")
class StableToolBenchAdapter(Adapter):
    """Reads solvable-query files: one group file (``G1_instruction.json``, ``G1_category.json``, ``G1_tool.json``,
    ``G2_instruction.json``, ``G2_category.json``, ``G3_instruction.json``), a folder of them, or the release's
    ``solvable_queries`` folder, whose ``test_query_ids/`` (id lists, not queries) is noted and not read."""

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.notes: list[str] = []

    def records(self, path: Path | None) -> Iterator[RawRecord]:
        assert path is not None
        files = files_in(path, ("*.json", "**/*.json"), "StableToolBench query .json")
        ids = [f for f in files if _IDS_DIR in f.parts[:-1]]
        if ids:
            self.notes.append(f"{len(ids)} file(s) under {_IDS_DIR}/ hold query id lists, not queries; not read")
        for f in files:
            if f not in ids:
                yield from iter_json_array(f)

    def convert(self, record: RawRecord) -> Task:
        d = require_keys(record, ("query", "query_id", "api_list", "relevant APIs"))
        if not isinstance(d["api_list"], list) or not d["api_list"]:
            raise record.invalid("bad_api_list", "'api_list' must be a non-empty list")
        tools, api_map = [], {}
        tags: dict[str, Any] = {"query_id": d["query_id"], "group": record.file.stem}
        for i, api in enumerate(d["api_list"]):
            if not isinstance(api, dict) or not all(isinstance(api.get(k), str) for k in ("tool_name", "api_name")):
                raise record.invalid("bad_api_list", f"api_list[{i}] lacks string tool_name/api_name")
            for group in ("required_parameters", "optional_parameters"):
                if not isinstance(api.get(group) or [], list) or not all(isinstance(p, dict) and "name" in p for p in api.get(group) or []):
                    raise record.invalid("bad_api_list", f"api_list[{i}].{group} must be a list of {{name, type, ...}}")
            tool, entry = convert_api(api, api_map)
            name, short = tool["function"]["name"], tool_function_name(api)[-_NAME_LIMIT:]
            if name != short:
                add_repair(tags, "tool_name_deduplicated", f"api_list[{i}] ({api['tool_name']}/{api['api_name']}): {short!r} is taken, named {name!r}")
            tools.append(tool)
            api_map[name] = entry
        relevant = d["relevant APIs"]
        if not isinstance(relevant, list) or not all(isinstance(r, list) and len(r) == 2 for r in relevant):
            raise record.invalid("bad_relevant_apis", "'relevant APIs' must be a list of [tool_name, api_name] pairs")
        offered = {(e["source_tool_name"], e["source_api_name"]) for e in api_map.values()}
        absent = [r for r in relevant if tuple(r) not in offered]
        if absent:
            raise record.invalid("bad_relevant_apis", f"relevant API(s) {absent} are not in api_list")
        return Task(
            id=f"stabletoolbench-{record.file.stem}-{d['query_id']}",
            source=SOURCE,
            query=str(d["query"]),
            env={"kind": "http", "tools": tools, "api_map": api_map},
            ground_truth={"query": str(d["query"]), "relevant_apis": [list(map(str, r)) for r in relevant]},
            tags=tags,
        )
