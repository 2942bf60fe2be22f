"""lm-eval model wrapper for sequence classifiers (a transformers `...ForSequenceClassification`).

GLUE in the papers is classification with a trained head, not prompting, so the head answers
lm-eval's requests directly and the results come back through lm-eval like any other task:
- `loglikelihood((context, continuation))`: the context is the record's text as JSON (see
  `task_hooks.classifier_context`), the continuation a label index; the answer is the head's
  log-softmax for that label, and whether that label is the argmax. A multiple_choice task over
  the label indices then yields accuracy/F1/MCC of the classifier's predictions.
- `generate_until((context, gen_kwargs))`: for a regression head (STS-B, num_labels=1), the
  predicted score as a decimal string.
Each distinct context is run through the model once, in batches.
"""

from __future__ import annotations

import json

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model


@register_model("lorabench-classifier")
class SequenceClassifierLM(LM):
    def __init__(
        self, model, tokenizer, batch_size: int | str = 16, max_length: int | None = None, **_ignored
    ):
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 16
        limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
        self.max_length = max_length or min(n for n in limits if n and n < 1_000_000)
        self._device = next(model.parameters()).device

    @torch.no_grad()
    def _logits(self, contexts: list[str]) -> dict[str, torch.Tensor]:
        """Classifier logits per distinct context."""
        unique = list(dict.fromkeys(contexts))
        logits = {}
        for start in range(0, len(unique), self.batch_size):
            batch = [json.loads(c) for c in unique[start : start + self.batch_size]]
            texts = [r["text"] for r in batch]
            pairs = [r["text_pair"] for r in batch]
            encoded = self.tokenizer(
                texts,
                pairs if any(p is not None for p in pairs) else None,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self._device)
            out = self.model(**encoded).logits.float().cpu()
            logits.update(zip(unique[start : start + self.batch_size], out))
        return logits

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        logits = self._logits([req.args[0] for req in requests])
        answers = []
        for req in requests:
            context, continuation = req.args
            log_probs = torch.log_softmax(logits[context], dim=-1)
            label = int(continuation.strip())
            answers.append((float(log_probs[label]), bool(label == int(log_probs.argmax()))))
        return answers

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        logits = self._logits([req.args[0] for req in requests])
        if next(iter(logits.values())).numel() != 1:
            raise ValueError("generate_until on lorabench-classifier needs a regression head (num_labels=1)")
        return [repr(float(logits[req.args[0]][0])) for req in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError("a sequence classifier has no language-model likelihood (perplexity tasks)")
