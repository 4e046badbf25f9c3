#!/usr/bin/env python3
"""Whole-process benchmarks: `mama` as a lab engineer runs it, one process per command.

usage: process_bench.py --mama BIN --state-dir DIR --out PREFIX [--short] [--php-src DIR]
                        [--sizes 10,100,1000,10000] [--bench-json latest.json]

Every command runs in one hyperfine invocation (so medians and ratios come from the same run):
  /bin/true                          the floor of any process start
  mama --version                     start-up only
  mama --state F list                N = each size
  mama --state F list                the same on a lab whose records mama wrote (list-mama)
  mama --state F list                the same as `list`, without the check record (list-unrecorded:
                                     hyperfine's --prepare removes `F.d/checked` before each run, as
                                     a write by the PHP tool makes it useless): the whole-file check
  mama --state F run lab-00002 -- /bin/true   (default settings: synced)
  php php_claim_release.php ...      the PHP tool's own claim + release (when php and its sources
                                     are there; skipped otherwise, and the report says so)
Labs: N machines as bench/bench_support.hpp writes them with PHP-tool records: a third dead holders
(PIDs with no process), a third running (a `sleep` this script started), a third idle; lab-00002
is idle. Each command kind has its own copy of the file; the `list` lab has its runtime
directory `mama.xml.d/`, as a lab where mama has run before (a `list` leaves the check record
there, which the next `list` uses). `list-mama/N` lists a lab whose records
mama wrote (with a claim token, so the machine's lock file decides): a third held by a live
process (one process holding their flocks, as a job holds what `mama run` took), a third whose
holder is gone (lock file there, free), a third idle. Peak RSS: wait4() of one extra run each.
Peak RSS of `list` on a lab of 90,000 machines (about 50 MB), without and with the check record.
Writes PREFIX.json (hyperfine's), PREFIX.md (tables) and PREFIX.dat (gnuplot data).
"""
import argparse
import errno
import json
import os
import shutil
import statistics
import subprocess
import sys

FIELDS = [("mac", None), ("ip", None), ("is_started", "1"), ("only_vm", "0"), ("arch", "x86_64"),
          ("os", "fedora"), ("kernel", ""), ("pwr_dev", "mpower1"), ("pwr_slot", "3"),
          ("rly_dev", ""), ("rly_slot", "0"), ("reservation", ""), ("resources", ""),
          ("boot_params", ""), ("vm_params", ""), ("startcmd", ""), ("stopcmd", ""),
          ("start_timeout", "240")]


BIG = 90000  # machines of the lab whose `list` memory is measured (about 50 MB)


def dead_pids(count):
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    out = []
    while len(out) < count and pid > 300:
        try:
            os.kill(pid, 0)
        except OSError as e:
            if e.errno == errno.ESRCH:
                out.append(pid)
        pid -= 1
    return out


def php_records(running_pid, dead):
    """The job fields of machine i as the PHP tool writes them (see the top)."""
    def job(i):
        role = i % 3
        if role == 2:
            return [("job", ""), ("job_pid", ""), ("job_timestamp", "")]
        pid = str(dead[i // 3]) if role == 0 else str(running_pid)
        return [("job", f"run test-job-{i} x86_64/fedora"), ("job_pid", pid),
                ("job_timestamp", "1763047845")]
    return job


def write_lab(path, n, job_fields):
    def field(k, v):
        return f"    <{k}/>\n" if v == "" else f"    <{k}>{v}</{k}>\n"
    parts = ['<?xml version="1.0"?>\n<settings>\n']
    for i in range(n):
        parts.append("  <machine>\n")
        parts.append(field("name", f"lab-{i:05d}"))
        for k, v in FIELDS:
            if k == "startcmd":
                parts += [field(jk, jv) for jk, jv in job_fields(i)]
            if k == "mac":
                v = f"aa:bb:cc:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"
            elif k == "ip":
                v = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            parts.append(field(k, v))
        parts.append("  </machine>\n")
    parts.append("</settings>\n")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(parts))


HOLD_LOCKS = r"""
import fcntl, os, resource, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
fds = []
for p in sys.stdin.read().split("\n"):
    if p:
        fd = os.open(p, os.O_RDONLY | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        fds.append(fd)
print("ready", flush=True)
time.sleep(10 ** 7)
"""


def mama_lab(path, n, dead):
    """A lab whose records mama wrote (see the top); returns the process holding the live ones'
    lock files (kill it when done)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    runtime = os.path.realpath(path) + ".d"
    os.makedirs(runtime, exist_ok=True)
    lock = lambda i: os.path.join(runtime, f"machine.lab-{i:05d}.lock")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCKS], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    holder.stdin.write("\n".join(lock(i) for i in range(0, n, 3)))
    holder.stdin.close()
    if holder.stdout.readline().strip() != "ready":
        raise SystemExit("process_bench: the lock holder did not start (too many open files?)")
    with open(f"/proc/{holder.pid}/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    host = os.uname().nodename

    def job(i):
        role = i % 3
        if role == 2:
            return [("job", ""), ("job_pid", ""), ("job_timestamp", "")]
        if role == 1:
            open(lock(i), "a").close()  # a claim made it; its holder is gone
        pid, st = (holder.pid, start) if role == 0 else (dead[i // 3], "1")
        return [("job", f"run test-job-{i} x86_64/fedora"), ("job_pid", str(pid)),
                ("job_timestamp", "1763047845"), ("job_host", host), ("job_boot_id", boot),
                ("job_start", st), ("job_token", os.urandom(16).hex())]
    write_lab(path, n, job)
    return holder


def peak_rss_kib(argv):
    """Peak RSS of one run of argv, KiB: GNU time's %M (its child starts small), else wait4()
    of a child started with posix_spawn (so not a copy of this Python process)."""
    if os.path.exists("/usr/bin/time"):
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", "/dev/stdout", *argv],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if r.returncode != 0:
            raise SystemExit(f"process_bench: {' '.join(argv)} exited with {r.returncode}")
        return int(r.stdout.strip().splitlines()[-1])
    with open(os.devnull, "w") as null:
        pid = os.posix_spawn(argv[0], argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1),
                                           (os.POSIX_SPAWN_DUP2, null.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"process_bench: {' '.join(argv)} failed")
    return usage.ru_maxrss


def fmt_time(s):
    if s != s:
        return "–"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            v = s / scale
            return f"{v:.0f} {unit}" if v >= 100 else f"{v:.1f} {unit}" if v >= 10 else f"{v:.2f} {unit}"
    return f"{s * 1e9:.0f} ns"


def fmt_kib(k):
    return "–" if k is None else f"{k / 1024:.1f} MiB"


def ps_median_from(bench_json):
    try:
        with open(bench_json) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    for b in data.get("benchmarks", []):
        if b.get("name", "").startswith("probe/original_ps_spawn") and \
                b.get("aggregate_name") == "median":
            return b["real_time"] * unit[b.get("time_unit", "ns")]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mama", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--php-src", default="")
    ap.add_argument("--sizes", default="10,100,1000,10000")
    ap.add_argument("--bench-json", default="")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    for tool in ("hyperfine",):
        if not shutil.which(tool):
            raise SystemExit(f"process_bench: {tool} is required (Debian: apt-get install {tool})")
    here = os.path.dirname(os.path.abspath(__file__))
    php = shutil.which("php")
    php_reason = ""
    if not php:
        php_reason = "php is not installed"
    elif not a.php_src or not os.path.isfile(os.path.join(a.php_src, "settings.php")):
        php_reason = f"the PHP tool's sources are not at '{a.php_src}' (set MAMA_PHP_TOOL_SRC)"
    with_php = not php_reason

    holder = subprocess.Popen(["sleep", "100000"])
    lock_holders = []
    try:
        dead = dead_pids(max(sizes) // 3 + 1)
        labs = {}
        for n in sizes:
            for kind in ("list", "run", "php"):
                path = os.path.join(a.state_dir, f"{n}-{kind}", "mama.xml")
                write_lab(path, n, php_records(holder.pid, dead))
                labs[(n, kind)] = path
            # A lab where mama has run before has its runtime directory, where a list leaves the
            # check record (a list never creates the directory itself).
            os.makedirs(os.path.realpath(labs[(n, "list")]) + ".d", exist_ok=True)
            path = os.path.join(a.state_dir, f"{n}-list-mama", "mama.xml")
            lock_holders.append(mama_lab(path, n, dead))
            labs[(n, "list-mama")] = path
        # The disk's floor for a synced `run`: one process making six synced 4 KiB writes (a synced
        # claim + release flushes six times: journal, its directory entry, mama.xml; twice).
        floor_file = os.path.join(a.state_dir, "sync-floor")
        prepare = {}  # command -> what runs before each of its timed runs
        cmds = [("true", ["/bin/true"]), ("version", [a.mama, "--version"]),
                ("sync6", ["dd", "if=/dev/zero", f"of={floor_file}", "bs=4096", "count=6",
                           "oflag=dsync", "status=none"])]
        for n in sizes:
            cmds.append((f"list/{n}", [a.mama, "--state", labs[(n, "list")], "list"]))
            cmds.append((f"list-mama/{n}", [a.mama, "--state", labs[(n, "list-mama")], "list"]))
            cmds.append((f"list-unrecorded/{n}", [a.mama, "--state", labs[(n, "list")], "list"]))
            prepare[f"list-unrecorded/{n}"] = ["rm", "-f", labs[(n, "list")] + ".d/checked"]
            cmds.append((f"run/{n}", [a.mama, "--state", labs[(n, "run")], "run", "lab-00002",
                                      "--", "/bin/true"]))
            if with_php:
                cmds.append((f"php/{n}", [php, os.path.join(here, "php_claim_release.php"),
                                          a.php_src, labs[(n, "php")], "lab-00002"]))
        runs = ["--warmup", "1", "--min-runs", "5", "--max-runs", "15"] if a.short else \
               ["--warmup", "3", "--min-runs", "20", "--max-runs", "100"]
        hf = ["hyperfine", "-N", "--style", "basic", *runs, "--export-json", a.out + ".json"]
        for name, argv in cmds:
            hf += ["--prepare", " ".join(prepare.get(name, ["/bin/true"]))]
        for name, argv in cmds:
            hf += ["-n", name, " ".join(argv)]
        subprocess.run(hf, check=True, stdout=sys.stderr)
        rss = {}
        for name, argv in cmds:
            if name in prepare:
                subprocess.run(prepare[name], check=True)
            rss[name] = peak_rss_kib(argv)
        # Peak memory of `list` on a large lab (about 50 MB): the first list checks the file
        # whole (no record yet) and leaves the record, which the second one uses.
        big = os.path.join(a.state_dir, f"{BIG}-list", "mama.xml")
        write_lab(big, BIG, php_records(holder.pid, [dead[i % len(dead)]
                                                     for i in range(BIG // 3 + 1)]))
        os.makedirs(os.path.realpath(big) + ".d", exist_ok=True)
        rss["big-unrecorded"] = peak_rss_kib([a.mama, "--state", big, "list"])
        rss["big-recorded"] = peak_rss_kib([a.mama, "--state", big, "list"])
        big_kib = os.path.getsize(big) / 1024
    finally:
        for p in [holder, *lock_holders]:
            p.kill()
            p.wait()

    with open(a.out + ".json") as f:
        med = {r["command"]: statistics.median(r["times"]) for r in json.load(f)["results"]}
    nan = float("nan")
    g = lambda k: med.get(k, nan)
    ps = ps_median_from(a.bench_json) if a.bench_json else None

    md = []
    md.append(f"Whole processes, medians of one hyperfine run ({'short' if a.short else 'long'} "
              f"mode, `-N`: no shell); peak RSS from `wait4()` of one more run of each.\n")
    md.append(f"| process | median | vs `/bin/true` | peak RSS |\n|---|---:|---:|---:|")
    md.append(f"| `/bin/true` | {fmt_time(g('true'))} | 1× | {fmt_kib(rss['true'])} |")
    md.append(f"| `mama --version` | {fmt_time(g('version'))} | {g('version') / g('true'):.1f}× "
              f"| {fmt_kib(rss['version'])} |")
    md.append(f"| `dd ... bs=4096 count=6 oflag=dsync` (six synced writes: the disk floor of a "
              f"synced `run`) | {fmt_time(g('sync6'))} | {g('sync6') / g('true'):.1f}× "
              f"| {fmt_kib(rss['sync6'])} |\n")
    head = ("| machines | file | `mama list` | `mama list`, records mama wrote | "
            "`mama list`, no check record (after a PHP write) | `mama run m -- true` (synced) |")
    sep = "|---:|---:|---:|---:|---:|---:|"
    if with_php:
        head += " PHP tool: claim + release (`php`) | PHP / `mama run` |"
        sep += "---:|---:|"
    head += " RSS `list` | RSS `list`, no record | RSS `run` |" + (" RSS PHP |" if with_php else "")
    sep += "---:|---:|---:|" + ("---:|" if with_php else "")
    md += [head, sep]
    dat = ["# machines list run php true version rss_list_kib rss_run_kib rss_php_kib list_mama list_unrecorded"]
    for n in sizes:
        size = os.path.getsize(labs[(n, "list")])
        row = (f"| {n:,} | {size / 1024:,.0f} KiB | {fmt_time(g(f'list/{n}'))} | "
               f"{fmt_time(g(f'list-mama/{n}'))} | {fmt_time(g(f'list-unrecorded/{n}'))} | "
               f"{fmt_time(g(f'run/{n}'))} |")
        if with_php:
            row += f" {fmt_time(g(f'php/{n}'))} | {g(f'php/{n}') / g(f'run/{n}'):.2f}× |"
        row += (f" {fmt_kib(rss[f'list/{n}'])} | {fmt_kib(rss[f'list-unrecorded/{n}'])} "
                f"| {fmt_kib(rss[f'run/{n}'])} |")
        if with_php:
            row += f" {fmt_kib(rss[f'php/{n}'])} |"
        md.append(row)
        dat.append(" ".join(str(x) for x in (
            n, g(f"list/{n}") * 1e9, g(f"run/{n}") * 1e9, g(f"php/{n}") * 1e9, g("true") * 1e9,
            g("version") * 1e9, rss[f"list/{n}"], rss[f"run/{n}"], rss.get(f"php/{n}", nan),
            g(f"list-mama/{n}") * 1e9, g(f"list-unrecorded/{n}") * 1e9)))
    if not with_php:
        md.append(f"\nThe PHP tool's column is left out: {php_reason}.")
    md.append(f"\nPeak RSS of `mama list` on a lab of {BIG:,} machines ({big_kib / 1024:,.1f} MiB): "
              f"{fmt_kib(rss['big-unrecorded'])} ({rss['big-unrecorded'] / big_kib:.2f}× the file) "
              f"when it checks the file (no check record), {fmt_kib(rss['big-recorded'])} "
              f"({rss['big-recorded'] / big_kib:.2f}× the file) with the record.")
    md.append("\n| target | measured | |\n|---|---:|---|")

    def target(text, value, limit, fmt, at_least=False):
        ok = value >= limit if at_least else value <= limit
        md.append(f"| {text} | {fmt.format(value)} | {'met' if ok else '**missed**'} |")

    target("`mama --version` ≤ 2× `/bin/true`", g("version") / g("true"), 2, "{:.1f}×")
    if 10 in sizes:
        target("`mama run` on 10 machines ≤ 4× `/bin/true`", g("run/10") / g("true"), 4,
               "{:.1f}×")
        target("`mama run` on 10 machines ≤ 4× (`/bin/true` + six synced writes)",
               g("run/10") / (g("true") + g("sync6")), 4, "{:.1f}×")
        if 1000 in sizes:
            target("`mama run` on 1,000 ≤ 1.5× on 10", g("run/1000") / g("run/10"), 1.5,
                   "{:.2f}×")
            target("`mama list` on 1,000 ≤ 1.5× on 10", g("list/1000") / g("list/10"), 1.5,
                   "{:.2f}×")
            target("`mama list` on 1,000 ≤ 1.5× on 10, records mama wrote",
                   g("list-mama/1000") / g("list-mama/10"), 1.5, "{:.2f}×")
            target("`mama list` on 1,000 ≤ 1.5× on 10, no check record (after a PHP write)",
                   g("list-unrecorded/1000") / g("list-unrecorded/10"), 1.5, "{:.2f}×")
    target(f"peak memory of `list` on a {big_kib / 1024:,.0f} MiB file ≤ 2× its size, no check record",
           rss["big-unrecorded"] / big_kib, 2, "{:.2f}×")
    target(f"peak memory of `list` on a {big_kib / 1024:,.0f} MiB file ≤ 2× its size, check record",
           rss["big-recorded"] / big_kib, 2, "{:.2f}×")
    if 1000 in sizes and ps:
        holders = 1000 * 2 // 3 + 1
        target(f"`mama list` on 1,000 ≥ 500× the original ({holders} × `ps -p`, "
               f"{fmt_time(ps)} each, measured by mama_bench in this run)",
               holders * ps / g("list/1000"), 500, "{:,.0f}×", at_least=True)
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    with open(a.out + ".dat", "w") as f:
        f.write("\n".join(dat) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
