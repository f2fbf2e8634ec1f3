from verl_toolmaster.verl_logs import parse_steps

LOG = """(TaskRunnerV1 pid=1) step:1 - actor/pg_loss:-0.06 - num_turns/min:np.int32(2) - critic/score/mean:1.2 - x:1e-05
noise line
(TaskRunnerV1 pid=1) step:2 - actor/pg_loss:0.5 - training/rollout_probs_diff_mean:nan
(TaskRunnerV1 pid=1) step:2 - actor/pg_loss:0.5 - extra:3
"""


def test_parse_steps_reads_numbers_numpy_reprs_and_repeats():
    steps = parse_steps(LOG)
    assert sorted(steps) == [1, 2]
    assert steps[1] == {"actor/pg_loss": -0.06, "num_turns/min": 2.0, "critic/score/mean": 1.2, "x": 1e-05}
    assert steps[2]["extra"] == 3.0 and steps[2]["actor/pg_loss"] == 0.5
    assert steps[2]["training/rollout_probs_diff_mean"] != steps[2]["training/rollout_probs_diff_mean"]  # nan
