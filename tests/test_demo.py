"""`hwaksan demo` says in one sentence when its result is not the demo's: training cut short, or
validity under 80%; and it trains by steps, with the kernels built before the clock starts."""

from __future__ import annotations

from click.testing import CliRunner

from hwaksan.cli import demo, main


def _report(trained: int, *validities: float) -> dict:
    scores = {f"s{i}": {"validity": v} for i, v in enumerate(validities)}
    return {"train_steps": trained, "scores": scores}


def test_a_full_good_run_says_nothing_more():
    assert demo._verdict(_report(2000, 0.89, 0.9), 2000) is None


def test_a_run_cut_short_says_so_and_what_to_do():
    note = demo._verdict(_report(135, 0.0, 0.0), 2000)
    assert "stopped at step 135 of 2000" in note and "--minutes" in note and "\n" not in note


def test_poor_validity_says_so_and_what_to_do():
    note = demo._verdict(_report(2000, 0.95, 0.5), 2000)
    assert "validity 50%" in note and "--steps 4000" in note and "\n" not in note


def test_toy_demo_trains_its_steps_without_a_clock_and_warns_of_its_poor_scores(
    tmp_path, monkeypatch
):
    built = []
    monkeypatch.setattr(demo, "_build_kernels", lambda: built.append(True))
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--steps", "2", "-n", "4"])
    assert result.exit_code == 0, result.output
    assert built == [True]
    assert "for 2 steps" in result.output and "note: validity" in result.output


def test_demo_rejects_zero_samples_before_training(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "-n", "0"])
    assert result.exit_code == 2 and "-n" in result.output
    assert not (tmp_path / "train").exists()
