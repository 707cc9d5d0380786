#!/usr/bin/env python3
"""driftline and its peers, side by side, in one sitting, on the same stream.

    bash benches/peers/run.sh [--events 1000000] [--evidently-budget-s 120] [--rounds 3]

The stream: `abrupt_amount` of tests/scenarios/generate.py at the rate that
gives `--events` predictions in 24 h (8 features, 2 slice dimensions; at
hour 12 `amount` is scaled by 1.6). Every tool reads the same JSON Lines
file and is timed end to end, parsing included (the Python tools parse it
with `json.loads`, measured once and added to each). `json.loads` alone and
driftline's runs go in turns, `--rounds` times (3), each reported as the
median of its rounds with their spread. Printed per tool:
events/s, how many times slower than driftline from JSON Lines, whether it
found the shift in `amount`, the delay in event time, and its alarms before
the onset (false alarms: nothing changes before it).

The Python tools watch the features overall; driftline watches every
feature, the model's score and prediction, overall and per slice value (60
series), with persistence and FDR control. The windows of the window-based
tools are driftline's: 30 minutes of event time against a reference of the
first 2 hours; numpy PSI evaluates them every minute (per-minute histograms
summed, as driftline does), scipy and Evidently every 5 minutes (a test on
every minute's window would cost them 5× more). Alarm rules: PSI ≥ 0.25
(driftline's critical tier); KS or χ² p < 0.001; Evidently's own
per-column drift verdict for `amount`; River's detectors as they come
(defaults).
"""
import argparse, json, math, os, re, statistics, subprocess, sys, time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "driftline")
T0 = 1_767_225_600_000
MIN = 60_000
ONSET = T0 + 12 * 3_600_000
REF_END = T0 + 2 * 3_600_000
NUMERIC = ["amount", "age", "tenure_days", "clicks", "score_a", "latency_ms"]
CATEGORICAL = ["device", "country"]


def stream(events):
    d = os.path.join(ROOT, "target", "bench", f"peers-{events}")
    p = os.path.join(d, "abrupt_amount", "predictions.jsonl")
    if not os.path.exists(os.path.join(d, "abrupt_amount", "truth.json")):
        rate = events / 86_400
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "scenarios", "generate.py"), d, "--only",
                        "abrupt_amount", "--rate", f"{rate:.6f}", "--hours", "24"], check=True, stdout=subprocess.DEVNULL)
    avro = os.path.join(d, "predictions.avro")
    if not os.path.exists(avro):
        subprocess.run([BIN, "convert", "--kind", "predictions", "--codec", "deflate", "--input", p, "--output", avro],
                       check=True, stderr=subprocess.DEVNULL)
    return p, os.path.join(d, "abrupt_amount", "outcomes.jsonl"), avro


def fmt_delay(ms):
    return "—" if ms is None else f"{ms / MIN:.0f} min"


def warm(path):
    """Reads a file once, untimed: this VM reclaims page cache left cold
    (kdamond), and a file read back from disk times the disk, not the tool."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def run_driftline(name, args, n):
    out = os.path.join(ROOT, "target", "bench", "peers-alerts.jsonl")
    for flag, path in zip(args, args[1:]):
        if flag in ("--predictions", "--outcomes"):
            warm(path)
    t = time.perf_counter()
    r = subprocess.run([BIN, "replay", "--config", os.path.join(ROOT, "config", "driftline.toml"), "--output", out] + args,
                       capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    alerts = [json.loads(l) for l in open(out)]
    os.remove(out)
    firing = [a for a in alerts if a["state"] == "firing"]
    hit = [a for a in firing if a["feature"] == "amount" and a["kind"] == "data_drift" and a["emitted_at"] >= ONSET]
    early = [a for a in firing if a["emitted_at"] < ONSET]
    delay = hit[0]["emitted_at"] - ONSET if hit else None
    return dict(tool=name, rate=n / wall, found=bool(hit), delay=delay, false=len(early),
                note=f"{len(firing)} series fired after the onset")


def median_row(got):
    """One tool's row from its rounds: the median rate, the spread in the
    note, what it found from the first (every round's alerts agree)."""
    first = got[0]
    for r in got[1:]:
        assert (r["found"], r["delay"], r["false"], r["note"]) == (first["found"], first["delay"], first["false"], first["note"]), \
            f"{first['tool']}: rounds disagree: {r} vs {first}"
    rates = [r["rate"] for r in got]
    row = dict(first, rate=statistics.median(rates))
    if len(rates) > 1:
        row["note"] += f"; median of {len(rates)} rounds, {min(rates):,.0f}–{max(rates):,.0f}"
    return row


def parse_all(path):
    """The stream as columns (json.loads per line); returns them and the seconds it took."""
    t = time.perf_counter()
    ts, num, cat = [], {f: [] for f in NUMERIC}, {f: [] for f in CATEGORICAL}
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            ts.append(e["event_time"])
            feats = e["features"]
            for k in NUMERIC:
                v = feats.get(k)
                num[k].append(math.nan if v is None else v)
            for k in CATEGORICAL:
                cat[k].append(feats.get(k))
    cols = {"t": np.array(ts, dtype=np.int64)}
    cols.update({k: np.array(v, dtype=float) for k, v in num.items()})
    cols.update({k: np.array(v, dtype=object) for k, v in cat.items()})
    return cols, time.perf_counter() - t


def json_loads_only(path):
    t = time.perf_counter()
    n = 0
    with open(path) as f:
        for line in f:
            json.loads(line)
            n += 1
    return n, time.perf_counter() - t


def river_detector(path, n, make, name):
    """One detector per numeric feature, updated per event, end to end."""
    t = time.perf_counter()
    det = {k: make() for k in NUMERIC}
    first_hit, early = None, 0
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            feats = e["features"]
            for k in NUMERIC:
                v = feats.get(k)
                if v is None:
                    continue
                d = det[k]
                d.update(v)
                if d.drift_detected:
                    if e["event_time"] < ONSET:
                        early += 1
                    elif k == "amount" and first_hit is None:
                        first_hit = e["event_time"]
    wall = time.perf_counter() - t
    return dict(tool=name, rate=n / wall, found=first_hit is not None,
                delay=None if first_hit is None else first_hit - ONSET, false=early, note="6 detectors, overall")


def window_ends(cols, every_min):
    start = REF_END + 30 * MIN
    end = int(cols["t"].max())
    return list(range(start, end + 1, every_min * MIN))


def numpy_psi(cols, parse_s, n):
    t = time.perf_counter()
    ref = cols["t"] < REF_END
    minute = ((cols["t"] - T0) // MIN).astype(np.int64)
    n_min = int(minute.max()) + 1
    first_hit, early = None, 0
    for k in NUMERIC:
        x = cols[k]
        ok = ~np.isnan(x)
        edges = np.quantile(x[ref & ok], np.linspace(0, 1, 11)[1:-1])
        b = np.searchsorted(edges, x[ok], side="right")
        hist = np.zeros((n_min, 10))
        np.add.at(hist, (minute[ok], b), 1)
        refp = np.clip(hist[: (REF_END - T0) // MIN].sum(0) / hist[: (REF_END - T0) // MIN].sum(), 1e-4, None)
        cum = np.cumsum(hist, axis=0)
        for m in range((REF_END - T0) // MIN + 30, n_min):
            cur = cum[m] - cum[m - 30]
            if cur.sum() < 200:
                continue
            p = np.clip(cur / cur.sum(), 1e-4, None)
            psi = float(((p - refp) * np.log(p / refp)).sum())
            if psi >= 0.25:
                at = T0 + (m + 1) * MIN
                if at < ONSET:
                    early += 1
                elif k == "amount" and (first_hit is None or at < first_hit):
                    first_hit = at
    wall = time.perf_counter() - t + parse_s
    return dict(tool="numpy PSI windows", rate=n / wall, found=first_hit is not None,
                delay=None if first_hit is None else first_hit - ONSET, false=early, note="6 features, every minute")


def scipy_tests(cols, parse_s, n):
    from scipy import stats
    t = time.perf_counter()
    ref = cols["t"] < REF_END
    first_hit, early = None, 0
    refs = {k: cols[k][ref & ~np.isnan(cols[k])] for k in NUMERIC}
    cats = {k: sorted(set(cols[k][ref])) for k in CATEGORICAL}
    ref_counts = {k: np.array([(cols[k][ref] == c).sum() for c in cats[k]]) for k in CATEGORICAL}
    order = np.argsort(cols["t"], kind="stable")
    ts = cols["t"][order]
    for end in window_ends(cols, 5):
        lo, hi = np.searchsorted(ts, end - 30 * MIN), np.searchsorted(ts, end)
        idx = order[lo:hi]
        alarms = []
        for k in NUMERIC:
            cur = cols[k][idx]
            cur = cur[~np.isnan(cur)]
            if stats.ks_2samp(refs[k], cur).pvalue < 1e-3:
                alarms.append(k)
        for k in CATEGORICAL:
            cur = np.array([(cols[k][idx] == c).sum() for c in cats[k]])
            if stats.chi2_contingency(np.vstack([ref_counts[k], cur])).pvalue < 1e-3:
                alarms.append(k)
        if end < ONSET:
            early += len(alarms)
        elif "amount" in alarms and first_hit is None:
            first_hit = end
    wall = time.perf_counter() - t + parse_s
    return dict(tool="scipy KS + χ² windows", rate=n / wall, found=first_hit is not None,
                delay=None if first_hit is None else first_hit - ONSET, false=early, note="8 features, every 5 min")


def evidently(cols, parse_s, n, budget_s):
    """DataDriftPreset on the same windows until the budget is spent; the
    rate is extrapolated from the windows done. Detection is judged on the
    windows around the onset (run after the budget, not timed)."""
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset
    import warnings
    warnings.filterwarnings("ignore")
    df = pd.DataFrame({k: cols[k] for k in NUMERIC + CATEGORICAL})
    df[CATEGORICAL] = df[CATEGORICAL].astype(str)
    ts = cols["t"]
    ref_df = df[ts < REF_END]
    ends = window_ends(cols, 5)

    def amount_drifted(end):
        cur = df[(ts >= end - 30 * MIN) & (ts < end)]
        snap = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref_df)
        for m in snap.dict()["metrics"]:
            c = m["config"]
            if c.get("type", "").endswith("ValueDrift") and c.get("column") == "amount":
                # Evidently's own verdict: a p-value under the threshold, or a distance at or over it
                if "p_value" in c["method"]:
                    return m["value"] < c["threshold"]
                return m["value"] >= c["threshold"]
        raise RuntimeError("no drift value for amount in the report")

    t = time.perf_counter()
    done, early = 0, 0
    for end in ends:
        if time.perf_counter() - t > budget_s:
            break
        early += amount_drifted(end) and end < ONSET
        done += 1
    spent = time.perf_counter() - t
    # per window: the stream's events once each (the windows overlap 6×; the rate is per event of the stream)
    per_window = spent / done
    wall = per_window * len(ends) + parse_s
    first_hit = None
    for end in [e for e in ends if ONSET <= e <= ONSET + 120 * MIN]:
        if amount_drifted(end):
            first_hit = end
            break
    return dict(tool="Evidently DataDriftPreset", rate=n / wall, found=first_hit is not None,
                delay=None if first_hit is None else first_hit - ONSET, false=early,
                note=f"{done} of {len(ends)} windows in the {budget_s:.0f} s budget, rest extrapolated; "
                     f"false alarms over those {done}; found/delay from the windows of the 2 h after the onset")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--evidently-budget-s", type=float, default=120.0)
    ap.add_argument("--rounds", type=int, default=3,
                    help="json.loads and driftline's runs, in turns, this many times (medians reported)")
    a = ap.parse_args()
    preds, outs, avro = stream(a.events)
    n = sum(1 for _ in open(preds))
    versions = {}
    for mod in ("numpy", "scipy", "river", "evidently", "pandas"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as e:  # reported, not hidden
            versions[mod] = f"missing ({e})"
    versions["python"] = sys.version.split()[0]
    versions["driftline"] = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"stream: {n} predictions ({preds}); onset of the shift at hour 12; versions: {versions}", flush=True)
    # json.loads and driftline's runs in turns, `--rounds` times, each rate
    # the median of its rounds: this machine's speed wanders by a fifth or
    # more within minutes, and a ratio of two runs minutes apart (one
    # worker against two, driftline against json.loads) measures that
    # as much as the tools
    runs = [
        ("driftline replay, JSON Lines", ["--predictions", preds]),
        ("driftline replay, JSON Lines, --workers 1", ["--predictions", preds, "--workers", "1"]),
        ("driftline replay, Avro (deflate)", ["--predictions", avro]),
        ("driftline replay, JSON Lines + outcomes", ["--predictions", preds, "--outcomes", outs]),
    ]
    loads, per_run = [], [[] for _ in runs]
    for k in range(a.rounds):
        n_loads, s_loads = json_loads_only(preds)
        loads.append(n_loads / s_loads)
        print(f"round {k + 1}: Python json.loads alone: {loads[-1]:,.0f} lines/s", flush=True)
        for (name, args), got in zip(runs, per_run):
            got.append(run_driftline(name, args, n))
            print(f"round {k + 1}: {got[-1]}", flush=True)
    rows = [median_row(got) for got in per_run]
    loads_rate = statistics.median(loads)
    spread = f"{min(loads):,.0f}–{max(loads):,.0f}"
    from river import drift
    rows.append(river_detector(preds, n, drift.ADWIN, "River ADWIN per feature"))
    print(rows[-1], flush=True)
    rows.append(river_detector(preds, n, drift.PageHinkley, "River Page–Hinkley per feature"))
    print(rows[-1], flush=True)
    cols, parse_s = parse_all(preds)
    rows.append(numpy_psi(cols, parse_s, n))
    print(rows[-1], flush=True)
    rows.append(scipy_tests(cols, parse_s, n))
    print(rows[-1], flush=True)
    rows.append(evidently(cols, parse_s, n, a.evidently_budget_s))
    print(rows[-1], flush=True)
    base = rows[0]["rate"]
    print()
    # the ratios of runs made side by side, round by round (a median of
    # each column alone pairs a fast moment of one with a slow one of the other)
    def ratios(num, den):
        rs = [x / y for x, y in zip(num, den)]
        return f"{statistics.median(rs):.2f}× (rounds: {', '.join(f'{r:.2f}' for r in rs)})"
    json_lines, one_worker, avro = ([r["rate"] for r in got] for got in per_run[:3])
    print(f"Python `json.loads` over the same file alone: {loads_rate:,.0f} lines/s, the median of {a.rounds} "
          f"rounds ({spread}). Round by round, medians: driftline from JSON Lines "
          f"{ratios(json_lines, loads)} `json.loads`; from Avro (deflate) {ratios(avro, loads)}; "
          f"two workers (the default here) {ratios(json_lines, one_worker)} one.")
    print()
    print("| tool | events/s | driftline (JSON Lines, default workers) is … × as fast | found the shift in `amount` | delay (event time) | alarms before the onset | notes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tool']} | {r['rate']:,.0f} | {base / r['rate']:.2f}× | {'yes' if r['found'] else 'no'} | "
              f"{fmt_delay(r['delay'])} | {r['false']} | {r['note']} |")


if __name__ == "__main__":
    main()
