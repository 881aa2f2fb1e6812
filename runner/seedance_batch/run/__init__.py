"""Stage 5: a plan is rendered: rate-limited submits, tracking, downloads, through the ledger.

:func:`execute` (:mod:`.engine`, the submit loop) with its parts beside it:

    settings      what a run is told (RunSettings, its policy too) and how it ended (RunResult)
    context       what every part of a run shares
    budget        the spend held for submits in the air (a Budget; LocalBudget in memory)
    stops         every reason the run stops submitting, in one place
    retry         the retry policy (stamina) every retry loop shares; a 429 is not an attempt
    client        the APIDot client; outcomes: which error each answer means; answers: what
                  an answer (or a webhook event) says about its task; bodies: bounded bodies
    ratelimit     the pacer for submits and status calls: learns the server's rate from its 429s
    polling       when to ask for a status: a PollPolicy, by name (render_clock: the first)
    tracking      every job with a task id, from its task id to its end
    downloads     a finished job's video, safely in place
    refunds       a failed task's refund, from its status answer to the ledger
    progress      what the user sees while it runs
"""

from __future__ import annotations

from .engine import execute
from .settings import RunResult, RunSettings

__all__ = ["RunResult", "RunSettings", "execute"]
