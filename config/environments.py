"""Environment defaults for rollouts (development, staging, production) and the control
plane's rollout settings file (``environments``, ``webhooks``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from config.checks import check_probe_url
from config.loader import load_model
from config.plans import CanaryPlan
from config.schema import Model


class Environment(Model):
    deployment: Literal["big_bang", "blue_green", "canary"]
    auto_deploy: bool = False
    monitoring: Literal["basic", "detailed", "comprehensive"] = "detailed"
    rollback: Literal["manual", "automatic"] = "automatic"
    approval_required: bool = False
    ab_testing: bool = False


class EnvironmentsFile(Model):
    """The control plane's rollout settings: environment defaults, and the webhooks told of
    phase changes, approvals needed, promotions and rollbacks."""

    environments: dict[Literal["development", "staging", "production"], Environment]
    webhooks: list[Annotated[str, AfterValidator(check_probe_url)]] = Field(default_factory=list)


def with_environment(plan: CanaryPlan, environment: Environment | None) -> CanaryPlan:
    """Apply an environment's defaults.

    - ``approval_required``: the last phase (full traffic) waits for an approval whatever the
      plan says.
    - ``monitoring``: ``basic`` judges the thresholds alone (no comparison with the baseline,
      no quality signals); ``detailed`` runs the plan as written; ``comprehensive`` also holds
      a phase until the quality signals (secondary metrics) have enough samples to pass.

    ``auto_deploy`` and ``ab_testing`` are for the pipeline that starts rollouts; the
    ``rollback`` choice is applied by the runner (manual: pause with the reason).
    """
    if environment is None:
        return plan
    update: dict[str, object] = {}
    if environment.approval_required:
        last = plan.phases[-1].model_copy(update={"requires_approval": True})
        update["phases"] = [*plan.phases[:-1], last]
    if environment.monitoring == "basic":
        update["comparison"] = plan.comparison.model_copy(update={"method": "none"})
        update["canary_metrics"] = plan.canary_metrics.model_copy(update={"secondary": []})
    elif environment.monitoring == "comprehensive":
        update["canary_metrics"] = plan.canary_metrics.model_copy(
            update={"hold_for_secondary": True}
        )
    return plan.model_copy(update=update) if update else plan


SHIPPED_ENVIRONMENTS = Path(__file__).parent / "examples" / "environments.yaml"


def load_environments(path: str | Path) -> EnvironmentsFile:
    return load_model(path, EnvironmentsFile)
