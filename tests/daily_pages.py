"""Daily Papers pages in the seed format, made from the seed pages: a small feed to replay day by day.

The 64 seed papers are read from ``data/samples``; each day after the first two holds
variants of them (the same sentences in another order, one left out, a subtitle added),
so new papers mostly join the topics the seeds form, plus, from ``SUBJECT_FROM`` on, one or
two papers a day on a subject no seed page treats (coral reefs), which wait in the pool
until they are dense enough to be a topic, and now and then a paper on a subject of its
own (an outlier that fits nowhere).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
# The site's lines at the top of a saved page, as the seed pages have them.
CHROME = ["new", "Get trending papers in your email inbox!", "Subscribe", "Daily Papers",
          "byAK and the research community"]  # fmt: skip
SUBTITLES = ["a closer look", "revisited", "further evidence", "an extended study", "lessons learned", "in practice"]
SUBJECT_FROM = 12  # the first day with papers on the new subject
LONERS = [  # one paper each, on subjects far from the seeds and from each other
    ("Sourdough starter microbiology in home bakeries",
     "We sampled sourdough starters kept in home kitchens and sequenced their yeasts and lactic acid bacteria. "
     "Flour type and feeding schedule shaped the microbial community more than the baker's location."),
    ("Medieval monastery account books as sources of climate history",
     "Harvest dates and grain prices recorded by monks in medieval account books track summer temperatures. "
     "We calibrate them against tree rings and reconstruct three centuries of regional climate."),
    ("Tidal marsh sediment accretion under sea level rise",
     "Salt marsh platforms gain elevation by trapping tidal sediment and growing roots. Field cores from "
     "estuaries show accretion keeps pace with moderate sea level rise but not with the fastest scenarios."),
]  # fmt: skip
# Subjects no seed page treats, one template each: {0} and {1} are filled from the two lists, {2} with a number.
SUBJECTS = {
    "reef": (
        ["Acropora", "Porites", "Pocillopora", "Montipora", "Favia", "Goniastrea", "Stylophora", "Diploria"],
        ["the Great Barrier Reef", "the Red Sea", "the Coral Triangle", "the Florida Keys", "the Maldives"],
        "Coral bleaching of {0} reefs in {1} under marine heatwaves",
        "Coral reefs in {1} suffered mass coral bleaching during marine heatwaves. We surveyed {0} colonies on reef "
        "transects and measured sea surface temperature anomalies of {2} degrees. Coral bleaching, coral mortality "
        "and algal symbiont loss rose with the heat stress, while reef recovery depended on water quality.",
    ),
    "volcano": (
        ["Etna", "Stromboli", "Kilauea", "Merapi", "Hekla", "Fuego", "Sakurajima", "Popocatepetl"],
        ["lava flows", "ash plumes", "summit craters", "fissure vents", "pyroclastic deposits"],
        "Magma ascent beneath {0} recorded by its {1}",
        "We monitored volcanic tremor, sulfur dioxide emissions and ground deformation at {0} during an eruptive "
        "sequence that produced {1}. Seismometers and tiltmeters showed magma rising {2} kilometres before the "
        "eruption, and gas ratios in the volcanic plume changed days before lava reached the surface.",
    ),
    "bees": (
        ["honey bees", "bumblebees", "mason bees", "carpenter bees", "sweat bees", "leafcutter bees"],
        ["apple orchards", "clover meadows", "sunflower fields", "urban gardens", "almond groves"],
        "Foraging of {0} in {1} and pollination yield",
        "We tracked {0} foraging on flowers in {1} over a flowering season. Pollinator visits per flower, pollen "
        "loads and nectar sugar were recorded, and fruit set rose by {2} percent where bee colonies were kept "
        "nearby. Pesticide exposure lowered bee foraging and colony growth.",
    ),
}


def subject_paper(subject: str, rng: np.random.Generator, serial: int) -> tuple[str, str]:
    """One paper on ``subject`` (a key of SUBJECTS), its details drawn from ``rng``; ``serial`` makes it unique."""
    first, second, title, abstract = SUBJECTS[subject]
    words = (first[int(rng.integers(len(first)))], second[int(rng.integers(len(second)))])
    number = round(float(rng.uniform(0.5, 9.5)), 1)
    return f"{title.format(*words, number)} ({serial})", abstract.format(*words, number)


def seed_papers() -> list[tuple[str, str]]:
    """(title, abstract) of the 64 papers of the two seed pages, read by the project's page reader."""
    from pipeline.config import InputSpec
    from pipeline.parse.hf_pages import read_hf_page
    from pipeline.parse.records import RawPaper
    from pipeline.sources import collect_sources

    sources = collect_sources([InputSpec(path=str(SAMPLES / "*.txt"))])
    return [(item.title, item.abstract) for item in read_hf_page(sources) if isinstance(item, RawPaper)]


def _variant(paper: tuple[str, str], rng: np.random.Generator, serial: int) -> tuple[str, str]:
    title, abstract = paper
    sentences = [s.strip() for s in abstract.replace("? ", ". ").split(". ") if s.strip()]
    order = rng.permutation(len(sentences)).tolist()
    kept = order[:-1] if len(order) > 3 else order
    subtitle = SUBTITLES[int(rng.integers(len(SUBTITLES)))]
    text = ". ".join(sentences[i].rstrip(".") for i in sorted(kept)) + "."
    return f"{title}: {subtitle} ({serial})", text


def page_text(day: int, papers: list[tuple[str, str]]) -> str:
    """One saved Daily Papers page dated February ``day`` (2026 by the config's year): title and abstract lines."""
    lines = [*CHROME, f"Feb {day}"]
    for title, abstract in papers:
        lines += [title, abstract]
    return "\n\n".join(lines) + "\n"


def daily_pages(folder: Path, days: int, per_day: int = 8, seed: int = 0) -> list[Path]:
    """Write ``days`` pages (one per day, Feb 1 on) into ``folder``; days 1 and 2 hold the seeds."""
    rng = np.random.default_rng(seed)
    seeds = seed_papers()
    assert len(seeds) == 64, "the two seed pages hold 64 papers"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in range(1, days + 1):
        if day <= 2:
            papers = seeds[32 * (day - 1) : 32 * day]
        else:
            picks = rng.choice(len(seeds), size=per_day, replace=False)
            papers = [_variant(seeds[int(i)], rng, 1000 * day + n) for n, i in enumerate(picks)]
            if day >= SUBJECT_FROM:
                papers += [subject_paper("reef", rng, 1000 * day + 100 + n) for n in range(1 + day % 2)]
            if day % 5 == 0:
                papers.append(LONERS[(day // 5 - 1) % len(LONERS)])
        path = folder / f"2026-02-{day:02d}.txt"
        path.write_text(page_text(day, papers), encoding="utf-8")
        paths.append(path)
    return paths
