"""The seed papers' vectors on each CPU kernel path: how far they move, and why.

    .venv/bin/python bench/cpu_kernels.py [--cpu Haswell-v4 ...] [--variants int8,8-bit,u8u8,fp32]

onnxruntime (its MLAS library) and OpenBLAS pick their kernels by CPU. This script embeds the
64 seed papers on each kernel path: this CPU natively, and each ``--cpu`` model emulated by
QEMU user mode (``qemu-x86_64 -cpu Haswell-v4``: AVX2 and FMA, no AVX-512) when it is
installed. Emulation checks which numbers come out, never how fast: it is 5-30x slower.

Model variants, each the pipeline's own build (``pipeline.embed.onnx.Recipe``, cached in the
model cache), so every path runs the same model bytes:

- ``int8``: the default ``onnx-int8`` build (int8 weights per channel in 7 bits, uint8
  activations: onnxruntime's "u8s8" products, summed exactly on every CPU);
- ``8-bit``: the same with 8-bit weights (BUILD_VERSION 2's default). CPUs without VNNI (their
  AVX2 and AVX-512BW kernels) add pairs of uint8 x int8 products in int16 (``vpmaddubsw``),
  which saturates at 32,767, where VNNI (``vpdpbusd``) adds in int32;
- ``u8u8``: uint8 weights, whose AVX2 kernels widen to int16 before multiplying (no saturation);
- ``fp32``: the fp32 build (the quality reference; float kernels differ only in rounding).

Columns per path and variant: the vectors' cosine to tests/data/seed_vectors.npz (what the
vector guard checks; meaningful for ``int8`` only), to the same variant on this CPU natively
(how much the kernel path moves it), to native fp32 (quality), min and mean over the 64 papers,
and the largest element difference to native. The last lines give what each path's process
saw: numpy's CPU features, OpenBLAS's core, and whether onnxruntime's int8 products are exact
there (uint8 x int8 with 8-bit and 7-bit weights, uint8 x uint8).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import EmbedConfig  # noqa: E402
from pipeline.embed import load_backend  # noqa: E402
from pipeline.embed.onnx import MODEL_FILE, OnnxBackend, Recipe, model_folder  # noqa: E402
from tests.test_vector_guard import REFERENCE, process_cpu_features, seed_papers  # noqa: E402

VARIANTS = ("int8", "8-bit", "u8u8", "fp32")
QEMU = "qemu-x86_64"
# TCG (QEMU's emulator) lacks these Haswell features; naming them off keeps QEMU from warning.
QEMU_QUIET = ",-pcid,-x2apic,-tsc-deadline,-invpcid,-spec-ctrl"


def variant_models(work: Path) -> dict[str, Path]:
    """Each variant's model file, built natively once by the pipeline (`work` is not needed for them)."""
    backend = load_backend(EmbedConfig())
    assert isinstance(backend, OnnxBackend)
    recipes = {
        "int8": ("int8", Recipe()),
        "8-bit": ("int8", Recipe(reduce_range=False)),
        "u8u8": ("int8", Recipe(reduce_range=False, weights="uint8")),
        "fp32": ("fp32", Recipe()),
    }
    return {
        name: model_folder(backend.name, backend.model_dir, variant, backend.model_cache, recipe) / MODEL_FILE
        for name, (variant, recipe) in recipes.items()
    }


def exact_products() -> str:
    """Whether onnxruntime's MatMulInteger sums uint8 x int8 (8-bit and 7-bit weights) and uint8 x uint8 exactly here.

    Large activations (200-255) times large weights: a kernel that adds pairs of products in
    int16 with saturation (AVX2's vpmaddubsw) gets other int32 sums than the exact ones.
    """
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    rows, depth, columns = 4, 64, 16
    activations = rng.integers(200, 256, (rows, depth)).astype(np.uint8)
    weights = {
        "u8s8": (rng.integers(100, 128, (depth, columns)).astype(np.int8), TensorProto.INT8),
        "u8s8 7-bit": (rng.integers(50, 64, (depth, columns)).astype(np.int8), TensorProto.INT8),
        "u8u8": (rng.integers(200, 256, (depth, columns)).astype(np.uint8), TensorProto.UINT8),
    }
    found = []
    for name, (weight, _) in weights.items():
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
            "probe",
            [helper.make_tensor_value_info("A", TensorProto.UINT8, [rows, depth])],
            [helper.make_tensor_value_info("Y", TensorProto.INT32, [rows, columns])],
            [numpy_helper.from_array(weight, "B")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
        session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        (sums,) = session.run(None, {"A": activations})
        exact = np.array_equal(sums, activations.astype(np.int64) @ weight.astype(np.int64))
        found.append(f"{name} {'exact' if exact else 'NOT exact'}")
    return "int8 products: " + ", ".join(found)


def embed_child(models: dict[str, str], out: Path) -> None:
    """In the child: embed the seed papers with every model file; write vectors and what this process saw."""
    backend = load_backend(EmbedConfig())
    assert isinstance(backend, OnnxBackend)
    _, texts = seed_papers()
    vectors = {}
    for variant, path in models.items():
        runner = OnnxBackend(backend.name, backend.model_dir, backend.variant, backend.max_tokens, backend.model_cache)
        runner.folder = Path(path).parent  # the variant's model, tokenised as the default backend does
        vectors[variant] = runner.encode(texts)
    from threadpoolctl import threadpool_info

    blas = [f"{pool['internal_api']} {pool.get('architecture', '?')}" for pool in threadpool_info()]
    facts = f"{process_cpu_features()}; {', '.join(blas)}; {exact_products()}"
    np.savez(out, **vectors, facts=np.array(facts))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def run_path(cpu: str, models: dict[str, Path], work: Path) -> dict[str, np.ndarray]:
    """Run the child natively (`cpu` empty) or under QEMU with that CPU model; its saved arrays."""
    out = work / f"vectors-{cpu or 'native'}.npz"
    command = [
        sys.executable,
        __file__,
        "--child",
        str(out),
        "--models",
        json.dumps({k: str(v) for k, v in models.items()}),
    ]
    if cpu:
        command = [QEMU, "-cpu", cpu + (QEMU_QUIET if cpu.startswith("Haswell") else ""), *command]
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"})
    with np.load(out) as saved:
        return {key: saved[key] for key in saved.files}


def chosen_paths(
    parser: argparse.ArgumentParser,
    listed: str,
    known: dict | list | tuple,
    what: str,
    cpus: list[str],
    work: Path | None,
    prefix: str,
) -> tuple[list[str], list[str], Path]:
    """The names picked, the CPUs to emulate and the work folder, as both CPU scripts take them.

    ``listed``: comma-separated names, each one of ``known`` (else a parser error); ``cpus``: none
    when QEMU is missing (said once); ``work``: made, a temporary folder with ``prefix`` when None.
    """
    names = [name for name in listed.split(",") if name]
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    cpus = list(cpus)
    if cpus and shutil.which(QEMU) is None:
        print(f"{QEMU} is not installed: native paths only")
        cpus = []
    folder = work or Path(tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    return names, cpus, folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cpu", nargs="*", default=["Haswell-v4"], help="QEMU CPU models to emulate (none: native only)"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for variant models and vectors (default: temporary)"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        embed_child(json.loads(args.models), args.child)
        return
    variants, cpus, work = chosen_paths(
        parser, args.variants, VARIANTS, "variants", args.cpu, args.work, "cpu-kernels-"
    )
    models = variant_models(work)
    chosen = {variant: models[variant] for variant in variants}
    native = run_path("", chosen, work)
    runs = {"native": native} | {cpu: run_path(cpu, chosen, work) for cpu in cpus}
    kept = np.load(REFERENCE)["vectors"]
    print(f"{'path':<12} {'variant':<13} {'to kept':>17} {'to native':>17} {'to native fp32':>17} {'max |diff|':>10}")
    print(f"{'':<12} {'':<13} {'min / mean':>17} {'min / mean':>17} {'min / mean':>17} {'to native':>10}")
    for path, saved in runs.items():
        for variant in variants:
            vectors = saved[variant]
            columns = [cosines(vectors, kept), cosines(vectors, native[variant])]
            columns.append(cosines(vectors, native["fp32"]) if "fp32" in native else np.full(len(vectors), np.nan))
            cells = " ".join(f"{c.min():.7f}/{c.mean():.7f}" for c in columns)
            print(f"{path:<12} {variant:<13} {cells} {np.abs(vectors - native[variant]).max():10.2e}")
    for path, saved in runs.items():
        print(f"{path}: {saved['facts']}")


if __name__ == "__main__":
    main()
