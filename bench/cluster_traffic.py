#!/usr/bin/env python3
"""Steady commands against Tidemark for bench/cluster, and the checks after a broker died.

  run:   workers open an account, create a deal on it and move it through three stages, over
         and over, for --seconds. Each command has its own Idempotency-Key and is retried with
         it until it is acknowledged (or its retries run out), so every command ends
         acknowledged exactly once or is reported. Each acknowledgment is a JSON line.
  check: compares the acknowledgments with the log (`tidemark replay events` on stdin):
         every acknowledged command is in the log once, each deal's versions run 1, 2, 3 …
         without a gap or a repeat; and says how long commands went unacknowledged.
"""
import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

STAGES = ["Qualification", "Proposal", "Negotiation"]


def post(base, path, token, body, key):
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        return 0, str(e)


class Traffic:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.out = open(args.out, "w")
        self.failures = []  # (time, status) of every attempt that was not acknowledged
        self.given_up = []

    def command(self, path, body, kind):
        key = str(uuid.uuid4())
        deadline = time.time() + 90
        while time.time() < deadline:
            status, answer = post(self.args.commands, path, self.args.token, body, key)
            if status in (200, 201):
                with self.lock:
                    self.out.write(json.dumps({"t": time.time(), "kind": kind, "id": answer["id"], "version": answer["version"], "key": key}) + "\n")
                return answer
            with self.lock:
                self.failures.append((time.time(), status))
            if 400 <= status < 500 and status not in (408, 409, 429):
                raise SystemExit(f"{kind} was refused with {status}: the traffic is wrong, not the system")
            time.sleep(0.2)
        with self.lock:
            self.given_up.append((kind, key))
        return None

    def worker(self, n, until):
        i = 0
        while time.time() < until:
            i += 1
            account = self.command("/v1/accounts", {"name": f"Cluster {n}-{i}"}, "open account")
            if not account:
                continue
            deal = self.command(
                "/v1/opportunities",
                {"account_id": account["id"], "name": f"Deal {n}-{i}", "owner_id": "alice",
                 "amount": {"value": "1000.00", "currency": "EUR"}, "close_date": "2099-01-31"},
                "create opportunity",
            )
            if not deal:
                continue
            for stage in STAGES:
                if time.time() >= until or not self.command(f"/v1/opportunities/{deal['id']}/stage", {"stage": stage}, "move stage"):
                    break

    def run(self):
        until = time.time() + self.args.seconds
        threads = [threading.Thread(target=self.worker, args=(n, until)) for n in range(self.args.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.out.close()
        json.dump({"failures": self.failures, "given_up": self.given_up}, open(self.args.out + ".failures", "w"))


def check(args):
    acks = [json.loads(line) for line in open(args.acks)]
    failed = json.load(open(args.acks + ".failures"))
    logged = {}  # deal id -> versions in log order
    for line in sys.stdin:
        record = json.loads(line)["record"]
        if "envelope" not in record:
            continue
        envelope = record["envelope"]
        logged.setdefault(envelope["aggregate_id"], []).append(envelope["aggregate_version"])
    deals = {}
    for a in acks:
        if a["kind"] != "open account":
            deals[a["id"]] = max(deals.get(a["id"], 0), a["version"])
    problems = []
    for deal, acknowledged in deals.items():
        versions = logged.get(deal, [])
        if versions != list(range(1, len(versions) + 1)):
            problems.append(f"deal {deal}: versions in the log {versions} are not 1, 2, 3 … once each")
        if len(versions) < acknowledged:
            problems.append(f"deal {deal}: version {acknowledged} was acknowledged, the log has {len(versions)}")
    killed, restarted = args.killed, args.restarted
    after_kill = [t for t, _ in failed["failures"] if t >= killed]
    first_ack_after_kill = min((a["t"] for a in acks if a["t"] >= killed), default=None)
    during = [a for a in acks if killed <= a["t"] < restarted]
    failures_in_window = [f for f in failed["failures"] if killed <= f[0] < restarted + 30]
    report = {
        "commands_acknowledged": len(acks),
        "deals": len(deals),
        "deal_versions_checked": sum(deals.values()),
        "problems": problems,
        "given_up": failed["given_up"],
        "attempts_refused_or_failed": len(failed["failures"]),
        "attempts_failed_from_kill_to_30s_after_restart": len(failures_in_window),
        "statuses_of_those": sorted({s for _, s in failures_in_window}),
        "acknowledged_while_the_broker_was_down": len(during),
        "last_failure_after_kill_s": round(max(after_kill) - killed, 2) if after_kill else None,
        "first_acknowledgment_after_kill_s": round(first_ack_after_kill - killed, 2) if first_ack_after_kill else None,
    }
    print(json.dumps(report, indent=2))
    sys.exit(1 if problems or failed["given_up"] else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    run = sub.add_parser("run")
    run.add_argument("--commands", required=True)
    run.add_argument("--token", required=True)
    run.add_argument("--seconds", type=float, default=90)
    run.add_argument("--workers", type=int, default=8)
    run.add_argument("--out", required=True)
    chk = sub.add_parser("check")
    chk.add_argument("--acks", required=True)
    chk.add_argument("--killed", type=float, required=True)
    chk.add_argument("--restarted", type=float, required=True)
    args = parser.parse_args()
    if args.what == "run":
        Traffic(args).run()
    else:
        check(args)


if __name__ == "__main__":
    main()
