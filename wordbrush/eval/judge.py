"""The shapes fidelity benchmark's judge: does an image show exactly what a prompt spec asks for?

"Exactly" means: the recognised objects (scene_checker.analyse) match the spec's one to one (shape, and colour
where named), no other recognised objects and no unrecognised coloured blobs; for position, the relation holds
between the matched objects' boxes as GenEval judges it (scene_checker.geneval_relations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations

from ..data.specs import PromptSpec
from .scene_checker import DetectedObj, analyse, geneval_relations

POSITION_THRESHOLD = 0.1  # GenEval's, as in scene_checker.geneval_relations


@dataclass
class Judgement:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    detected: list[DetectedObj] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok


def _slot_name(shape: str, color: str | None) -> str:
    return f"{color} {shape}" if color else shape


def _matches(d: DetectedObj, slot: tuple[str, str | None]) -> bool:
    return d.shape == slot[0] and (slot[1] is None or d.color == slot[1])


def judge(image, spec: PromptSpec, position_threshold: float = POSITION_THRESHOLD) -> Judgement:
    """Whether an image (PIL or (W, W, 3) uint8) shows exactly what the spec asks for.

    The recognised objects must match the spec's objects one to one (shape, and colour where named),
    with no extras and no unrecognised coloured blobs (as check_scene); for position, the relation
    must hold between the matched objects' boxes as GenEval judges it (geneval_relations).
    """
    found, unknown = analyse(image)
    reasons: list[str] = []
    if unknown:
        reasons.append(f"{len(unknown)} unrecognised object(s): " + "; ".join(u.describe() for u in unknown))
    slots = spec.slots()
    want = ", ".join(_slot_name(*s) for s in slots)
    have = ", ".join(f"{d.color} {d.shape}" for d in found) or "nothing"
    if len(found) != len(slots):
        reasons.append(f"found {len(found)} object(s) ({have}), want {len(slots)} ({want})")
    else:
        fits = [p for p in permutations(found) if all(_matches(d, s) for d, s in zip(p, slots))]
        if not fits:
            reasons.append(f"objects do not match: found {have}, want {want}")
        elif spec.relation is not None:
            if not any(spec.relation in geneval_relations(p[0].bbox, p[1].bbox, position_threshold)
                       for p in fits):
                got = sorted(geneval_relations(fits[0][0].bbox, fits[0][1].bbox, position_threshold))
                reasons.append(f"relation fails: {_slot_name(*slots[0])} is not {spec.relation} "
                               f"{_slot_name(*slots[1])} (it is {' and '.join(got) or 'in no relation'})")
    return Judgement(ok=not reasons, reasons=reasons, detected=found)
