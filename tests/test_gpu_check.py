"""benchmarks/gpu_check.sh's plumbing on CPU (--dry-run): every step runs tiny (the GPU tests are
selected and skipped, adapters_speed in bf16 autocast at hidden 64, claim 4 of the real profile is
planned with the check's overrides), and the outputs land under a directory naming the device."""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run(tmp_path):
    env = {**os.environ, "LORABENCH_GPU_CHECK_OUT": str(tmp_path), "OMP_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    result = tmp_path / "gpu_check_cpu_dry_run"
    summary = json.loads((result / "summary.json").read_text())
    assert summary["device"] == "cpu" and summary["dry_run"]
    assert {s: v["exit"] for s, v in summary["steps"].items()} == {"gpu_tests": 0, "adapters_speed": 0, "claim4": 0}
    tests = (result / "gpu_tests.log").read_text()
    assert "skipped" in tests and "deselected" in tests           # the gpu marker selects, CPU skips
    speed = json.loads((result / "adapters_speed_cpu_dry_run.json").read_text())
    assert speed["args"]["dtype"] == "bfloat16" and {r["method"] for r in speed["rows"]} >= {"peft_lora", "lora"}
    plan = (result / "claim4.log").read_text()
    assert "real_gpu_check" in (result / "claim4.yaml").read_text() and "train" in plan
