"""The LoRA-family methods behind one interface.

    import adapters
    adapters.available()                                   # ['lora', 'milora', 'mora', ...]
    adapters.apply(model, "mora", ["q_proj", "v_proj"], r=8, mora_type=6)
    adapters.num_trainable(model); adapters.merge(model); adapters.save(model, "out/adapter")
    adapters.load(fresh_base_model, "out/adapter")
    adapters.export_merged(model, "out/merged"); adapters.export_peft(model, "out/peft")

One file per method (lora.py, mora.py, milora.py, sora.py, vera.py, multilora.py); each
registers itself, and its defaults live in config/methods/<name>.yaml. The exact math of
every method is in its file's docstring and in docs/methods.md. A YAML with a `peft:` block
instead is one of PEFT's methods (adapters/peft_method.py, docs/peft_methods.md; adapters.peft_methods()).
"""
from ._hooks import TrainingHooks
from ._inject import (ALL_LINEAR, adapted_modules, adapter_info, adapter_params, apply, find_targets, merge,
                      num_trainable, training_hooks, unmerge)
from ._io import adapter_state_dict, export_merged, export_peft, load, merged_state_dict, read_config, save
from ._layer import AdaptedLayer
from ._registry import add_methods_dir, available, method_config, peft_methods, register, variants

__all__ = [
    "ALL_LINEAR", "AdaptedLayer", "TrainingHooks", "adapted_modules", "adapter_info", "adapter_params", "adapter_state_dict",
    "add_methods_dir", "apply", "available", "export_merged", "export_peft", "find_targets", "load", "merge",
    "merged_state_dict", "method_config", "num_trainable", "peft_methods", "read_config", "register", "save", "training_hooks",
    "unmerge", "variants",
]
