#!/usr/bin/env python3
"""Replays every scenario stream (tests/scenarios/generate.py, or another
generator of the same layout with --gen) through
`driftline replay` with the shipped config and scores the alerts against
each stream's truth.json. Prints the README's results table (markdown).

    python3 tests/scenarios/check.py [--check] [--bin target/release/driftline]
        [--data target/scenarios] [--seed 7149] [--label-delay-s 600]

Needs numpy (for the generator). Generated streams are cached in --data.
--check exits 1 when an acceptance point fails:
  - stationary, transient_spike: no critical alert;
  - every other scenario: a firing alert of the right kind on the right
    feature (and slice) whose window_end is within 60 minutes of onset
    (gradual_tenure: its truth's max_delay_min);
  - concept_flip: a performance or concept_drift alert with cause
    concept_drift within 60 minutes, and no data_drift alert; again with
    labels 1-3 h late (--label-delay-s 7200): within 2 h + 60 min.
"""
import argparse, hashlib, json, os, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The project's generator; the Kafka tests derive their streams from its
# output too.
GEN = os.path.join(HERE, "generate.py")
NAMES = ["stationary", "abrupt_amount", "slice_device_apac", "transient_spike", "null_spike",
         "unit_change", "concept_flip", "gradual_tenure"]
# a candidate version beside production: judged by the release gates
RELEASE = ["canary_bad", "canary_good", "shadow_bad"]
# retraining must never be asked for on these (no drift, or broken data)
NO_RETRAIN = {"stationary", "transient_spike", "null_spike", "unit_change"}
PENDING = set()


def ensure_data(data, seed, delay, only=None):
    # the cache is keyed by the generator's text too: a changed generator regenerates
    gen_hash = hashlib.sha256(open(GEN, "rb").read()).hexdigest()[:12]
    stamp = os.path.join(data, f".seed-{seed}-delay-{delay}-{gen_hash}")
    names = [only] if only else NAMES + RELEASE
    if all(os.path.exists(os.path.join(data, n, "truth.json")) for n in names) and os.path.exists(stamp):
        return
    os.makedirs(data, exist_ok=True)
    for old in os.listdir(data):
        if old.startswith(".seed-"):
            os.remove(os.path.join(data, old))
    cmd = [sys.executable, GEN, data, "--seed", str(seed), "--label-delay-s", str(delay)]
    if only:
        cmd += ["--only", only]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    open(stamp, "w").close()


def matches(alert, t):
    if alert["kind"] != t["kind"] and not (t["kind"] == "performance" and alert["kind"] == "concept_drift"):
        return False
    if t.get("feature") is not None and alert["feature"] != t["feature"]:
        return False
    want_slice = t.get("slice") or {}
    return alert["slice"] == want_slice


def first_onset_of(d):
    truth = json.load(open(os.path.join(d, "truth.json")))
    return min((t["onset_ms"] for t in truth["truth"]), default=None)


def describe(actions, since):
    out = []
    for x in actions:
        sl = ",".join(f"{k}={v}" for k, v in x["slice"].items())
        when = f"{(x['decided_at'] - since) / 3.6e6:+.1f} h" if since is not None else ""
        what = x["action"] + (f" {x['model_version']}" if x["action"] != "retrain_requested" else "")
        out.append(f"{what}{' [' + sl + ']' if sl else ''} {when}".strip())
    return "; ".join(out) or "—"


def retrain_check(name, d, onset, failures):
    """Retraining: at most one request per model with no acknowledgement;
    none where there is no drift or the data is broken; one on concept_flip."""
    actions = [json.loads(l) for l in open(os.path.join(d, "actions.jsonl"))]
    retrain = [x for x in actions if x["action"] == "retrain_requested"]
    per_model = {}
    for x in retrain:
        per_model[x["model_id"]] = per_model.get(x["model_id"], 0) + 1
    if any(n > 1 for n in per_model.values()):
        failures.append(f"{name}: {per_model} retrain requests with none acknowledged (at most 1 per model)")
    base = name.split(",")[0]
    if base in NO_RETRAIN and retrain:
        failures.append(f"{name}: retraining requested ({retrain[0]['rule']}) on a stream that must not ask for it")
    if base == "concept_flip" and not retrain:
        failures.append(f"{name}: no retrain request for a concept drift")
    if any(x["action"] != "retrain_requested" for x in actions):
        failures.append(f"{name}: release decisions without a candidate version")
    return describe(actions, onset)


def release_check(a, name, d, failures):
    """A candidate beside production: the decision truth.json expects, in
    time, and production's alerts untouched by the candidate's events."""
    truth = json.load(open(os.path.join(d, "truth.json")))
    rel = truth["release"]
    out, inc_out, act_out = (os.path.join(d, f) for f in ("alerts.jsonl", "incidents.jsonl", "actions.jsonl"))
    subprocess.run([a.bin, "replay", "--config", a.config, "--predictions", os.path.join(d, "predictions.jsonl"),
                    "--outcomes", os.path.join(d, "outcomes.jsonl"), "--output", out, "--incidents", inc_out,
                    "--actions", act_out], check=True, stderr=subprocess.DEVNULL)
    actions = [json.loads(l) for l in open(act_out)]
    mine = [x for x in actions if x["model_version"] == rel["candidate"] and x["action"] != "retrain_requested"]
    rollbacks = [x for x in mine if x["action"] == "rollback_recommended"]
    promotes = [x for x in mine if x["action"] == "promote_ok"]
    if rel["expect"] == "rollback_recommended":
        if not rollbacks:
            failures.append(f"{name}: no rollback_recommended for {rel['candidate']}")
        else:
            r = rollbacks[0]
            late_h = (r["decided_at"] - rel["start_ms"]) / 3.6e6
            if late_h > 8:
                failures.append(f"{name}: rollback {late_h:.1f} h after the candidate's start (> 8 h)")
            if r["slice"] != (rel.get("slice") or {}):
                failures.append(f"{name}: rollback names {r['slice'] or 'overall'}, not {rel.get('slice') or 'overall'}")
            if r["baseline_version"] != rel["production"]:
                failures.append(f"{name}: baseline {r['baseline_version']}, not {rel['production']}")
        if promotes and (not rollbacks or promotes[0]["decided_at"] <= rollbacks[0]["decided_at"]):
            failures.append(f"{name}: promote_ok for a candidate that must be rolled back")
    else:
        if not promotes:
            failures.append(f"{name}: no promote_ok for {rel['candidate']}")
        if rollbacks:
            failures.append(f"{name}: rollback_recommended for a candidate as good as production")
        alerts = [json.loads(l) for l in open(out)]
        incidents = [json.loads(l) for l in open(inc_out)]
        if any(x["severity"] == "critical" for x in alerts + incidents):
            failures.append(f"{name}: a critical alert or incident beside a good candidate")
    # production's alerts and incidents are those of the stream without the candidate's events
    clean = os.path.join(d, "production-only.jsonl")
    with open(os.path.join(d, "predictions.jsonl")) as f, open(clean, "w") as g:
        for line in f:
            e = json.loads(line)
            if e.get("model_version") in (None, rel["production"]) and not e.get("shadow"):
                g.write(line)
    subprocess.run([a.bin, "replay", "--config", a.config, "--predictions", clean, "--outcomes",
                    os.path.join(d, "outcomes.jsonl"), "--output", out + ".production",
                    "--incidents", inc_out + ".production"], check=True, stderr=subprocess.DEVNULL)
    for mine_f, theirs in ((out, out + ".production"), (inc_out, inc_out + ".production")):
        if open(mine_f).read() != open(theirs).read():
            failures.append(f"{name}: production's {os.path.basename(mine_f)} differ from the stream without {rel['candidate']}")
    os.remove(clean)
    return describe(actions, rel["start_ms"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "driftline"))
    ap.add_argument("--config", default=os.path.join(ROOT, "config", "driftline.toml"))
    ap.add_argument("--data", default=os.path.join(ROOT, "target", "scenarios"))
    ap.add_argument("--seed", type=int, default=7149)
    ap.add_argument("--label-delay-s", type=int, default=600)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--gen", default=None, help="the generator script (default: tests/scenarios/generate.py)")
    a = ap.parse_args()
    global GEN
    if a.gen:
        GEN = a.gen
    ensure_data(a.data, a.seed, a.label_delay_s)
    delayed = a.data + "-labels-7200s"
    ensure_data(delayed, a.seed, 7200, only="concept_flip")
    rows, failures, inc_rows, act_rows = [], [], [], []
    runs = [(n, os.path.join(a.data, n), 0) for n in NAMES] + [("concept_flip, labels 1–3 h late", os.path.join(delayed, "concept_flip"), 120)]
    for name, d, extra_min in runs:
        out = os.path.join(d, "alerts.jsonl")
        inc_out = os.path.join(d, "incidents.jsonl")
        t0 = time.time()
        subprocess.run([a.bin, "replay", "--config", a.config, "--predictions", os.path.join(d, "predictions.jsonl"),
                        "--outcomes", os.path.join(d, "outcomes.jsonl"), "--output", out, "--incidents", inc_out,
                        "--actions", os.path.join(d, "actions.jsonl")],
                       check=True, stderr=subprocess.DEVNULL)
        secs = time.time() - t0
        act_rows.append((name, retrain_check(name, d, first_onset_of(d), failures)))
        truth = json.load(open(os.path.join(d, "truth.json")))
        alerts = [json.loads(l) for l in open(out)]
        opened = [x for x in alerts if x["state"] in ("firing", "escalated")]
        first_onset = min((t["onset_ms"] for t in truth["truth"]), default=None)
        critical = [x for x in opened if x["severity"] == "critical"]
        if truth["must_not_alert_critical"]:
            false_alarms = [x for x in alerts if x["state"] == "firing"]
            ok = not critical
            found = "none expected"
            delay = "—"
            if not ok:
                failures.append(f"{name}: {len(critical)} critical alerts, first on {critical[0]['feature']} {critical[0]['slice']}")
        else:
            t = truth["truth"][0]
            # quality alerts judge a prediction-time window once its labels are in: count delay from emitted_at
            hits = [x for x in opened if matches(x, t) and x["emitted_at"] >= t["onset_ms"]]
            if truth.get("concept_only"):
                hits = [x for x in hits if x["suspected_cause"] == "concept_drift"]
                drift = [x for x in alerts if x["kind"] == "data_drift"]
                if drift:
                    failures.append(f"{name}: {len(drift)} data_drift alerts in a concept-only scenario")
            limit = t.get("max_delay_min", 60) + extra_min
            false_alarms = [x for x in alerts if x["state"] == "firing" and x["emitted_at"] < first_onset]
            if hits:
                h = hits[0]
                dm = (h["emitted_at"] - t["onset_ms"]) / 60000
                sl = ",".join(f"{k}={v}" for k, v in h["slice"].items())
                found = f"{h['kind']} {h['feature']}{' [' + sl + ']' if sl else ''} {h['severity']} ({h['test']} {h['statistic']:.3g}, cause {h['suspected_cause']})"
                delay = f"{dm:.0f} min"
                ok = dm <= limit
                if not ok:
                    failures.append(f"{name}: detected after {dm:.0f} min > {limit}")
            else:
                found, delay, ok = "not found", "—", False
                if name not in PENDING:
                    failures.append(f"{name}: no {t['kind']} alert on {t.get('feature')} {t.get('slice') or ''}")
        status = "ok" if ok else ("pending (outcome join)" if name in PENDING else "FAIL")
        target = truth["truth"][0].get("feature") if truth["truth"] else None
        later = [x for x in alerts if x["state"] == "firing" and x not in false_alarms]
        same = len([x for x in later if x["feature"] == target])
        other = {}
        for x in later:
            if x["feature"] != target:
                other.setdefault(f"{x['kind']} {x['feature']}", []).append(
                    ",".join(f"{a}={b}" for a, b in x["slice"].items()) or "overall")
        other_s = "; ".join((f"{k} ({len(set(v))} series)" if len(set(v)) > 2 else f"{k} ({', '.join(sorted(set(v)))})")
                            for k, v in sorted(other.items())) or "—"
        rows.append((name, found, delay, len(false_alarms), same, other_s, status))
        # incidents: one per cause
        incidents = [json.loads(l) for l in open(inc_out)]
        # incidents opened before the shift are false alarms (counted apart);
        # the shift's own are judged
        early_inc = [e for e in incidents if e["state"] == "open" and first_onset is not None
                     and e["opened_at"] < first_onset]
        opened_inc = [e for e in incidents if e["state"] == "open" and e not in early_inc]
        crit_inc = {e["incident_id"] for e in incidents if e["severity"] == "critical"}
        if opened_inc:
            r0 = opened_inc[0]["root"]
            sl = ",".join(f"{k}={v}" for k, v in r0["slice"].items())
            root = f"{r0['kind']} {r0['feature'] or ''}{' [' + sl + ']' if sl else ''}".strip()
            cause = opened_inc[0]["suspected_cause"]
            onset = first_onset if first_onset is not None else opened_inc[0]["opened_at"]
            idelay = f"{(opened_inc[0]['opened_at'] - onset) / 60000:.0f} min" if first_onset is not None else "—"
        else:
            root, cause, idelay = "—", "—", "—"
        if truth["must_not_alert_critical"]:
            if crit_inc:
                failures.append(f"{name}: {len(crit_inc)} critical incidents in a no-drift stream")
        elif len(truth["truth"]) == 1:
            t = truth["truth"][0]
            if len(opened_inc) > 2:
                failures.append(f"{name}: {len(opened_inc)} incidents for one injected shift (at most 2)")
            if opened_inc:
                r0 = opened_inc[0]["root"]
                want_quality = truth.get("concept_only") or t.get("kind") in ("performance", "concept_drift")
                right = (r0["kind"] in ("performance", "concept_drift")) if want_quality else (r0["feature"] == t.get("feature"))
                if not right:
                    failures.append(f"{name}: the first incident's root is {root}, not the shifted {t.get('feature') or t.get('kind')}")
            elif name not in PENDING:
                failures.append(f"{name}: no incident")
        inc_rows.append((name, len(alerts), len(opened_inc), root, cause, idelay, len(early_inc)))
    for name in RELEASE:
        act_rows.append((name, release_check(a, name, os.path.join(a.data, name), failures)))
        runs.append((name, None, 0))
    print("| scenario | first matching alert | delay after onset | false alarms (before onset, or any in a no-drift stream) | same feature, other slices | other series firing after onset | result |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()
    print("| scenario | alerts | incidents | first incident's root | cause | delay after onset | incidents before onset |")
    print("|---|---|---|---|---|---|---|")
    for r in inc_rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()
    print("| scenario | actions (delay after the shift, or after the candidate's start) |")
    print("|---|---|")
    for r in act_rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    n_fail = len(failures)
    n_skip = len([r for r in runs if r[0] in PENDING])
    failed_names = {f.split(":")[0] for f in failures}
    print(f"scenarios: {len(runs) - len(failed_names) - n_skip} passed, {len(failed_names)} failed, {n_skip} skipped")
    if failures:
        print("\nfailures:\n  " + "\n  ".join(failures), file=sys.stderr)
    if a.check and failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
