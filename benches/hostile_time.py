#!/usr/bin/env python3
"""Hostile timestamps on a whole scenario stream (docs/contracts.md, "Event
time"): replays the stream clean and with one line changed, or with a
40-day gap, and prints per case the alert ids against the clean run's,
what was refused and the peak RSS.

    python3 benches/hostile_time.py [--data target/scenarios/abrupt_amount]

Needs a release build and the stream (tests/scenarios/check.py makes it).
"""
import argparse, json, os, re, subprocess, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "driftline")
HOUR = 3_600_000


def replay(preds, outs, tmp):
    out = os.path.join(tmp, "alerts.jsonl")
    r = subprocess.run(["/usr/bin/time", "-v", BIN, "replay", "--config", os.path.join(ROOT, "config", "driftline.toml"),
                        "--predictions", preds, "--outcomes", outs, "--output", out],
                       capture_output=True, text=True, check=True)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    ids = {json.loads(l)["alert_id"] for l in open(out)}
    summary = [l for l in r.stderr.splitlines() if "late" in l or "outlier" in l or "refused" in l or "out_of_range" in l]
    return ids, rss, summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "target", "scenarios", "abrupt_amount"))
    a = ap.parse_args()
    preds = open(os.path.join(a.data, "predictions.jsonl")).read().splitlines(keepends=True)
    outs_path = os.path.join(a.data, "outcomes.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        clean_ids, clean_rss, _ = replay(os.path.join(a.data, "predictions.jsonl"), outs_path, tmp)
        print(f"clean: {len(clean_ids)} alert ids, peak RSS {clean_rss:.0f} MiB")
        first_t = json.loads(preds[0])["event_time"]
        mid = len(preds) // 2
        mid_t = json.loads(preds[mid])["event_time"]
        cases = [("1970-01-02 first", 0, 86_400_000), ("epoch seconds first", 0, first_t // 1000),
                 ("2100 first", 0, 4_102_444_800_000), ("23 h ahead mid-stream", mid, mid_t + 23 * HOUR),
                 ("1970 mid-stream", mid, 86_400_000)]
        # a refused or late event is one event less: the run without that line
        p = os.path.join(tmp, "p.jsonl")
        open(p, "w").writelines(preds[:mid] + preds[mid + 1:])
        without_mid, _, _ = replay(p, outs_path, tmp)
        for name, i, t in cases:
            lines = list(preds)
            e = json.loads(lines[i])
            e["event_time"] = t
            lines[i] = json.dumps(e) + "\n"
            p = os.path.join(tmp, "p.jsonl")
            open(p, "w").writelines(lines)
            ids, rss, summary = replay(p, outs_path, tmp)
            same = "the clean run's ids" if ids == clean_ids else f"{len(ids - clean_ids)} extra, {len(clean_ids - ids)} missing"
            if i == mid:
                same += ("; = the run without that line" if ids == without_mid else "; NOT the run without that line")
            print(f"{name}: {len(ids)} alert ids ({same}), peak RSS {rss:.0f} MiB; " + " | ".join(s.strip() for s in summary))
        # a 40-day gap after hour 12, in both files
        gap_at = first_t // HOUR * HOUR + 12 * HOUR

        def shifted(lines):
            out = []
            for l in lines:
                e = json.loads(l)
                if e["event_time"] >= gap_at:
                    e["event_time"] += 40 * 24 * HOUR
                out.append(json.dumps(e) + "\n")
            return out
        p, o = os.path.join(tmp, "p.jsonl"), os.path.join(tmp, "o.jsonl")
        open(p, "w").writelines(shifted(preds))
        open(o, "w").writelines(shifted(open(outs_path).read().splitlines(keepends=True)))
        after = sum(1 for l in preds if json.loads(l)["event_time"] >= gap_at)
        ids, rss, summary = replay(p, o, tmp)
        print(f"40-day gap after hour 12: {after} predictions after it; {len(ids)} alert ids, peak RSS {rss:.0f} MiB; "
              + " | ".join(s.strip() for s in summary))


if __name__ == "__main__":
    main()
