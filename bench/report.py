#!/usr/bin/env python3
"""Turns a mama_bench Google Benchmark JSON file into a Markdown table and gnuplot data.

usage: report.py RESULTS.json OUT.md OUT.dat [MODE]

Every number is the median over the repetitions of one run (wall-clock "real" time unless a
column says CPU). Handoff and crash recovery report the median over their iterations (the
benchmark's own median_us counter). The original tool's sweep beyond what was spawned for real
is holders x the measured median of one `ps -p` spawn, and says so.
"""
import json
import re
import sys

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
SIZES = [10, 100, 1000, 10000]
PHP_POLL_S = 10.0


def load(path):
    with open(path) as f:
        data = json.load(f)
    runs = {}
    for b in data["benchmarks"]:
        if b.get("error_occurred"):
            runs.setdefault(base_name(b), {})["error"] = b.get("error_message", "error")
            continue
        name = base_name(b)
        kind = b.get("run_type")
        agg = b.get("aggregate_name")
        scale = UNIT_NS[b.get("time_unit", "ns")]
        entry = {"real": b["real_time"] * scale, "cpu": b["cpu_time"] * scale,
                 "counters": {k: v for k, v in b.items() if isinstance(v, (int, float))}}
        slot = runs.setdefault(name, {})
        if kind == "aggregate":
            if agg == "median":
                slot["median"] = entry
        else:
            slot.setdefault("iterations", []).append(entry)
    # Without repetitions (or aggregates) the single run is the median.
    out = {}
    for name, slot in runs.items():
        if "error" in slot:
            out[name] = {"error": slot["error"]}
        elif "median" in slot:
            out[name] = slot["median"]
        elif slot.get("iterations"):
            its = sorted(slot["iterations"], key=lambda e: e["real"])
            out[name] = its[len(its) // 2]
    return data.get("context", {}), out


def base_name(b):
    name = b.get("run_name") or b["name"]
    return re.sub(r"/(iterations|repeats|manual_time|real_time)[^/]*", "", name)


def fmt(ns):
    if ns is None:
        return "–"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs" if ns < 1e5 else f"{ns / 1e3:.0f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms" if ns < 1e8 else f"{ns / 1e6:.0f} ms"
    return f"{ns / 1e9:.2f} s"


def holders(n):
    return sum(1 for i in range(n) if i % 3 != 2)


def main():
    src, md_path, dat_path = sys.argv[1:4]
    mode = sys.argv[4] if len(sys.argv) > 4 else "?"
    ctx, r = load(src)

    def real(name):
        e = r.get(name)
        return e["real"] if e and "real" in e else None

    def cpu(name):
        e = r.get(name)
        return e["cpu"] if e and "cpu" in e else None

    lines = []
    w = lines.append
    load_avg = ctx.get("load_avg")
    w(f"Run {ctx.get('date', '?')}, mode `{mode}`, {ctx.get('mama_nproc', '?')} × "
      f"{ctx.get('mama_cpu_model', '?')}, state files on {ctx.get('mama_scratch_fs', '?')} "
      f"(`{ctx.get('mama_scratch_dir', '?')}`), load average at start "
      f"{', '.join(f'{x:.2f}' for x in load_avg) if load_avg else '?'}.")
    w("Medians of one run; *wall* is elapsed time, *CPU* is this process's CPU time.")
    w("")

    errors = [f"`{n}`: {e['error']}" for n, e in r.items() if "error" in e]
    if errors:
        w("**Benchmarks that failed:** " + "; ".join(errors))
        w("")

    # Probe.
    proc, ps, sh, k0 = (real("probe/mama_proc_reuse_check"), real("probe/original_ps_spawn"),
                        real("probe/original_ps_via_sh"), real("probe/kill0_floor"))
    w("### Probe: is one holder alive?")
    w("")
    w("| method | wall | CPU | vs mama |")
    w("|---|---:|---:|---:|")
    rows = [("mama `ProcProbe::check(pid, start)` (PID-reuse check)", "probe/mama_proc_reuse_check"),
            ("mama `ProcProbe::check` on a dead PID", "probe/mama_proc_dead_pid"),
            ("`kill(pid, 0)` (floor, no reuse check)", "probe/kill0_floor"),
            ("original: spawn `ps -p PID`", "probe/original_ps_spawn"),
            ("original as PHP `exec()` runs it: `sh -c 'ps -p PID'`", "probe/original_ps_via_sh")]
    for label, name in rows:
        ratio = f"{real(name) / proc:,.0f}×" if proc and real(name) else "–"
        if name == "probe/mama_proc_reuse_check":
            ratio = "1×"
        elif real(name) and proc and real(name) < proc:
            ratio = f"{real(name) / proc:.2f}×"
        w(f"| {label} | {fmt(real(name))} | {fmt(cpu(name))} | {ratio} |")
    w("")

    # Sweep.
    w("### Sweep: assess every machine (as `mama list`)")
    w("")
    w("| machines | mama.xml, mama records (hold decides) | mama.xml, PHP records (probe each) "
      "| lock+read+parse+`machines()` (no check record) | lock+read+parse | memory store, mama records "
      "| memory store, PHP records | original: `ps` per holder | original / ours |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    dat = ["# machines sweep_xml sweep_xml_php sweep_memory_php original_ps claim_memory "
           "claim_xml_nosync claim_xml_sync claim_xml_nosync_tmpfs (ns; nan: not measured)"]
    for n in SIZES:
        measured = real(f"sweep/original_ps/{n}")
        est = holders(n) * ps if ps else None
        orig = measured if measured else est
        orig_txt = (fmt(measured) + " (measured)") if measured else (
            f"{fmt(est)} (est. {holders(n)} × ps)" if est else "–")
        ours = real(f"sweep/xml/{n}")
        w(f"| {n:,} | {fmt(ours)} | {fmt(real(f'sweep/xml_php/{n}'))} "
          f"| {fmt(real(f'sweep/xml_parse_only/{n}'))} | {fmt(real(f'sweep/xml_begin_only/{n}'))} "
          f"| {fmt(real(f'sweep/memory/{n}'))} | {fmt(real(f'sweep/memory_php/{n}'))} | {orig_txt} "
          f"| {f'{orig / ours:,.0f}×' if orig and ours else '–'} |")
        vals = [real(f"sweep/xml/{n}"), real(f"sweep/xml_php/{n}"), real(f"sweep/memory_php/{n}"), orig,
                real(f"claim/memory/{n}"), real(f"claim/xml_nosync/{n}"), real(f"claim/xml_sync/{n}"),
                real(f"claim/xml_nosync_tmpfs/{n}")]
        dat.append(f"{n} " + " ".join("nan" if v is None else f"{v:.1f}" for v in vals))
    w("")

    # Claim/release.
    w("### Claim + release cycle (one `StaleJobGuard` constructed and destroyed)")
    w("")
    w("| machines | file size | memory store (fake clock/probe) | mama.xml, no sync | mama.xml, sync "
      "| mama.xml on tmpfs, no sync | CPU: no sync / sync |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for n in SIZES:
        e = r.get(f"claim/xml_nosync/{n}", {})
        kib = e.get("counters", {}).get("file_KiB")
        w(f"| {n:,} | {f'{kib:,.0f} KiB' if kib else '–'} | {fmt(real(f'claim/memory/{n}'))} "
          f"| {fmt(real(f'claim/xml_nosync/{n}'))} | {fmt(real(f'claim/xml_sync/{n}'))} "
          f"| {fmt(real(f'claim/xml_nosync_tmpfs/{n}'))} | {fmt(cpu(f'claim/xml_nosync/{n}'))} / {fmt(cpu(f'claim/xml_sync/{n}'))} |")
    w("")
    floor = real("floor/fdatasync_4KiB")
    if floor:
        w(f"Disk floor, same file system: one 4 KiB write + `fdatasync` = {fmt(floor)}; a synced cycle "
          f"makes six such flushes (journal, its directory entry, mama.xml; claim and release), so no "
          f"synced cycle can beat {fmt(6 * floor)} on this disk.")
        w("")

    # The file's share against its floors.
    w("### The store against its floors (in-process, same run)")
    w("")
    w("| machines | lock+read (floor) | fields of every machine, store kept "
      "| the same, fresh store (check record) | the same, fresh store, no record (whole parse) "
      "| claim+release, no sync | floor: 10-machine cycle + lock+read | ratio |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    c10 = real("claim/xml_nosync/10")
    for n in SIZES:
        lr = real(f"floor/lock_read/{n}")
        cyc = real(f"claim/xml_nosync/{n}")
        fl = c10 + lr if c10 and lr else None
        w(f"| {n:,} | {fmt(lr)} | {fmt(real(f'sweep/xml_fields/{n}'))} "
          f"| {fmt(real(f'sweep/xml_fields_cold/{n}'))} "
          f"| {fmt(real(f'sweep/xml_fields_unrecorded/{n}'))} | {fmt(cyc)} | {fmt(fl)} "
          f"| {f'{cyc / fl:.2f}×' if cyc and fl else '–'} |")
    six = real("floor/six_fdatasync")
    if six:
        w("")
        w(f"Six 4 KiB writes, each followed by `fdatasync`, in one run: {fmt(six)} (the six flushes "
          f"of a synced claim + release).")
    w("")

    # Handoff.
    w("### Handoff and crash recovery (two processes, real mama.xml, 10 machines)")
    w("")
    w("| from → to | median | p90 | min | max | iterations |")
    w("|---|---:|---:|---:|---:|---:|")
    hand = {}
    for label, name in [("holder's release → waiter's claim, no sync", "handoff/release_nosync"),
                        ("holder's release → waiter's claim, sync", "handoff/release_sync"),
                        ("SIGKILL of the holder → waiter's claim, no sync", "handoff/sigkill_nosync"),
                        ("SIGKILL of the holder → waiter's claim, sync", "handoff/sigkill_sync"),
                        ("release → claim, mama.xml on tmpfs", "handoff/release_nosync_tmpfs"),
                        ("SIGKILL → claim, mama.xml on tmpfs", "handoff/sigkill_nosync_tmpfs")]:
        c = r.get(name, {}).get("counters", {})
        hand[name] = c.get("median_us")
        us = lambda k: fmt(c[k] * 1e3) if k in c else "–"
        w(f"| {label} | {us('median_us')} | {us('p90_us')} | {us('min_us')} | {us('max_us')} "
          f"| {int(c.get('samples', 0))} |")
    w(f"| original tool (polls every {PHP_POLL_S:.0f} s; arithmetic, not measured) "
      f"| {PHP_POLL_S / 2:.0f} s mean | {PHP_POLL_S * 0.9:.0f} s | 0 s | {PHP_POLL_S:.0f} s | – |")
    w("")

    # Targets.
    def verdict(ok):
        return "–" if ok is None else ("met" if ok else "**missed**")

    w("### Targets")
    w("")
    w("| target | measured | |")
    w("|---|---:|---|")
    sweep1k = real("sweep/xml/1000")
    c10 = real("claim/xml_nosync/10")
    c1k = real("claim/xml_sync/1000")
    targets = [
        ("probe with PID-reuse detection ≤ 3 µs", fmt(proc), proc and proc <= 3e3),
        ("probe ≥ 1,000× faster than spawning `ps`", f"{ps / proc:,.0f}×" if ps and proc else "–",
         ps and proc and ps / proc >= 1000),
        ("sweep of 1,000 machines ≤ 5 ms", fmt(sweep1k), sweep1k and sweep1k <= 5e6),
        ("claim/release, 10-machine mama.xml, no sync ≤ 100 µs", fmt(c10), c10 and c10 <= 1e5),
        ("claim/release, 1,000-machine mama.xml, sync ≤ 2 ms", fmt(c1k), c1k and c1k <= 2e6),
        ("handoff median ≤ 1 ms (no sync / sync)",
         " / ".join(fmt(hand[k] * 1e3) if hand.get(k) else "–" for k in ("handoff/release_nosync", "handoff/release_sync")),
         hand.get("handoff/release_nosync") and hand["handoff/release_nosync"] <= 1e3),
        ("crash recovery median ≤ 5 ms (no sync / sync)",
         " / ".join(fmt(hand[k] * 1e3) if hand.get(k) else "–" for k in ("handoff/sigkill_nosync", "handoff/sigkill_sync")),
         hand.get("handoff/sigkill_nosync") and hand["handoff/sigkill_nosync"] <= 5e3),
    ]
    # Issue 15: ratios to floors measured in the same run.
    def ratio_target(label, got, floor, limit):
        if not got or not floor:
            return (label, "–", None)
        return (label, f"{fmt(got)} = {got / floor:.2f}× floor {fmt(floor)}", got / floor <= limit)

    for n in (10, 1000, 10000):
        lr = real(f"floor/lock_read/{n}")
        targets.append(ratio_target(
            f"claim+release, {n:,} machines, no sync ≤ 2× (10-machine cycle + lock+read of the file)",
            real(f"claim/xml_nosync/{n}"), c10 + lr if c10 and lr else None, 2.0))
    targets.append(ratio_target("claim+release, 1,000 machines, sync ≤ 1.5× six fdatasyncs",
                                real("claim/xml_sync/1000"), real("floor/six_fdatasync"), 1.5))
    targets.append(ratio_target("fields of 1,000 machines (store kept) ≤ 1.5× lock+read",
                                real("sweep/xml_fields/1000"), real("floor/lock_read/1000"), 1.5))
    targets.append(ratio_target("fields of 1,000 machines (fresh store, check record) ≤ 1.5× lock+read",
                                real("sweep/xml_fields_cold/1000"), real("floor/lock_read/1000"), 1.5))
    targets.append(ratio_target("fields of 1,000 machines (fresh store, no record) ≤ 1.5× lock+read",
                                real("sweep/xml_fields_unrecorded/1000"), real("floor/lock_read/1000"), 1.5))
    for label, got, ok in targets:
        w(f"| {label} | {got} | {verdict(None if ok is None else bool(ok))} |")
    w("")

    with open(md_path, "w") as f:
        f.write("\n".join(lines))
    with open(dat_path, "w") as f:
        f.write("\n".join(dat) + "\n")


if __name__ == "__main__":
    main()
