"""Where the default int8 model spends a text's time, and the floor its matrix products set.

    .venv/bin/python bench/onnx_profile.py [--texts 40] [--recipe-attention fused|unfused|multihead]

Runs the pipeline's int8 build (``pipeline.embed.onnx``; built on first use) on one
single-threaded session, every text alone as the pipeline does, with onnxruntime's
profiler: per operator type, its share of the kernels' time and its CPU ms per text
(the share times the process CPU time per text measured without the profiler), and what a
run spends outside the kernels (the profiler times in wall clock: on a loaded machine the
shares are rough); once at the full budget of 128 word pieces (arxiv-daily-cs
texts, which nearly all fill it) and once cut to 16.

Then the floor: onnxruntime's int8 and fp32 matrix products (MatMulInteger, MatMul) alone
at the model's shapes for one 128-piece text (Q/K/V, attention output, the two feed-forward
products), timed on one core, and what the model's int8 products alone take per text
(6 layers): no change of graph or session makes a text cheaper than that on this CPU.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.embeddings import DAILY, load_daily, machine  # noqa: E402
from pipeline.config import EmbedConfig  # noqa: E402
from pipeline.embed import model_name, resolve_model_dir  # noqa: E402
from pipeline.embed.onnx import MODEL_FILE, OnnxBackend, Recipe, open_session  # noqa: E402

LAYERS, HIDDEN, INTERMEDIATE = 6, 384, 1536  # all-MiniLM-L6-v2
SHAPES = {  # (K, N) of each weight product of one layer
    "Q/K/V (fused)": (HIDDEN, 3 * HIDDEN),
    "attention output": (HIDDEN, HIDDEN),
    "feed-forward in": (HIDDEN, INTERMEDIATE),
    "feed-forward out": (INTERMEDIATE, HIDDEN),
}


def profile(session_path: Path, recipe: Recipe, rows: list[np.ndarray]) -> tuple[float, dict[str, float], float]:
    """CPU ms per text without the profiler, each op type's share of kernel time, and the share outside kernels."""
    session = open_session(session_path, recipe)
    feeds = [{"input_ids": row, "attention_mask": np.ones_like(row)} for row in rows]
    for feed in feeds[:3]:
        session.run(None, feed)
    started = time.process_time()
    for feed in feeds:
        session.run(None, feed)
    cpu_ms = 1000 * (time.process_time() - started) / len(feeds)

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "profile")
    profiled = onnxruntime.InferenceSession(
        str(session_path), options, providers=["CPUExecutionProvider"], disabled_optimizers=["SkipLayerNormFusion"]
    )
    for feed in feeds:
        profiled.run(None, feed)
    trace = Path(profiled.end_profiling())
    kernels: collections.Counter[str] = collections.Counter()
    runs = 0.0
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            kernels[event["args"]["op_name"]] += event["dur"]
        elif event.get("cat") == "Session" and event["name"] == "model_run":
            runs += event["dur"]
    trace.unlink()
    total = sum(kernels.values())
    return cpu_ms, {op: duration / total for op, duration in kernels.most_common()}, 1 - total / runs


def product_ms(m: int, k: int, n: int, int8: bool, repeats: int = 50) -> float:
    """CPU ms of one (m x k) @ (k x n) product in onnxruntime on one thread (int8: u8 x s8 -> int32)."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        kind, weight = TensorProto.UINT8, rng.integers(-64, 64, (k, n)).astype(np.int8)
        feed = rng.integers(0, 256, (m, k)).astype(np.uint8)
        node, out = helper.make_node("MatMulInteger", ["a", "w"], ["y"]), TensorProto.INT32
    else:
        kind, weight = TensorProto.FLOAT, rng.standard_normal((k, n)).astype(np.float32)
        feed = rng.standard_normal((m, k)).astype(np.float32)
        node, out = helper.make_node("MatMul", ["a", "w"], ["y"]), TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "product",
        [helper.make_tensor_value_info("a", kind, [m, k])],
        [helper.make_tensor_value_info("y", out, [m, n])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    session.run(None, {"a": feed})
    started = time.process_time()
    for _ in range(repeats):
        session.run(None, {"a": feed})
    return 1000 * (time.process_time() - started) / repeats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=40, help="arxiv-daily-cs texts profiled per budget")
    parser.add_argument("--recipe-attention", choices=["fused", "unfused", "multihead"], default="fused")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "outputs" / ".cache")
    args = parser.parse_args()
    if not DAILY.exists():
        print(f"{DAILY} is absent: this benchmark needs the shared corpus arxiv-daily-cs", file=sys.stderr)
        return 2
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    config = EmbedConfig()
    recipe = Recipe(attention=args.recipe_attention)
    backend = OnnxBackend(
        model_name(config.model), resolve_model_dir(config.model), "int8", 128, args.cache_dir, recipe=recipe
    )
    path = backend.folder / MODEL_FILE
    encodings = backend._tokenizer.encode_batch(load_daily(args.texts * 2, seed=0)[0])
    full = [np.asarray([encoding.ids], dtype=np.int64) for encoding in encodings]
    full = [row for row in full if row.shape[1] == 128][: args.texts]
    print(machine())
    print(f"\n{path.parent.name}, one single-threaded session, each text alone ({len(full)} texts)")
    print("| word pieces | CPU ms / text | outside kernels | op type: share of kernel time (CPU ms / text) |")
    print("|---|---|---|---|")
    for pieces in (128, 16):
        cpu_ms, shares, outside = profile(path, recipe, [row[:, :pieces] for row in full])
        kernel_ms = cpu_ms * (1 - outside)
        shown = {op: share for op, share in shares.items() if share >= 0.005}
        shown["other ops"] = 1 - sum(shown.values())
        ops = "; ".join(f"{op} {share:.1%} ({share * kernel_ms:.2f})" for op, share in shown.items())
        print(f"| {pieces} | {cpu_ms:.2f} | {outside:.1%} | {ops} |", flush=True)

    print("\nOne core, onnxruntime alone, the weight products of one 128-piece text (one layer):")
    print("| product | M x K x N | int8 ms | int8 GMAC/s | fp32 ms | fp32 GMAC/s |")
    print("|---|---|---|---|---|---|")
    int8_total = 0.0
    for name, (k, n) in SHAPES.items():
        int8_ms, fp32_ms = product_ms(128, k, n, True), product_ms(128, k, n, False)
        int8_total += int8_ms
        macs = 128 * k * n / 1e6
        rates = f"{int8_ms:.3f} | {macs / int8_ms:.0f} | {fp32_ms:.3f} | {macs / fp32_ms:.0f}"
        print(f"| {name} | 128 x {k} x {n} | {rates} |")
    floor = LAYERS * int8_total
    print(
        f"\nint8 weight products alone: {floor:.2f} CPU ms per 128-piece text = at most {1000 / floor:.0f} texts/s "
        f"per core if nothing else ran; {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
