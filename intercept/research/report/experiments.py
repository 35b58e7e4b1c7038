"""Which days a report over one experiment covers, checked against what the ledger recorded.

While an experiment runs, every page shown is also counted in the ledger's `experiment_pages`
table under the experiment's name and its design fingerprint (`Experiment.design`: window,
weights, control, mode). `intercept report --experiment NAME` covers exactly the experiment's
days, with its control, and only when the ledger holds that one design under that name: a
design changed while it ran (new weights under the same name) would mix two experiments in one
comparison, so the report refuses and says to give the changed design a name of its own.
"""

from __future__ import annotations

from datetime import date

from intercept.config import Experiment
from intercept.research.ledger import LedgerReader
from intercept.research.report.periods import day_start

__all__ = ["ExperimentError", "experiment_days"]


class ExperimentError(ValueError):
    """The ledger does not hold one clean run of the experiment; the message says why."""


def experiment_days(reader: LedgerReader, experiment: Experiment, today: date) -> tuple[date, date]:
    """The first and last day a report over `experiment` covers (its window, up to `today`),
    once the ledger shows it ran with this one design."""
    if experiment.start > today:
        raise ExperimentError(f"experiment {experiment.name} starts {experiment.start}: later")
    end = min(experiment.end, today)
    rows = reader.daily("experiment_pages", day_start(experiment.start), day_start(end) + 86_400)
    designs = sorted({row.labels[1] for row in rows if row.labels[0] == experiment.name})
    if not designs:
        raise ExperimentError(
            f"the ledger holds no page shown under experiment {experiment.name} "
            f"({experiment.start} to {end})"
        )
    if designs != [experiment.design]:
        raise ExperimentError(
            f"experiment {experiment.name} ran under {len(designs)} design(s) "
            f"({', '.join(designs)}), and the configuration's is {experiment.design}: its "
            "weights, days, control or mode changed while it ran, and a report would mix "
            "them; give a changed design a name of its own"
        )
    return experiment.start, end
