"""The trainer: determinism, resume, divergence, method hooks, classification, config and files."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
import yaml

import adapters
from training import TrainConfig, train
from training.data import IGNORE, collate, encode_causal
from training.optim import LRSchedule, param_groups

from test_training_helpers import (adapter_tensors, make_lm_task, make_sentiment_task, make_tiny_base, read_log,
                                   summary, train_losses)

METHOD_OPTIONS = {"lora": {"r": 4}, "mora": {"r": 4, "mora_type": 1, "remora_every": 4},
                  "milora": {"r": 4}, "sora": {"r": 4, "xi": 0.01, "xi_max": 0.01, "l1_lambda": 0.01},
                  "vera": {"r": 8}, "multilora": {"r": 2, "n_modules": 2}}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_tiny_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def lm_task(tmp_path_factory):
    return make_lm_task(tmp_path_factory.mktemp("lm_task"))


def run_config(base, task, **overrides) -> dict:
    return {"model": str(base), "data_dir": str(task), "seq_len": 24, "batch_size": 8, "max_steps": 10,
            "lr": 2e-2, "warmup_steps": 2, "threads": 1, "method": "lora",
            "method_options": {"r": 4, "dropout": 0.1}, **overrides}


# --- determinism and resuming -----------------------------------------------------------
def test_same_seed_same_loss_curve_and_adapter(base, lm_task, tmp_path):
    cfg = run_config(base, lm_task, grad_accum=2)
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    train({**cfg, "seed": 1}, tmp_path / "c")
    assert train_losses(tmp_path / "a") == train_losses(tmp_path / "b")
    a, b, c = (adapter_tensors(tmp_path / x) for x in "abc")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the seed matters: init, dropout, data order
    losses = [loss for _, loss, _ in train_losses(tmp_path / "a")]
    assert losses[-1] < losses[0] - 0.5  # and it learns


@pytest.mark.parametrize("method", sorted(METHOD_OPTIONS))
def test_logits_at_target_positions_only_train_the_same_weights(base, lm_task, tmp_path, method, monkeypatch):
    """The output head runs only where a row of the batch has a target (training.trainer's
    LABELLED_LOGITS_ONLY): the same adapter bits as the head over every position, the same losses
    up to the float sum's order."""
    import training.trainer as trainer
    cfg = run_config(base, lm_task, method=method, method_options=METHOD_OPTIONS[method], log_every=1)
    cut = train(cfg, tmp_path / "cut")
    monkeypatch.setattr(trainer, "LABELLED_LOGITS_ONLY", False)
    whole = train(cfg, tmp_path / "whole")
    a, b = adapter_tensors(tmp_path / "cut"), adapter_tensors(tmp_path / "whole")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    cut_losses, whole_losses = train_losses(tmp_path / "cut"), train_losses(tmp_path / "whole")
    assert len(cut_losses) == cfg["max_steps"]
    assert [step for step, _, _ in cut_losses] == [step for step, _, _ in whole_losses]
    assert [loss for _, loss, _ in cut_losses] == pytest.approx([loss for _, loss, _ in whole_losses], rel=1e-6)
    assert cut["eval_loss"] == pytest.approx(whole["eval_loss"], rel=1e-6)


def test_logits_are_cut_only_under_a_frozen_head_without_virtual_tokens(base):
    """A trained head (full fine-tuning, a trained embedding tied to it) sums its weight gradient
    over the rows: those runs keep every position; so do prompt methods (virtual tokens shift them)."""
    from transformers import AutoModelForCausalLM
    from training.trainer import _frozen_head
    lora = adapters.apply(AutoModelForCausalLM.from_pretrained(base), "lora", "all-linear", r=4)
    assert _frozen_head(lora)
    assert not _frozen_head(AutoModelForCausalLM.from_pretrained(base))  # every weight trains
    peft = pytest.importorskip("peft")
    prompt = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                                 peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    assert not _frozen_head(prompt)
    lora_peft = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                                    peft.LoraConfig(task_type="CAUSAL_LM", r=4, target_modules="all-linear"))
    assert _frozen_head(lora_peft)


@pytest.mark.parametrize("method", sorted(METHOD_OPTIONS))
def test_resumed_run_equals_uninterrupted_run(base, lm_task, tmp_path, method):
    """Kill after 7 steps (last checkpoint at 6), rerun the same command: bitwise the same run.

    48 examples / batch 8 = 6 batches an epoch, so the run crosses an epoch boundary; for mora the
    options turn on ReMoRA (merge-and-switch + optimizer reset every 4 steps), for sora the gates
    have their own optimizer and the L1 penalty is on.
    """
    cfg = run_config(base, lm_task, method=method, method_options=METHOD_OPTIONS[method], max_steps=12,
                     checkpoint_every=3, eval_every=5)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert train(cfg, whole)["status"] == "ok"
    interrupted = train(cfg, resumed, stop_after_steps=7)
    assert interrupted == {"status": "interrupted", "step": 7}
    assert not (resumed / "train_summary.json").exists() and not (resumed / "adapter").exists()
    assert len(train_losses(resumed)) == 7  # step 7 was logged but not checkpointed: it is redone
    result = train(cfg, resumed)
    assert result["resumed_from_step"] == 6
    assert train_losses(resumed) == train_losses(whole)
    assert [e for e in read_log(resumed) if "eval_loss" in e] == [e for e in read_log(whole) if "eval_loss" in e]
    a, b = adapter_tensors(whole), adapter_tensors(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    s_whole, s_resumed = summary(whole), summary(resumed)
    for key in ("final_loss", "eval_loss", "tokens_seen", "steps", "trainable_params", "method_stats"):
        assert s_whole[key] == s_resumed[key], key
    assert not (resumed / "checkpoints").exists()  # removed after success unless keep_checkpoint


def test_checkpoint_of_another_config_is_not_resumed(base, lm_task, tmp_path):
    cfg = run_config(base, lm_task, checkpoint_every=2)
    train(cfg, tmp_path, stop_after_steps=3)
    with pytest.warns(UserWarning, match="another config"):
        result = train({**cfg, "lr": 1e-3}, tmp_path)
    assert result["resumed_from_step"] is None and result["status"] == "ok"


# --- snapshots (learning curves) ----------------------------------------------------------
def test_snapshots_are_the_weights_at_those_steps(base, lm_task, tmp_path):
    """A snapshot at step 4 of a 10-step run is the final adapter of the same run stopped at 4."""
    cfg = run_config(base, lm_task, snapshot_steps=[4, 10], schedule="constant")
    assert train(cfg, tmp_path / "long")["status"] == "ok"
    assert sorted(p.name for p in (tmp_path / "long" / "snapshots").iterdir()) == ["step4"]  # 10 = the end
    assert train({**cfg, "max_steps": 4, "snapshot_steps": []}, tmp_path / "short")["status"] == "ok"
    snap = adapter_tensors(tmp_path / "long" / "snapshots" / "step4")
    short, final = adapter_tensors(tmp_path / "short"), adapter_tensors(tmp_path / "long")
    assert snap.keys() == short.keys() and all(torch.equal(snap[k], short[k]) for k in snap)
    assert not all(torch.equal(snap[k], final[k]) for k in snap)
    # a fresh (not resumed) run in the same directory does not keep the old run's snapshots
    assert train({**cfg, "snapshot_steps": [6]}, tmp_path / "long")["status"] == "ok"
    assert sorted(p.name for p in (tmp_path / "long" / "snapshots").iterdir()) == ["step6"]
    with pytest.raises(ValueError, match="snapshot_steps"):
        TrainConfig.from_dict({**cfg, "snapshot_steps": [0]})


def test_restart_resets_the_adapters_optimizer_state_only(base, lm_task, tmp_path):
    """ReMoRA's merge-and-switch (every 4 steps) clears the adapter's Adam moments; a module trained
    in full beside it (modules_to_save: the LM head) keeps its own, as in ReLoRA's reference code."""
    from training.trainer import Trainer
    cfg = TrainConfig.from_dict(run_config(base, lm_task, method="mora", modules_to_save=["lm_head"],
                                           method_options={"r": 4, "mora_type": 1, "remora_every": 4}))
    trainer = Trainer(cfg, tmp_path)
    names = {id(p): n for n, p in trainer.raw_model.named_parameters()}
    for _ in range(3):
        trainer._train_step()
    assert any("lora" in names[id(p)] or "mora" in names[id(p)] for p in trainer.optimizer.state)
    trainer._train_step()  # step 4: merge-and-switch
    kept = sorted(names[id(p)] for p in trainer.optimizer.state)
    assert kept == ["lm_head.weight"] and trainer.optimizer.state[trainer.raw_model.lm_head.weight]["step"] == 4


# --- divergence and the CLI --------------------------------------------------------------
def test_huge_lr_diverges_with_status_and_step(base, lm_task, tmp_path):
    result = train(run_config(base, lm_task, lr=1e30, max_grad_norm=None, warmup_steps=0, max_steps=30), tmp_path)
    assert result["status"] == "diverged"
    assert 1 < result["diverged_step"] <= 30
    assert result["reason"].startswith(("loss is nan", "loss is inf"))
    assert summary(tmp_path)["diverged_step"] == result["diverged_step"]
    assert not (tmp_path / "adapter").exists()


def test_cli_exit_status_and_one_line_reasons(base, lm_task, tmp_path):
    def cli(config: dict):
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        return subprocess.run([sys.executable, "-m", "training", "--config", str(path), "--out", str(tmp_path / "out")],
                              capture_output=True, text=True)

    done = cli(run_config(base, lm_task, lr=1e30, max_grad_norm=None, warmup_steps=0, max_steps=30))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("diverged: loss is")
    bad = cli({**run_config(base, lm_task), "learning_rate": 1e-3})
    assert bad.returncode == 2 and "unknown key 'learning_rate'" in bad.stderr and bad.stderr.count("\n") == 1
    ok = cli(run_config(base, lm_task, max_steps=3))
    assert ok.returncode == 0 and summary(tmp_path / "out")["status"] == "ok"


def test_help_lists_every_config_key():
    done = subprocess.run([sys.executable, "-m", "training", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for key in TrainConfig.__dataclass_fields__:
        assert f"\n{key}:" in done.stdout, key


# --- config ------------------------------------------------------------------------------
def test_config_rejects_unknown_keys_and_layers_method_defaults(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key 'warmup' .*did you mean 'warmup_steps'"):
        TrainConfig.from_dict({"model": "m", "data_dir": "d", "warmup": 3})
    vera = TrainConfig.from_dict({"model": "m", "data_dir": "d", "method": "vera"})
    assert vera.lr == adapters.method_config("vera")["train"]["lr"]  # the method's YAML default
    assert TrainConfig.from_dict({"model": "m", "data_dir": "d", "method": "vera", "lr": 1e-2}).lr == 1e-2
    sora = TrainConfig.from_dict({"model": "m", "data_dir": "d", "method": "sora"})
    assert (sora.weight_decay, sora.max_grad_norm) == (0.1, 0.1)
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig.from_dict({"model": "m", "data_dir": "d", "schedule": "cosin"})
    path = tmp_path / "run.yaml"
    path.write_text("model: m\ndata_dir: d\nthreads: 2\n")
    a, b = TrainConfig.from_yaml(path), TrainConfig.from_dict({"model": "m", "data_dir": "d"})
    assert a.config_hash() == b.config_hash()  # threads do not change what is computed
    assert a.config_hash() != TrainConfig.from_dict({"model": "m", "data_dir": "d", "seed": 1}).config_hash()


# --- pieces: data, schedule, parameter groups -------------------------------------------
def test_loss_only_on_target_tokens_and_padding_masked(base):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(base)
    records = [{"id": "1", "prompt": "3 plus 4 is", "target": " 7."}, {"id": "2", "prompt": "", "target": "anna lives"}]
    examples = encode_causal(records, tok, seq_len=32, add_bos=True)
    prompt_len = 1 + len(tok("3 plus 4 is", add_special_tokens=False)["input_ids"])
    target = tok(" 7.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert examples[0]["input_ids"][0] == tok.bos_token_id
    assert examples[0]["labels"] == [IGNORE] * prompt_len + target
    assert examples[1]["labels"][0] == IGNORE and IGNORE not in examples[1]["labels"][1:]
    batch = collate(examples, tok.pad_token_id)
    width = batch.input_ids.shape[1]
    assert batch.attention_mask.sum() == sum(len(e["input_ids"]) for e in examples) == batch.tokens
    assert (batch.labels[batch.attention_mask == 0] == IGNORE).all()
    assert batch.units == len(target) + len(examples[1]["labels"]) - 1 and width == max(map(len, (e["input_ids"] for e in examples)))


def test_schedules_warmup_decay_and_restart():
    def cfg(**kw):
        return TrainConfig(model="m", data_dir="d", method=None, **kw)
    linear = LRSchedule(cfg(warmup_steps=10), total_steps=110)
    assert [linear.factor(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert linear.factor(60) == pytest.approx(0.5) and linear.factor(109) == pytest.approx(0.01)
    cosine = LRSchedule(cfg(schedule="cosine", warmup_ratio=0.1, min_lr_ratio=0.1), total_steps=100)
    assert cosine.warmup == 10 and cosine.factor(55) == pytest.approx(0.55) and cosine.factor(99) == pytest.approx(0.1, abs=1e-3)
    assert LRSchedule(cfg(schedule="constant"), total_steps=50).factor(49) == 1.0
    linear.restart(60)  # an optimizer reset (the MoRA callback): the rate it had, then a 50-step warmup
    assert linear.factor(60) == pytest.approx(0.5) and linear.factor(69) == pytest.approx(0.5 * 9 / 50)


def test_param_groups_decay_only_matrices_and_apply_head_lr_and_multipliers(base):
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    adapters.apply(model, "vera", ["q_proj", "v_proj"], modules_to_save=["score"], r=8)
    cfg = TrainConfig(model="m", data_dir="d", lr=1e-3, head_lr=1e-2, weight_decay=0.1,
                      lr_multipliers={"vera_lambda_d": 3.0})
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(cfg, adapters.training_hooks(model).main_parameters(), ["score"])
    for group in groups:
        for p in group["params"]:
            name = names[id(p)]
            assert group["weight_decay"] == (0.1 if p.ndim >= 2 else 0.0), name
            expected = 1e-2 if name.startswith("score.") else 1e-3 * (3.0 if "vera_lambda_d" in name else 1.0)
            assert group["base_lr"] == pytest.approx(expected), name
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


def test_epochs_gradient_checkpointing_and_cpu_precision(base, lm_task, tmp_path):
    # 48 examples / batch 8 = 6 batches an epoch, grad_accum 2 → 3 steps an epoch; 1.5 epochs → 5 steps.
    cfg = run_config(base, lm_task, max_steps=None, epochs=1.5, grad_accum=2, eval_at_end=False)
    plain = train(cfg, tmp_path / "plain")
    assert plain["total_steps"] == plain["steps"] == 5 and plain["epochs_seen"] == pytest.approx(10 / 6)
    checkpointed = train({**cfg, "gradient_checkpointing": True}, tmp_path / "checkpointed")
    assert [loss for _, loss, _ in train_losses(tmp_path / "checkpointed")] == pytest.approx(
        [loss for _, loss, _ in train_losses(tmp_path / "plain")], rel=1e-5)  # recomputation, same numbers
    assert checkpointed["final_loss"] == pytest.approx(plain["final_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="precision bf16 needs a GPU"):
        train({**cfg, "precision": "bf16"}, tmp_path / "bf16")
    assert summary(tmp_path / "bf16")["status"] == "failed"


# --- method hooks ------------------------------------------------------------------------
def test_sora_live_rank_falls_under_positive_xi(base, lm_task, tmp_path):
    cfg = run_config(base, lm_task, method="sora", max_steps=40, target_modules=["q_proj", "v_proj"],
                     method_options={"r": 8, "xi": 0.02, "xi_max": 0.02, "gate_lr": 1e-3})
    result = train(cfg, tmp_path)
    log = [e for e in read_log(tmp_path) if "loss" in e]
    start_rank = 8 * 4  # r_max × (q, v) × 2 layers
    assert set(log[0]["live_rank"]) == {f"model.layers.{i}.self_attn.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")}
    ranks = [e["live_rank_total"] for e in log]
    assert ranks[0] <= start_rank and all(b <= a for a, b in zip(ranks, ranks[1:]))  # gates only die
    assert result["method_stats"]["live_rank_total"] == ranks[-1] < 0.75 * start_rank
    gates = [v for k, v in adapter_tensors(tmp_path).items() if k.endswith("sora_gate")]
    assert sum(int((g != 0).sum()) for g in gates) == ranks[-1]
    zero = train({**cfg, "method_options": {**cfg["method_options"], "xi": 0.0, "xi_max": 0.0}}, tmp_path / "xi0")
    assert zero["method_stats"]["live_rank_total"] == start_rank


def test_pretraining_from_scratch_with_adapter_saves_its_random_base(base, lm_task, tmp_path):
    """MoRA's Table 3 setting: random init, ReMoRA, embeddings / norms / lm_head trained whole."""
    from transformers import AutoModelForCausalLM
    model_config = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 64}
    cfg = run_config(base, lm_task, model_init="random", model="", tokenizer=str(base), model_config=model_config,
                     method="mora", method_options={"r": 4, "mora_type": 1, "remora_every": 5},
                     modules_to_save=["embed_tokens", "norm", "input_layernorm", "post_attention_layernorm", "lm_head"])
    result = train(cfg, tmp_path)
    assert result["status"] == "ok"
    rebuilt = adapters.load(AutoModelForCausalLM.from_pretrained(tmp_path / "base_model"), tmp_path / "adapter")
    probe = torch.tensor([[1, 5, 9, 13, 17]])
    trained_again = train({**cfg, "keep_checkpoint": True}, tmp_path / "again")  # same seed: same run
    assert trained_again["final_loss"] == result["final_loss"]
    reference = adapters.load(AutoModelForCausalLM.from_pretrained(tmp_path / "again" / "base_model"),
                              tmp_path / "again" / "adapter")
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(probe).logits, reference.eval()(probe).logits)
    info = adapters.read_config(tmp_path / "adapter")
    assert "model.embed_tokens" in info["modules_to_save"] and "lm_head" in info["modules_to_save"]
    lr = {step: value for step, _, value in train_losses(tmp_path)}
    # ReMoRA resets after step 5 (the MoRA callback): step 6 keeps the decayed rate, then a 50-step warmup
    assert lr[6] == pytest.approx(lr[5] * (1 - 3 / 8) / (1 - 2 / 8)) and lr[7] == pytest.approx(lr[6] / 50)


# --- classification ----------------------------------------------------------------------
def test_classifier_beats_chance_on_generated_sentiment(base, tmp_path):
    task = make_sentiment_task(tmp_path / "sst")
    cfg = {"model": str(base), "data_dir": str(task), "task_kind": "classification", "seq_len": 24,
           "batch_size": 16, "max_steps": 60, "lr": 5e-3, "head_lr": 1e-2, "warmup_steps": 5, "threads": 1,
           "method": "lora", "method_options": {"r": 4}}
    result = train(cfg, tmp_path / "run")
    assert result["status"] == "ok" and result["eval_accuracy"] >= 0.9, result
    info = adapters.read_config(tmp_path / "run" / "adapter")
    assert info["modules_to_save"] == ["score"]  # the head, found without naming it


def test_regression_head_for_float_labels(base, tmp_path):
    """STS-B style: float labels → one output, MSE; it must beat predicting the mean."""
    from test_training_helpers import sentiment_records, write_jsonl
    def scored(seed, n):
        return [{**r, "label": 4.0 * r["label"] + 0.5} for r in sentiment_records(seed, n)]
    write_jsonl(tmp_path / "sts" / "train.jsonl", scored(0, 256))
    write_jsonl(tmp_path / "sts" / "validation.jsonl", scored(1, 96))
    cfg = {"model": str(base), "data_dir": str(tmp_path / "sts"), "task_kind": "classification", "seq_len": 24,
           "batch_size": 16, "max_steps": 80, "lr": 1e-2, "warmup_steps": 5, "threads": 1}
    result = train(cfg, tmp_path / "run")
    labels = [r["label"] for r in scored(1, 96)]
    mean = sum(labels) / len(labels)
    variance = sum((x - mean) ** 2 for x in labels) / len(labels)  # MSE of always predicting the mean
    assert result["eval_loss"] < 0.25 * variance, (result["eval_loss"], variance)


def test_two_process_ddp_equals_one_process_with_gradient_accumulation(base, tmp_path):
    """The multi-GPU path on CPU: torchrun (what `accelerate launch` runs) starts 2 gloo processes.

    Process r takes batches r, r+2, ... of the same order, so 2 processes × batch 4 see exactly
    the batches one process sees with grad_accum 2; with equal units per batch (classification)
    the averaged gradients are the same, up to the order of floating-point sums.
    """
    task = make_sentiment_task(tmp_path / "sst", n_train=64, n_val=32)
    cfg = {"model": str(base), "data_dir": str(task), "task_kind": "classification", "seq_len": 24,
           "batch_size": 4, "max_steps": 6, "lr": 5e-3, "threads": 1, "method_options": {"r": 4, "dropout": 0.0},
           "checkpoint_every": 3}
    train({**cfg, "grad_accum": 2}, tmp_path / "single")
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "training", "--config", str(tmp_path / "ddp.yaml"), "--out", str(tmp_path / "ddp")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    single, ddp = train_losses(tmp_path / "single"), train_losses(tmp_path / "ddp")
    assert [s for s, _, _ in ddp] == list(range(1, 7))
    assert [loss for _, loss, _ in ddp] == pytest.approx([loss for _, loss, _ in single], rel=1e-5)
    a, b = adapter_tensors(tmp_path / "single"), adapter_tensors(tmp_path / "ddp")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert summary(tmp_path / "ddp")["tokens_seen"] == summary(tmp_path / "single")["tokens_seen"]


# --- the run's files ---------------------------------------------------------------------
def test_run_files_summary_and_provenance(base, lm_task, tmp_path, monkeypatch):
    monkeypatch.setenv("LORABENCH_THREADS", "2")
    cfg = {**run_config(base, lm_task, max_steps=4, log_every=2), "threads": None}
    result = train(cfg, tmp_path)
    assert torch.get_num_threads() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "provenance.json", "train_log.jsonl",
                                                         "train_summary.json"]
    s = summary(tmp_path)
    assert s == json.loads(json.dumps(result))
    model = adapters.load(__import__("transformers").AutoModelForCausalLM.from_pretrained(base), tmp_path / "adapter")
    lora_per_layer = 4 * (4 * (32 + 32) + 3 * (32 + 64))  # r (d_in + d_out): q k v o, then gate up down
    assert s["trainable_params"] == adapters.num_trainable(model) == 2 * lora_per_layer
    assert s["status"] == "ok" and s["steps"] == 4 and s["tokens_seen"] > 0 and s["peak_memory_mb"] > 0
    assert math.isfinite(s["final_loss"]) and math.isfinite(s["eval_loss"]) and s["wall_time_s"] > s["train_time_s"] > 0
    log = read_log(tmp_path)
    assert [e["step"] for e in log] == [2, 4, 4]  # every log_every steps, then the final eval
    assert {"step", "loss", "lr", "tokens_per_s", "memory_mb", "grad_norm"} <= set(log[0])
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["config_hash"] == s["config_hash"] == TrainConfig.from_dict(cfg).config_hash()
    assert prov["seed"] == 0 and prov["packages"]["torch"] == torch.__version__
    assert len(prov["git_commit"] or "") == 40 and isinstance(prov["git_dirty"], bool)
    assert prov["hardware"]["torch_threads"] == 2
