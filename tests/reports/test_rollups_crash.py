"""Roll-ups after a delivery run whose worker was SIGKILLed mid-batch (and Redis flushed): real rqworker processes
(tests/queues/crash_scenario.py), then the roll-up job in small chunks equals a recount of the attempts and events."""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_rollups_equal_a_recount_after_a_worker_is_killed_mid_batch(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'crash.sqlite3'}",
        "DELIVERYHUB_VAR_DIR": str(tmp_path),
        "DELIVERYHUB_NODE": "crash-node",
        "DELIVERYHUB_DEMO_MODE": "false",
        "DELIVERYHUB_BATCH_SIZE": "10",
        "DELIVERYHUB_LEASE_SECONDS": "8",
        "DELIVERYHUB_SCHEDULE_LEASE_SECONDS": "3",
        "DELIVERYHUB_BATCH_CONCURRENCY": "5",
        "DELIVERYHUB_ROLLUP_CHUNK": "7",
    }
    root = Path(__file__).resolve().parents[2]
    crash = subprocess.run([sys.executable, str(root / "tests" / "queues" / "crash_scenario.py"), str(tmp_path)],
                           env=env, capture_output=True, text=True, timeout=300, cwd=root)  # fmt: skip
    assert crash.returncode == 0, crash.stderr[-3000:]
    outcome = json.loads(crash.stdout.strip().splitlines()[-1])
    assert outcome["killed"], outcome
    done = subprocess.run([sys.executable, str(root / "tests" / "reports" / "rollup_recount.py")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["read"]["attempts"] == result["attempts"] >= 300, result
    assert result["again"] == {"attempts": 0, "events": 0, "messages": 0}, result
    for table in ("MinuteRollup", "HourRollup", "RollupTotal"):
        assert result[table]["mismatches"] == [], result
        assert result[table]["total"] == result["expected"], result
