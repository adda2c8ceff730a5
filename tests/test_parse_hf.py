"""Hugging Face Daily Papers pages: the two real seed pages, plus small pages that stress the pairing."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from pipeline.config import InputSpec, ParseConfig
from pipeline.errors import InputError
from pipeline.parse import parse
from pipeline.parse.hf_pages import CHROME_LINES
from pipeline.schema import PAPER_COLUMNS
from pipeline.sources import SourceFile, collect_sources

SAMPLES = Path(__file__).parents[1] / "data" / "samples"
AUG12 = SAMPLES / "000_6472a1053a30b6b0.txt"
MAR11 = SAMPLES / "004_d3fb9a26459ee6d6.txt"

# Read off the saved pages by hand: every title line, in page order.
AUG12_TITLES = [
    "Turbo: Informativity-Driven Acceleration Plug-In for Vision-Language Large Models",
    "TEDDY: Trimming Edges with Degree-based Discrimination strategY",
    "Graph Counselor: Adaptive Graph Exploration via Multi-Agent Synergy to Enhance LLM Reasoning",
    "How Does Information Bottleneck Help Deep Learning?",
    "OmniAudio: Generating Spatial Audio from 360-Degree Video",
    "A Drop of Ink Makes a Million Think: The Spread of False Information in Large Language Models",
    "MaGRITTe: Manipulative and Generative 3D Realization from Image, Topview and Text",
    "MathVerse: Does Your Multi-modal LLM Truly See the Diagrams in Visual Math Problems?",
    "Estimation of Appearance and Occupancy Information in Birds Eye View from Surround Monocular Images",
    "What Makes for Text to 360-degree Panorama Generation with Stable Diffusion?",
    "360PanT: Training-Free Text-Driven 360-Degree Panorama-to-Panorama Translation",
    "VisAlign: Dataset for Measuring the Degree of Alignment between AI and Humans in Visual Perception",
    "Math-PUMA: Progressive Upward Multimodal Alignment to Enhance Mathematical Reasoning",
    "How new data permeates LLM knowledge and how to dilute it",
    "Benchmarking Large Language Models in Retrieval-Augmented Generation",
    "Homeomorphism Prior for False Positive and Negative Problem in Medical Image Dense Contrastive Representation Learning",  # noqa: E501
    "SLIM: Skill Learning with Multiple Critics",
    "CHGNet: Pretrained universal neural network potential for charge-informed atomistic modeling",
    "Swing Distillation: A Privacy-Preserving Knowledge Distillation Framework",
    "Improving the Shortest Plank: Vulnerability-Aware Adversarial Training for Robust Recommender System",
    "Layer-stacked Attention for Heterogeneous Network Embedding",
    "In Which Areas of Technical AI Safety Could Geopolitical Rivals Cooperate?",
    "Label Distributionally Robust Losses for Multi-class Classification: Consistency, Robustness and Adaptivity",
]
MAR11_TITLES = [
    "MedFuzz: Exploring the Robustness of Large Language Models in Medical Question Answering",
    "Generating and Evaluating Tests for K-12 Students with Language Model Simulations: A Case Study on Sentence Reading Efficiency",  # noqa: E501
    "Mitigating Reversal Curse in Large Language Models via Semantic-aware Permutation Training",
    "Pard: Permutation-Invariant Autoregressive Diffusion for Graph Generation",
    "Subgraph Permutation Equivariant Networks",
    "Analysis of Linear Mode Connectivity via Permutation-Based Weight Matching",
    "Knowledge Graph Embedding by Normalizing Flows",
    "Merging LoRAs like Playing LEGO: Pushing the Modularity of LoRA to Extremes Through Rank-Wise Clustering",
    "Robust Attentional Aggregation of Deep Feature Sets for Multi-view 3D Reconstruction",
    "Model Evaluation, Model Selection, and Algorithm Selection in Machine Learning",
    "Generalizing Neural Human Fitting to Unseen Poses With Articulated SE(3) Equivariance",
    "Reviving Shift Equivariance in Vision Transformers",
    "Crystal Diffusion Variational Autoencoder for Periodic Material Generation",
    "LeMo: Enabling LEss Token Involvement for MOre Context Fine-tuning",
    "PLeaS -- Merging Models with Permutations and Least Squares",
    "Learnable Commutative Monoids for Graph Neural Networks",
    "Revisiting Transformation Invariant Geometric Deep Learning: Are Initial Representations All You Need?",
    "Merge, Then Compress: Demystify Efficient SMoE with Hints from Its Routing Policy",
    "Knowledge distillation to effectively attain both region-of-interest and global semantics from an image where multiple objects appear",  # noqa: E501
    "Self-Attention Amortized Distributional Projection Optimization for Sliced Wasserstein Point-Cloud Reconstruction",
    "Intriguing Properties of Large Language and Vision Models",
    "Stochastic Layer-Wise Shuffle: A Good Practice to Improve Vision Mamba Training",
    "Landscaping Linear Mode Connectivity",
    "Semantic-Aware Autoregressive Image Modeling for Visual Representation Learning",
    "BatchPrompt: Accomplish more with less",
    "What can a Single Attention Layer Learn? A Study Through the Random Features Lens",
    "COMET: Learning Cardinality Constrained Mixture of Experts with Trees and Local Search",
    "A Multi-Modal Context Reasoning Approach for Conditional Inference on Joint Textual and Visual Clues",
    "TransRefer3D: Entity-and-Relation Aware Transformer for Fine-Grained 3D Visual Grounding",
    "Learning by Sorting: Self-supervised Learning with Group Ordering Constraints",
    "A Homogeneous Graph Neural Network for Precoding and Power Allocation in Scalable Wireless Networks",
    "Disentangled Structural and Featural Representation for Task-Agnostic Graph Valuation",
    "RISurConv: Rotation Invariant Surface Attention-Augmented Convolutions for 3D Point Cloud Classification and Segmentation",  # noqa: E501
    "Enhancing Neural Subset Selection: Integrating Background Information into Set Representations",
    "SVIPTR: Fast and Efficient Scene Text Recognition with Vision Permutable Extractor",
    "Deep learning probability flows and entropy production rates in active matter",
    "Prompt Tuned Embedding Classification for Multi-Label Industry Sector Allocation",
    "Learning Decentralized Partially Observable Mean Field Control for Artificial Collective Behavior",
    "Machine Learning Workflow to Explain Black-box Models for Early Alzheimer's Disease Classification Evaluated for Multiple Datasets",  # noqa: E501
    "Score-based Generative Modeling of Graphs via the System of Stochastic Differential Equations",
    "ScatSimCLR: self-supervised contrastive learning with pretext task regularization for small-scale datasets",
]

CHROME = (
    "new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nDaily Papers\n\n"
    "byAK and the research community\n\n"
)
ABSTRACT_A = (
    "We study how large language models forget facts during fine-tuning. Our experiments cover "
    "six model families and three datasets. We find that forgetting follows a power law in the "
    "number of updates, and we propose a simple replay scheme that halves it."
)
ABSTRACT_B = (
    "A second paragraph continues the same abstract. It reports ablations on the replay buffer "
    "size and shows the effect holds for instruction-tuned models as well as for base models."
)


def _page(text: str, year: int | None = None, name: str = "page.txt") -> SourceFile:
    return SourceFile(path=name, data=text.encode(), sha256="0" * 64, spec=InputSpec(path=name, year=year))


TODAY = date(2026, 12, 2)


def _parse_seed(path: Path, year: int | None = None):
    return parse(collect_sources([InputSpec(path=str(path), year=year)]), ParseConfig(), today=TODAY)


@pytest.mark.parametrize(
    ("path", "titles", "saved", "listed"),
    [(AUG12, AUG12_TITLES, "2025-08-13", "2025-08-12"), (MAR11, MAR11_TITLES, "2026-01-20", "2025-03-11")],
)
def test_seed_pages_yield_every_title_in_order(tmp_path, path, titles, saved, listed):
    # The seed pages' names hold no date: their modification time dates them (a checkout sets it).
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    stamp = date.fromisoformat(saved).toordinal() - date(1970, 1, 1).toordinal()
    os.utime(copy, (stamp * 86400 + 3600, stamp * 86400 + 3600))
    result = parse(collect_sources([InputSpec(path=str(copy))]), ParseConfig(), today=TODAY)
    papers = result.papers
    assert list(papers.columns) == list(PAPER_COLUMNS)
    assert all(str(dtype) == "string" for dtype in papers.dtypes)
    assert papers["title"].tolist() == titles
    assert len(titles) == {AUG12: 23, MAR11: 41}[path]
    assert set(papers["date"]) == {listed}
    assert (papers["abstract"].str.len() > 1000).all(), "every seed paper has its long abstract"
    assert papers["source"].unique().tolist() == [str(copy)]
    report = result.file_reports[0]
    assert (report.reader, report.read, report.kept, report.skipped) == ("hf-daily-papers", len(titles), len(titles), 0)
    assert (report.date_rule, report.date_reference) == ("file modified", saved)


def test_no_chrome_line_becomes_a_paper():
    papers = parse(collect_sources([InputSpec(path=str(SAMPLES / "*.txt"))]), ParseConfig()).papers
    assert len(papers) == 64
    values = set(papers["title"].str.casefold()) | set(papers["abstract"].str.casefold())
    assert not values & (CHROME_LINES | {"aug 12", "mar 11"})


def test_seed_ids_and_urls_come_from_the_title():
    papers = _parse_seed(AUG12).papers
    first = papers.iloc[0]
    normalised = "turbo informativity driven acceleration plug in for vision language large models"
    assert first["paper_id"] == "t-" + hashlib.sha1(normalised.encode()).hexdigest()[:16]
    assert first["url"] == (
        "https://arxiv.org/search/?query=Turbo%3A+Informativity-Driven+Acceleration+Plug-In+for+"
        "Vision-Language+Large+Models&searchtype=title"
    )
    assert papers["paper_id"].is_unique
    assert (papers["authors"] == "").all() and (papers["label"] == "").all()


def test_seed_links_are_pulled_out_and_cleaned():
    papers = _parse_seed(AUG12).papers.set_index("title")
    pant = papers.loc["360PanT: Training-Free Text-Driven 360-Degree Panorama-to-Panorama Translation"]
    assert pant["links"] == "https://github.com/littlewhitesea/360PanT"
    # The LaTeX {url} duplicate is gone and the sentence still ends naturally.
    assert pant["abstract"].endswith("Code is available at https://github.com/littlewhitesea/360PanT.")
    assert "{" not in pant["abstract"]
    omni = papers.loc["OmniAudio: Generating Spatial Audio from 360-Degree Video", "links"]
    assert omni == "https://github.com/liuhuadai/OmniAudio https://OmniAudio-360V2SA.github.io"
    counselor = papers.loc[AUG12_TITLES[2], "links"]
    assert counselor == "https://github.com/gjq100/Graph-Counselor.git"
    assert papers.loc["TEDDY: Trimming Edges with Degree-based Discrimination strategY", "links"] == ""
    assert (papers["links"] != "").sum() == 11


def test_mar11_links_strip_trailing_space_and_dot():
    papers = _parse_seed(MAR11).papers.set_index("title")
    assert papers.loc["PLeaS -- Merging Models with Permutations and Least Squares", "links"] == (
        "https://github.com/SewoongLab/PLeaS-Merging"
    )
    assert papers.loc[MAR11_TITLES[10], "links"] == "https://arteq.is.tue.mpg.de"
    assert (papers["links"] != "").sum() == 10


def test_year_makes_the_listing_date_iso():
    assert set(_parse_seed(AUG12, year=2024).papers["date"]) == {"2024-08-12"}
    assert set(_parse_seed(MAR11, year=2025).papers["date"]) == {"2025-03-11"}


def test_title_without_abstract_is_a_title_only_paper():
    text = CHROME + "Aug 12\n\nA Title With No Abstract At All\n\nSecond Paper Has An Abstract\n\n" + ABSTRACT_A + "\n"
    papers = parse([_page(text)], ParseConfig()).papers
    assert papers["title"].tolist() == ["A Title With No Abstract At All", "Second Paper Has An Abstract"]
    assert papers["abstract"].tolist() == ["", ABSTRACT_A]


def test_two_abstract_paragraphs_belong_to_one_paper():
    text = (
        CHROME
        + "Mar 3\n\nForgetting In Fine-Tuning\n\n"
        + ABSTRACT_A
        + "\n\n"
        + ABSTRACT_B
        + "\n\nNext Paper\n\n"
        + ABSTRACT_B
    )
    papers = parse([_page(text)], ParseConfig(), today=TODAY).papers
    assert papers["title"].tolist() == ["Forgetting In Fine-Tuning", "Next Paper"]
    assert papers["abstract"].iloc[0] == f"{ABSTRACT_A} {ABSTRACT_B}"
    assert papers["date"].tolist() == ["2026-03-03", "2026-03-03"]


def test_short_code_line_after_abstract_is_not_a_title():
    text = CHROME + "Forgetting In Fine-Tuning\n\n" + ABSTRACT_A + "\n\nCode: https://github.com/a/b.\n"
    papers = parse([_page(text)], ParseConfig()).papers
    assert papers["title"].tolist() == ["Forgetting In Fine-Tuning"]
    assert papers["links"].tolist() == ["https://github.com/a/b"]


def test_title_and_abstract_on_adjacent_lines_are_still_paired():
    text = CHROME + "Forgetting In Fine-Tuning\n" + ABSTRACT_A + "\nOther Paper\n" + ABSTRACT_B + "\n"
    papers = parse([_page(text)], ParseConfig()).papers
    assert papers["abstract"].tolist() == [ABSTRACT_A, ABSTRACT_B]


def test_abstract_before_any_title_is_skipped_or_fails():
    text = CHROME + ABSTRACT_B + "\n\nForgetting In Fine-Tuning\n\n" + ABSTRACT_A
    result = parse([_page(text)], ParseConfig())
    assert result.papers["title"].tolist() == ["Forgetting In Fine-Tuning"]
    assert result.file_reports[0].skip_reasons == {"abstract without a title": 1}
    with pytest.raises(InputError, match=r"page\.txt: line 11: abstract without a title"):
        parse([_page(text)], ParseConfig(on_error="fail"))


def test_page_with_only_chrome_holds_no_papers():
    with pytest.raises(InputError, match=r"^page\.txt: holds no papers"):
        parse([_page(CHROME + "Aug 12\n")], ParseConfig())


def test_same_title_on_two_pages_is_a_duplicate():
    first = _page(CHROME + "Forgetting In Fine-Tuning\n\n" + ABSTRACT_A, name="a.txt")
    second = _page(CHROME + "FORGETTING in fine tuning!\n\n" + ABSTRACT_B, name="b.txt")
    result = parse([first, second], ParseConfig())
    assert result.papers["abstract"].tolist() == [ABSTRACT_A]
    assert [(r.kept, r.duplicates) for r in result.file_reports] == [(1, 0), (0, 1)]
    assert len(parse([first, second], ParseConfig(dedupe=False)).papers) == 2
