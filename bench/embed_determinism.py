"""Does a text's vector depend on its batch? Ways to run the int8 model, timed and scored.

    .venv/bin/python bench/embed_determinism.py [--timing-texts 512] [--rounds 3] [--kaggle 2000]

onnxruntime's dynamic int8 quantisation scales each matrix product's activations by the
largest value in the whole batch, so the same text gets another vector in another batch.
Each variant below runs the same MiniLM export at 128 tokens (the default ``onnx-int8``):

- ``dynamic int8, batches of 64``: the behaviour before this bench (length-sorted batches
  of 64, padded per batch, one session on every core);
- ``dynamic int8, alone, 1 session x N threads``: every text in a batch of its own (no
  padding), one session on every core;
- ``dynamic int8, alone, N sessions x 1 thread``: every text alone, one single-threaded
  session per core, fed from as many Python threads (onnxruntime releases the GIL);
- ``static int8 (QDQ, calibrated), batches of 64``: activations quantised with fixed scales
  calibrated once (MinMax over ``--calibration`` daily-cs texts not in the timing set);
  padding stays;
- ``fp32, batches of 64``: the unquantised export, for the quality reference.

Columns: docs/s (median over interleaved rounds, and the median per-round ratio to the
first variant, measured in the same round: the machine is shared), the largest difference
of any vector element between a text embedded alone and in batches (of 64, and of 8 after a
shuffle), the share of texts whose vectors are bit-identical in all three, and k-means NMI
(k = number of primary categories, mean of 5 seeds) on arxiv-kaggle-2000 against the
primary category.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.embeddings import DAILY, KAGGLE, kmeans_nmi, load_daily, load_kaggle  # noqa: E402
from pipeline.embed import resolve_model_dir  # noqa: E402
from pipeline.embed.onnx import MODEL_FILE, Recipe, cpu_cores, model_folder, open_session  # noqa: E402

TOKENS = 128
BATCH = 64
Encoder = Callable[[list[str]], np.ndarray]


def tokenizer(model_dir: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=TOKENS)
    return tok


def session(path: Path, threads: int):
    return open_session(path, Recipe(), threads)


def run_one(sess, ids: list[int]) -> np.ndarray:
    input_ids = np.asarray([ids], dtype=np.int64)
    (output,) = sess.run(None, {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)})
    return output[0]


def batched(sess, tok, batch_size: int) -> Encoder:
    """Length-sorted, padded batches: the behaviour before this bench."""

    def encode(texts: list[str]) -> np.ndarray:
        encodings = tok.encode_batch(texts)
        lengths = np.array([len(encoding.ids) for encoding in encodings])
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = order[start : start + batch_size]
            width = int(lengths[batch].max())
            input_ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                input_ids[row, : lengths[index]] = encodings[index].ids
                mask[row, : lengths[index]] = 1
            (output,) = sess.run(None, {"input_ids": input_ids, "attention_mask": mask})
            out[batch] = output
        return out

    return encode


def alone(sessions: list, tok) -> Encoder:
    """Every text in a batch of its own; with several sessions, one Python thread per session."""

    def encode(texts: list[str]) -> np.ndarray:
        ids = [encoding.ids for encoding in tok.encode_batch(texts)]
        if len(sessions) == 1:
            return np.vstack([run_one(sessions[0], row) for row in ids])
        share = [list(range(worker, len(ids), len(sessions))) for worker in range(len(sessions))]
        out = np.empty((len(texts), 384), dtype=np.float32)

        def work(worker: int) -> None:
            for index in share[worker]:
                out[index] = run_one(sessions[worker], ids[index])

        with ThreadPoolExecutor(len(sessions)) as pool:
            list(pool.map(work, range(len(sessions))))
        return out

    return encode


class Calibration:
    """onnxruntime's CalibrationDataReader over single, unpadded texts."""

    def __init__(self, tok, texts: list[str]):
        self.rows = iter([encoding.ids for encoding in tok.encode_batch(texts)])

    def get_next(self):
        row = next(self.rows, None)
        if row is None:
            return None
        input_ids = np.asarray([row], dtype=np.int64)
        return {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}


def static_int8(fp32: Path, target: Path, tok, texts: list[str]) -> Path:
    """Static int8 (QDQ, per-channel weights, MinMax-calibrated activations), built once."""
    if target.is_file():
        return target
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    target.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(
        str(fp32),
        str(target),
        Calibration(tok, texts),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"DefaultTensorType": 1},
    )
    return target


def determinism(encode: Encoder, texts: list[str], seed: int = 0) -> tuple[float, float]:
    """Largest element difference alone vs. in batches, and the share of bit-identical texts."""
    single = np.vstack([encode([text]) for text in texts])
    in_64 = encode(texts)
    order = np.random.default_rng(seed).permutation(len(texts))
    in_8 = np.empty_like(in_64)
    for start in range(0, len(texts), 8):
        part = order[start : start + 8]
        in_8[part] = encode([texts[index] for index in part])
    diff = max(float(np.abs(single - in_64).max()), float(np.abs(single - in_8).max()))
    same = ((single == in_64).all(axis=1) & (single == in_8).all(axis=1)).mean()
    return diff, float(same)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing-texts", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kaggle", type=int, default=2000, help="arxiv-kaggle-2000 papers for k-means NMI (0: skip)")
    parser.add_argument("--calibration", type=int, default=256, help="daily-cs texts that calibrate static int8")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "outputs" / ".cache")
    args = parser.parse_args()
    if not DAILY.exists() or not KAGGLE.exists():
        print("this benchmark needs ../shared/corpora (arxiv-daily-cs, arxiv-kaggle-2000)", file=sys.stderr)
        return 2

    model_dir = resolve_model_dir("all-MiniLM-L6-v2")
    tok = tokenizer(model_dir)
    fp32 = model_folder("all-MiniLM-L6-v2", model_dir, "fp32", args.cache_dir, Recipe()) / MODEL_FILE
    int8 = model_folder("all-MiniLM-L6-v2", model_dir, "int8", args.cache_dir, Recipe()) / MODEL_FILE
    daily, _ = load_daily(args.timing_texts + args.calibration, seed=0)
    timing_texts, calibration = daily[: args.timing_texts], daily[args.timing_texts :]
    qdq = static_int8(fp32, args.cache_dir / "bench-static-int8" / MODEL_FILE, tok, calibration)

    cores = cpu_cores()
    # name -> (encoder, whether its k-means NMI is computed: variants that give the same
    # vectors as one above it are only timed)
    variants: dict[str, tuple[Encoder, bool]] = {
        f"dynamic int8, batches of {BATCH} (before)": (batched(session(int8, cores), tok, BATCH), True),
        f"dynamic int8, alone, 1 session x {cores} threads": (alone([session(int8, cores)], tok), False),
        f"dynamic int8, alone, {cores} sessions x 1 thread": (
            alone([session(int8, 1) for _ in range(cores)], tok),
            True,
        ),
        f"static int8 (QDQ, calibrated), batches of {BATCH}": (batched(session(qdq, cores), tok, BATCH), False),
        f"static int8 (QDQ, calibrated), alone, {cores} sessions x 1 thread": (
            alone([session(qdq, 1) for _ in range(cores)], tok),
            True,
        ),
        f"fp32, batches of {BATCH}": (batched(session(fp32, cores), tok, BATCH), True),
    }
    names = list(variants)
    for encode, _ in variants.values():
        encode(timing_texts[:8])  # warm up
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            variants[name][0](timing_texts)
            seconds[name].append(time.perf_counter() - started)
        print(f"  timing round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    kaggle = load_kaggle(args.kaggle) if args.kaggle else None
    rows = []
    for name in names:
        ratio = statistics.median([first / own for first, own in zip(seconds[names[0]], seconds[name], strict=True)])
        encode, scored = variants[name]
        diff, same = determinism(encode, timing_texts[:64])
        nmi = kmeans_nmi(encode(kaggle[0]), kaggle[1]) if kaggle and scored else (float("nan"), float("nan"))
        rows.append((name, len(timing_texts) / statistics.median(seconds[name]), ratio, diff, same, *nmi))
        print(f"  scored {name}", file=sys.stderr, flush=True)

    print(
        f"\n{len(timing_texts)} arxiv-daily-cs texts, {TOKENS} tokens, {args.rounds} interleaved rounds, {cores} cores"
    )
    print(
        "| variant | docs/s | speed vs before | max diff alone vs batched | bit-identical texts "
        f"| k-means NMI, arxiv-kaggle-{args.kaggle} (±sd, 5 seeds) |"
    )
    print("|---|---|---|---|---|---|")
    for name, docs, ratio, diff, same, nmi, sd in rows:
        quality = "not scored (same model as a scored row)" if np.isnan(nmi) else f"{nmi:.3f} ± {sd:.3f}"
        print(f"| {name} | {docs:.1f} | {ratio:.2f} | {diff:.2g} | {same:.0%} | {quality} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
