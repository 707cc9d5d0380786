#!/usr/bin/env python3
"""Instructions per event, thread by thread: `driftline replay --workers 2`
under valgrind's callgrind (each thread counted apart), over the first
`--events` predictions of the peers stream (benches/peers: 8 features, 2
slice dimensions, 60 series), from JSON Lines and from Avro.

    python3 benches/instructions.py [--events 200000] [--top 8]

Wall-clock rates on this machine wander by a fifth or more within minutes
(docs/BENCHMARKS.md), so a change of a few per cent does not show in them;
an instruction count does not wander. With two workers the replay is as
fast as its busier thread: the engine's (applying) or the reader's
(reading, decoding, a value's sketch bin, and looking its ids up while
the engine is busy), so each is reported, with the functions that take
the most of it — counted with every lookup on the reader
(`DRIFTLINE_LOOK_UP_BESIDE=always`), since `replay` moves lookups to
the engine's thread while the reader is the busier one, and under
callgrind, which runs one thread at a time, that balance would follow
its scheduling rather than the work. Instructions are not time (a cache
miss costs no instruction), so a change is confirmed with the rates too.
Needs valgrind (`apt-get install valgrind`) and a release build.
"""
import argparse, glob, os, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "driftline")
# the reader's work: reading the file, decoding, an event's sketch bins
READER = re.compile(r"codec::|source::|sketch::edges::prepare|Prediction::reset|memchr|from_utf8|_copy_to_iter|zlib|inflate|deflate")


def peers_stream():
    """The 1M-event peers stream, made as benches/peers makes it."""
    d = os.path.join(ROOT, "target", "bench", "peers-1000000")
    p = os.path.join(d, "abrupt_amount", "predictions.jsonl")
    if not os.path.exists(os.path.join(d, "abrupt_amount", "truth.json")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "scenarios", "generate.py"), d, "--only",
                        "abrupt_amount", "--rate", f"{1_000_000 / 86_400:.6f}", "--hours", "24"],
                       check=True, stdout=subprocess.DEVNULL)
    return p


def functions(path):
    """(total, [(self instructions, function)]) of one callgrind file: its
    table of `file:function` rows summed by function (a function's inlined
    callees are rows of their own files)."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", path], capture_output=True,
                         text=True, check=True).stdout
    total, by_fn, in_table = 0, {}, False
    for line in out.splitlines():
        if line.strip().endswith("file:function"):
            in_table = True
            continue
        m = re.match(r"^\s*([\d,]+) \([\s\d.]+%\)\s+(\S.*)$", line)
        if not m:
            continue
        n, what = int(m.group(1).replace(",", "")), m.group(2)
        if what.startswith("PROGRAM TOTALS"):
            total = n
        elif in_table:
            # `file:function [object]`
            name = re.sub(r"\s+\[[^\]]*\]$", "", what)
            name = name.split(":", 1)[1] if ":" in name else name
            by_fn[name] = by_fn.get(name, 0) + n
    return total, [(n, fn) for fn, n in by_fn.items()]


def measure(label, args, events, top, tmp):
    out = os.path.join(tmp, "cg.out")
    for f in glob.glob(out + "*"):
        os.remove(f)
    # every event looked up on the reader, as when the engine is the busier
    # (callgrind runs one thread at a time: the balance `replay` strikes
    # between them would follow its scheduling)
    env = dict(os.environ, DRIFTLINE_LOOK_UP_BESIDE="always")
    subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
                    BIN, "replay", "--config", os.path.join(ROOT, "config", "driftline.toml"),
                    "--output", os.path.join(tmp, "alerts.jsonl"), "--workers", "2"] + args,
                   check=True, capture_output=True, env=env)
    threads = []
    for f in sorted(glob.glob(out + "-*")):
        total, rows = functions(f)
        if total == 0:
            continue
        reader = sum(n for n, fn in rows if READER.search(fn))
        threads.append((total, rows, reader / total))
    if not threads:
        sys.exit(f"no callgrind output in {tmp}")
    # the main thread (the first) applies; the one mostly reading is the reader
    named = []
    for i, (total, rows, share) in enumerate(threads):
        role = "engine (main thread)" if i == 0 else "reader" if share > 0.5 else f"thread {i + 1}"
        named.append((role, total, rows))
    print(f"\n### {label}\n")
    print("| thread | instructions an event | share |")
    print("|---|---|---|")
    whole = sum(t for _, t, _ in named)
    for role, total, _ in named:
        print(f"| {role} | {total / events:,.0f} | {100 * total / whole:.0f} % |")
    print(f"| all | {whole / events:,.0f} | |")
    for role, total, rows in named:
        if total / events < 100:
            continue
        print(f"\n{role}, the functions with the most instructions of their own (an event):\n")
        for n, fn in sorted(rows, reverse=True)[:top]:
            print(f"- {n / events:,.0f} `{fn[:110]}`")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--top", type=int, default=8)
    a = ap.parse_args()
    for tool in ("valgrind", "callgrind_annotate"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: this bench needs valgrind (apt-get install valgrind)")
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: cargo build --release --locked first")
    full = peers_stream()
    with tempfile.TemporaryDirectory(prefix="dl-instructions-") as tmp:
        jsonl = os.path.join(tmp, "predictions.jsonl")
        with open(full) as src, open(jsonl, "w") as dst:
            for i, line in enumerate(src):
                if i == a.events:
                    break
                dst.write(line)
        avro = os.path.join(tmp, "predictions.avro")
        subprocess.run([BIN, "convert", "--kind", "predictions", "--codec", "deflate", "--input", jsonl,
                        "--output", avro], check=True, capture_output=True)
        version = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()
        print(f"{version}; the first {a.events:,} predictions of {os.path.relpath(full, ROOT)}; "
              f"`replay --workers 2` under callgrind")
        measure("JSON Lines", ["--predictions", jsonl], a.events, a.top, tmp)
        measure("Avro (deflate)", ["--predictions", avro], a.events, a.top, tmp)


if __name__ == "__main__":
    main()
