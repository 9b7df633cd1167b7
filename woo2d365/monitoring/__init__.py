"""What monitoring reads, in three rooms (``docs/architecture.md``, "Rooms and arrows").

* :mod:`.report`: ``status`` (counts, last sync, the orders), its summary and its JSON.
* :mod:`.check`: ``status --check``, the monitoring-plugin verdict.
* :mod:`.metrics`: the Prometheus textfile of ``sync --metrics-file``.

:mod:`.counts` and :mod:`.durations` hold what they share. The names below are re-exported so
``from woo2d365.monitoring import …`` keeps working.
"""

from woo2d365.monitoring.check import (
    CHECK_LABELS,
    WARNING_INTERVALS,
    CheckLimits,
    CheckResult,
    check_status,
    run_check,
)
from woo2d365.monitoring.counts import (
    ATTENTION_STATES,
    OPEN_STATES,
    PUSHED_COUNT_KEY,
    SYSTEM_NAMES,
    oldest_per_state,
    order_counts,
    waited,
)
from woo2d365.monitoring.durations import describe_age, parse_duration
from woo2d365.monitoring.metrics import (
    RUN_OUTCOMES,
    ApiCounter,
    MetricsSnapshot,
    SyncMetrics,
    metrics_text,
    render_metrics,
    write_metrics_file,
)
from woo2d365.monitoring.report import (
    StatusReport,
    documents_json,
    event_json,
    iso,
    order_detail_json,
    order_json,
    parse_state,
    refund_json,
    report_json,
    run_json,
    status_report,
    summary_lines,
)

__all__ = [
    "ATTENTION_STATES",
    "CHECK_LABELS",
    "OPEN_STATES",
    "PUSHED_COUNT_KEY",
    "RUN_OUTCOMES",
    "SYSTEM_NAMES",
    "WARNING_INTERVALS",
    "ApiCounter",
    "CheckLimits",
    "CheckResult",
    "MetricsSnapshot",
    "StatusReport",
    "SyncMetrics",
    "check_status",
    "describe_age",
    "documents_json",
    "event_json",
    "iso",
    "metrics_text",
    "oldest_per_state",
    "order_counts",
    "order_detail_json",
    "order_json",
    "parse_duration",
    "parse_state",
    "refund_json",
    "render_metrics",
    "report_json",
    "run_check",
    "run_json",
    "status_report",
    "summary_lines",
    "waited",
    "write_metrics_file",
]
