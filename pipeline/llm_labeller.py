"""Moved to :mod:`pipeline.label.llm`; this name stays only until the runner calls ``pipeline.label.llm_names``."""

from pipeline.label.llm import LLMLabelError, check_base_url, llm_topic_names, names_from_settings

__all__ = ["LLMLabelError", "check_base_url", "llm_topic_names", "names_from_settings"]
