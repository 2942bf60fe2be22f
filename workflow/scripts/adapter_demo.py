"""Apply every registered method to a small LLaMA and show what each one costs and how exact it is.

    python workflow/scripts/adapter_demo.py

For each method (at its config/methods/*.yaml defaults, all linear layers): trainable parameters,
their share of the model, the output change at init, and the merge error after the adapter's
tensors are set to random values (merged forward vs unmerged forward, fp32).
"""
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import adapters

VARIANTS = {"mora": [{"mora_type": 1}, {"mora_type": 6}], "milora": [{"init": "minor"}, {"init": "principal"}]}


def base_model():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=344, num_hidden_layers=4,
                                        num_attention_heads=4, num_key_value_heads=4)).eval()


@torch.no_grad()
def main():
    torch.set_num_threads(1)
    tokens = torch.randint(0, 512, (2, 32), generator=torch.Generator().manual_seed(0))
    reference = base_model()(tokens).logits
    total = sum(p.numel() for p in base_model().parameters())
    print(f"base: LLaMA-architecture, hidden 128, 4 layers, {total:,} parameters; adapters on all linear layers\n")
    print(f"{'method':<24} {'trainable':>10} {'% of base':>9} {'|Δout| at init':>15} {'merge error':>12}")
    for method in adapters.available():
        for extra in VARIANTS.get(method, [{}]):
            model = adapters.apply(base_model(), method, "all-linear", dropout=0.0, **extra)
            init_change = (model(tokens).logits - reference).abs().max().item()
            g = torch.Generator().manual_seed(1)
            for layer in adapters.adapted_modules(model).values():
                for p in layer.adapter_parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.02)
            unmerged = model(tokens).logits
            adapters.merge(model)
            merge_error = (model(tokens).logits - unmerged).abs().max().item()
            label = method + "".join(f" {k}={v}" for k, v in extra.items())
            n = adapters.num_trainable(model)
            print(f"{label:<24} {n:>10,} {100 * n / total:>8.3f}% {init_change:>15.1e} {merge_error:>12.1e}")


if __name__ == "__main__":
    main()
