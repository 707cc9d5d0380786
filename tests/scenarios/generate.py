#!/usr/bin/env python3
"""The project's scenario streams: a simulated fraud model's predictions and
outcomes with known change points, and the truth a good monitor reports.

    python3 tests/scenarios/generate.py OUTDIR [--seed 7149] [--rate 2]
        [--hours 24] [--label-delay-s 600] [--only NAME]

Writes OUTDIR/<scenario>/{predictions.jsonl, outcomes.jsonl, truth.json}.
Predictions come at `rate` per second for `hours` from 2026-01-01T00:00Z;
each outcome arrives `label-delay-s` × U(0.5, 1.5) after its prediction, and
10 % never do. The same seed gives the same files everywhere (numpy's PCG64).

| scenario | at the onset (hour 12 of 24 unless noted) | a good monitor |
|---|---|---|
| stationary | nothing | no critical alert |
| abrupt_amount | `amount` ×1.6 | data_drift on amount |
| slice_device_apac | `device` mix moves, in region=APAC only | data_drift on device [region=APAC] |
| transient_spike | `amount` ×3 for one minute | no critical alert |
| null_spike | `tenure_days` nulls 1 % → 40 % | data_quality on tenure_days |
| unit_change | `latency_ms` ×1000 | data_drift on latency_ms |
| concept_flip | `score_a`'s relation to the labels turns around; inputs and the labels' base rate unchanged | performance or concept_drift, cause concept_drift, no data_drift |
| gradual_tenure | `tenure_days` mean ramps ×1.8 over 6 h from hour 8 | data_drift on tenure_days within 3 h |
| canary_bad | from hour 10 a quarter of requests is served by v8, which ranks worse in region=APAC | rollback_recommended for v8 [region=APAC] |
| canary_good | from hour 10 a quarter of requests is served by v8, as good as v7 | promote_ok for v8, no critical alert |
| shadow_bad | from hour 10 every request is also scored by v8 (`"shadow": true`), which ranks worse everywhere | rollback_recommended for v8; production's alerts as without it |

The model (v7) is a logistic score of the inputs. The truth follows it,
except that fraud stops growing with `amount` past 70: the model
extrapolates, so when amounts move up (abrupt_amount) it over-predicts on
the large ones and its quality falls measurably, as a real model's does
when traffic leaves its training range. Release scenarios have no input
drift; their truth.json has a `release` entry with the decision to reach.

Needs numpy.
"""
import argparse, json, os

import numpy as np

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
MODEL, VERSION = "checkout-fraud", "v7"
DEVICES = np.array(["android", "ios", "web"])
COUNTRIES = np.array(["US", "DE", "FR", "BR", "IN", "GB"])
COUNTRY_P = [0.35, 0.15, 0.12, 0.14, 0.14, 0.10]
REGIONS = np.array(["EU", "US", "APAC"])
REGION_P = [0.5, 0.35, 0.15]
CHANNELS = np.array(["web", "app"])

SCENARIOS = ["stationary", "abrupt_amount", "slice_device_apac", "transient_spike",
             "null_spike", "unit_change", "concept_flip", "gradual_tenure",
             "canary_bad", "canary_good", "shadow_bad"]
# the candidate v8 beside production v7: how it serves, from when, where it is worse
RELEASES = {
    "canary_bad": dict(mode="canary", start_h=10, share=0.25, bad_slice=("region", "APAC"), bad=True),
    "canary_good": dict(mode="canary", start_h=10, share=0.25, bad_slice=None, bad=False),
    "shadow_bad": dict(mode="shadow", start_h=10, share=1.0, bad_slice=None, bad=True),
}


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def truth_of(name, onset):
    t = lambda kind, feature, slice_=None, **kw: dict(onset_ms=onset, end_ms=None, kind=kind,
                                                   feature=feature, slice=slice_, **kw)
    return {
        "stationary": [],
        "abrupt_amount": [t("data_drift", "amount")],
        "slice_device_apac": [t("data_drift", "device", {"region": "APAC"})],
        "transient_spike": [],
        "null_spike": [t("data_quality", "tenure_days")],
        "unit_change": [t("data_drift", "latency_ms")],
        "concept_flip": [t("performance", None)],
        "gradual_tenure": [dict(t("data_drift", "tenure_days"), onset_ms=T0 + 8 * HOUR, max_delay_min=180)],
    }.get(name, [])


def release_of(name):
    r = RELEASES.get(name)
    if r is None:
        return None
    bad = r["bad"]
    return {"mode": r["mode"], "production": VERSION, "candidate": "v8",
            "start_ms": T0 + r["start_h"] * HOUR, "share": r["share"],
            "expect": "rollback_recommended" if bad else "promote_ok",
            "slice": dict([r["bad_slice"]]) if bad and r["bad_slice"] else None}


def generate(name, outdir, seed, rate, hours, label_delay_s, shops=0):
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 * rate)
    step = 1000.0 / rate
    # event times: evenly spread with jitter, increasing
    t = (T0 + np.arange(n) * step + rng.uniform(0, 0.8 * step, n)).astype(np.int64)
    onset = T0 + 12 * HOUR if hours >= 24 else T0 + int(hours / 2 * HOUR)
    after = t >= onset
    hour = (t - T0) / HOUR

    region = REGIONS[rng.choice(3, n, p=REGION_P)]
    channel = CHANNELS[rng.integers(0, 2, n)]
    amount = np.exp(rng.normal(3.3, 0.6, n))
    age = np.clip(np.round(rng.normal(40, 12, n)), 18, 90)
    tenure = rng.gamma(2.0, 200.0, n)
    clicks = rng.poisson(5, n).astype(float)
    score_a = rng.normal(0.0, 1.5, n)
    latency = np.exp(rng.normal(np.log(50), 0.4, n))
    device_p = np.tile([0.45, 0.35, 0.20], (n, 1))
    country = COUNTRIES[rng.choice(6, n, p=COUNTRY_P)]
    tenure_null = rng.uniform(size=n) < 0.01

    if name == "abrupt_amount":
        amount = np.where(after, amount * 1.6, amount)
    elif name == "transient_spike":
        spike = (t >= onset) & (t < onset + 60_000)
        amount = np.where(spike, amount * 3.0, amount)
    elif name == "slice_device_apac":
        moved = after & (region == "APAC")
        device_p[moved] = [0.20, 0.30, 0.50]
    elif name == "null_spike":
        tenure_null = np.where(after, rng.uniform(size=n) < 0.40, tenure_null)
    elif name == "unit_change":
        latency = np.where(after, latency * 1000.0, latency)
    elif name == "gradual_tenure":
        tenure = tenure * (1.0 + 0.8 * np.clip((hour - 8.0) / 6.0, 0.0, 1.0))
    cum = device_p.cumsum(axis=1)
    u = rng.uniform(size=n)[:, None]
    device = DEVICES[(u > cum).sum(axis=1).clip(0, 2)]

    # the model: a logistic score of the inputs; the truth is close to it
    z = -1.0 + 0.035 * (amount - 30.0) + 0.5 * score_a - 0.0008 * (tenure - 400.0) \
        + 0.3 * (device == "web") + 0.1 * (clicks - 5.0)
    score = sigmoid(z)
    noise = rng.normal(0.0, 0.5, n)
    # the truth: as the model, but fraud stops growing with amount past 70
    z_true = z - 0.035 * np.maximum(amount - 70.0, 0.0)
    p_true = sigmoid(z_true + noise)
    if name == "concept_flip":
        # `score_a`'s effect on the truth turns around; it is symmetric and
        # independent of the rest, so the labels' base rate stays the same
        p_true = np.where(after, sigmoid(z_true - 1.0 * score_a + noise), p_true)
    label = (rng.uniform(size=n) < p_true).astype(int)
    ids = rng.integers(0, 2**63, (n, 2), dtype=np.int64)
    delay = (label_delay_s * 1000 * rng.uniform(0.5, 1.5, n)).astype(np.int64)
    labelled = rng.uniform(size=n) >= 0.10

    # a candidate v8: canary (serves a share of requests instead of v7) or
    # shadow (scores every request too, never served); a bad v8 ranks worse
    # where it is bad: its logit is pulled towards the mean and blurred, so
    # the base rate stays and AUC and loss fall
    rel = RELEASES.get(name)
    version = np.full(n, VERSION, dtype=object)
    cand = np.full(n, False)
    if rel is not None:
        live = t >= T0 + rel["start_h"] * HOUR
        z8 = z + rng.normal(0.0, 0.05, n)
        if rel["bad"]:
            worse = live if rel["bad_slice"] is None else live & (region == rel["bad_slice"][1])
            z8 = np.where(worse, z.mean() + 0.3 * (z - z.mean()) + rng.normal(0.0, 1.2, n), z8)
        score8 = sigmoid(z8)
        if rel["mode"] == "canary":
            served = live & (rng.uniform(size=n) < rel["share"])
            version[served] = "v8"
            score = np.where(served, score8, score)
        else:
            cand = live

    # an extra slice dimension with `shops` values (series scale with it),
    # drawn last so the streams without it are unchanged
    if shops:
        shop = rng.integers(0, shops, n)
        shop_of = lambda i: f',"shop":"s{shop[i]:04d}"'
    else:
        shop_of = lambda i: ""

    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    outcomes = []
    with open(os.path.join(d, "predictions.jsonl"), "w") as f:
        for i in range(n):
            trace = f"{ids[i, 0]:016x}{ids[i, 1]:016x}"
            tenure_s = "null" if tenure_null[i] else f"{tenure[i]:.3f}"
            head = f'{{"trace_id":"{trace}","model_id":"{MODEL}","model_version":"{version[i]}",'
            body = (f'"event_time":{t[i]},"features":{{"amount":{amount[i]:.4f},"age":{age[i]:.1f},'
                    f'"tenure_days":{tenure_s},"clicks":{clicks[i]:.1f},"score_a":{score_a[i]:.5f},'
                    f'"latency_ms":{latency[i]:.3f},"device":"{device[i]}","country":"{country[i]}"}},'
                    f'"slices":{{"region":"{region[i]}","channel":"{channel[i]}"{shop_of(i)}}},')
            f.write(f'{head}{body}"prediction":{int(score[i] >= 0.5)},"score":{score[i]:.6f}}}\n')
            if cand[i]:
                f.write(f'{{"trace_id":"{trace}","model_id":"{MODEL}","model_version":"v8","shadow":true,'
                        f'{body}"prediction":{int(score8[i] >= 0.5)},"score":{score8[i]:.6f}}}\n')
            if labelled[i]:
                outcomes.append((int(t[i] + delay[i]), trace, int(label[i])))
    outcomes.sort()
    with open(os.path.join(d, "outcomes.jsonl"), "w") as f:
        for ot, trace, y in outcomes:
            f.write(f'{{"trace_id":"{trace}","model_id":"{MODEL}","event_time":{ot},"label":{y}}}\n')
    truth = {
        "scenario": name,
        "seed": seed,
        "events": n,
        "truth": truth_of(name, onset),
        "must_not_alert_critical": name in ("stationary", "transient_spike", "canary_good"),
        "concept_only": name == "concept_flip",
        "release": release_of(name),
    }
    with open(os.path.join(d, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=7149)
    ap.add_argument("--rate", type=float, default=2.0, help="predictions per second")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--label-delay-s", type=float, default=600.0)
    ap.add_argument("--only", default=None, choices=SCENARIOS)
    ap.add_argument("--shops", type=int, default=0,
                    help="add a slice dimension `shop` with this many values (10 series per value)")
    a = ap.parse_args()
    for i, name in enumerate(SCENARIOS):
        if a.only and name != a.only:
            continue
        generate(name, a.outdir, a.seed + i, a.rate, a.hours, a.label_delay_s, a.shops)
        print(f"{name}: written to {os.path.join(a.outdir, name)}")


if __name__ == "__main__":
    main()
