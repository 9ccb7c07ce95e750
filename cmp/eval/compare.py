"""Two evaluation reports compared case by case: is a difference more than the set's noise?

A set's mean NoC moves by a click or more between two checkpoints that are equally good: 30
images whose NoC ranges from 1 to 20 give a standard error of about one click. Two reports of
``python -m cmp eval segmentation --json`` on the same images (their ``image_ids`` agree) are
compared per image instead: the difference B - A of each image's clicks, its mean, and a
bootstrap 95% confidence interval of that mean (:func:`scipy.stats.bootstrap`, percentile
method, a fixed seed). An interval that lies wholly above zero says B needs more clicks (worse),
wholly below zero fewer (better); one that contains zero, no difference the set can show.
Two ``python -m cmp eval propagation --json`` reports are compared the same way per case (a
pair and a seed of guidance points, ``case_ids``), on each case's end-point error at each
number of points: higher is worse there too.

Segmentation methods are matched by role: ``cmp (<checkpoint>)`` is the model whatever its
checkpoint's name; other methods (``cmp, most confident of 3``, the baseline) by name.
Propagation methods by name, the model's (``model*``) by default: the baselines do not
depend on the checkpoint. Never imports Gradio.
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
    """The two reports cannot be compared case by case."""


@dataclass(frozen=True)
class Difference:
    """B - A for one set, method and metric: the means, the mean difference and its interval
    over ``cases`` images (segmentation) or cases (propagation)."""

    dataset: str
    kind: str
    method: str
    metric: str
    cases: int
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """"worse" / "better" (fewer clicks, a lower EPE is better) when the interval excludes zero, else "same".
        One image or case gives no verdict: its interval is a single value, not a measure of noise."""
        if self.cases < 2:
            return "same"
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


def split_views(doc: dict, sets, views) -> dict:
    """A segmentation report with, after each set named in ``sets``, one set per view: image
    ``i`` is view ``views[i % len(views)]`` (the order :func:`cmp.eval.real._both_views` makes
    them), each named ``"<set> [<view>]"`` with that view's images and per-image numbers only.
    Sets the report lacks are skipped; the report itself is not changed."""
    out = {}
    for name, rep in _sets(doc).items():
        out[name] = rep
        ids = rep.get("image_ids")
        if name not in sets or ids is None:
            continue
        for j, view in enumerate(views):
            keep = [k for k, i in enumerate(ids) if i % len(views) == j]
            out[f"{name} [{view}]"] = {
                **rep, "image_ids": [ids[k] for k in keep],
                "methods": {m: {**v, "per_image": {metric: [vals[k] for k in keep]
                                                   for metric, vals in v.get("per_image", {}).items()}}
                            for m, v in rep["methods"].items()}}
    return {**doc, "sets": out}


def is_propagation(doc: dict) -> bool:
    """Whether ``doc`` is a propagation report (else a segmentation report is expected)."""
    return "points" in doc and "datasets" in doc


def compare(doc_a: dict, doc_b: dict, *, methods=None, points=None) -> list[Difference]:
    """Every set, method and per-case metric the two reports share, B - A.

    ``methods``: only these (segmentation: by role; propagation: by name; default every
    segmentation method and every ``model*`` propagation method); ``points``: only these
    numbers of guidance points (propagation). Raises :class:`ReportMismatch` when the reports
    are of two kinds, when a shared set was run on other images or cases, when the reports
    have no per-case numbers (written before they were kept), or share nothing.
    """
    if is_propagation(doc_a) != is_propagation(doc_b):
        raise ReportMismatch("one report is of segmentation and the other of propagation")
    if is_propagation(doc_a):
        out = _propagation(doc_a, doc_b, methods, points)
    else:
        out = _segmentation(doc_a, doc_b, methods)
    if not out:
        raise ReportMismatch("the reports share no set and method with per-case results")
    return out


def _same_cases(name: str, ids_a, ids_b, what: str) -> None:
    if ids_a is None or ids_b is None:
        raise ReportMismatch(f"{name}: a report without {what} (written before per-case results were kept); "
                             "run the evaluation again")
    if ids_a != ids_b:
        raise ReportMismatch(f"{name}: the reports were run on other images or cases ({len(ids_a)} and "
                             f"{len(ids_b)}; use the same --n-images, --seeds and sources)")


def _segmentation(doc_a: dict, doc_b: dict, methods) -> list[Difference]:
    sets_a, sets_b = _sets(doc_a), _sets(doc_b)
    out = []
    for name in (n for n in sets_a if n in sets_b):
        ra, rb = sets_a[name], sets_b[name]
        _same_cases(name, ra.get("image_ids"), rb.get("image_ids"), "image_ids")
        ma = {method_role(k): v for k, v in ra["methods"].items()}
        mb = {method_role(k): v for k, v in rb["methods"].items()}
        for role in (r for r in ma if r in mb and (methods is None or r in methods)):
            pa, pb = ma[role].get("per_image", {}), mb[role].get("per_image", {})
            for metric in (m for m in pa if m in pb):
                out.append(_difference(name, ra.get("kind", ""), role, metric, pa[metric], pb[metric]))
    return out


def _propagation(doc_a: dict, doc_b: dict, methods, points) -> list[Difference]:
    out = []
    for name in (n for n in doc_a["datasets"] if n in doc_b["datasets"]):
        ra, rb = doc_a["datasets"][name], doc_b["datasets"][name]
        _same_cases(name, ra.get("case_ids"), rb.get("case_ids"), "case_ids")
        ca, cb = ra.get("per_case", {}), rb.get("per_case", {})
        for sampling in (s for s in ca if s in cb):
            shared = [m for m in ca[sampling] if m in cb[sampling]]
            for method in (m for m in shared if (m in methods if methods is not None else m.startswith("model"))):
                va, vb = np.asarray(ca[sampling][method], float), np.asarray(cb[sampling][method], float)
                for n in (n for n in doc_a["points"] if n in doc_b["points"] and (points is None or n in points)):
                    ia, ib = doc_a["points"].index(n), doc_b["points"].index(n)
                    out.append(_difference(name, ra.get("kind", ""), method, f"EPE@{n} {sampling}",
                                           va[:, ia], vb[:, ib]))
    return out


def _difference(name: str, kind: str, method: str, metric: str, a, b) -> Difference:
    diff, low, high = paired_interval(a, b)
    return Difference(name, kind, method, metric, len(a), float(np.mean(a)), float(np.mean(b)), diff, low, high)


def format_table(diffs: list[Difference], label_a: str = "A", label_b: str = "B") -> str:
    width = max([7, *(len(d.metric) for d in diffs)])
    sw = max([24, *(len(d.dataset) for d in diffs)])
    head = f"{'set':<{sw}} {'kind':<9} {'method':<26} {'metric':<{width}} {'n':>3} {label_a[:9]:>9} {label_b[:9]:>9} " \
           f"{'B - A':>6}  {'95% interval':<16} verdict"
    lines = [head]
    for d in diffs:
        lines.append(f"{d.dataset:<{sw}} {d.kind.split(' ')[0]:<9} {d.method[:26]:<26} {d.metric:<{width}} {d.cases:>3} "
                     f"{d.mean_a:9.2f} {d.mean_b:9.2f} {d.diff:+6.2f}  [{d.low:+6.2f}, {d.high:+6.2f}] "
                     f"{'B ' + d.verdict if d.verdict != 'same' else 'no clear difference'}")
    lines.append(f"(B - A per image (NoC: clicks) or per case (EPE: px); {round(CONFIDENCE * 100)}% bootstrap "
                 f"interval of the mean, {N_RESAMPLES} resamples, seed {SEED}; lower is better)")
    return "\n".join(lines)
