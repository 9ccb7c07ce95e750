"""Two segmentation reports compared image by image: is a difference more than the set's noise?

A set's mean NoC moves by a click or more between two checkpoints that are equally good: 30
images whose NoC ranges from 1 to 20 give a standard error of about one click. Two reports of
``python -m cmp eval segmentation --json`` on the same images (their ``image_ids`` agree) are
compared per image instead: the difference B - A of each image's clicks, its mean, and a
bootstrap 95% confidence interval of that mean (:func:`scipy.stats.bootstrap`, percentile
method, a fixed seed). An interval that lies wholly above zero says B needs more clicks (worse),
wholly below zero fewer (better); one that contains zero, no difference the set can show.

Methods are matched by role: ``cmp (<checkpoint>)`` is the model whatever its checkpoint's
name; other methods (``cmp, most confident of 3``, the baseline) by name. Never imports Gradio.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

#: Resamples and seed of the bootstrap (fixed, so a comparison is repeatable).
N_RESAMPLES = 10_000
SEED = 0
CONFIDENCE = 0.95


class ReportMismatch(ValueError):
    """The two reports cannot be compared image by image."""


@dataclass(frozen=True)
class Difference:
    """B - A for one set, method and metric: the means, the mean difference and its interval."""

    dataset: str
    kind: str
    method: str
    metric: str
    images: int
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """"worse" / "better" (fewer clicks is better) when the interval excludes zero, else "same"."""
        if self.low > 0:
            return "worse"
        if self.high < 0:
            return "better"
        return "same"


def method_role(name: str) -> str:
    """``cmp (any checkpoint)`` -> ``cmp``; every other method keeps its name."""
    return "cmp" if re.fullmatch(r"cmp \(.*\)", name) else name


def paired_interval(a, b, *, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                    seed: int = SEED) -> tuple[float, float, float]:
    """Mean of ``b - a`` (per image) and a bootstrap interval of that mean."""
    from scipy.stats import bootstrap

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ReportMismatch(f"need two equal, non-empty lists of per-image values; got {a.size} and {b.size}")
    d = b - a
    mean = float(d.mean())
    if np.all(d == d[0]):  # no spread: every resample gives the same mean
        return mean, mean, mean
    res = bootstrap((d,), np.mean, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                    rng=np.random.default_rng(seed))
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _sets(doc: dict) -> dict:
    """A report of one set or of several (``{"sets": {...}}``) -> {name: report}."""
    if "sets" in doc:
        return doc["sets"]
    if "methods" in doc:
        return {doc.get("dataset", "composites"): doc}
    raise ReportMismatch("not a segmentation report (no 'methods' or 'sets')")


def compare(doc_a: dict, doc_b: dict) -> list[Difference]:
    """Every set, method (by role) and per-image metric the two reports share, B - A.

    Raises :class:`ReportMismatch` when a shared set was run on other images, when the
    reports have no per-image numbers (written before they were kept), or share nothing.
    """
    sets_a, sets_b = _sets(doc_a), _sets(doc_b)
    out = []
    for name in (n for n in sets_a if n in sets_b):
        ra, rb = sets_a[name], sets_b[name]
        ids_a, ids_b = ra.get("image_ids"), rb.get("image_ids")
        if ids_a is None or ids_b is None:
            raise ReportMismatch(f"{name}: a report without image_ids (written before per-image results were "
                                 "kept); run the evaluation again")
        if ids_a != ids_b:
            raise ReportMismatch(f"{name}: the reports were run on other images ({len(ids_a)} and {len(ids_b)}; "
                                 "use the same --n-images)")
        ma = {method_role(k): v for k, v in ra["methods"].items()}
        mb = {method_role(k): v for k, v in rb["methods"].items()}
        for role in (r for r in ma if r in mb):
            pa, pb = ma[role].get("per_image", {}), mb[role].get("per_image", {})
            for metric in (m for m in pa if m in pb):
                diff, low, high = paired_interval(pa[metric], pb[metric])
                out.append(Difference(name, ra.get("kind", ""), role, metric, len(pa[metric]),
                                      float(np.mean(pa[metric])), float(np.mean(pb[metric])), diff, low, high))
    if not out:
        raise ReportMismatch("the reports share no set and method with per-image results")
    return out


def format_table(diffs: list[Difference], label_a: str = "A", label_b: str = "B") -> str:
    head = f"{'set':<24} {'kind':<9} {'method':<26} {'metric':<7} {'n':>3} {label_a[:9]:>9} {label_b[:9]:>9} " \
           f"{'B - A':>6}  {'95% interval':<16} verdict"
    lines = [head]
    for d in diffs:
        lines.append(f"{d.dataset:<24} {d.kind.split(' ')[0]:<9} {d.method[:26]:<26} {d.metric:<7} {d.images:>3} "
                     f"{d.mean_a:9.2f} {d.mean_b:9.2f} {d.diff:+6.2f}  [{d.low:+6.2f}, {d.high:+6.2f}] "
                     f"{'B ' + d.verdict if d.verdict != 'same' else 'no clear difference'}")
    lines.append(f"(per-image clicks, B - A; {round(CONFIDENCE * 100)}% bootstrap interval of the mean, "
                 f"{N_RESAMPLES} resamples, seed {SEED}; fewer clicks is better)")
    return "\n".join(lines)
