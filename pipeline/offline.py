"""The offline policy: no model hub, no telemetry, no notebook progress bars.

papertopics loads every model from local files (the embed backends also pass
``local_files_only``) and must never reach the network, native code included.
``apply_offline_policy`` sets the environment variables that the libraries it runs read
when they start. It is called by the runner at the start of every run, whether the run comes
from the command line or from a notebook (``pipeline.run``), and by the CLI before anything
else; importing ``pipeline`` sets nothing.

Why at the first run and not at import: importing a package should not change the process
(the style guide's "no side effects at import"), and every library that reads these
variables is imported by a stage, after the runner has set them. The one case neither
moment covers is onnxruntime imported by the user's own code before the first run: its
telemetry was decided then, so the policy logs a warning that says what to do.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

# Set whatever the environment says: these are the policy, not preferences.
ENFORCED = {
    # Models are loaded from local folders only, never fetched from a model hub.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # onnxruntime (from 1.29 on Linux too) sends usage events to Microsoft and keeps a device id
    # and an event queue in ~/.cache/Microsoft. Only this variable, read when onnxruntime starts,
    # turns all of it off; disable_telemetry_events() does not cover the event sent when its
    # environment is created. Child processes (Dask workers) inherit it.
    "ORT_DISABLE_TELEMETRY": "1",
}
# Defaults a user may override: model libraries print progress bars and load reports meant for notebooks.
DEFAULTS = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_policy() -> None:
    """Set the offline policy's environment variables (idempotent; nothing but ``os.environ`` changes).

    Logs a warning when onnxruntime was imported before telemetry was switched off here: it read
    the variable when it started, so only a new process (or ``ORT_DISABLE_TELEMETRY=1`` set before
    it) turns its telemetry off.
    """
    late = "onnxruntime" in sys.modules and os.environ.get("ORT_DISABLE_TELEMETRY") != ENFORCED["ORT_DISABLE_TELEMETRY"]
    os.environ.update(ENFORCED)
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    if late:
        log.warning(
            "onnxruntime was imported before papertopics switched its telemetry off; set ORT_DISABLE_TELEMETRY=1 "
            "before importing it (or run papertopics first) to keep this process offline"
        )
