"""The names of the files a study and its fine-tune runs leave behind (torch-free): the engine
(``ddpm.finetune.study``) writes them and the API (``backend.routes.finetune``,
``backend.storage``) serves them, so each name is spelled here only."""
from __future__ import annotations

STUDY_FILE = "study.json"  # the plan, per budget the mean and sd of Dice of each arm, every run
PLOT_FILE = "study.png"    # Dice against labelled cases, both arms with their spread
EVAL_FILE = "eval.json"    # a fine-tune run's Dice on its evaluation cases (``ddpm evaluate``'s JSON)
