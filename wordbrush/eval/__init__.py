"""Evaluation: the shapes scene checker (scene_checker.py) and metrics."""

from .scene_checker import CheckResult, DetectedObj, check_scene, detect_objects

__all__ = ["CheckResult", "DetectedObj", "check_scene", "detect_objects"]
