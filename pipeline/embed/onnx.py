"""ONNX Runtime backends: a sentence-transformers model exported once, run without torch.

The build (once per source model and variant, cached by ``models.built_model_dir``):

1. ``torch.onnx.export`` of the transformer with mean pooling over the attention mask and
   L2 normalisation inside the graph, so the graph's output is the sentence-transformers
   vector (not ``optimum``: it pins transformers below 5 and breaks sentence-transformers 6);
2. onnxruntime's BERT fusions (attention, embedding layer norm, GELU) for BERT-type models,
   but not SkipLayerNormalization: onnxruntime's CPU kernel for it (residual add + layer norm
   in one op) takes about 4x the time of the Add and LayerNormalization it replaces, which
   made it ~15% of the int8 model's time; the sessions are told not to fuse it either
   (``Recipe``, bench/embeddings.py);
3. for ``int8``: dynamic quantisation of the weights, per channel (per tensor loses too much:
   mean cosine 0.93 to fp32 instead of 0.995). int8 matrix products are the fast path of
   CPUs with AVX-512 VNNI or AVX-VNNI.

At run time only onnxruntime and the ``tokenizers`` fast tokenizer of the model folder
(``tokenizer.json``) are needed. Every text runs alone, in a batch of one without padding,
so that its vector is a function of the text and the model only: dynamic int8 quantisation
scales a matrix product's activations by the largest value in the batch, so in batches the
same text got another vector in other company (up to 0.022 per element; cosine 0.993), and
with padding even fp32 sums in another order. One single-threaded session per core takes
texts from a shared queue, longest first; onnxruntime releases the GIL while it runs. This
is faster than padded batches of 64 on one two-threaded session (docs/benchmarks.md, "Embedding
backends": no padding is wasted and both cores stay busy), and the thread count of a session
never changes a vector.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import queue
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.embed.exportable import check_exportable, keep_first_layers
from pipeline.embed.models import built_model_dir, require_modules, weights_digest

log = logging.getLogger(__name__)

# Bump when the exported graph changes for the same source model: it keys the model cache
# and the embedding cache (2: SkipLayerNormalization no longer fused; 3: int8 weights in 7 bits).
BUILD_VERSION = 3
# Bump when the way texts are fed to a built model changes its vectors: it keys the embedding
# cache only (2: every text alone, no padding; 1 was length-sorted padded batches).
ENCODE_VERSION = 2
OPSET = 17
MODEL_FILE = "model.onnx"
# onnxruntime's session-level optimiser would fuse Add + LayerNormalization back into this.
SKIP_LAYER_NORM_FUSION = "SkipLayerNormFusion"


@dataclass(frozen=True)
class Recipe:
    """How a model is built beyond its variant. The defaults are what the backends use.

    The other values exist so that bench/embeddings.py can build and time, side by side,
    what the defaults were chosen against; each one gives the built model another key.
    """

    # Fuse Add + LayerNormalization into SkipLayerNormalization (BUILD_VERSION 1 did): slower.
    skip_layer_norm: bool = False
    # int8 weights in 7 bits (the default since BUILD_VERSION 3), so that the u8s8 kernels of CPUs
    # without VNNI (AVX2, AVX-512BW: vpmaddubsw adds pairs of products in int16, saturating) sum
    # exactly. On the 64 seed papers it brings an AVX2 CPU's vectors (emulated, qemu Haswell-v4)
    # from cosine >= 0.990 to >= 0.998 of an AVX-512 VNNI CPU's, at the same speed on VNNI; it
    # costs 0.001 of mean cosine to fp32 (0.9936 against 0.9948), and k-means NMI stays within
    # 0.003 (bench/embeddings.py: daily-cs 0.308 vs 0.310, kaggle 0.576 vs 0.579).
    reduce_range: bool = True
    # Weight type for int8: "int8" runs the u8s8 kernels (VNNI's), "uint8" the u8u8 ones.
    weights: Literal["int8", "uint8"] = "int8"
    # Self-attention as onnxruntime's fused Attention op (QAttention once quantised), as plain
    # MatMul/Softmax nodes, or as MultiHeadAttention after Q/K/V MatMuls; and GELU exact (erf,
    # BiasGelu) or its tanh approximation (FastGelu). On AVX-512 VNNI each costs within 3% of the
    # default's CPU time per text (13.7, 14.2 and 14.0 ms against 13.8: bench/embeddings.py, issue
    # 32): the int8 weight products are half of a text's time and already at the kernels' peak
    # (bench/onnx_profile.py), so the defaults stay.
    attention: Literal["fused", "unfused", "multihead"] = "fused"
    gelu: Literal["erf", "tanh"] = "erf"
    # Keep only the first `layers` transformer layers (None: all of them); the embeddings, mean
    # pooling and normalisation stay. Each layer costs a sixth of a text's time, but MiniLM was
    # trained for its last layer's mean: cut to 5 layers its vectors are at cosine 0.34 to the
    # default's and k-means NMI falls by 0.06 on both shared corpora (4 layers: 0.12 / 0.10), so
    # it stays a bench variant (bench/embeddings.py --group cuts, issue 32).
    layers: int | None = None

    @property
    def tag(self) -> str:
        """The part of the build key that names what differs from the defaults ("" for the defaults)."""
        default = Recipe()
        parts = [
            ("-sln", self.skip_layer_norm != default.skip_layer_norm),
            ("-rr" if self.reduce_range else "-fullrange", self.reduce_range != default.reduce_range),
            (f"-w{self.weights}", self.weights != default.weights),
            (f"-att{self.attention}", self.attention != default.attention),
            (f"-gelu{self.gelu}", self.gelu != default.gelu),
            (f"-layers{self.layers}", self.layers != default.layers),
        ]
        return "".join(part for part, differs in parts if differs)


def _onnxruntime():
    """onnxruntime, its usage events off before any session (the CLI also sets ORT_DISABLE_TELEMETRY)."""
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    return onnxruntime


def export_fp32(model_dir: Path, path: Path, recipe: Recipe) -> dict[str, Any]:
    """Export the transformer + mean pooling + normalisation to `path` (fp32, fused when BERT-type)."""
    require_modules("onnx export", {"torch": "torch", "transformers": "transformers", "onnx": "onnx"})
    import torch
    from transformers import AutoModel

    # Read from the folder only (local_files_only): a model that is not on disk must fail, never be fetched.
    # Eager attention traces into plain MatMul/Softmax nodes, which the fusions recognise.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True).eval()
    if recipe.layers is not None:
        keep_first_layers(model, recipe.layers, model_dir)
    wants_token_types = "token_type_ids" in inspect.signature(model.forward).parameters

    class SentenceEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            extra = {"token_type_ids": torch.zeros_like(input_ids)} if wants_token_types else {}
            tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    # A padded example, so that the traced graph handles padding.
    input_ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 3231, 102, 0, 0, 0]], dtype=torch.long)
    attention_mask = (input_ids != 0).long()
    raw = path.with_name("raw.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation notices: the result is checked by the tests
        torch.onnx.export(
            SentenceEncoder(),
            (input_ids, attention_mask),
            str(raw),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    facts: dict[str, Any] = {"torch": torch.__version__, "opset": OPSET}
    if model.config.model_type == "bert":
        _onnxruntime()
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        fusions = FusionOptions("bert")
        fusions.enable_skip_layer_norm = fusions.enable_bias_skip_layer_norm = recipe.skip_layer_norm
        fusions.enable_attention = recipe.attention != "unfused"
        fusions.use_multi_head_attention = recipe.attention == "multihead"
        fusions.enable_gelu_approximation = recipe.gelu == "tanh"
        optimized = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=model.config.num_attention_heads,
            hidden_size=model.config.hidden_size,
            opt_level=1,
            optimization_options=fusions,
        )
        facts["fused"] = {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}
        optimized.save_model_to_file(str(path))
        raw.unlink()
    else:
        raw.rename(path)
    return facts


def quantize_int8(source: Path, target: Path, recipe: Recipe) -> None:
    """Dynamic int8 quantisation of every weight matrix, per output channel."""
    import onnx

    _onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime advises a pre-processing step through the root logger (logging.warning, which
    # would also install a stderr handler on a root logger that has none): drop that one record.
    root = logging.getLogger()
    quiet, placeholder = _DropRecords("pre-processing before quantization"), logging.NullHandler()
    root.addFilter(quiet)
    root.addHandler(placeholder)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QUInt8 if recipe.weights == "uint8" else QuantType.QInt8,
            per_channel=True,
            reduce_range=recipe.reduce_range,
            # The fused graph's outputs have no inferred type; they are all float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.removeFilter(quiet)
        root.removeHandler(placeholder)


class _DropRecords(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def build_key(name: str, model_dir: Path, variant: str, recipe: Recipe) -> str:
    """The model cache folder name of `variant` of the model in `model_dir`, built by `recipe`."""
    return f"{name}-{weights_digest(model_dir)}-onnx-{variant}{_own_part(variant, recipe).tag}-v{BUILD_VERSION}"


def _own_part(variant: str, recipe: Recipe) -> Recipe:
    """The part of `recipe` that shapes `variant`: the fp32 export knows nothing of quantisation."""
    if variant == "int8":
        return recipe
    return Recipe(
        skip_layer_norm=recipe.skip_layer_norm, attention=recipe.attention, gelu=recipe.gelu, layers=recipe.layers
    )


def model_folder(name: str, model_dir: Path, variant: str, model_cache: Path, recipe: Recipe) -> Path:
    """The cached folder holding ``model.onnx`` of `variant` ("fp32" or "int8"), built when missing.

    int8 is quantised from the cached fp32 build, so both together cost one export.
    """
    onnxruntime = _onnxruntime()
    recipe = _own_part(variant, recipe)

    def build(folder: Path) -> dict[str, Any]:
        log.info("building the %s ONNX model of %s (once; cached in %s)", variant, name, folder.parent)
        if variant == "fp32":
            facts = export_fp32(model_dir, folder / MODEL_FILE, recipe)
        else:
            fp32 = model_folder(name, model_dir, "fp32", model_cache, recipe)
            quantize_int8(fp32 / MODEL_FILE, folder / MODEL_FILE, recipe)
            facts = {"quantized_from": fp32.name}
        return {
            "source": str(model_dir),
            "variant": variant,
            "recipe": asdict(recipe),
            "onnxruntime": onnxruntime.__version__,
            **facts,
        }

    return built_model_dir(model_cache, build_key(name, model_dir, variant, recipe), build)


def open_session(path: Path, recipe: Recipe, threads: int = 1):
    """An onnxruntime CPU session of the model at `path` with `threads` intra-op threads.

    The thread count never changes a vector (onnxruntime splits work, not sums, across threads).
    """
    onnxruntime = _onnxruntime()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    disabled = [] if recipe.skip_layer_norm else [SKIP_LAYER_NORM_FUSION]
    return onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
    )


def cpu_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class OnnxBackend:
    """A sentence-transformers model as an ONNX graph on onnxruntime's CPU provider, one text at a time."""

    name: str  # the model's name or folder name, for people reading the cache folder
    model_dir: Path
    variant: str  # "fp32" | "int8"
    max_tokens: int
    model_cache: Path
    recipe: Recipe = Recipe()
    model_key: str = ""

    def __post_init__(self) -> None:
        check_exportable(self.model_dir)
        key = build_key(self.name, self.model_dir, self.variant, self.recipe)
        self.model_key = f"{key}-t{self.max_tokens}-e{ENCODE_VERSION}"

    @functools.cached_property
    def folder(self) -> Path:
        """The built model's folder, built on first use."""
        return model_folder(self.name, self.model_dir, self.variant, self.model_cache, self.recipe)

    @functools.cached_property
    def _sessions(self) -> list:
        """One single-threaded session per core: the same kernels, so the same vector, whichever runs a text."""
        require_modules("onnx", {"onnxruntime": "onnxruntime"})
        return [open_session(self.folder / MODEL_FILE, self.recipe) for _ in range(cpu_cores())]

    @functools.cached_property
    def _tokenizer(self):
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.no_padding()  # every text runs alone: nothing to pad to
        tokenizer.enable_truncation(max_length=self.max_tokens)
        return tokenizer

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors in input order, ndarray of shape (len(texts), dim).

        Each text is its own batch of one, so its vector does not depend on the other texts.
        """
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        token_ids = [
            np.asarray([encoding.ids], dtype=np.int64) for encoding in self._tokenizer.encode_batch(list(texts))
        ]
        idle: queue.SimpleQueue = queue.SimpleQueue()
        for session in self._sessions:
            idle.put(session)

        def run(index: int) -> np.ndarray:
            session = idle.get()  # as many workers as sessions: never waits
            try:
                ids = token_ids[index]
                (output,) = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
            finally:
                idle.put(session)
            return output[0]

        longest_first = sorted(range(len(texts)), key=lambda index: -token_ids[index].shape[1])
        vectors: list[np.ndarray | None] = [None] * len(texts)
        if len(self._sessions) == 1:
            for index in longest_first:
                vectors[index] = run(index)
        else:
            with ThreadPoolExecutor(len(self._sessions)) as pool:
                for index, vector in zip(longest_first, pool.map(run, longest_first), strict=True):
                    vectors[index] = vector
        return np.vstack([vector for vector in vectors if vector is not None]).astype(np.float32, copy=False)
