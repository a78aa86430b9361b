"""Where the conformance tests run the vendors' official Python clients: one environment for both.

Constant Contact's (``constant-contact-api-client``) and Mailchimp's (``mailchimp-marketing``) clients
are not listsync's dependencies and pin old libraries, so they live in ``.venv-conformance``, which
``bin/setup-conformance`` makes on first use (about twenty seconds) and reuses afterwards. The tests
call it themselves, so a clean checkout's ``bin/test`` runs them with nothing set up by hand; when
the environment cannot be made the tests fail, saying why, rather than skip.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "bin" / "setup-conformance"


@functools.cache
def official_python() -> str:
    """The conformance environment's python, made by ``bin/setup-conformance`` if need be."""
    made = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=540, check=False)
    assert made.returncode == 0, f"{SETUP} could not install the official clients:\n{made.stderr[-2000:]}"
    return made.stdout.strip().splitlines()[-1]


def run_official(script: str, *args: str) -> Any:
    """Run `script` with `args` in the conformance environment; the JSON it printed."""
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    ran = subprocess.run(
        [official_python(), "-c", script, *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads(ran.stdout)
