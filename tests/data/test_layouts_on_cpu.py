"""Layout variants of the benchmarks' published releases, each from a small record written in that layout
(``tests/fixtures/layouts``), and the repairs that keep defective records: every record becomes a row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verl_toolmaster.data import get_adapter
from verl_toolmaster.envs.schema_env import SchemaEnv

LAYOUTS = Path(__file__).resolve().parents[1] / "fixtures" / "layouts"


def convert_all(dataset: str, path: Path):
    adapter = get_adapter(dataset)()
    return [adapter.convert(r) for r in adapter.records(path)]


def repairs(task) -> list[str]:
    return [r["kind"] for r in task.tags.get("repairs", [])]


def test_apibank_level_2_single_answer_object_and_history_with_calls():
    t, unlisted = convert_all("apibank", LAYOUTS / "level-2-api_processed.json")
    assert t.ground_truth["calls"] == [{"name": "AddAlarm", "arguments": {"token": "tk123", "time": "2023-04-02 07:00:00"}}]
    assert [m["role"] for m in t.context] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    assert t.context[3]["tool_calls"][0]["function"] == {"name": "GetUserToken", "arguments": {"username": "tom", "password": "tompass"}}
    assert t.context[4]["content"] == "{'token': 'tk123'}"
    assert t.query == "Based on our conversation above, please only make one tool call to solve my need."
    assert t.tags["file"] == "AddAlarm-level-3-1.jsonl" and repairs(t) == []


def test_apibank_gold_call_to_a_tool_the_list_omits_is_accepted_unlisted():
    _, t = convert_all("apibank", LAYOUTS / "level-2-api_processed.json")
    assert [x["function"]["name"] for x in t.env["tools"]] == ["AddAlarm"]  # what the benchmark shows
    assert repairs(t) == ["gold_tool_unlisted"]
    env = SchemaEnv(t.env)
    assert env.tool_names() == ["AddAlarm"] and env.callable_names() == ["AddAlarm", "DeleteAlarm"]
    assert env.problems("DeleteAlarm", {"token": "tk123", "time": "2023-04-02 07:00:00"}) == []
    assert env.problems("RemoveAlarm", {}) == ["unknown tool 'RemoveAlarm'"]


def test_apibank_level_3_tool_lines():
    (t,) = convert_all("apibank", LAYOUTS / "level-3-api_processed.json")
    assert [x["function"]["name"] for x in t.env["tools"]] == ["QueryMeeting", "EmailReminder"]
    assert t.query.startswith("Based on our conversation") and t.context[0]["content"].startswith("Query the meeting of Ann")
    assert t.gold == [[[{"name": "QueryMeeting", "arguments": {"user_name": "Ann"}}]]]
    assert t.tags == {"sample_id": 0, "api_id": 1}


def test_apibank_gold_breaking_its_schema_keeps_the_record_with_that_constraint_relaxed():
    (t,) = convert_all("apibank", LAYOUTS / "level-1-api_processed.json")
    assert repairs(t) == ["gold_schema_relaxed"] and "device_id" in t.tags["repairs"][0]["detail"]
    params = t.env["tools"][0]["function"]["parameters"]
    assert params["additionalProperties"] is True and set(params["properties"]) == {"name", "time"}  # docs unchanged
    env = SchemaEnv(t.env)
    assert env.problems(*t.gold[0][0][0].values()) == []
    assert env.problems("CancelTimedSwitch", {"time": 5}) != []  # only the broken constraint was relaxed


def test_toolhop_release_json_with_two_tools_of_one_name():
    (t,) = convert_all("toolhop", LAYOUTS / "ToolHop.json")
    assert t.id == "toolhop-7"
    names = [x["function"]["name"] for x in t.env["tools"]]
    assert names == ["extract_first_name", "director_lookup", "extract_first_name_2"]  # k-th repeat: <name>_<k>
    assert set(t.env["code"]) == set(names)
    # each name runs the source whose signature matches its schema
    assert "def extract_first_name(text" in t.env["code"]["extract_first_name"]
    assert "def extract_first_name_2(full_name" in t.env["code"]["extract_first_name_2"]
    assert t.env["code"]["extract_first_name_2"].rstrip().endswith("extract_first_name = extract_first_name_2")
    assert t.gold == [[
        [{"name": "director_lookup", "arguments": {"film": "Film A"}}],
        [{"name": "extract_first_name_2", "arguments": {"full_name": "Jane Doe"}}],  # positional, fits both; text= is taken
        [{"name": "extract_first_name", "arguments": {"text": "Jane"}}],
    ]]
    assert repairs(t) == ["duplicate_tool_renamed"]
    assert t.ground_truth["sub_answers"]["What is the first name of Jane Doe?"] == "Jane"


def test_toolhop_jsonl_and_json_list_give_the_same_task(tmp_path):
    record = json.loads((LAYOUTS / "ToolHop.json").read_text())[0]
    (tmp_path / "toolhop.jsonl").write_text(json.dumps(record) + "\n")
    (from_list,) = convert_all("toolhop", LAYOUTS / "ToolHop.json")
    (from_lines,) = convert_all("toolhop", tmp_path / "toolhop.jsonl")
    assert from_lines.to_dict() == from_list.to_dict()


def test_rotbench_third_turn_with_two_tools_of_one_name():
    (t,) = convert_all("rotbench", LAYOUTS / "rotbench")
    assert [x["function"]["name"] for x in t.env["tools"]] == ["drivers", "drivers", "finish"]  # as RoTBench shows them
    assert t.env["same_name_tools"] is True
    assert sorted(repairs(t)) == ["duplicate_tool_kept", "schema_repaired"]  # and 'required' listed driver_id twice
    env = SchemaEnv(t.env)
    assert env.problems("drivers", {"season": "2021"}) == [] and env.problems("drivers", {"driver_id": "d7"}) == []
    assert env.problems("drivers", {"driverid": "d7"}) != []
    assert [m["role"] for m in t.trailing] == ["assistant", "tool", "assistant", "tool"]
    assert t.tags["level"] == "heavy" and t.tags["turn"] == "third"


def test_stabletoolbench_shortened_names_are_unique():
    (t,) = convert_all("stabletoolbench", LAYOUTS / "G1_instruction_collision.json")
    names = [x["function"]["name"] for x in t.env["tools"]]
    assert len(set(names)) == 2 and all(len(n) <= 64 for n in names)
    assert names[0] == "historical_data_for_forecast_crypto_and_fiat_currency_exchange_rates"[-64:]  # ToolBench's own
    assert names[1].endswith("_for_forecast_crypto_and_fiat_currency_exchange_rates") and names[1] != names[0]
    assert [t.env["api_map"][n]["source_api_name"] for n in names] == [
        "Currency rates for 1 bank. Historical data.", "Currency rates for 2 banks. Historical data."]
    assert repairs(t) == ["tool_name_deduplicated"]
    assert convert_all("stabletoolbench", LAYOUTS / "G1_instruction_collision.json")[0].env == t.env  # deterministic


@pytest.mark.parametrize("name", ["level-2-api_processed.json", "ToolHop.json", "rotbench", "G1_instruction_collision.json"])
def test_summary_counts_each_repair(name, prepare, tmp_path):
    dataset = {"ToolHop.json": "toolhop", "rotbench": "rotbench", "G1_instruction_collision.json": "stabletoolbench"}.get(name, "apibank")
    res = prepare(["--dataset", dataset, "--input", str(LAYOUTS / name), "--output", str(tmp_path / "o.parquet")])
    assert res.last["skipped"] == {} and res.last["written"] == res.last["read"]
    tasks = convert_all(dataset, LAYOUTS / name)
    expected: dict[str, int] = {}
    for t in tasks:
        for kind in repairs(t):
            expected[kind] = expected.get(kind, 0) + 1
    assert res.last["repaired"] == expected and expected


def test_stabletoolbench_release_folder_reads_every_group_and_notes_the_id_lists(prepare, tmp_path):
    root = tmp_path / "solvable_queries"
    (root / "test_instruction").mkdir(parents=True)
    (root / "test_query_ids").mkdir()
    record = json.loads((LAYOUTS / "G1_instruction_collision.json").read_text())[0]
    for group in ("G1_instruction", "G1_category", "G1_tool", "G2_instruction", "G2_category", "G3_instruction"):
        (root / "test_instruction" / f"{group}.json").write_text(json.dumps([record]))
        (root / "test_query_ids" / f"{group}.json").write_text(json.dumps({str(record["query_id"]): 0}))
    res = prepare(["--dataset", "stabletoolbench", "--input", str(root), "--output", str(tmp_path / "o.parquet")])
    assert res.last == {"read": 6, "written": 6, "repaired": {"tool_name_deduplicated": 6}, "skipped": {}}
    assert "note: 6 file(s) under test_query_ids/ hold query id lists, not queries; not read" in res.stdout
    tasks = convert_all("stabletoolbench", root / "test_instruction")
    assert sorted(t.tags["group"] for t in tasks) == sorted(["G1_instruction", "G1_category", "G1_tool", "G2_instruction", "G2_category", "G3_instruction"])


def test_apibank_original_release_dialogues_one_task_per_api_call():
    """API-Bank's own layout: dialogue .jsonl files and the API docs as class attributes in apis/*.py."""
    tasks = {t.id: t for t in convert_all("apibank", LAYOUTS / "api-bank")}
    assert sorted(tasks) == ["apibank-AddAlarm-level-1-1-0", "apibank-AddAlarm-level-1-1-1", "apibank-AddAlarm-level-3-1-0", "apibank-AddAlarm-level-3-1-1"]
    token, alarm = tasks["apibank-AddAlarm-level-1-1-0"], tasks["apibank-AddAlarm-level-1-1-1"]
    # given-desc: the docs of every API the dialogue uses, in order of first use
    assert [x["function"]["name"] for x in alarm.env["tools"]] == ["GetUserToken", "AddAlarm"]
    assert alarm.env["tools"][1]["function"]["parameters"]["properties"]["time"] == {"type": "string", "description": "Format: %Y-%m-%d %H:%M:%S"}
    assert token.gold == [[[{"name": "GetUserToken", "arguments": {"username": "tom", "password": "tompass"}}]]]
    assert token.trailing == [{"role": "assistant", "content": "Getting your token first."}]
    assert [m["role"] for m in alarm.trailing] == ["assistant", "tool", "assistant"]
    assert alarm.trailing[0]["tool_calls"][0]["function"]["name"] == "GetUserToken"
    assert alarm.trailing[1]["content"] == "{'token': 'tk123'}"  # str(output), as API-Bank's prompt writes it
    assert alarm.tags == {"file": "AddAlarm-level-1-1.jsonl", "level": "level-1-given-desc"}
    # toolsearcher: only ToolSearcher is shown; the APIs of the dialogue are callable unlisted
    found = tasks["apibank-AddAlarm-level-3-1-1"]
    assert [x["function"]["name"] for x in found.env["tools"]] == ["ToolSearcher"]
    assert [x["function"]["name"] for x in found.env["unlisted_tools"]] == ["AddAlarm"]
    assert SchemaEnv(found.env).problems("AddAlarm", {"token": "tk123", "time": "2023-04-02 07:00:00"}) == []
    assert tasks["apibank-AddAlarm-level-3-1-0"].gold[0][0][0]["name"] == "ToolSearcher"


def test_apibank_original_release_without_api_docs_is_refused(prepare_main, tmp_path):
    import shutil

    shutil.copytree(LAYOUTS / "api-bank" / "lv1-lv2-samples", tmp_path / "lv1-lv2-samples")
    code, _, err = prepare_main(["--dataset", "apibank", "--input", str(tmp_path / "lv1-lv2-samples"), "--output", str(tmp_path / "o.parquet")])
    assert code == 2 and "apis/*.py" in err


def test_sft_rows_leave_out_gold_calls_to_unlisted_tools(prepare, tmp_path):
    """Scored like the benchmark, but not taught: an SFT row would train calling a tool nobody offered."""
    res = prepare(["--dataset", "apibank", "--input", str(LAYOUTS / "level-2-api_processed.json"), "--output", str(tmp_path / "o.parquet"),
                   "--sft-output", str(tmp_path / "sft.parquet")])
    assert res.last["written"] == 2
    assert res.summary.sft_written == 1 and dict(res.summary.sft_skipped) == {"gold_tool_unlisted": 1}
