"""Embedding backends: the registry, order of vectors, the model cache, and each backend's vectors.

The fast tests use fake backends and builders. The slow ones load the packaged
all-MiniLM-L6-v2 (its ONNX builds are cached in outputs/.cache/models, so only the first
run exports) or a tiny random BERT made here, for what needs a fresh build every time.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from pipeline import embed
from pipeline.config import AUTO_MAX_TOKENS, EmbedBackend, EmbedConfig, parse_config
from pipeline.embed import base, models
from pipeline.errors import ConfigError
from tests.conftest import ROOT, SAMPLES

MODEL_CACHE = ROOT / "outputs" / ".cache"


@pytest.fixture(autouse=True)
def fresh_backends():
    """Each test sees backends built from its own registry and config."""
    embed.load_backend.cache_clear()
    yield
    embed.load_backend.cache_clear()


def seed_paragraphs() -> list[str]:
    """The seed pages split into paragraphs: titles, abstracts and page chrome of many lengths."""
    return [
        " ".join(paragraph.split())
        for page in sorted(SAMPLES.glob("*.txt"))
        for paragraph in page.read_text(encoding="utf-8").split("\n\n")
        if paragraph.strip()
    ]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("onnx-int8", "OnnxBackend"),
        ("onnx", "OnnxBackend"),
        ("sentence-transformers", "SentenceTransformerBackend"),
        ("model2vec", "StaticBackend"),
    ],
)
def test_config_picks_the_backend_through_the_registry(name, kind):
    config = parse_config({"name": "x", "inputs": ["a.csv"], "embed": {"backend": name}}).embed
    backend = embed.load_backend(config, Path("somewhere"))
    assert type(backend).__name__ == kind
    if kind == "OnnxBackend":
        assert backend.variant == ("int8" if name == "onnx-int8" else "fp32")
    assert f"-t{config.tokens}" in backend.model_key


def test_load_backend_makes_a_backend_once_per_config_and_model_cache(monkeypatch):
    made = []

    def fake_factory(config, cache_dir):
        made.append((config.max_tokens, cache_dir))
        return object()

    monkeypatch.setitem(embed.BACKENDS, "onnx", fake_factory)
    config = EmbedConfig(backend="onnx", max_tokens=100)
    first = embed.load_backend(config, Path("a"))
    assert embed.load_backend(EmbedConfig(backend="onnx", max_tokens=100), Path("a")) is first  # loaded once
    assert embed.load_backend(config, Path("b")) is not first
    assert embed.load_backend(EmbedConfig(backend="onnx", max_tokens=200), Path("a")) is not first
    embed.load_backend(config)  # no folder: the user's model cache
    assert made == [(100, Path("a")), (100, Path("b")), (200, Path("a")), (100, models.model_cache_dir(config))]


def test_built_models_live_in_the_users_cache_folder_shared_by_every_project(monkeypatch, tmp_path):
    for name in ("PAPERTOPICS_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    backend = embed.load_backend(EmbedConfig())
    assert backend.model_cache == tmp_path / "home" / ".cache" / "papertopics"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embed.model_cache_dir(EmbedConfig()) == tmp_path / "xdg" / "papertopics"
    monkeypatch.setenv("PAPERTOPICS_CACHE", str(tmp_path / "mine"))
    assert embed.model_cache_dir(EmbedConfig()) == tmp_path / "mine"
    assert embed.model_cache_dir(EmbedConfig(model_cache=str(tmp_path / "key"))) == tmp_path / "key"
    assert embed.model_cache_dir(EmbedConfig(model_cache="~/models")) == tmp_path / "home" / "models"


EMBED_PACKAGE = ROOT / "pipeline" / "embed"


def imported_modules(path: Path) -> set[str]:
    """The modules a source file imports from, anywhere in it (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def package_imports(module: str) -> set[str]:
    return {name for name in imported_modules(EMBED_PACKAGE / f"{module}.py") if name.startswith("pipeline.embed")}


@pytest.mark.parametrize("backend_module", ["onnx", "sentence_transformers", "static"])
def test_a_backend_module_imports_only_the_base_and_the_model_cache_of_the_package(backend_module):
    # Not the package itself either: its __init__ imports the backends (that was the circle). The
    # preview backend's word-by-word tokens (word_ids) and the onnx export's checks (exportable) are
    # leaves like base and models.
    leaves = ("base", "models", "word_ids", "exportable")
    assert package_imports(backend_module) <= {f"pipeline.embed.{leaf}" for leaf in leaves}
    assert package_imports(backend_module)
    assert all(package_imports(leaf) == set() for leaf in leaves)


def test_the_embed_package_leaves_process_state_alone():
    for path in sorted(EMBED_PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            target = node.targets[0] if isinstance(node, ast.Assign) else None
            if isinstance(target, ast.Subscript):
                assert ast.unparse(target.value) != "os.environ", f"{path.name} sets an environment variable"
            if isinstance(node, ast.Call):
                assert ast.unparse(node.func) not in {"os.environ.setdefault", "os.putenv", "os.environ.update"}, path
        assert not any(name.startswith("unittest") for name in imported_modules(path)), f"{path.name} uses mocks"


def test_config_names_exactly_the_registered_backends_and_defaults_to_int8():
    assert set(get_args(EmbedBackend)) == set(embed.BACKENDS)
    assert EmbedConfig().backend == "onnx-int8"


@pytest.mark.parametrize(
    ("backend", "package"), [("onnx-int8", "onnxruntime"), ("onnx", "onnxruntime"), ("model2vec", "model2vec")]
)
def test_a_missing_backend_dependency_stops_with_one_line(monkeypatch, backend, package):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == package else real_find_spec(name, *a)
    )
    with pytest.raises(ConfigError) as caught:
        embed.load_backend(EmbedConfig(backend=backend))
    message = str(caught.value)
    assert f"embed.backend '{backend}' needs {package}" in message
    assert "pip install" in message and "\n" not in message


def test_the_onnx_backends_refuse_a_model_they_would_embed_differently(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    with pytest.raises(ConfigError, match=r"pooling_mode_cls_token.*sentence-transformers"):
        embed.load_backend(EmbedConfig(backend="onnx", model=str(tmp_path)))


class CountingBackend:
    """Vectors that encode the text itself (its length and first character), and a log of calls."""

    model_key = "counting"

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[len(text), ord(text[0])] for text in texts], dtype=np.float32)


def test_embed_texts_sends_similar_lengths_together_and_restores_the_order(monkeypatch):
    monkeypatch.setattr(base, "PROGRESS_CHUNK", 4)
    rng = np.random.default_rng(0)
    texts = [chr(97 + int(rng.integers(26))) * int(rng.integers(1, 200)) for _ in range(23)]
    backend = CountingBackend()
    progress = []
    vectors = embed.embed_texts(texts, backend, lambda done, total: progress.append((done, total)))
    assert vectors.tolist() == [[len(text), ord(text[0])] for text in texts]
    sent = [len(text) for call in backend.calls for text in call]
    assert sent == sorted(sent, reverse=True)  # longest first, so chunks hold similar lengths
    assert [len(call) for call in backend.calls] == [4, 4, 4, 4, 4, 3]
    assert progress[-1] == (23, 23) and len(progress) == 6


def writing_builder(calls: list[Path]):
    def build(folder: Path) -> dict:
        calls.append(folder)
        (folder / "model.bin").write_bytes(b"weights" * 100)
        return {"variant": "test"}

    return build


def test_a_built_model_is_reused_and_a_damaged_one_rebuilt(tmp_path):
    calls: list[Path] = []
    first = embed.built_model_dir(tmp_path, "m-1", writing_builder(calls))
    assert first == tmp_path / "models" / "m-1" and len(calls) == 1
    assert calls[0] != first  # built elsewhere, then renamed into place
    record = json.loads((first / "build.json").read_text())
    assert record["variant"] == "test" and record["files"]["model.bin"]["bytes"] == 700

    assert embed.built_model_dir(tmp_path, "m-1", writing_builder(calls)) == first
    assert len(calls) == 1

    (first / "model.bin").write_bytes(b"weights")  # truncated: the record no longer matches
    models._KNOWN_BUILDS.clear()
    embed.built_model_dir(tmp_path, "m-1", writing_builder(calls))
    assert len(calls) == 2 and (first / "model.bin").stat().st_size == 700
    assert [path.name for path in (tmp_path / "models").iterdir()] == ["m-1"]


def test_a_half_written_folder_is_not_trusted(tmp_path):
    # What a build killed before its record was written would leave under the final name.
    half = tmp_path / "models" / "m-1"
    half.mkdir(parents=True)
    (half / "model.bin").write_bytes(b"wei")
    # And a killed build's temporary folder (no process has this pid).
    dead = tmp_path / "models" / ".tmp-m-1-999999999-abcd"
    dead.mkdir()
    calls: list[Path] = []
    models._KNOWN_BUILDS.clear()
    folder = embed.built_model_dir(tmp_path, "m-1", writing_builder(calls))
    assert len(calls) == 1 and embed.build_is_intact(folder)
    assert not dead.exists()


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def failing(folder: Path) -> dict:
        (folder / "model.bin").write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        embed.built_model_dir(tmp_path, "m-2", failing)
    assert list((tmp_path / "models").iterdir()) == []


def test_model_identity_needs_no_torch_and_names_backend_and_token_limit():
    code = (
        "import sys; from pipeline.config import EmbedConfig; from pipeline.embed import model_identity; "
        "keys = [model_identity(EmbedConfig(backend=b, max_tokens=t)) "
        "for b in ('onnx-int8', 'onnx', 'model2vec', 'sentence-transformers') for t in (128, 256)]; "
        "assert len(set(keys)) == 8, keys; assert 'torch' not in sys.modules; "
        "assert 'onnxruntime' not in sys.modules; print(keys[0])"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("all-MiniLM-L6-v2-") and "onnx-int8" in result.stdout


def test_auto_token_limit_is_per_backend_and_a_number_wins():
    assert set(AUTO_MAX_TOKENS) == set(get_args(EmbedBackend)) == set(embed.BACKENDS)
    assert EmbedConfig().tokens == 128  # int8 MiniLM, the quality default
    assert EmbedConfig(backend="sentence-transformers").tokens == 256  # the reference reads MiniLM's own limit
    assert EmbedConfig(backend="onnx-int8", max_tokens=200).tokens == 200
    # "auto" resolves before the model key is made: the same vectors keep the same cache key.
    assert embed.model_identity(EmbedConfig()) == embed.model_identity(EmbedConfig(max_tokens=128))
    assert embed.model_identity(EmbedConfig()) != embed.model_identity(EmbedConfig(max_tokens=256))


# --- real models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    texts = seed_paragraphs()
    assert len(texts) > 100
    return texts[::3]  # every third: short chrome, titles and long abstracts, in a third of the time


@pytest.fixture(scope="module")
def reference(paragraphs) -> np.ndarray:
    backend = embed.load_backend(EmbedConfig(backend="sentence-transformers"), MODEL_CACHE)
    return embed.embed_texts(paragraphs, backend)


@pytest.mark.slow
def test_onnx_fp32_equals_sentence_transformers(paragraphs, reference):
    vectors = embed.embed_texts(paragraphs, embed.load_backend(EmbedConfig(backend="onnx"), MODEL_CACHE))
    assert vectors.shape == reference.shape == (len(paragraphs), 384) and vectors.dtype == np.float32
    cosine = (vectors * reference).sum(axis=1)
    assert cosine.min() >= 0.999


@pytest.mark.slow
def test_onnx_int8_stays_close_to_fp32(paragraphs, reference):
    # At the reference's token limit: this is about quantisation, not truncation.
    vectors = embed.embed_texts(
        paragraphs, embed.load_backend(EmbedConfig(backend="onnx-int8", max_tokens=256), MODEL_CACHE)
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    cosine = (vectors * reference).sum(axis=1)
    assert cosine.mean() >= 0.98 and cosine.min() >= 0.95
    assert cosine.mean() < 0.99999  # it is really the quantised model


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["onnx-int8", "onnx", "sentence-transformers"])
def test_a_vector_is_a_function_of_the_text_alone_not_of_its_batch_or_position(paragraphs, backend_name):
    # int8 quantises activations with scales taken from what it is given: fed in batches, the
    # same text got other vectors in other company (cosine 0.993 alone vs. in a batch).
    backend = embed.load_backend(EmbedConfig(backend=backend_name), MODEL_CACHE)
    texts = paragraphs[:30]
    assert len({len(text) for text in texts}) > 10  # short chrome and long abstracts
    alone = np.vstack([backend.encode([text]) for text in texts])
    assert alone.shape == (30, 384) and np.allclose(np.linalg.norm(alone, axis=1), 1, atol=1e-4)
    together = backend.encode(texts)
    order = np.random.default_rng(0).permutation(len(texts))
    shuffled = np.empty_like(together)
    shuffled[order] = backend.encode([texts[index] for index in order])
    # In small groups beside long texts it was never with, and twice in one call.
    others = paragraphs[-40:]
    in_company = np.vstack([backend.encode([text, *others[index : index + 3]])[0] for index, text in enumerate(texts)])
    doubled = backend.encode(texts + texts[::-1])
    through_stage = embed.embed_texts(texts, backend)
    for vectors in (together, shuffled, in_company, doubled[:30], doubled[30:][::-1], through_stage):
        assert np.array_equal(vectors, alone)  # bit for bit


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A random one-layer BERT with MiniLM's tokenizer and sentence-transformers files: fast to build."""
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(folder)
    packaged = embed.resolve_model_dir("all-MiniLM-L6-v2")
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "modules.json"):
        shutil.copy(packaged / name, folder / name)
    shutil.copytree(packaged / "1_Pooling", folder / "1_Pooling")
    return folder


@pytest.mark.slow
def test_the_onnx_model_is_exported_once_and_rebuilt_when_half_written(tmp_path, monkeypatch, tiny_model):
    from pipeline.embed import onnx as embed_onnx

    exports = []
    real_export = embed_onnx.export_fp32
    monkeypatch.setattr(embed_onnx, "export_fp32", lambda *args: exports.append(args) or real_export(*args))
    models._KNOWN_BUILDS.clear()
    config = EmbedConfig(backend="onnx-int8", model=str(tiny_model))

    first = embed.load_backend(config, tmp_path).encode(["graph neural networks", "a"])
    assert len(exports) == 1 and first.shape == (2, 32)
    embed.load_backend.cache_clear()
    again = embed.load_backend(config, tmp_path)
    assert np.allclose(again.encode(["graph neural networks", "a"]), first, atol=1e-6)
    assert len(exports) == 1  # the second load found both builds (fp32, then int8 from it)

    built = again.folder
    (built / "model.onnx").write_bytes((built / "model.onnx").read_bytes()[:1000])  # a torn file
    models._KNOWN_BUILDS.clear()
    embed.load_backend.cache_clear()
    assert np.allclose(embed.load_backend(config, tmp_path).encode(["graph neural networks", "a"]), first, atol=1e-6)
    assert len(exports) == 1  # int8 rebuilt by quantising the intact fp32 build again
    shutil.rmtree(tmp_path / "models")
    models._KNOWN_BUILDS.clear()
    embed.load_backend.cache_clear()
    embed.load_backend(config, tmp_path).encode(["a"])
    assert len(exports) == 2


@pytest.mark.slow
def test_preview_backend_gives_unit_vectors_and_is_distilled_once(tmp_path, monkeypatch, tiny_model):
    from pipeline.embed import static as embed_static

    distills = []
    real_distill = embed_static.distill
    monkeypatch.setattr(embed_static, "distill", lambda *args: distills.append(args) or real_distill(*args))
    config = EmbedConfig(backend="model2vec", model=str(tiny_model))
    texts = ["Graph neural networks for molecules", "Diffusion models", "zzzz qqqq"]
    vectors = embed.load_backend(config, tmp_path).encode(texts)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32  # PCA keeps min(256, hidden size) dims
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    embed.load_backend.cache_clear()
    assert np.allclose(embed.load_backend(config, tmp_path).encode(texts), vectors)
    assert len(distills) == 1


# --- how the onnx model is built (pipeline/embed/onnx.py: Recipe) ---------------------------------


def test_every_build_recipe_has_its_own_model_key():
    from pipeline.embed import onnx as embed_onnx
    from pipeline.embed.onnx import Recipe

    model_dir = embed.resolve_model_dir("all-MiniLM-L6-v2")
    recipes = [
        Recipe(),
        Recipe(skip_layer_norm=True),
        Recipe(reduce_range=False),
        Recipe(weights="uint8"),
        Recipe(attention="unfused"),
        Recipe(attention="multihead"),
        Recipe(gelu="tanh"),
        Recipe(layers=5),
        Recipe(layers=4),
    ]
    int8_keys = [embed_onnx.build_key("m", model_dir, "int8", recipe) for recipe in recipes]
    assert len(set(int8_keys)) == len(recipes)
    assert Recipe().tag == "" and int8_keys[0].endswith(f"-onnx-int8-v{embed_onnx.BUILD_VERSION}")
    assert embed_onnx.BUILD_VERSION >= 2  # version 1 fused SkipLayerNormalization: its models are not reused
    # The fp32 export knows nothing of quantisation: those recipes share one fp32 build.
    fp32_keys = {recipe: embed_onnx.build_key("m", model_dir, "fp32", recipe) for recipe in recipes}
    assert fp32_keys[Recipe()] == fp32_keys[Recipe(reduce_range=False)] == fp32_keys[Recipe(weights="uint8")]
    # The fusions shape the fp32 export itself: each gets its own.
    shaped = [Recipe(), Recipe(skip_layer_norm=True), Recipe(attention="unfused"), Recipe(attention="multihead")]
    shaped += [Recipe(gelu="tanh"), Recipe(layers=5), Recipe(layers=4)]
    assert len({fp32_keys[recipe] for recipe in shaped}) == 7
    # The embedding cache key follows the build.
    backends = [embed_onnx.OnnxBackend("m", model_dir, "int8", 128, Path("cache"), recipe=recipe) for recipe in recipes]
    assert len({backend.model_key for backend in backends}) == len(recipes)
    assert embed.model_identity(EmbedConfig()) == backends[0].model_key.replace("m-", "all-MiniLM-L6-v2-", 1)


@pytest.mark.slow
def test_the_default_build_keeps_add_and_layer_norm_apart_in_the_file_and_the_session(
    tmp_path, monkeypatch, tiny_model
):
    # onnxruntime's SkipLayerNormalization CPU kernel takes ~4x the time of the Add +
    # LayerNormalization it replaces; the session optimiser must not fuse them back either.
    import onnx
    import onnxruntime

    from pipeline.embed.onnx import MODEL_FILE, Recipe, model_folder, open_session

    def ops(path: Path) -> set[str]:
        return {node.op_type for node in onnx.load(str(path)).graph.node}

    real_options = onnxruntime.SessionOptions
    optimised = tmp_path / "session.onnx"

    def options_that_save_the_session_graph():
        options = real_options()
        options.optimized_model_filepath = str(optimised)
        return options

    monkeypatch.setattr(onnxruntime, "SessionOptions", options_that_save_the_session_graph)
    for recipe, fused in ((Recipe(), False), (Recipe(skip_layer_norm=True), True)):
        built = model_folder("tiny", tiny_model, "int8", tmp_path, recipe) / MODEL_FILE
        assert ("SkipLayerNormalization" in ops(built)) is fused
        assert ("LayerNormalization" in ops(built)) is not fused
        assert "QAttention" in ops(built) and "BiasGelu" in ops(built)  # the other fusions stay
        open_session(built, recipe)
        assert ("SkipLayerNormalization" in ops(optimised)) is fused
    assert json.loads((built.parent / "build.json").read_text())["recipe"]["skip_layer_norm"] is True


@pytest.mark.slow
def test_the_attention_and_gelu_recipes_build_the_graphs_they_name(tmp_path, tiny_model):
    # bench/embeddings.py times these against the default (issue 32); each must build what it says.
    import onnx

    from pipeline.embed.onnx import MODEL_FILE, Recipe, model_folder

    def ops(recipe: Recipe) -> set[str]:
        built = model_folder("tiny", tiny_model, "int8", tmp_path, recipe) / MODEL_FILE
        return {node.op_type for node in onnx.load(str(built)).graph.node}

    default, unfused = ops(Recipe()), ops(Recipe(attention="unfused"))
    multihead, tanh = ops(Recipe(attention="multihead")), ops(Recipe(gelu="tanh"))
    assert "QAttention" in default and "BiasGelu" in default and "FastGelu" not in default
    assert not unfused & {"QAttention", "Attention", "MultiHeadAttention"} and {"Softmax", "MatMulInteger"} <= unfused
    assert "MultiHeadAttention" in multihead and "QAttention" not in multihead
    assert "FastGelu" in tanh and "BiasGelu" not in tanh and "QAttention" in tanh


@pytest.mark.slow
def test_a_model_cut_to_its_first_layers_is_those_layers_and_mean_pooling(tmp_path):
    # bench/embeddings.py times MiniLM cut to its first layers (issue 32): the build must be the
    # source model's first layers, not a fresh or a reordered stack, and refuse what it cannot keep.
    torch = pytest.importorskip("torch")
    import onnx
    from transformers import BertConfig, BertModel

    from pipeline.embed.onnx import MODEL_FILE, OnnxBackend, Recipe, model_folder
    from pipeline.errors import ConfigError

    folder = tmp_path / "two-layers"
    torch.manual_seed(1)
    # Large random weights, so that each layer moves the vectors visibly (the default 0.02 hardly does).
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        initializer_range=0.5,
    )
    BertModel(config).save_pretrained(folder)
    packaged = embed.resolve_model_dir("all-MiniLM-L6-v2")
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "modules.json"):
        shutil.copy(packaged / name, folder / name)
    shutil.copytree(packaged / "1_Pooling", folder / "1_Pooling")
    texts = ["graph neural networks for molecules", "a", "quantum error correction with surface codes"]

    def by_hand(layers: int) -> np.ndarray:
        model = BertModel.from_pretrained(folder, attn_implementation="eager").eval()
        model.encoder.layer = model.encoder.layer[:layers]
        rows = []
        for text in texts:
            ids = torch.tensor([OnnxBackend("t", folder, "fp32", 128, tmp_path)._tokenizer.encode(text).ids])
            with torch.no_grad():
                pooled = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.mean(dim=1)
            rows.append(torch.nn.functional.normalize(pooled, dim=1)[0].numpy())
        return np.vstack(rows)

    cut = OnnxBackend("t", folder, "fp32", 128, tmp_path, recipe=Recipe(layers=1)).encode(texts)
    full = OnnxBackend("t", folder, "fp32", 128, tmp_path).encode(texts)
    assert (cut * by_hand(1)).sum(axis=1).min() > 0.9999
    assert (full * by_hand(2)).sum(axis=1).min() > 0.9999
    assert (cut * full).sum(axis=1).min() < 0.99  # the second layer really is gone

    def attention_ops(recipe: Recipe) -> int:
        built = model_folder("t", folder, "int8", tmp_path, recipe) / MODEL_FILE
        return sum(node.op_type == "QAttention" for node in onnx.load(str(built)).graph.node)

    assert attention_ops(Recipe(layers=1)) == 1 and attention_ops(Recipe()) == 2
    for layers in (0, 3):
        with pytest.raises(ConfigError, match=f"has 2 layers; cannot keep the first {layers}"):
            OnnxBackend("t", folder, "fp32", 128, tmp_path / "other", recipe=Recipe(layers=layers)).encode(["a"])
