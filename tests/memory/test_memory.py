#!/usr/bin/env python3
"""Memory under pressure, measured (peak RSS of the process, GNU time):

- a cardinality attack through `driftline replay`: 1M predictions, each
  with a new value of a slice dimension, a new category, a new feature name
  and a new trace id (and half of them a new slice dimension too). The caps
  (`series.max_slice_values`, `max_categories`, `max_features`, 16 slice
  dimensions, `join.max_waiting`) turn them into `__other__` and counters:
  peak RSS stays under the bound the README documents, and the summary
  reports the capped values.

    python3 tests/memory/test_memory.py

Prints one line per test and "memory: N passed, N failed"; exits 1 on a failure.
"""
import json, os, re, shutil, subprocess, sys, tempfile, time, traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "driftline")
T0 = 1_767_225_600_000
# README, "Memory bounds": peak RSS ~ BASE + join.max_waiting x WAITING_BYTES
# (+ series x window buckets x sketch, small here: the caps hold series to ~1.5k)
BASE_MIB = 64
WAITING_BYTES = 330
# predictions only (no outcomes file): nothing waits in the join
PREDICTIONS_ONLY_MIB = 64


def peak_rss_mib(cmd, env=None):
    out = subprocess.run(["/usr/bin/time", "-f", "peak_rss_kb=%M"] + cmd, capture_output=True, text=True,
                         env=dict(os.environ, **(env or {})))
    m = re.search(r"peak_rss_kb=(\d+)", out.stderr)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(m.group(1)) / 1024, out.stderr


def test_cardinality_attack_stays_bounded():
    tmp = tempfile.mkdtemp(prefix="dl-mem-")
    try:
        attack(tmp)
    finally:
        shutil.rmtree(tmp, True)


def attack(tmp):
    path = os.path.join(tmp, "attack.jsonl")
    n = 1_000_000
    with open(path, "w") as f:
        for i in range(n):
            slices = {"region": f"r{i}"}
            if i % 2:
                slices[f"dim{i}"] = "x"
            f.write(json.dumps({
                "trace_id": f"t{i}", "model_id": "m", "event_time": T0 + i * 100,
                "features": {"amount": (i % 1000) / 10.0, "device": f"d{i}", f"f{i}": 1.0},
                "slices": slices, "prediction": 0, "score": 0.5,
            }, separators=(",", ":")) + "\n")
    # one outcome, for no prediction, at the end: outcomes can come, so
    # every prediction waits in the join (without an outcomes file none does)
    outcomes = os.path.join(tmp, "outcomes.jsonl")
    with open(outcomes, "w") as f:
        f.write(json.dumps({"trace_id": "none", "model_id": "m", "event_time": T0 + n * 100, "label": 0}) + "\n")
    rss, err = peak_rss_mib([BIN, "replay", "--config", os.path.join(ROOT, "config", "driftline.toml"),
                             "--predictions", path, "--output", os.devnull])
    evicted = int(re.search(r"(\d+) evicted at the cap", err).group(1))
    print(f"    cardinality attack, predictions only: peak RSS {rss:.1f} MiB, {evicted} evicted", flush=True)
    assert evicted == 0 and rss < PREDICTIONS_ONLY_MIB, (rss, evicted)
    for max_waiting in (1_000_000, 100_000):
        rss, err = peak_rss_mib([BIN, "replay", "--config", os.path.join(ROOT, "config", "driftline.toml"),
                                 "--predictions", path, "--outcomes", outcomes, "--output", os.devnull],
                                env={"DRIFTLINE__JOIN__MAX_WAITING": str(max_waiting)})
        bound = BASE_MIB + max_waiting * WAITING_BYTES / 2**20
        capped = re.search(r"capped: (\d+) slice values counted as __other__, (\d+) categories counted as __other__, "
                           r"(\d+) values of features past max_features and (\d+) of slice dimensions", err)
        assert capped, err
        slice_values, categories, features, dims = map(int, capped.groups())
        series = int(re.search(r"series tracked: (\d+)", err).group(1))
        evicted = int(re.search(r"(\d+) evicted at the cap", err).group(1))
        print(f"    cardinality attack, join.max_waiting {max_waiting}: {n} events, peak RSS {rss:.1f} MiB "
              f"(bound {bound:.0f}), {series} series; capped: {slice_values} slice values, {categories} categories, "
              f"{features} feature values, {dims} slice-dimension values; {evicted} waiting predictions evicted",
              flush=True)
        # every new value past a cap is counted, none grows state
        assert slice_values >= n - 32 - 16 * 32, slice_values
        assert categories >= n - 64, categories
        assert features >= n - 256, features
        assert dims >= n // 2 - 16, dims
        assert evicted >= n - max_waiting, evicted
        assert rss < bound, f"peak RSS {rss:.1f} MiB over the documented {bound:.0f} MiB"


TESTS = [test_cardinality_attack_stays_bounded]


def main():
    passed = failed = 0
    for t in TESTS:
        t0 = time.time()
        try:
            t()
            passed += 1
            print(f"memory test {t.__name__} ... ok ({time.time() - t0:.1f}s)", flush=True)
        except Exception:
            failed += 1
            print(f"memory test {t.__name__} ... FAILED ({time.time() - t0:.1f}s)\n{traceback.format_exc()}", flush=True)
    print(f"memory: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
