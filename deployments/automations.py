"""Server-side automations of xrdmap (run by `make deploy`; safe to run again).

"xrdmap: crash zombie flow runs": a flow run that sent heartbeats (every 60 s: `make
worker` sets PREFECT_FLOWS_HEARTBEAT_FREQUENCY, the commands use
flows.runtime.FLOW_HEARTBEAT_S) and then misses three (3 minutes) without reaching a
final state is marked Crashed, so a dead worker or a killed command does not leave
runs Running forever; the flows' on_crashed hook records it, and a pipeline run again
resumes where it stopped.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

from flows.runtime import FLOW_HEARTBEAT_S

ZOMBIE_AUTOMATION = "xrdmap: crash zombie flow runs"
HEARTBEAT_SILENCE = timedelta(seconds=3 * FLOW_HEARTBEAT_S)


def zombie_automation() -> Automation:
    return Automation(
        name=ZOMBIE_AUTOMATION,
        description="Mark flow runs Crashed when their heartbeats stop (dead worker).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=HEARTBEAT_SILENCE,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message="No heartbeat for 3 minutes: the process running it is gone.",
            )
        ],
    )


def main() -> None:
    try:
        existing = Automation.read(name=ZOMBIE_AUTOMATION)
    except ValueError:
        existing = None
    wanted = zombie_automation()
    if existing is None:
        wanted.create()
        print(f"created automation {ZOMBIE_AUTOMATION!r}")
    else:
        wanted.id = existing.id
        wanted.update()
        print(f"updated automation {ZOMBIE_AUTOMATION!r}")


if __name__ == "__main__":
    main()
