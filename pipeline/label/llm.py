"""Optional topic names from a local LLM behind an OpenAI-compatible server (Ollama, llama.cpp, vLLM).

Off by default: papertopics runs offline and its keyword-built names need nothing. When
enabled, each topic's keywords and a few representative titles are sent to
``POST {base_url}/chat/completions`` with ``temperature: 0``; the answer is cleaned into a
2- to 5-word name. Every level of the topic tree is named too (:func:`llm_group_names`): a
group of topics (a coarse group on the map, a node of the hierarchy) from its topics' names
and the best titles of its largest topics. Only the standard library is used
(``urllib.request``, no proxy).

**Local only.** A base url whose host is not a loopback address (``localhost``,
``127.0.0.0/8``, ``::1``) is refused before anything is sent, unless the caller allows
remote servers explicitly: paper titles stay on the machine.

**No silent fallback.** A server that cannot be reached, times out, answers an HTTP error or
something that is not a short name raises :class:`LLMLabelError` naming the url, so a run
never looks LLM-named when it is not. A caller that prefers to keep the keyword name of
such a topic says so with ``on_failure="keep"``: the failure is then logged as a warning,
and after the first connection failure or timeout the server is not asked again in that
call (one timeout, not one per topic).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.config import LLMConfig
from pipeline.errors import PapertopicsError
from pipeline.label.audit import head_phrase
from pipeline.label.choose import phrase_names_where_faulty
from pipeline.label.geometry import centroids_of
from pipeline.label.names import rename_topics
from pipeline.label.phrases import phrase_tokens
from pipeline.schema import OUTLIER_TOPIC

log = logging.getLogger(__name__)

MAX_WORDS = 5
MAX_CHARS = 60
TITLES_PER_TOPIC = 5
# A group's request lists at most this many of its topics' names, largest topics first.
TOPICS_PER_GROUP = 12
_TITLE_CHARS = 200

SYSTEM_PROMPT = (
    "You name the topics found in a collection of research papers. "
    "Reply with the topic name only: 2 to 5 words, in English, no quotes, "
    "no punctuation at the end, no explanation."
)


class LLMLabelError(PapertopicsError):
    """The LLM server could not be used or gave no usable name; the message names the url."""


def check_base_url(base_url: str, allow_remote: bool = False) -> str:
    """The chat-completions endpoint of ``base_url``; raises LLMLabelError if it is not a local http(s) url."""
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise LLMLabelError(f"LLM labeller: base url {base_url!r} is not an http(s) url like http://localhost:11434/v1")
    if not allow_remote and not _is_loopback(parsed.hostname):
        raise LLMLabelError(
            f"LLM labeller: base url {base_url!r} is not on this machine (localhost, 127.0.0.1, ::1); "
            "papertopics sends paper titles only to a local server unless remote servers are allowed explicitly"
        )
    return base_url.rstrip("/") + "/chat/completions"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


GROUP_PROMPT = (
    "You name groups of related topics found in a collection of research papers. "
    "Reply with the group name only: 1 to 4 words, in English, broader than any one of its topics, "
    "no quotes, no punctuation at the end, no explanation."
)


def build_messages(
    keywords: Sequence[str], titles: Sequence[str], children: Sequence[str] = ()
) -> list[dict[str, str]]:
    """The chat messages for one topic or one group of topics, with up to five representative titles.

    A topic is described by its ``keywords``, a group by its topics' names (``children``).
    """
    if children:
        lines = ["Topics in this group: " + "; ".join(children[:TOPICS_PER_GROUP])]
    else:
        lines = ["Keywords: " + ", ".join(keywords)]
    shown = [" ".join(title.split())[:_TITLE_CHARS] for title in titles[:TITLES_PER_TOPIC] if title.strip()]
    if shown:
        lines.append("Representative paper titles:")
        lines += [f"- {title}" for title in shown]
    lines.append("Group name:" if children else "Topic name:")
    system = GROUP_PROMPT if children else SYSTEM_PROMPT
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


_THINKING = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_LEAD_IN = re.compile(r"^(?:topic(?:\s+name)?|name|label|title)\s*[:\-–—]\s*", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[#>*\-•]+|\d+[.)])\s*")
_QUOTES = "\"'`“”‘’«»"


def clean_name(answer: str) -> str | None:
    """A topic name from a model's answer, or None when the answer is no short name.

    Reasoning blocks (``<think>...</think>``) are dropped; the first non-empty line is kept
    (the second when the first only announces it, ending in a colon);
    markdown (headings, bullets, bold, code), a lead-in ("Topic name:"), quotes and final
    punctuation are stripped. The name must have 1 to 5 words, at most 60 characters and a
    letter; its first letter is capitalised.
    """
    lines = [line.strip() for line in _THINKING.sub(" ", answer).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # "Here is a name for this topic:" then the name
        lines.pop(0)
    line = lines[0] if lines else ""
    for _ in range(3):  # '**Topic name:** "Graph learning"' needs several passes
        line = _BULLET.sub("", line).replace("**", "").replace("__", "").strip()
        line = _LEAD_IN.sub("", line).strip().strip(_QUOTES + "*_").strip()
    line = line.rstrip(".,;:!?").strip(_QUOTES).strip()
    name = " ".join("".join(char for char in line if char.isprintable()).split())
    words = name.split()
    if not 1 <= len(words) <= MAX_WORDS or len(name) > MAX_CHARS or not any(char.isalpha() for char in name):
        return None
    return name[0].upper() + name[1:]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


def _post(url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    # Never via a proxy, and no redirect followed: the request goes to base_url or nowhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    with opener.open(request, timeout=timeout_s) as response:
        payload = json.loads(response.read().decode("utf-8"))
    if not isinstance(payload, dict):
        raise ValueError("the answer is not a JSON object")
    return payload


class _Unreachable(Exception):
    """Connection refused, reset or timed out: asking again will not help."""


def _error_detail(error: urllib.error.HTTPError) -> str:
    try:
        detail = " ".join(error.read(300).decode("utf-8", "replace").split())
    except (OSError, http.client.HTTPException):
        return ""
    return f": {detail}" if detail else ""


def _ask(url: str, model: str, messages: list[dict[str, str]], timeout_s: float) -> str:
    body = {"model": model, "messages": messages, "temperature": 0}
    try:
        payload = _post(url, body, timeout_s)
    except urllib.error.HTTPError as exc:
        raise LLMLabelError(f"LLM labeller: {url} answered HTTP {exc.code} {exc.reason}{_error_detail(exc)}") from exc
    except TimeoutError as exc:
        raise _Unreachable(f"LLM labeller: {url} did not answer within {timeout_s:g} s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _Unreachable(f"LLM labeller: {url} did not answer within {timeout_s:g} s") from exc
        raise _Unreachable(f"LLM labeller: cannot reach {url} ({exc.reason}); is the server running?") from exc
    except OSError as exc:  # connection reset or closed midway
        raise _Unreachable(f"LLM labeller: connection to {url} failed ({exc})") from exc
    except http.client.HTTPException as exc:
        raise LLMLabelError(f"LLM labeller: {url} sent a broken HTTP answer ({exc!r})") from exc
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise LLMLabelError(f"LLM labeller: {url} did not answer JSON ({exc})") from exc
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMLabelError(f"LLM labeller: {url} answered without choices[0].message.content") from exc
    if not isinstance(content, str):
        raise LLMLabelError(f"LLM labeller: {url} answered a non-text message content")
    name = clean_name(content)
    if name is None:
        raise LLMLabelError(
            f"LLM labeller: {url} (model {model!r}) answered no 1- to {MAX_WORDS}-word name: {content[:120]!r}"
        )
    return name


def llm_topic_names(
    topics: Sequence[Mapping[str, Any]],
    base_url: str,
    model: str,
    timeout: float = 60.0,
    on_failure: Literal["error", "keep"] = "error",
    allow_remote: bool = False,
) -> list[str]:
    """One LLM-written name per topic, in order.

    Each topic is a mapping with ``keywords`` (list of str, best first) and ``titles``
    (representative titles, best first; the first five are sent), or, for a group of topics,
    ``children`` (its topics' names, largest first) and ``titles``. With
    ``on_failure="keep"`` it must also hold ``name``, the keyword-built name that is kept
    when the server fails for that topic; with ``"error"`` (the default) any failure raises
    LLMLabelError naming the url. A non-local ``base_url`` raises before anything is sent,
    unless ``allow_remote``. Names are not made unique here: the label stage does that for
    every name it sets.
    """
    url = check_base_url(base_url, allow_remote)
    if on_failure not in ("error", "keep"):
        raise ValueError(f"on_failure must be 'error' or 'keep', not {on_failure!r}")
    if on_failure == "keep" and any(not topic.get("name") for topic in topics):
        raise ValueError("on_failure='keep' needs each topic's keyword name under 'name'")
    names: list[str] = []
    unreachable: str | None = None
    for topic in topics:
        if unreachable is not None:
            names.append(str(topic["name"]))
            continue
        messages = build_messages(
            list(topic.get("keywords", [])), list(topic.get("titles", [])), list(topic.get("children", []))
        )
        try:
            names.append(_ask(url, model, messages, timeout))
        except _Unreachable as exc:
            if on_failure == "error":
                raise LLMLabelError(str(exc)) from exc
            unreachable = str(exc)
            log.warning("%s; keeping the keyword names of the remaining %d topics", exc, len(topics) - len(names))
            names.append(str(topic["name"]))
        except LLMLabelError as exc:
            if on_failure == "error":
                raise
            log.warning("%s; keeping the keyword name %r", exc, topic["name"])
            names.append(str(topic["name"]))
    return names


def names_from_settings(topics: Sequence[Mapping[str, Any]], settings: LLMConfig) -> list[str] | None:
    """``llm_topic_names`` with a settings object; ``None`` when the labeller is not enabled."""
    if not settings.enabled:
        return None
    return llm_topic_names(
        topics,
        settings.base_url,
        settings.model,
        timeout=settings.timeout_s,
        on_failure=settings.on_failure,
        allow_remote=settings.allow_remote,
    )


def llm_names(
    topics: pd.DataFrame,
    papers: pd.DataFrame,
    llm_config: LLMConfig,
    assignments: pd.DataFrame | None = None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    embeddings: np.ndarray | None = None,
) -> pd.DataFrame:
    """The topics table renamed by the configured local LLM server, from keywords and best titles.

    The outlier row keeps its name; names stay unique and slugs are rebuilt (:func:`rename_topics`).
    With ``assignments`` (the label stage's), the new names go through the name audit, and a topic
    whose LLM name is a fragment, generic, another topic's head phrase or (with ``embed``, the run's
    embedding backend, and ``embeddings``, the papers' vectors) nearer another topic's centroid
    keeps its phrase name (``choose.phrase_names_where_faulty``); without them the audit columns of
    every renamed topic are NaN. With the labeller disabled the table comes back unchanged.
    """
    if not llm_config.enabled:
        return topics
    title_of = dict(zip(papers["paper_id"], papers["title"], strict=True))
    real = topics[topics["topic"] != OUTLIER_TOPIC]
    requests = [
        {
            "keywords": list(row.keywords),
            "titles": [title_of[p] for p in row.representative_ids[:TITLES_PER_TOPIC]],
            "name": row.name,
        }
        for row in real.itertuples()
    ]
    names = names_from_settings(requests, llm_config) or []
    renamed = rename_topics(topics, dict(zip(real["topic"].tolist(), names, strict=True)))
    if "name_coverage" not in renamed.columns:
        return renamed
    if assignments is not None:
        tokens = phrase_tokens(papers["title"].astype(str).tolist(), papers["abstract"].astype(str).tolist())
        per_paper = assignments["topic"].to_numpy()
        centroids = None if embeddings is None else centroids_of(embeddings, per_paper)
        return phrase_names_where_faulty(topics, renamed, tokens, per_paper, embed, centroids)
    changed = (renamed["name"] != topics["name"]).to_numpy()
    return renamed.assign(
        name_coverage=np.where(changed, np.nan, renamed["name_coverage"]),
        name_lift=np.where(changed, np.nan, renamed["name_lift"]),
    )


def llm_group_names(
    topics: pd.DataFrame, hierarchy: pd.DataFrame, papers: pd.DataFrame, llm_config: LLMConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The coarse groups (``coarse_name``) and the hierarchy's nodes (``parent_name``) named by the LLM.

    A group is described by its topics' names (the LLM's, when :func:`llm_names` ran first),
    largest first, and the best title of each of its five largest topics; a group of the same
    topics is asked once, whether it is a coarse group, a node of the tree or both. A coarse
    group whose LLM name has the head phrase of a larger group's name, or of one of its topics'
    names alone, keeps its phrase name; coarse groups that still get the same name are told
    apart by their group number. With the labeller disabled both tables come back unchanged.
    """
    if not llm_config.enabled:
        return topics, hierarchy
    real = topics[topics["topic"] != OUTLIER_TOPIC]
    size_of = dict(zip(real["topic"].astype(int), real["size"].astype(int), strict=True))
    name_of = dict(zip(real["topic"].astype(int), real["name"].astype(str), strict=True))
    title_of = dict(zip(papers["paper_id"], papers["title"].astype(str), strict=True))
    best_title = {
        int(topic): title_of[ids[0]]
        for topic, ids in zip(real["topic"], real["representative_ids"], strict=True)
        if len(ids) and ids[0] in title_of
    }
    coarse = {
        int(group): tuple(sorted(int(t) for t in members["topic"]))
        for group, members in real.groupby("coarse_topic")
        if int(group) != OUTLIER_TOPIC
    }
    nodes = [tuple(sorted(int(t) for t in leaves)) for leaves in hierarchy["topics"]] if len(hierarchy) else []
    old_name: dict[tuple[int, ...], str] = {}
    for group, leaves in coarse.items():
        old_name[leaves] = str(real.loc[real["coarse_topic"] == group, "coarse_name"].iloc[0])
    for leaves, parent in zip(nodes, hierarchy["parent_name"] if len(hierarchy) else [], strict=True):
        old_name.setdefault(leaves, str(parent))
    groups = [leaves for leaves in old_name if all(leaf in name_of for leaf in leaves)]
    requests = []
    for leaves in groups:
        largest = sorted(leaves, key=lambda leaf: (-size_of[leaf], leaf))
        requests.append(
            {
                "children": [name_of[leaf] for leaf in largest],
                "titles": [best_title[leaf] for leaf in largest if leaf in best_title][:TITLES_PER_TOPIC],
                "name": old_name[leaves],
            }
        )
    new_name = dict(zip(groups, names_from_settings(requests, llm_config) or [], strict=True))
    coarse_names: dict[int, str] = {}
    taken: set[str] = set()
    heads: set[str] = set()
    for group, leaves in sorted(coarse.items(), key=lambda item: (-sum(size_of[t] for t in item[1]), item[0])):
        name = new_name.get(leaves, old_name[leaves])
        # The audit of one level: no larger group's head phrase, nor one of its topics' names alone.
        alone = {head_phrase(name_of[leaf]) for leaf in leaves if "," not in name_of[leaf] and len(leaves) > 1}
        if head_phrase(name) in heads | alone:
            name = old_name[leaves]
        coarse_names[group] = name if name.casefold() not in taken else f"{name} ({group})"
        taken.add(coarse_names[group].casefold())
        heads.add(head_phrase(name))
    topics = topics.assign(
        coarse_name=[
            coarse_names.get(int(group), str(name))
            for group, name in zip(topics["coarse_topic"], topics["coarse_name"], strict=True)
        ]
    )
    if len(hierarchy):
        hierarchy = hierarchy.assign(parent_name=[new_name.get(leaves, old_name[leaves]) for leaves in nodes])
    return topics, hierarchy
