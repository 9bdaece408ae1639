"""Spam-stage quality and cost: our classifier + rules vs SpamAssassin (spamd/spamc, Bayes via sa-learn).

    .venv/bin/python bench/spam_bench.py [--corpora DIR] [--corpus sa|trec|both] [--no-sa] [--limit N]

Corpora: $MAILBASTION_CORPORA, else ../shared/corpora relative to the repository (never copied into the
repo); the bench says so and exits 2 when absent. Each corpus is split by a hash of the file name (70 %
train, 30 % test, the same split for both filters). Both filters learn only the training part; the
figures are on the test part, which neither saw. phishing_pot is used for measuring only (CC BY-NC).

Ours: a fresh model trained on the training part (not the shipped one), then the DATA-stage spam checks
(gtube, spam_rules, spam_classifier; DNS checks off, as SpamAssassin's network tests are) through the
real Pipeline and Scorer. "Judged spam" = action at least add_header (score >= 5, like SpamAssassin's
required_score 5.0); the Junk row counts action >= junk. CPU = process time of the whole spam stage per
message, parsing included.
SpamAssassin: spamd on 127.0.0.1 (-L, local tests only, bayes_auto_learn 0), Bayes trained with sa-learn on
the same training messages; CPU = spamd (parent and children) + spamc process time per message.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mailbastion.core import Action, Envelope, PeerInfo, SpooledMessage, Stage
from mailbastion.policy.check import Check, CheckContext
from mailbastion.policy.checks.spam_classifier import SpamClassifierCheck
from mailbastion.policy.checks.spam_rules import GtubeCheck, SpamRulesCheck
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, load_score_table
from mailbastion.spam.model import SpamModel
from mailbastion.spam.rules import SpamRules
from mailbastion.spam.store import ModelStore
from mailbastion.spam.training import fit_model, read_tokens, strip_mbox_line

Item = tuple[Path, int]  # (file, 1 = spam)


def corpora_dir(arg: str | None) -> Path:
    for c in (arg, os.environ.get("MAILBASTION_CORPORA"), str(REPO.parent / "shared" / "corpora")):
        if c and Path(c).is_dir():
            return Path(c)
    print("spam_bench: corpora not found (set MAILBASTION_CORPORA or put them at ../shared/corpora)", file=sys.stderr)
    raise SystemExit(2)


def load_sa(root: Path) -> list[Item]:
    out = []
    for d in ("easy_ham", "easy_ham_2", "hard_ham", "spam", "spam_2"):
        for f in sorted((root / "spamassassin-train" / d).iterdir()):
            if f.is_file() and not f.name.startswith(("cmds", "MANIFEST")):
                out.append((f, 1 if d.startswith("spam") else 0))
    return out


def load_trec(root: Path) -> list[Item]:
    base = root / "trec07p" / "trec07p" / "full"
    out = []
    for line in (base / "index").read_text().splitlines():
        label, rel = line.split()
        out.append(((base / rel).resolve(), 1 if label == "spam" else 0))
    return out


def split(items: list[Item]) -> tuple[list[Item], list[Item]]:
    train: list[Item] = []
    test: list[Item] = []
    for f, y in items:
        (test if int(hashlib.sha1(f.name.encode()).hexdigest(), 16) % 10 < 3 else train).append((f, y))
    return train, test


def arrival_time(msg: SpooledMessage) -> float:
    """When the message arrived: the date of its topmost Received header (corpora are old), else Date."""
    for key in ("Received", "Date"):
        value = msg.headers.get(key)
        if value:
            try:
                return parsedate_to_datetime(str(value).rpartition(";")[2].strip()).timestamp()
            except (TypeError, ValueError, IndexError):
                continue
    return time.time()


class Ours:
    def __init__(self, train: list[Item], workdir: Path) -> None:
        ham = [f for f, y in train if not y]
        spam = [f for f, y in train if y]
        model = SpamModel.empty()
        ham_tok, _ = read_tokens(ham)
        spam_tok, _ = read_tokens(spam)
        fit_model(model, ham_tok, spam_tok, source="bench")
        path = workdir / "model.joblib"
        model.save(path)
        store = ModelStore(path, shipped_path=path)
        checks: list[Check] = [GtubeCheck(), SpamRulesCheck(SpamRules(), now_of=arrival_time),
                               SpamClassifierCheck(store)]
        self.pipeline = Pipeline(checks, Scorer(load_score_table()))
        self.peer = PeerInfo(ip="198.51.100.7")
        self.envelope = Envelope(sender=None)

    async def judge(self, raw: bytes) -> tuple[Action, float, float]:
        """(action, score, CPU seconds) for one message."""
        t0 = time.process_time()
        ctx = CheckContext(Stage.DATA, self.peer, self.envelope, message=SpooledMessage(raw))
        out = await self.pipeline.run_stage(ctx)
        verdict = self.pipeline.decide(out.symbols, out.forced, out.edits)
        return verdict.action, verdict.score, time.process_time() - t0


def _proc_cpu(pid: int) -> float:
    """utime + stime (seconds) of pid and its live children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


class SpamAssassin:
    def __init__(self, train: list[Item], workdir: Path) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("ham", "spam", "cf", "home"):
            (workdir / sub).mkdir()
        for f, y in train:
            (workdir / ("spam" if y else "ham") / f.name).write_bytes(strip_mbox_line(f.read_bytes()))
        bayes = workdir / "bayes"
        cf = workdir / "cf" / "local.cf"
        cf.write_text(f"use_bayes 1\nbayes_auto_learn 0\nbayes_path {bayes}/bayes\nbayes_file_mode 0777\n"
                      "skip_rbl_checks 1\nuse_razor2 0\nuse_pyzor 0\ndns_available no\n")
        shutil.copy("/etc/spamassassin/init.pre", workdir / "cf" / "init.pre")
        for pre in Path("/etc/spamassassin").glob("v*.pre"):
            shutil.copy(pre, workdir / "cf" / pre.name)
        bayes.mkdir()
        common = ["-L", f"--siteconfigpath={workdir / 'cf'}", f"--dbpath={bayes}"]
        for label in ("ham", "spam"):
            subprocess.run(["sa-learn", *common, f"--{label}", "--no-sync", str(workdir / label)], check=True,
                           stdout=subprocess.DEVNULL, env={**os.environ, "HOME": str(workdir / "home")})
        subprocess.run(["sa-learn", *common, "--sync"], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "HOME": str(workdir / "home")})
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # spamd drops root for "nobody": it must be able to reach and read its configuration and Bayes files.
        for d in (workdir.parent, workdir):
            os.chmod(d, 0o777)
        for p in workdir.rglob("*"):
            os.chmod(p, 0o777 if p.is_dir() else 0o666)
        self._log = open(workdir / "spamd.log", "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            ["spamd", "-L", "-x", "--listen", f"127.0.0.1:{self.port}", f"--siteconfigpath={workdir / 'cf'}",
             "--max-children=1", "--min-children=1", "--max-conn-per-child=1000000", "-u", "nobody" if os.getuid() == 0
             else str(os.getuid()), f"--helper-home-dir={workdir / 'home'}", f"--pidfile={workdir / 'spamd.pid'}"],
            stdout=subprocess.DEVNULL, stderr=self._log)
        atexit.register(self.close)  # also when interrupted before the caller's finally
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(2.0)  # children start
        self.judge(b"Subject: warm-up\r\n\r\nhello\r\n")

    def judge(self, raw: bytes) -> tuple[bool, float, float]:
        """(is spam, score, CPU seconds of spamd + spamc) for one message."""
        before = _proc_cpu(self.proc.pid)
        t_child = os.times()
        r = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(self.port), "-c"], input=raw,
                           capture_output=True, check=False)
        t_after = os.times()
        cpu = _proc_cpu(self.proc.pid) - before
        cpu += (t_after.children_user - t_child.children_user) + (t_after.children_system - t_child.children_system)
        score = float(r.stdout.decode().split("/")[0] or 0)
        return r.returncode == 1, score, cpu

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self._log.close()


Rates = tuple[float, float, int, int]  # FP rate, recall, false positives, ham count


def rates(results: list[tuple[int, bool]]) -> Rates:
    ham = [s for y, s in results if y == 0]
    spam = [s for y, s in results if y == 1]
    fp = sum(ham) / len(ham) if ham else 0.0
    rec = sum(spam) / len(spam) if spam else 0.0
    return fp, rec, sum(ham), len(ham)


async def run_corpus(name: str, items: list[Item], phishing: list[Path], args: argparse.Namespace) -> None:
    train, test = split(items)
    if args.limit and len(test) > args.limit:
        test = test[:: len(test) // args.limit][: args.limit]  # an even sample of ham and spam
    print(f"\n== {name}: train {len(train)} ({sum(y for _, y in train)} spam), test {len(test)} "
          f"({sum(y for _, y in test)} spam); phishing {len(phishing)}")
    work = Path(tempfile.mkdtemp(prefix=f"spam-bench-{name}-"))
    try:
        t0 = time.monotonic()
        ours = Ours(train, work)
        print(f"ours: trained in {time.monotonic() - t0:.1f}s")
        rows: dict[str, dict[str, Any]] = {}
        res, junk, cpu = [], [], []
        for f, y in test:
            action, _score, c = await ours.judge(strip_mbox_line(f.read_bytes()))
            res.append((y, action >= Action.ADD_HEADER))
            junk.append((y, action >= Action.JUNK))
            cpu.append(c)
        ph_actions = [(await ours.judge(p.read_bytes()))[0] for p in phishing]
        ph = [a >= Action.ADD_HEADER for a in ph_actions]
        ph_junk = [a >= Action.JUNK for a in ph_actions]
        rows["mailbastion"] = {"r": rates(res), "junk": rates(junk), "cpu": sum(cpu) / len(cpu),
                               "phish": sum(ph) / len(ph) if ph else float("nan"),
                               "phish_junk": sum(ph_junk) / len(ph_junk) if ph_junk else float("nan")}
        if not args.no_sa:
            t0 = time.monotonic()
            sa = SpamAssassin(train, work / "sa")
            print(f"spamassassin: sa-learn in {time.monotonic() - t0:.1f}s")
            try:
                res, cpu = [], []
                for f, y in test:
                    is_spam, _s, c = sa.judge(strip_mbox_line(f.read_bytes()))
                    res.append((y, is_spam))
                    cpu.append(c)
                ph = [sa.judge(p.read_bytes())[0] for p in phishing]
                rows["spamassassin"] = {"r": rates(res), "cpu": sum(cpu) / len(cpu),
                                        "phish": sum(ph) / len(ph) if ph else float("nan")}
            finally:
                sa.close()
        print(f"{'filter':<14} {'FP rate':>16} {'spam recall':>12} {'phishing':>9} {'CPU ms/msg':>11}")
        for who, row in rows.items():
            r: Rates = row["r"]
            fp, rec, nfp, nham = r
            print(f"{who:<14} {100 * fp:>7.2f}% ({nfp:>3}/{nham:<4}) {100 * rec:>11.2f}% "
                  f"{100 * row['phish']:>8.1f}% {1000 * row['cpu']:>11.2f}")
            if "junk" in row:
                j: Rates = row["junk"]
                fp, rec, nfp, nham = j
                print(f"{'  (>= junk)':<14} {100 * fp:>7.2f}% ({nfp:>3}/{nham:<4}) {100 * rec:>11.2f}% "
                      f"{100 * row['phish_junk']:>8.1f}%")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up spamd and the work folder on kill
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora")
    ap.add_argument("--corpus", choices=("sa", "trec", "both"), default="both")
    ap.add_argument("--no-sa", action="store_true", help="skip SpamAssassin")
    ap.add_argument("--limit", type=int, default=0, help="at most N test messages per corpus")
    ap.add_argument("--phishing-limit", type=int, default=0)
    args = ap.parse_args()
    root = corpora_dir(args.corpora)
    phishing = sorted((root / "phishing_pot" / "email").glob("*.eml"))
    if args.phishing_limit:
        phishing = phishing[: args.phishing_limit]
    if args.corpus in ("sa", "both"):
        asyncio.run(run_corpus("spamassassin", load_sa(root), phishing, args))
    if args.corpus in ("trec", "both"):
        asyncio.run(run_corpus("trec07p", load_trec(root), phishing, args))


if __name__ == "__main__":
    main()
