"""Evaluation.

- the shapes scene checker (scene_checker.py): objects recovered from pixels;
- the shapes prompt-fidelity benchmark: prompts.py (make_prompts), paraphrase.py, judge.py, oracle.py (the
  baselines), fidelity.py (run_fidelity, format_table) and report.py (`wordbrush eval`: all of them at once);
  the prompt specs themselves are data/specs.py's;
- realism and alignment on any dataset (realism.py: FD/KID/FJD on a wordbrush CLIP, CLIP score, R-precision);
- the emoji natural-prompt benchmark: everyday.py (the prompts), pixel_judge.py (nearest-neighbour retrieval among
  the manifest's reference emoji, no CLIP) and everyday_report.py (`wordbrush eval --everyday`).
"""

from .scene_checker import CheckResult, DetectedObj, check_scene, detect_objects

__all__ = ["CheckResult", "DetectedObj", "check_scene", "detect_objects"]
