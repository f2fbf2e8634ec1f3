"""prepare.py: malformed input, --skip-invalid accounting, --limit, splits, perturbation, larger files, the script entry."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from data_helpers import read_rows

from verl_toolmaster.data.prepare import build_parser
from verl_toolmaster.data.splits import tool_names

REPO = Path(__file__).resolve().parents[2]


def toolhop_lines(shared_data: Path) -> list[str]:
    return [line for line in (shared_data / "toolhop" / "toolhop_dev10.jsonl").read_text().splitlines() if line.strip()]


def test_help_documents_every_option():
    text = build_parser().format_help()
    for action in build_parser()._actions:
        for opt in action.option_strings:
            assert opt in text
        assert action.help, action.option_strings


def test_malformed_line_exits_2_naming_file_and_row(shared_data, prepare_main, tmp_path):
    lines = toolhop_lines(shared_data)
    bad = tmp_path / "toolhop_bad.jsonl"
    bad.write_text("\n".join(lines[:3] + ['{"id": "x", "question": "q"'] + lines[3:]) + "\n")
    code, out, err = prepare_main(["--dataset", "toolhop", "--input", str(bad), "--output", str(tmp_path / "o.parquet")])
    assert code == 2
    assert f"{bad}, row 3: invalid_json" in err
    assert not (tmp_path / "o.parquet").exists()


def test_malformed_record_fields_exit_2(shared_data, prepare_main, tmp_path):
    records = json.loads((shared_data / "apibank" / "level-1-api_processed.json").read_text())[:5]
    del records[2]["answer"]
    f = tmp_path / "apibank.json"
    f.write_text(json.dumps(records))
    code, _, err = prepare_main(["--dataset", "apibank", "--input", str(f), "--output", str(tmp_path / "o.parquet")])
    assert code == 2 and f"{f}, row 2: missing_field: missing field(s) ['answer']" in err


def test_skip_invalid_reports_every_skip_and_conserves_counts(shared_data, prepare, tmp_path):
    records = json.loads((shared_data / "rotbench" / "First_Turn" / "heavy.json").read_text())
    records[1]["conversations"][-1]["value"] = ["Thought: hmm\nAction: x\nAction Input: {not json"]
    records[3]["conversations"] = "not a list"
    records[4] = ["not an object"]
    folder = tmp_path / "First_Turn"
    folder.mkdir()
    (folder / "heavy.json").write_text(json.dumps(records))
    res = prepare(["--dataset", "rotbench", "--input", str(tmp_path), "--output", str(tmp_path / "o.parquet"), "--skip-invalid"])
    assert res.last == {"read": 6, "written": 3, "repaired": {}, "skipped": {"bad_conversations": 1, "bad_gold": 1, "not_an_object": 1}}
    skips = [line for line in res.stderr.splitlines() if line.startswith("skip: ")]
    assert [s.split(": ")[1] for s in skips] == [f"{folder / 'heavy.json'}, row {r}" for r in (1, 3, 4)]
    assert len(read_rows(tmp_path / "o.parquet")) == 3


def test_undecodable_file_counts_as_one_skipped_record(shared_data, prepare, prepare_main, tmp_path):
    shutil.copy(shared_data / "stabletoolbench" / "G1_instruction_dev.json", tmp_path / "good.json")
    (tmp_path / "broken.json").write_text('[{"query": ')
    argv = ["--dataset", "stabletoolbench", "--input", str(tmp_path), "--output", str(tmp_path / "o.parquet")]
    code, _, err = prepare_main(argv)
    assert code == 2 and f"{tmp_path / 'broken.json'}: invalid_json" in err
    res = prepare([*argv, "--skip-invalid"])
    assert res.last == {"read": 16, "written": 15, "repaired": {}, "skipped": {"invalid_json": 1}}


def test_bad_input_paths_exit_2(prepare_main, shared_data, tmp_path):
    code, _, err = prepare_main(["--dataset", "toolhop", "--output", str(tmp_path / "o.parquet")])
    assert code == 2 and "--input is required" in err
    code, _, err = prepare_main(["--dataset", "rotbench", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o.parquet")])
    assert code == 2 and "no such file or directory" in err
    stray = tmp_path / "heavy.json"
    shutil.copy(shared_data / "rotbench" / "First_Turn" / "heavy.json", stray)
    code, _, err = prepare_main(["--dataset", "rotbench", "--input", str(stray), "--output", str(tmp_path / "o.parquet")])
    assert code == 2 and "cannot tell first from third turn" in err


def test_limit_reads_at_most_n_records(shared_data, prepare, tmp_path):
    res = prepare(["--dataset", "apibank", "--input", str(shared_data / "apibank"), "--output", str(tmp_path / "o.parquet"), "--limit", "7"])
    assert res.last == {"read": 7, "written": 7, "repaired": {}, "skipped": {}}


def test_random_split_is_seeded_and_follows_fractions(shared_data, prepare, tmp_path):
    argv = ["--dataset", "apibank", "--input", str(shared_data / "apibank"), "--split", "random", "--fractions", "train=0.7,val=0.1,test=0.2", "--seed", "3"]
    a = prepare([*argv, "--output", str(tmp_path / "a.parquet")])
    prepare([*argv, "--output", str(tmp_path / "b.parquet")])
    sizes = {s: len(read_rows(tmp_path / f"a_{s}.parquet")) for s in ("train", "val", "test")}
    assert a.last["written"] == 399 and a.last["skipped"] == {}
    assert a.last["repaired"] == {"gold_schema_relaxed": 13}  # CancelTimedSwitch gold calls pass an undocumented device_id
    assert sizes == {"train": 279, "val": 40, "test": 80}
    ids = {s: [r["extra_info"]["task_id"] for r in read_rows(tmp_path / f"a_{s}.parquet")] for s in sizes}
    assert ids["test"] == [r["extra_info"]["task_id"] for r in read_rows(tmp_path / "b_test.parquet")]
    assert not set(ids["train"]) & set(ids["test"])
    assert {r["extra_info"]["split"] for r in read_rows(tmp_path / "a_val.parquet")} == {"val"}


@pytest.mark.parametrize("dataset", ["apibank", "rotbench", "bfcl"])
def test_tool_disjoint_split_shares_no_tool_and_lists_drops(dataset, shared_data, prepare, tmp_path):
    out = tmp_path / "o.parquet"
    res = prepare(["--dataset", dataset, "--input", str(shared_data / dataset), "--output", str(out), "--split", "tool-disjoint", "--ignore-tools", "finish,ask_to_user"])
    tools = {}
    for s in ("train", "test"):
        rows = read_rows(tmp_path / f"o_{s}.parquet")
        tools[s] = {t["function"]["name"] for r in rows for t in json.loads(r["extra_info"]["env"])["tools"]} - {"finish", "ask_to_user"}
    assert tools["train"] and tools["test"] and not tools["train"] & tools["test"]
    dropped = res.last["skipped"].get("split_tools_shared", 0)
    assert res.last["read"] == res.last["written"] + sum(res.last["skipped"].values())
    if dropped:
        listing = json.loads((tmp_path / "o_dropped.json").read_text())
        assert len(listing["dropped"]) == dropped
        assert all(len({s for splits in d["tools_in_splits"].values() for s in splits}) >= 2 for d in listing["dropped"])


def test_perturbation_options_go_into_env_specs(shared_data, prepare, tmp_path):
    prepare([
        "--dataset", "toolhop", "--input", str(shared_data / "toolhop"), "--output", str(tmp_path / "o.parquet"),
        "--split", "random", "--perturb", "rename_tools=true,distractors=2,descriptions=shuffle", "--perturb-splits", "test", "--seed", "5",
    ])  # fmt: skip
    test_specs = [json.loads(r["extra_info"]["env"]) for r in read_rows(tmp_path / "o_test.parquet")]
    train_specs = [json.loads(r["extra_info"]["env"]) for r in read_rows(tmp_path / "o_train.parquet")]
    assert all("perturb" not in s for s in train_specs)
    perturbs = [s["perturb"] for s in test_specs]
    assert all({k: v for k, v in p.items() if k != "seed"} == {"rename_tools": True, "distractors": 2, "descriptions": "shuffle"} for p in perturbs)
    assert len({p["seed"] for p in perturbs}) == len(perturbs)  # every task gets its own renaming
    # the spec builds the wrapped environment, and the model sees other tool names
    from verl_toolmaster.envs import make_env

    env = make_env(test_specs[0])
    assert set(env.tool_names()).isdisjoint({t["function"]["name"] for t in test_specs[0]["tools"]})


def test_unknown_perturbation_option_exits_2(shared_data, prepare_main, tmp_path):
    code, _, err = prepare_main(["--dataset", "toolhop", "--input", str(shared_data / "toolhop"), "--output", str(tmp_path / "o.parquet"), "--perturb", "rename_tool=true"])
    assert code == 2 and "--perturb" in err and "rename_tool" in err


def test_larger_files_of_the_same_formats_convert(shared_data, prepare, tmp_path):
    """Replicate the shipped rows with new ids (x60) and convert them with the same command."""
    n = 60
    th = tmp_path / "toolhop.jsonl"
    with th.open("w") as f:
        for k in range(n):
            for line in toolhop_lines(shared_data):
                d = json.loads(line)
                d["id"] = f"{d['id']}-copy{k}"
                f.write(json.dumps(d) + "\n")
    res = prepare(["--dataset", "toolhop", "--input", str(th), "--output", str(tmp_path / "th.parquet")])
    assert res.last == {"read": 10 * n, "written": 10 * n, "repaired": {}, "skipped": {}}

    bf = tmp_path / "bfcl"
    (bf / "possible_answer").mkdir(parents=True)
    shutil.copytree(shared_data / "bfcl" / "multi_turn_func_doc", bf / "multi_turn_func_doc")
    for name in ("BFCL_v4_simple_python.json", "BFCL_v4_multi_turn_miss_func.json"):
        for sub in ("", "possible_answer/"):
            src = [json.loads(x) for x in (shared_data / "bfcl" / sub / name).read_text().splitlines() if x.strip()]
            with (bf / sub / name).open("w") as f:
                for k in range(n):
                    for d in src:
                        f.write(json.dumps({**d, "id": f"{d['id'].rsplit('_', 1)[0]}_{k * 1000 + int(d['id'].rsplit('_', 1)[1])}"}) + "\n")
    res = prepare(["--dataset", "bfcl", "--input", str(bf), "--output", str(tmp_path / "bf.parquet")])
    assert res.last == {"read": 25 * n, "written": 25 * n, "repaired": {}, "skipped": {}}
    assert pq.read_metadata(tmp_path / "bf.parquet").num_rows == 25 * n

    ab = json.loads((shared_data / "apibank" / "level-1-api_processed.json").read_text())
    (tmp_path / "apibank.json").write_text(json.dumps(ab * 8))
    res = prepare(["--dataset", "apibank", "--input", str(tmp_path / "apibank.json"), "--output", str(tmp_path / "ab.parquet")])
    assert res.last == {"read": 399 * 8, "written": 399 * 8, "repaired": {"gold_schema_relaxed": 13 * 8}, "skipped": {}}


def test_script_entry_runs_and_last_line_is_the_summary(shared_data, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "data_prep" / "prepare.py"), "--dataset", "stabletoolbench", "--input", str(shared_data / "stabletoolbench"), "--output", str(tmp_path / "o.parquet")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"read": 15, "written": 15, "repaired": {}, "skipped": {}}


def test_system_prompt_file_replaces_protocol_text(shared_data, prepare, tmp_path):
    (tmp_path / "sys.txt").write_text("Custom instructions.")
    prepare(["--dataset", "rotbench", "--input", str(shared_data / "rotbench"), "--output", str(tmp_path / "o.parquet"), "--system-prompt-file", str(tmp_path / "sys.txt")])
    assert {r["prompt"][0]["content"] for r in read_rows(tmp_path / "o.parquet")} == {"Custom instructions."}


def test_tool_names_helper_counts_late_tools(shared_data):
    from verl_toolmaster.data import get_adapter

    a = get_adapter("bfcl")()
    t = next(a.convert(r) for r in a.records(shared_data / "bfcl" / "BFCL_v4_multi_turn_miss_func.json"))
    assert "sort" in tool_names(t)


def test_tokenizer_reports_prompt_lengths_and_refuses_rows_that_verl_would_truncate(shared_data, prepare, prepare_main, tiny_model_dir, tmp_path):
    base = ["--dataset", "toolhop", "--input", str(shared_data / "toolhop" / "toolhop_dev10.jsonl"), "--tokenizer", str(tiny_model_dir)]
    report = prepare([*base, "--output", str(tmp_path / "all.parquet")])
    line = next(x for x in report.stdout.splitlines() if x.startswith("prompt tokens [all]:"))
    lengths = sorted(int(n) for n in re.findall(r"(?:min|max) (\d+)", line))
    assert len(lengths) == 2 and lengths[0] < lengths[1], line
    limit = (lengths[0] + lengths[1]) // 2  # some rows fit, some do not
    cut = prepare([*base, "--output", str(tmp_path / "cut.parquet"), "--max-prompt-tokens", str(limit)])
    skipped = cut.last["skipped"].get("prompt_too_long", 0)
    assert 0 < skipped < 10 and cut.last["written"] == 10 - skipped
    assert [r["extra_info"]["index"] for r in read_rows(tmp_path / "cut.parquet")] == list(range(10 - skipped))
    code, _, err = prepare_main(["--dataset", "toolhop", "--input", str(shared_data / "toolhop" / "toolhop_dev10.jsonl"),
                                 "--output", str(tmp_path / "x.parquet"), "--max-prompt-tokens", "100"])
    assert code == 2 and "--max-prompt-tokens needs --tokenizer" in err
