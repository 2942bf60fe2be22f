"""Publishing a finished run (analysis/publish.py), its headline (analysis/headline.py) and the
rerun spread (analysis/spread.py), on hand-made inputs; the committed results/published/ folders and
the notebook that opens them with no run. The end-to-end publish of a real DAG run is in
test_workflow.py (it needs that module's finished run)."""
import json
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis import headline, publish, spread

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "results" / "published"

LOG = """\
Building DAG of jobs...
  Command: .venv/bin/snakemake --cores all
Execute 2 jobs...
[Tue Dec  1 18:38:02 2026]
localrule task_data:
    output: results/tiny/data/sst2/train.jsonl
    jobid: 3
    wildcards: task=sst2
[Tue Dec  1 18:38:02 2026]
rule base_model:
    output: results/tiny/base_model/config.json
    jobid: 1
[Tue Dec  1 18:38:05 2026]
Finished jobid: 3 (Rule: task_data)
1 of 5 steps (20%) done
[Tue Dec  1 18:39:17 2026]
Finished jobid: 1 (Rule: base_model)
[Tue Dec  1 18:39:18 2026]
rule train:
    jobid: 7
[Tue Dec  1 18:39:19 2026]
rule train:
    jobid: 8
[Tue Dec  1 18:39:29 2026]
Finished jobid: 8 (Rule: train)
[Tue Dec  1 18:39:48 2026]
Finished jobid: 7 (Rule: train)
[Tue Dec  1 18:39:50 2026]
rule aggregate:
    jobid: 2
Select jobs to execute...
[Tue Dec  1 18:40:10 2026]
Finished jobid: 2 (Rule: aggregate)
Elapsed time: 0:02:08.1
"""


def test_snakemake_log_gives_each_stages_jobs_job_time_and_span():
    jobs = publish.parse_snakemake_log(LOG)
    assert list(jobs["jobid"]) == [3, 1, 8, 7, 2]   # in the order they finished
    stages = {s["stage"]: s for s in publish.stage_times(jobs)}
    assert list(stages) == ["data", "base_model", "train", "aggregate"]   # by first start
    assert stages["data"] == {"stage": "data", "jobs": 1, "job_seconds": 3, "span_seconds": 3}
    assert stages["base_model"]["job_seconds"] == 75
    # two parallel training jobs: 30 s + 10 s of job time in a 30 s span
    assert stages["train"] == {"stage": "train", "jobs": 2, "job_seconds": 40, "span_seconds": 30}
    assert stages["aggregate"]["job_seconds"] == 20


def test_run_timing_and_the_newest_full_run_log(tmp_path):
    logs = tmp_path / ".snakemake" / "log"
    logs.mkdir(parents=True)
    (logs / "2026-12-01T183755.1.snakemake.log").write_text(LOG)
    (logs / "2026-12-01T190000.1.snakemake.log").write_text("Nothing to be done (all requested files are present).")
    (logs / "2026-12-01T170000.1.snakemake.log").write_text(LOG.replace("results/tiny/", "results/other/"))
    found = publish.find_run_log(Path("results/tiny"), logs)
    assert found.name == "2026-12-01T183755.1.snakemake.log"
    assert publish.find_run_log(Path("results/replication"), logs) is None
    timing = publish.run_timing(found)
    assert timing["wall_seconds"] == 128 and timing["jobs"] == 5
    assert timing["command"] == ".venv/bin/snakemake --cores all"


def summary_rows(task, metric, values, higher=True, family="glue", scale=100.0):
    return [{"family": family, "task": task, "metric_id": metric, "metric": metric, "higher_is_better": higher,
             "variant": v, "n": 1, "mean": m, "scale": scale} for v, m in values.items()]


def runs_rows(task, params):
    return [{"train_task": task, "variant": v, "seed": 0, "status": "ok", "trainable_params": p}
            for v, p in params.items()]


def test_headline_best_method_and_pareto_front_by_hand():
    summary = pd.DataFrame(
        summary_rows("sst2", "acc", {"base": 50.0, "lora": 80.0, "vera": 78.0, "mora1": 85.0, "multilora": 79.0})
        + summary_rows("cpt_domain", "word_perplexity", {"base": 90.0, "lora": 20.0, "milora": 25.0, "vera": 30.0},
                       higher=False, family="continual_pretraining", scale=1.0))
    runs = pd.DataFrame(runs_rows("sst2", {"base": None, "lora": 1000, "vera": 100, "mora1": 1000, "multilora": 1010})
                        + runs_rows("cpt_domain", {"base": None, "lora": 1000, "milora": 900, "vera": 100}))
    best = headline.best_methods(runs, summary).set_index("task")
    assert best.loc["sst2", "best"] == "mora1" and best.loc["sst2", "best value"] == "85"
    assert best.loc["sst2", "best params"] == "1,000" and best.loc["sst2", "base value"] == "50"
    # vera is cheapest; mora1 beats it at 1,000; multilora (1,010) beats nobody cheaper: off the front
    assert best.loc["sst2", "Pareto front (params: variant value)"] == "100: vera 78; 1,000: mora1 85"
    assert best.loc["cpt_domain", "best"] == "lora"      # lower perplexity is better
    assert best.loc["cpt_domain", "Pareto front (params: variant value)"] == "100: vera 30; 900: milora 25; 1,000: lora 20"


def analysed_folder(root: Path, values: dict, verdicts: dict) -> Path:
    (root / "tables").mkdir(parents=True)
    rows = (summary_rows("sst2", "acc", values["sst2"])
            + summary_rows("cpt_domain", "word_perplexity", values["cpt"], higher=False, family="cpt", scale=1.0))
    pd.DataFrame(rows).to_csv(root / "tables" / "summary.csv", index=False)
    (root / "replication.json").write_text(json.dumps({"claims": [{"claim": c, "verdict": v} for c, v in verdicts.items()]}))
    return root


def test_spread_moves_points_and_log_ratios_and_flags_flipped_verdicts(tmp_path):
    a = analysed_folder(tmp_path / "a", {"sst2": {"base": 50.0, "lora": 80.0, "mora1": 85.0},
                                         "cpt": {"lora": 20.0, "milora": 25.0}}, {1: "holds", 4: "holds"})
    b = analysed_folder(tmp_path / "b", {"sst2": {"base": 50.0, "lora": 88.0, "mora1": 84.0},
                                         "cpt": {"lora": 22.0, "milora": 25.0}}, {1: "holds", 4: "inconclusive"})
    c = analysed_folder(tmp_path / "c", {"sst2": {"base": 50.0, "lora": 80.0, "mora1": 85.0},
                                         "cpt": {"lora": 20.0, "milora": 25.0}}, {1: "holds", 4: "holds"})
    cells, by_task, claims = spread.compare([a, b, c], ["a", "b", "c"])
    move = cells.set_index(["task", "variant"])
    assert move.loc[("sst2", "lora"), "move b"] == pytest.approx(8.0) and move.loc[("sst2", "mora1"), "move b"] == 1.0
    assert move.loc[("cpt_domain", "lora"), "move b"] == pytest.approx(math.log(22 / 20))
    assert move.loc[("cpt_domain", "milora"), "move b"] == 0 and (move["move c"] == 0).all()   # c repeats a
    assert move.loc[("sst2", "lora"), "move"] == pytest.approx(8.0)                              # the largest
    task = by_task.set_index(["task", "rerun"])
    assert task.loc[("sst2", "b"), "largest move"] == 8.0 and task.loc[("sst2", "b"), "median move"] == 1.0
    assert task.loc[("sst2", "b"), "best method"] == "mora1 → lora" and task.loc[("sst2", "b"), "same best"] == "no"
    assert task.loc[("sst2", "c"), "largest move"] == 0 and task.loc[("sst2", "c"), "same best"] == "yes"
    assert task.loc[("cpt_domain", "b"), "same best"] == "yes"
    assert claims.set_index("claim")["stable"].to_dict() == {1: "yes", 4: "no"}


def test_spread_reports_ties_as_ties_and_counts_the_cells_that_moved(tmp_path):
    a = analysed_folder(tmp_path / "a", {"sst2": {"base": 50.0, "lora": 85.0, "mora1": 85.0, "vera": 70.0},
                                         "cpt": {"lora": 20.0, "milora": 25.0}}, {1: "holds"})
    b = analysed_folder(tmp_path / "b", {"sst2": {"base": 50.0, "lora": 85.0, "mora1": 84.0, "vera": 85.0},
                                         "cpt": {"lora": 20.0, "milora": 19.0}}, {1: "holds"})
    _, by_task, _ = spread.compare([a, b], ["a", "b"])
    task = by_task.set_index("task")
    assert task.loc["sst2", "best method"] == "lora = mora1 → lora = vera" and task.loc["sst2", "same best"] == "partly"
    assert task.loc["sst2", "moved"] == 2 and task.loc["cpt_domain", "moved"] == 1
    assert task.loc["cpt_domain", "best method"] == "lora → milora" and task.loc["cpt_domain", "same best"] == "no"


def test_headline_ties_are_ties_and_a_best_below_the_floor_is_none(tmp_path):
    rows = (summary_rows("sst2", "acc", {"base": 50.0, "lora": 85.0, "mora1": 85.0, "vera": 70.0})
            + summary_rows("uuid", "char_acc", {"base": 3.0, "lora": 4.0, "mora6": 5.5}, family="memorization"))
    summary = pd.DataFrame(rows)
    runs = pd.DataFrame([{"train_task": t, "variant": v, "seed": 0, "status": "ok", "trainable_params": 1000}
                         for t in ("sst2", "uuid") for v in ("lora", "mora1", "vera", "mora6")])
    best = headline.best_methods(runs, summary).set_index("task")
    assert best.loc["sst2", "best"] == "lora = mora1" and best.loc["sst2", "floor"] == "—"
    assert best.loc["uuid", "best"] == "none above the floor (mora6 best)" and best.loc["uuid", "floor"] == "19.8"


@pytest.mark.parametrize("profile", ["tiny", "replication", "real", "real_forgetting"])
def test_committed_headline_is_what_its_committed_tables_give(profile, tmp_path):
    import shutil
    folder = tmp_path / profile
    shutil.copytree(PUBLISHED / profile, folder)
    headline.rebuild(folder)
    assert (folder / "tables" / "headline.md").read_text() == (PUBLISHED / profile / "tables" / "headline.md").read_text()


def test_committed_spread_md_is_what_its_committed_csvs_give(tmp_path):
    """results/published/tiny/spread.md is rebuilt from spread.csv, spread_claims.csv and provenance.json."""
    import shutil
    folder = tmp_path / "tiny"
    shutil.copytree(PUBLISHED / "tiny", folder)
    spread.rebuild(folder)
    assert (folder / "spread.md").read_text() == (PUBLISHED / "tiny" / "spread.md").read_text()
    text = (folder / "spread.md").read_text()
    assert "`tiny`: commit b671675," in text and "`tiny_avx2`: commit 260431a," in text   # each run's commit
    assert "uncommitted" not in text                                                     # both trees were clean


@pytest.mark.parametrize("profile", ["tiny", "replication", "real", "real_forgetting", "zoo"])
def test_committed_published_folder_is_complete_and_small(profile):
    folder = PUBLISHED / profile
    info = json.loads((folder / "provenance.json").read_text())
    assert info["profile"] == profile and info["trained"]["runs"] > 0
    assert all(len(c) == 40 for c in info["trained"]["git_commits"])
    stages = {s["stage"]: s for s in info["timing"]["stages"]}
    assert stages["train"]["jobs"] == info["trained"]["runs"]    # the log is the run that trained these
    for name in ("replication.md", "tables/headline.md", "tables/runs.csv", "tables/summary.csv"):
        assert (folder / name).stat().st_size > 0, name
    assert list(folder.glob("plots/*.png")) and not list(folder.rglob("*.safetensors"))
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 5 * 2**20
    runs = pd.read_csv(folder / "tables" / "runs.csv")
    assert runs.drop_duplicates(["train_task", "variant", "seed"])["variant"].ne("base").sum() == info["trained"]["runs"]
    verdicts = json.loads((folder / "replication.json").read_text())["claims"]
    assert all(f"| {c['claim']} | {c['verdict']} |" in (folder / "tables" / "headline.md").read_text() for c in verdicts)


def test_notebook_opens_the_published_results_with_no_run():
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(ROOT / "notebooks" / "results.ipynb", as_version=4)
    env = os.environ.pop("LORABENCH_RESULTS", None)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        if env is not None:
            os.environ["LORABENCH_RESULTS"] = env
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = "".join(str(o.get("data", {})) + o.get("text", "") for o in outputs)
    assert "results/published/tiny" in shown and "trained at" in shown
    headline_md = (PUBLISHED / "tiny" / "tables" / "headline.md").read_text()
    assert "Best method per task" in shown and headline_md.splitlines()[-1][:40] in shown


def test_the_index_links_each_profiles_leaderboard_with_its_tally(tmp_path):
    from analysis.publish import write_index

    shutil.copytree(PUBLISHED / "tiny", tmp_path / "tiny")
    shutil.copytree(PUBLISHED / "real", tmp_path / "real")
    (tmp_path / "real" / "tables" / "leaderboard.md").unlink()        # a profile without one: no line
    text = write_index(tmp_path).read_text()
    tally = (PUBLISHED / "tiny" / "tables" / "leaderboard.md").read_text().splitlines()[-1]
    assert tally.startswith("Better than LoRA:")
    assert (f"Every method against LoRA, with 95% CIs: [`tiny/tables/leaderboard.md`](tiny/tables/leaderboard.md). "
            f"{tally}") in text
    assert text.count("Every method against LoRA") == 1
