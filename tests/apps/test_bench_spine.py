"""The message-path bench's "spine" profile (issue 9) is what its docstring says: the gateway's pipeline
without the anti-virus stage and the encrypted-mail check, everything else as `path` runs it; and only
under the bench's hook: the same configuration without it still runs the anti-virus stage.

The hook (bench/spine/sitecustomize.py) is loaded the way the bench loads it, first on a new Python's
PYTHONPATH, so this runs in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The bench's `path` settings that matter here (bench/message_path.py `Ours.init`); the recipients are a fake.
_CHECKS = """
import json, sys
sys.path.insert(0, {testkit!r})
from gateway_testkit import recipients
from mailbastion.apps.features import Services, make_resolver
from mailbastion.apps.pipeline import build_pipeline
from mailbastion.config.loader import parse_settings

settings = parse_settings({{
    "server": {{"hostname": "mx.example.net", "data_dir": {data!r}}},
    "auth": {{"enabled": False}}, "spam": {{"enabled": False}},
    "antivirus": {{"stale_policy": "alarm_only", "clamav": {{"enabled": False}}}},
}})
pipeline, features = build_pipeline(Services(settings, make_resolver(settings), recipients=recipients()))
print(json.dumps({{"checks": sorted(c.name for c in pipeline.checks), "features": [f.name for f in features]}}))
"""


def _pipeline(tmp_path: Path, *, spine: bool) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAILBASTION_BENCH_SPINE", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "bench" / "spine"), str(REPO / "src")])
    if spine:
        env["MAILBASTION_BENCH_SPINE"] = "1"
    code = _CHECKS.format(testkit=str(REPO / "tests" / "smtp"), data=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("spine", [False, True], ids=["path", "spine"])
def test_spine_leaves_out_the_content_checks_only(tmp_path: Path, spine: bool) -> None:
    got = _pipeline(tmp_path, spine=spine)
    assert {"relay", "recipient", "helo", "headers"} <= set(got["checks"])
    content = {"antivirus", "encrypted_mail"}
    if spine:
        assert not content & set(got["checks"]), got
        assert not {"antivirus", "encryption"} & set(got["features"]), got
    else:  # the hook on the path but not asked for: nothing changes
        assert content <= set(got["checks"]), got
