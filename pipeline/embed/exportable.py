"""What a model folder must be for the onnx backends to export it, and cutting a model to its first layers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

# sentence-transformers modules this exporter reproduces: anything else (a Dense layer, CLS
# pooling) would silently give other vectors, so it is refused.
SUPPORTED_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
    "sentence_transformers.base.modules.Transformer",
    "sentence_transformers.base.modules.Pooling",
    "sentence_transformers.base.modules.Normalize",
}


def check_exportable(model_dir: Path) -> None:
    """Refuse a model folder whose sentence-transformers pipeline is not transformer + mean pooling."""
    if not (model_dir / "tokenizer.json").is_file():
        raise ConfigError(
            f"embed.model '{model_dir}' has no tokenizer.json (a fast tokenizer), which the onnx "
            "backends need; use embed.backend: sentence-transformers for this model"
        )
    modules_file = model_dir / "modules.json"
    if modules_file.is_file():
        modules = {module["type"] for module in json.loads(modules_file.read_text(encoding="utf-8"))}
        unsupported = sorted(modules - SUPPORTED_MODULES)
        if unsupported:
            raise ConfigError(
                f"embed.model '{model_dir}' uses {', '.join(unsupported)}, which the onnx backends do not "
                "reproduce; use embed.backend: sentence-transformers for this model"
            )
    for pooling_file in model_dir.glob("*_Pooling/config.json"):
        pooling = json.loads(pooling_file.read_text(encoding="utf-8"))
        modes = {key for key, value in pooling.items() if key.startswith("pooling_mode_") and value is True}
        if modes != {"pooling_mode_mean_tokens"}:
            raise ConfigError(
                f"embed.model '{model_dir}' pools with {', '.join(sorted(modes)) or 'nothing'}; the onnx backends "
                "do mean pooling only; use embed.backend: sentence-transformers for this model"
            )


def keep_first_layers(model: Any, layers: int, model_dir: Path) -> None:
    """Cut a BERT-type `model` (in place) to its first `layers` transformer layers."""
    encoder: Any = getattr(model, "encoder", None)
    stack = getattr(encoder, "layer", None)
    if stack is None:
        raise ConfigError(f"embed.model '{model_dir}' has no encoder.layer stack to cut to {layers} layers")
    if not 1 <= layers <= len(stack):
        raise ConfigError(f"embed.model '{model_dir}' has {len(stack)} layers; cannot keep the first {layers}")
    encoder.layer = stack[:layers]
    model.config.num_hidden_layers = layers
