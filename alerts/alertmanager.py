"""alertmanager.yml: critical pages PagerDuty (Events API v2), warning goes to the chat webhook;
grouped by alert and service; a broken dependency silences the alerts it causes."""

from __future__ import annotations

from typing import Any

from alerts.thresholds import THRESHOLDS

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
ROUTING_KEY_FILE = "/alertmanager/pagerduty-routing-key"
"""Written from PAGERDUTY_ROUTING_KEY (stack/pagerduty.env) when the container starts."""
CHAT_WEBHOOK_URL = "http://page-inbox:9094/chat"
"""The compose stack's page inbox, which keeps the warnings (point it at your chat's webhook)."""

QUEUE_ALERTS = ("QueueDepthHigh", "QueueWithoutConsumers", "TaskProcessingStalled",
                "OldestQueuedTaskTooOld", "OutboxBacklog", "PublishFailing",
                "SloQueueWaitBudgetBurn", "AgentsMissing")
DATABASE_ALERTS = ("ApiLatencyHigh", "ApiErrorRatioHigh", "DbPoolUsageHigh", "DbPoolExhausted",
                   "TaskProcessingStalled", "OldestQueuedTaskTooOld", "OutboxBacklog",
                   "SloApiAvailabilityBudgetBurn", "SloQueueWaitBudgetBurn")
INHIBITIONS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    # (source alert, the alerts it silences while it fires, labels that must be equal)
    ("RabbitmqDown", (*QUEUE_ALERTS, "RabbitmqNodeDown", "QuorumQueueMembersOffline"), ()),
    ("DatabaseDown", DATABASE_ALERTS, ()),
    ("ApiDown", ("SloApiAvailabilityBudgetBurn", "ApiLatencyHigh", "ApiErrorRatioHigh"), ()),
    ("AgentsMissing", ("AgentHeartbeatStale", "OldestQueuedTaskTooOld"), ("agent",)),
    ("AgentsMissing", ("SloQueueWaitBudgetBurn", "TaskProcessingStalled"), ()),
)


GROUP_BY = ["alertname", "service", "agent", "queue", "instance"]
"""One notification group per alert and affected agent/queue/process, so each page carries its
own alert's runbook link; alerts with ``fold`` labels group without them (one incident, one
page)."""
SUMMARY = ("{{ if .CommonAnnotations.summary }}{{ .CommonAnnotations.summary }}{{ else }}"
           "{{ range $i, $a := .Alerts.Firing }}{{ if $i }}; {{ end }}"
           "{{ $a.Annotations.summary }}{{ end }}{{ end }}")
"""The alert's summary; for a folded group, the summaries of its firing alerts in one line."""


def alertmanager_config(*, pagerduty_url: str = PAGERDUTY_EVENTS_URL,
                        routing_key_file: str = ROUTING_KEY_FILE,
                        chat_webhook_url: str = CHAT_WEBHOOK_URL,
                        group_wait: str = "30s", group_interval: str = "5m") -> dict[str, Any]:
    details = {"summary": SUMMARY,
               "description": "{{ .CommonAnnotations.description }}",
               "runbook_url": "{{ .CommonAnnotations.runbook_url }}",
               "dashboard_url": "{{ .CommonAnnotations.dashboard_url }}",
               "firing": "{{ .Alerts.Firing | len }}",
               "scenario": "{{ .CommonLabels.scenario }}"}
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "chat",
            "group_by": GROUP_BY,
            "group_wait": group_wait, "group_interval": group_interval, "repeat_interval": "4h",
            "routes": [*_folded_routes(), *_severity_routes()],
        },
        "inhibit_rules": [
            {"source_matchers": [f'alertname="{source}"'],
             "target_matchers": [f'alertname=~"{"|".join(targets)}"'],
             **({"equal": list(equal)} if equal else {})}
            for source, targets, equal in INHIBITIONS
        ] + [{"source_matchers": ['severity="critical"'],
              "target_matchers": ['severity="warning"'],
              "equal": ["alertname", "service", "agent", "queue", "instance"]}],
        "receivers": [
            {"name": "pagerduty", "pagerduty_configs": [{
                "url": pagerduty_url,
                "routing_key_file": routing_key_file,
                "send_resolved": True,
                "severity": "{{ .CommonLabels.severity }}",
                "description": SUMMARY,
                "client": "orchestrator alertmanager",
                "details": details,
                "links": [{"href": "{{ .CommonAnnotations.runbook_url }}", "text": "Runbook"},
                          {"href": "{{ .CommonAnnotations.dashboard_url }}",
                           "text": "Dashboard"}],
            }]},
            {"name": "chat", "webhook_configs": [{"url": chat_webhook_url,
                                                  "send_resolved": True}]},
        ],
    }


def _severity_routes() -> list[dict[str, Any]]:
    return [{"matchers": ['severity="critical"'], "receiver": "pagerduty", "repeat_interval": "1h"},
            {"matchers": ['severity="warning"'], "receiver": "chat"}]


def _folded_routes() -> list[dict[str, Any]]:
    """An alert whose ``fold`` labels vary within one incident gets a route grouping without
    them (then routed by severity like every other)."""
    return [{"matchers": [f'alertname="{t.alert}"'],
             "group_by": [label for label in GROUP_BY if label not in t.fold],
             "routes": _severity_routes()}
            for t in THRESHOLDS if t.fold]
