"""The onnx int8 model built and run other ways, for bench/embeddings.py to time beside the default.

A helper of the bench scripts (no ``main``). Knobs beyond the pipeline's own ``Recipe``:

- the sessions: intra-op threads each (sessions = cores // threads), graph optimisation level,
  or one session that every worker thread runs at once (its weights in the cache once);
- static int8 (QDQ) calibrated on fixed texts (``bench/embed_determinism.py``);
- ``MatMulNBits``: every MatMul with a constant weight turned into onnxruntime's blockwise
  weight-only op (8 or 4 bits per weight, symmetric, one scale per ``block`` weights of a
  column) with ``accuracy_level`` 4: int8 compute, each activation row quantised per block,
  so a row's result does not depend on the other rows (checked by ``nbits_rows_are_independent``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import EmbedConfig
from pipeline.embed import EmbeddingBackend, load_backend
from pipeline.embed.onnx import MODEL_FILE, OnnxBackend, Recipe, cpu_cores, model_folder, open_session

# onnxruntime's MatMulNBits: int8 compute with activations quantised per block of each row.
ACCURACY_INT8 = 4


@dataclass(frozen=True)
class Variant:
    name: str
    config: EmbedConfig
    quality: bool = True  # embed the corpora and score the topics
    # onnx backends only: how the model is built, how many intra-op threads each session has
    # (sessions = cores // threads), the sessions' graph optimisation level, static int8,
    # one session shared by every worker, and MatMulNBits weights as (bits, block) (int8: the default).
    recipe: Recipe = field(default_factory=Recipe)
    threads: int = 1
    level: str = "all"
    static: bool = False
    shared: bool = False
    nbits: tuple[int, int] | None = None
    # Drop English stop words and punctuation before tokenising, so the word-piece budget holds
    # more of the abstract's content words (61% of the pieces on arxiv-kaggle texts). Measured
    # (issue 32): below plain truncation at the same budget (96 pieces: NMI 0.297 / 0.567 against
    # 0.305 / 0.570).
    content_words: bool = False


# A word (letters, digits, inner hyphens or apostrophes), or one other non-space character.
WORD = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")


def content_words(text: str) -> str:
    """`text` without English stop words (scikit-learn's list) and punctuation, words in their order."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return " ".join(
        word
        for word in WORD.findall(text)
        if (word[0].isalnum() or word[0] == "_") and word.lower() not in ENGLISH_STOP_WORDS
    )


def matmul_nbits(source: Path, target: Path, bits: int, block: int) -> Path:
    """`source` with every constant-weight MatMul as a symmetric MatMulNBits (accuracy level 4), built once.

    onnxruntime's own MatMulNBitsQuantizer needs the onnx_ir package; this writes the same
    QOperator nodes with onnxruntime's C++ packing functions.
    """
    if target.is_file():
        return target
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits, quantize_matmul_8bits

    model = onnx.load(str(source))
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in weights:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        rows, cols = weight.shape
        blocks = -(-rows // block)
        weight = np.ascontiguousarray(np.pad(weight, ((0, blocks * block - rows), (0, 0))))
        packed = np.zeros((cols, blocks, block * bits // 8), np.uint8)
        scales = np.zeros((cols, blocks), np.float32)
        zero_points = np.zeros((cols, -(-blocks * bits // 8)), np.uint8)  # unused: symmetric
        pack = quantize_matmul_8bits if bits == 8 else quantize_matmul_4bits
        pack(packed, weight, scales, zero_points, block, cols, rows, True)
        name = node.input[1]
        graph.initializer.extend(
            [numpy_helper.from_array(packed, f"{name}_q"), numpy_helper.from_array(scales, f"{name}_s")]
        )
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [node.input[0], f"{name}_q", f"{name}_s"],
                list(node.output),
                name=f"{node.name}_nbits",
                domain="com.microsoft",
                K=rows,
                N=cols,
                bits=bits,
                block_size=block,
                accuracy_level=ACCURACY_INT8,
            )
        )
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


@dataclass
class BenchOnnx(OnnxBackend):
    """The onnx backend with the bench's knobs (``Variant``)."""

    threads: int = 1
    level: str = "all"
    calibration: tuple[str, ...] = ()  # static int8 (QDQ) calibrated on these texts when given
    shared: bool = False
    nbits: tuple[int, int] | None = None
    content_words: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.content_words:
            self.model_key += "-content"
        if self.calibration:
            self.model_key += f"-static{len(self.calibration)}"
        if self.nbits:
            self.model_key += f"-nbits{self.nbits[0]}b{self.nbits[1]}"

    @functools.cached_property
    def folder(self) -> Path:
        if not self.calibration and not self.nbits:
            return super().folder
        from pipeline.embed.models import built_model_dir

        fp32 = model_folder(self.name, self.model_dir, "fp32", self.model_cache, self.recipe) / MODEL_FILE
        if self.nbits:
            bits, block = self.nbits

            def build_nbits(folder: Path) -> dict[str, object]:
                matmul_nbits(fp32, folder / MODEL_FILE, bits, block)
                return {"nbits_from": fp32.parent.name, "bits": bits, "block": block, "accuracy_level": ACCURACY_INT8}

            return built_model_dir(self.model_cache, f"{fp32.parent.name}-nbits{bits}-b{block}", build_nbits)
        from bench.embed_determinism import static_int8

        def build(folder: Path) -> dict[str, object]:
            static_int8(fp32, folder / MODEL_FILE, self._tokenizer, list(self.calibration))
            return {"static_from": fp32.parent.name, "calibration_texts": len(self.calibration)}

        return built_model_dir(self.model_cache, f"{fp32.parent.name}-static-qdq-{len(self.calibration)}", build)

    @functools.cached_property
    def _sessions(self) -> list:
        count = max(1, cpu_cores() // self.threads)
        if self.level == "all":
            path = self.folder / MODEL_FILE
            if self.shared:  # onnxruntime runs one session from several threads at once
                return [open_session(path, self.recipe, self.threads)] * count
            return [open_session(path, self.recipe, self.threads) for _ in range(count)]
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        path = str(self.folder / MODEL_FILE)
        return [onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"]) for _ in range(count)]

    def encode(self, texts: list[str]) -> np.ndarray:
        return super().encode([content_words(text) for text in texts] if self.content_words else texts)


def make_backend(variant: Variant, cache_dir: Path, calibration: list[str]) -> EmbeddingBackend:
    """The backend of `variant`: the pipeline's own, or the onnx backend with the variant's knobs."""
    plain = Variant(variant.name, variant.config, variant.quality)
    if variant == plain or not variant.config.backend.startswith("onnx"):
        return load_backend(variant.config, cache_dir)
    from pipeline.embed import model_name, resolve_model_dir

    return BenchOnnx(
        model_name(variant.config.model),
        resolve_model_dir(variant.config.model),
        "int8" if variant.config.backend == "onnx-int8" else "fp32",
        variant.config.tokens,
        cache_dir,
        recipe=variant.recipe,
        threads=variant.threads,
        level=variant.level,
        calibration=tuple(calibration) if variant.static else (),
        shared=variant.shared,
        nbits=variant.nbits,
        content_words=variant.content_words,
    )


def nbits_rows_are_independent(backend: BenchOnnx, texts: list[str], batch: int = 8) -> tuple[float, float]:
    """Texts of one token count run alone and in batches of `batch` (no padding needed), shuffled.

    Returns the largest element difference and the share of texts with bit-identical vectors.
    """
    tokenizer, session = backend._tokenizer, backend._sessions[0]
    ids = [encoding.ids for encoding in tokenizer.encode_batch(list(texts))]
    longest = max(len(row) for row in ids)
    rows = np.array([row for row in ids if len(row) == longest], dtype=np.int64)

    def run(part: np.ndarray) -> np.ndarray:
        return session.run(None, {"input_ids": part, "attention_mask": np.ones_like(part)})[0]

    alone = np.vstack([run(rows[index : index + 1]) for index in range(len(rows))])
    order = np.random.default_rng(0).permutation(len(rows))
    together = np.empty_like(alone)
    for start in range(0, len(rows), batch):
        part = order[start : start + batch]
        together[part] = run(rows[part])
    return float(np.abs(alone - together).max()), float((alone == together).all(axis=1).mean())
