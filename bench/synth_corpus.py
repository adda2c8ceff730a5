"""A large synthetic corpus for timing papertopics at scale, built from the real arXiv CS papers.

    .venv/bin/python bench/synth_corpus.py N [--out /tmp/papertopics-synth] [--seed 42] [--per-day 1000]
        [--corpora ../shared/corpora] [--force]

Writes N distinct papers as daily arXiv scrape files (``YYYY-MM-DD.jsonl``, one JSON object a
line with id, title, summary, categories, authors, abs: the arxiv-daily format, read by
``format: arxiv-daily``) into a folder outside the repository. Each synthetic paper is
recombined from two real papers of ../shared/corpora/arxiv-daily-cs with the same primary
category that share one of the base title's two rarest words (a base and a donor), so that
its text stays on one topic:

- abstract: the base's first sentence, then, sentence by sentence, the base's or the
  donor's sentence at the same place (seeded coin flips), as long as the base's abstract;
- title: the base title's head and the donor title's tail around a colon where either has
  one, else the base title;
- categories: the base's (so the primary category, the label, is the base's); authors: the
  base's, and the donor's first author.

Papers are distinct (no two share their title and abstract). Their ids have the shape of
arXiv's pre-2007 ids, ``archive/NNNNNNN``, under an archive arXiv never had, ``synth``
(``synth/0000001``, ``synth/0000002``...: up to 9,999,999 papers), so ``format: arxiv-daily``
reads them as arXiv ids, yet none can ever be a real paper's: that scheme ended in 2007 and
its archives are a closed list (their arxiv.org links lead nowhere). The listing dates (the
file names) lie in the past, one day per ``--per-day`` papers, the last on ``LAST_DAY``
(2025-12-31), so that parse dates every paper and warns about none; a fixed range keeps the
corpus the same whatever day it is written.

What it means for measurements: the vocabulary, sentence lengths and topic mix are arXiv's,
so parse, embed, cluster, label and report meet realistic work at any size; but every
sentence occurs in many papers, and topics are recombinations of the 74,728 real ones, so
quality figures (NMI, coherence) on it say little: quality is measured on the real papers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"
DEFAULT_OUT = Path("/tmp/papertopics-synth")
# The last listing day: fixed and past, so that the same N gives the same files on any day.
LAST_DAY = dt.date(2025, 12, 31)
# Old-style arXiv ids under an archive arXiv never had: parseable as arXiv ids, never a real one.
ID_ARCHIVE = "synth"
MAX_PAPERS = 9_999_999  # the 7 digits of an old-style id
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[])")
_TITLE_WORD = re.compile(r"[a-z][a-z-]{3,}")
# Title words too common to say what a paper is about: a donor found through them is off topic.
_WEAK_WORDS = frozenset(
    "with from using based towards toward into over under their through learning model models approach method "
    "methods data analysis via large study novel efficient framework network networks system systems task tasks "
    "deep neural multi language vision generation benchmark evaluation improving robust".split()
)
# A donor shares one of the base title's this-many rarest words (within its primary category).
RAREST_WORDS = 2
MAX_TRIES = 20  # draws of a base and donor before giving up on a fresh (title, abstract) pair


class Source:
    """The real papers, split into sentences, with their same-category title-word neighbours."""

    def __init__(self, folder: Path) -> None:
        self.titles: list[str] = []
        self.sentences: list[list[str]] = []
        self.categories: list[list[str]] = []
        self.authors: list[list[str]] = []
        seen: set[str] = set()
        for path in sorted(folder.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                paper = json.loads(line)
                paper_id, categories = str(paper.get("id", "")), paper.get("categories") or []
                summary = " ".join(str(paper.get("summary", "")).split())
                title = " ".join(str(paper.get("title", "")).split())
                if paper_id in seen or not categories or not title or len(summary) < 100:
                    continue
                seen.add(paper_id)
                self.titles.append(title)
                self.sentences.append(_SENTENCE_END.split(summary))
                self.categories.append([str(category) for category in categories])
                self.authors.append([str(author) for author in paper.get("authors") or []])
        by_word: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, title in enumerate(self.titles):
            for word in set(_TITLE_WORD.findall(title.lower())) - _WEAK_WORDS:
                by_word[(self.categories[index][0], word)].append(index)
        self.by_word = {key: papers for key, papers in by_word.items() if len(papers) > 1}
        # Rarest first: "fatigue" keeps a donor on a base's topic, "real-time" does not.
        self.words_of = [
            sorted(
                (key for key in ((self.categories[index][0], word) for word in _TITLE_WORD.findall(title.lower()))
                 if key in self.by_word),
                key=lambda key: (len(self.by_word[key]), key),
            )
            for index, title in enumerate(self.titles)
        ]  # fmt: skip

    def __len__(self) -> int:
        return len(self.titles)

    def donor(self, base: int, rng: random.Random) -> int:
        """A paper of the base's primary category sharing a title word with it; any of its category without one."""
        words = self.words_of[base]
        if words:
            papers = self.by_word[rng.choice(words[:RAREST_WORDS])]
            donor = rng.choice(papers)
            return donor if donor != base else papers[(papers.index(base) + 1) % len(papers)]
        return rng.randrange(len(self))

    def paper(self, base: int, donor: int, rng: random.Random) -> tuple[str, str, list[str], list[str]]:
        """Title, abstract, categories and authors recombined from ``base`` and ``donor``."""
        mine, theirs = self.sentences[base], self.sentences[donor]
        sentences = [mine[0]] + [
            theirs[min(place, len(theirs) - 1)] if rng.random() < 0.5 else mine[place] for place in range(1, len(mine))
        ]
        title, other = self.titles[base], self.titles[donor]
        if ": " in title:
            title = f"{title.split(': ', 1)[0]}: {other.split(': ', 1)[-1]}"
        elif ": " in other:
            title = f"{other.split(': ', 1)[0]}: {title}"
        authors = self.authors[base] + [
            author for author in self.authors[donor][:1] if author not in self.authors[base]
        ]
        return title, " ".join(sentences), self.categories[base], authors


def synthesize(source: Source, n: int, out: Path, seed: int, per_day: int) -> int:
    """Write ``n`` distinct papers into ``out`` as daily files; returns the number of files."""
    rng = random.Random(seed)
    seen: set[bytes] = set()
    files = 0
    first_day = LAST_DAY - dt.timedelta(days=(n - 1) // per_day)
    for first in range(0, n, per_day):
        day = first_day + dt.timedelta(days=first // per_day)
        lines = []
        for number in range(first, min(first + per_day, n)):
            for _ in range(MAX_TRIES):
                base = rng.randrange(len(source))
                title, abstract, categories, authors = source.paper(base, source.donor(base, rng), rng)
                key = hashlib.blake2b(f"{title}\n{abstract}".encode(), digest_size=8).digest()
                if key not in seen:
                    seen.add(key)
                    break
            else:
                raise RuntimeError(f"no fresh paper after {MAX_TRIES} draws at paper {number}: ask for fewer papers")
            paper_id = f"{ID_ARCHIVE}/{number + 1:07d}"
            record = {
                "id": paper_id,
                "title": title,
                "summary": abstract,
                "categories": categories,
                "authors": authors,
                "abs": f"https://arxiv.org/abs/{paper_id}",
            }
            lines.append(json.dumps(record, ensure_ascii=False))
        (out / f"{day.isoformat()}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        files += 1
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of papers to write")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder outside the repository ({DEFAULT_OUT})")
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="the shared corpora folder")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--per-day", type=int, default=1000, help="papers per daily file")
    parser.add_argument("--force", action="store_true", help="replace the .jsonl files already in --out")
    args = parser.parse_args()
    folder = args.corpora / "arxiv-daily-cs" / "data"
    if not folder.is_dir():
        sys.exit(f"synth_corpus: {folder} is absent: the shared corpora are needed (pass --corpora to find them)")
    if args.per_day < 1:
        sys.exit(f"synth_corpus: --per-day must be at least 1, not {args.per_day}")
    if not 1 <= args.n <= MAX_PAPERS:
        sys.exit(f"synth_corpus: N must be between 1 and {MAX_PAPERS:,} (the 7 digits of an id), not {args.n}")
    out = args.out.resolve()
    if out == ROOT or ROOT in out.parents:
        sys.exit(f"synth_corpus: {out} is inside the repository; write the corpus outside it (--out)")
    out.mkdir(parents=True, exist_ok=True)
    old = sorted(out.glob("*.jsonl"))
    if old and not args.force:
        sys.exit(f"synth_corpus: {out} already holds {len(old)} .jsonl files; pass --force to replace them")
    for path in old:
        path.unlink()
    start = time.perf_counter()
    source = Source(folder)
    loaded = time.perf_counter() - start
    files = synthesize(source, args.n, out, args.seed, args.per_day)
    total = time.perf_counter() - start
    size = sum(path.stat().st_size for path in out.glob("*.jsonl")) / 1e6
    print(
        f"{args.n:,} papers from {len(source):,} real ones in {files} daily files in {out} ({size:,.0f} MB); "
        f"{loaded:.0f} s to read the sources, {total:.0f} s in all"
    )


if __name__ == "__main__":
    main()
