"""Two segmentation reports compared image by image (cmp.eval.compare, `python -m cmp eval compare`)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cmp.cli import main as cli_main
from cmp.eval.compare import ReportMismatch, compare, format_table, method_role, paired_interval


def report(per_image: dict[str, dict[str, list[int]]], ids=None, dataset="emoji", kind="composite (x)") -> dict:
    """A report as `eval segmentation --json` writes it, with only what a comparison reads."""
    n = len(next(iter(next(iter(per_image.values())).values())))
    return {"dataset": dataset, "kind": kind, "image_ids": list(range(n)) if ids is None else ids,
            "methods": {m: {"NoC@85": float(np.mean(v["NoC@85"])), "per_image": v} for m, v in per_image.items()}}


def test_a_shift_every_image_shares_is_told_from_one_the_noise_hides():
    rng = np.random.default_rng(3)
    a = rng.integers(1, 21, 40)
    # every image one click worse: a clear loss, whatever the spread between images
    mean, low, high = paired_interval(a, a + 1)
    assert mean == low == high == 1.0
    # the same mean difference, but from a few images that moved a lot either way: no verdict
    b = a.copy()
    b[:8] += np.array([12, -10, 11, -9, 10, -8, 9, -5])
    mean, low, high = paired_interval(a, b)
    assert mean == pytest.approx(10 / 40) and low < 0 < high
    # a small shift shared by most images is seen even though the sets' own spread is large
    c = a - (rng.random(40) < 0.7)
    mean, low, high = paired_interval(a, c)
    assert high < 0 and a.std() > 4


def test_paired_interval_is_repeatable_and_refuses_unequal_lists():
    a, b = [1, 5, 9, 20, 3, 3], [2, 4, 12, 20, 1, 3]
    assert paired_interval(a, b) == paired_interval(a, b)
    with pytest.raises(ReportMismatch):
        paired_interval([1, 2, 3], [1, 2])


def test_methods_are_matched_by_role_whatever_the_checkpoint():
    assert method_role("cmp (cmp-slim-affinity)") == method_role("cmp (model.safetensors)") == "cmp"
    assert method_role("cmp, most confident of 3") == "cmp, most confident of 3"
    a = report({"cmp (shipped)": {"NoC@85": [3, 4, 5], "NoC@90": [4, 5, 6]}})
    b = report({"cmp (run)": {"NoC@85": [4, 5, 6], "NoC@90": [4, 5, 6]}})
    diffs = {d.metric: d for d in compare(a, b)}
    assert diffs["NoC@85"].verdict == "worse" and diffs["NoC@85"].diff == 1.0
    assert diffs["NoC@90"].verdict == "same" and diffs["NoC@90"].mean_a == 5.0
    assert compare(b, a)[0].verdict == "better"
    table = format_table(compare(a, b), "shipped", "run")
    assert "B worse" in table and "no clear difference" in table and "shipped" in table


def test_reports_of_other_images_or_without_per_image_results_are_refused():
    a = report({"cmp (x)": {"NoC@85": [3, 4, 5]}})
    with pytest.raises(ReportMismatch, match="other images"):
        compare(a, report({"cmp (x)": {"NoC@85": [3, 4, 5]}}, ids=[7, 8, 9]))
    old = {k: v for k, v in a.items() if k != "image_ids"}
    with pytest.raises(ReportMismatch, match="image_ids"):
        compare(old, a)
    with pytest.raises(ReportMismatch, match="share no set"):
        compare(a, report({"cmp (x)": {"NoC@85": [3, 4, 5]}}, dataset="composites"))


def test_cli_compares_two_reports_of_the_evaluation_and_says_why_it_cannot(tmp_path, capsys):
    a = {"sets": {"emoji": report({"cmp (a)": {"NoC@85": [2, 3, 20, 4], "NoC@90": [3, 3, 20, 6]}})}}
    b = {"sets": {"emoji": report({"cmp (b)": {"NoC@85": [3, 4, 20, 5], "NoC@90": [3, 3, 20, 6]}})}}
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    assert cli_main(["eval", "compare", str(pa), str(pb), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_metric = {d["metric"]: d for d in doc["differences"]}
    assert by_metric["NoC@85"]["diff"] == pytest.approx(0.75) and by_metric["NoC@90"]["verdict"] == "same"
    (tmp_path / "bad.json").write_text("{not json")
    assert cli_main(["eval", "compare", str(pa), str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not JSON" in err


def test_the_evaluation_keeps_each_images_clicks_for_a_comparison(capsys):
    code = cli_main(["eval", "segmentation", "--methods", "baseline", "--datasets", "composites",
                     "--n-images", "2", "--max-clicks", "5", "--json"])
    assert code == 0
    rep = json.loads(capsys.readouterr().out)
    row = rep["methods"]["geodesic baseline"]
    assert len(rep["image_ids"]) == 2 and rep["image_ids"][0] == rep["seeds"][0]
    assert np.mean(row["per_image"]["NoC@85"]) == pytest.approx(row["NoC@85"])
    assert all(1 <= n <= 5 for n in row["per_image"]["NoC@90"])
    assert all(d.verdict == "same" and d.diff == 0 for d in compare(rep, rep))


def propagation_report(per_case: dict[str, list[list[float]]], points=(3, 10), ids=None, sampling="random") -> dict:
    """A report as `eval propagation --json` writes it, with only what a comparison reads."""
    n = len(next(iter(per_case.values())))
    return {"points": list(points), "datasets": {"motorcycle": {
        "kind": "real (stereo)", "case_ids": [f"motorcycle/seed{i}" for i in range(n)] if ids is None else ids,
        "per_case": {sampling: per_case}}}}


def test_propagation_reports_are_compared_case_by_case_for_the_models_methods():
    base = [[6.0, 3.0], [7.0, 3.5], [5.0, 2.5], [8.0, 4.0]]
    a = propagation_report({"model-auto": base, "geodesic": base})
    # every case worse by 1 px at 3 points, and the same at 10 points
    b = propagation_report({"model-auto": [[x + 1, y] for x, y in base], "geodesic": [[9, 9]] * 4})
    diffs = {(d.method, d.metric): d for d in compare(a, b)}
    assert set(diffs) == {("model-auto", "EPE@3 random"), ("model-auto", "EPE@10 random")}, "baselines skipped"
    assert diffs["model-auto", "EPE@3 random"].verdict == "worse" and diffs["model-auto", "EPE@3 random"].cases == 4
    assert diffs["model-auto", "EPE@10 random"].verdict == "same"
    assert compare(b, a)[0].verdict == "better"
    only = compare(a, b, methods=["geodesic"], points=[10])
    assert [(d.method, d.metric, d.mean_b) for d in only] == [("geodesic", "EPE@10 random", 9.0)]
    assert "EPE@10 random" in format_table(only)


def test_propagation_reports_of_other_cases_or_kinds_are_refused():
    a = propagation_report({"model-auto": [[1.0, 2.0]] * 3})
    with pytest.raises(ReportMismatch, match="other images or cases"):
        compare(a, propagation_report({"model-auto": [[1.0, 2.0]] * 3}, ids=["x", "y", "z"]))
    with pytest.raises(ReportMismatch, match="two kinds|segmentation and the other"):
        compare(a, report({"cmp (x)": {"NoC@85": [3, 4, 5]}}))
    with pytest.raises(ReportMismatch, match="share no set"):
        compare(a, a, methods=["no-such-method"])


def test_the_propagation_benchmark_keeps_each_cases_error(tmp_path, capsys, tiny_checkpoint):
    paths = []
    for name, methods in (("a", "model,nearest"), ("b", "model,rbf,nearest")):
        path = tmp_path / f"{name}.json"
        assert cli_main(["eval", "propagation", "--checkpoint", tiny_checkpoint, "--device", "cpu",
                         "--precision", "fp32", "--datasets", "motorcycle", "--points", "1,3", "--seeds", "2",
                         "--methods", methods, "--json", str(path), "--plot", "none"]) == 0
        paths.append(path)
    capsys.readouterr()
    rep = json.loads(paths[0].read_text())
    moto = rep["datasets"]["motorcycle"]
    assert moto["case_ids"] == ["motorcycle/seed0", "motorcycle/seed1"]
    for sampling, per in moto["per_case"].items():
        for method, cases in per.items():
            assert np.asarray(cases).shape == (2, 2)
            assert np.mean(cases, axis=0) == pytest.approx(moto["epe"][sampling][method], abs=1e-3)
    # the same model and points: no difference anywhere; "nearest" is compared when asked for
    assert cli_main(["eval", "compare", str(paths[0]), str(paths[1]), "--method", "model", "--method", "nearest",
                     "--points", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {d["method"] for d in doc["differences"]} == {"model", "nearest"}
    assert all(d["diff"] == 0 and d["verdict"] == "same" and d["metric"].startswith("EPE@3") for d in doc["differences"])
    assert cli_main(["eval", "compare", str(paths[0]), str(paths[1]), "--points", "three"]) == 2
    assert "--points takes whole numbers" in capsys.readouterr().err


def test_one_image_gives_no_verdict_however_far_it_moved():
    a = report({"cmp (a)": {"NoC@85": [10]}}, dataset="motorcycle-whole")
    b = report({"cmp (b)": {"NoC@85": [14]}}, dataset="motorcycle-whole")
    (d,) = compare(a, b)
    assert d.diff == 4.0 and d.cases == 1 and d.verdict == "same"
    # two images that moved alike still do
    two = compare(report({"cmp (a)": {"NoC@85": [10, 5]}}), report({"cmp (b)": {"NoC@85": [14, 9]}}))
    assert two[0].verdict == "worse"


def views_report(noc85: list[int], dataset="motorcycle-views") -> dict:
    return {"sets": {dataset: report({"cmp, the page's rule": {"NoC@85": noc85}}, dataset=dataset, kind="real (x)"),
                     "emoji": report({"cmp, the page's rule": {"NoC@85": [1, 2]}})}}


def test_a_stereo_set_splits_into_its_views_and_the_left_view_is_the_objects_set():
    from cmp.eval.compare import split_views
    from cmp.eval.real import VIEW_SETS, VIEWS

    # two objects, four views each (object-major: left, right, left mirrored, right mirrored)
    a = views_report([4, 10, 6, 12, 8, 14, 7, 16])
    b = views_report([9, 5, 6, 11, 13, 9, 7, 15])
    before = json.dumps(a)
    split = split_views(a, VIEW_SETS, VIEWS)
    assert json.dumps(a) == before, "the report itself is not changed"
    assert list(split["sets"]) == ["motorcycle-views", *(f"motorcycle-views [{v}]" for v in VIEWS), "emoji"]
    left = split["sets"]["motorcycle-views [left]"]
    assert left["image_ids"] == [0, 4] and left["methods"]["cmp, the page's rule"]["per_image"]["NoC@85"] == [4, 8]
    diffs = {d.dataset: d for d in compare(split, split_views(b, VIEW_SETS, VIEWS))}
    # the whole set gains a little while its left view loses five clicks on each object
    assert diffs["motorcycle-views"].diff == pytest.approx(-0.25)
    assert diffs["motorcycle-views [left]"].diff == 5.0 and diffs["motorcycle-views [left]"].verdict == "worse"
    assert diffs["motorcycle-views [right]"].diff == -5.0
    assert diffs["motorcycle-views [left mirrored]"].diff == 0.0
    assert diffs["motorcycle-views [right mirrored]"].diff == -1.0
    assert "emoji [left]" not in diffs and diffs["emoji"].diff == 0.0
    # a set made otherwise is not split, whatever its size
    assert list(split_views(views_report([1, 2, 3, 4], "emoji-1024"), VIEW_SETS, VIEWS)["sets"]) == ["emoji-1024", "emoji"]


def test_cli_shows_each_view_on_request_and_refuses_it_for_motion(tmp_path, capsys):
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(views_report([4, 10, 6, 12, 8, 14, 7, 16])))
    pb.write_text(json.dumps(views_report([9, 8, 6, 11, 13, 12, 7, 15])))
    assert cli_main(["eval", "compare", str(pa), str(pb), "--by-view"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("motorcycle-views [left] "))
    assert "+5.00" in row and "B worse" in row
    assert cli_main(["eval", "compare", str(pa), str(pb)]) == 0
    assert "[left]" not in capsys.readouterr().out
    pp = tmp_path / "p.json"
    pp.write_text(json.dumps(propagation_report({"model-auto": [[1.0, 2.0]] * 3})))
    assert cli_main(["eval", "compare", str(pp), str(pp), "--by-view"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "segmentation reports only" in err
