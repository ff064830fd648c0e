"""alertmanager.yml: critical pages PagerDuty (Events API v2), warning goes to the chat webhook;
grouped by alert and service; a broken dependency silences the alerts it causes."""

from __future__ import annotations

from typing import Any

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
ROUTING_KEY_FILE = "/alertmanager/pagerduty-routing-key"
"""Written from PAGERDUTY_ROUTING_KEY (stack/pagerduty.env) when the container starts."""
CHAT_WEBHOOK_URL = "http://127.0.0.1:9095/alerts"

QUEUE_ALERTS = ("QueueDepthHigh", "QueueWithoutConsumers", "TaskProcessingStalled",
                "OldestQueuedTaskTooOld", "OutboxBacklog", "PublishFailing",
                "SloQueueWaitBudgetBurn", "AgentsMissing")
DATABASE_ALERTS = ("ApiLatencyHigh", "ApiErrorRatioHigh", "DbPoolUsageHigh", "DbPoolExhausted",
                   "TaskProcessingStalled", "OldestQueuedTaskTooOld", "OutboxBacklog",
                   "SloApiAvailabilityBudgetBurn", "SloQueueWaitBudgetBurn")
INHIBITIONS = {"RabbitmqDown": QUEUE_ALERTS, "DatabaseDown": DATABASE_ALERTS,
               "ApiDown": ("SloApiAvailabilityBudgetBurn", "ApiLatencyHigh", "ApiErrorRatioHigh")}


GROUP_BY = ["alertname", "service", "agent", "queue", "instance"]
"""One notification group per alert and affected agent/queue/process: each page's summary is
that alert's own (a group mixing several would have no common summary, and PagerDuty refuses
an event without one)."""
SUMMARY = ("{{ if .CommonAnnotations.summary }}{{ .CommonAnnotations.summary }}"
           "{{ else }}{{ .GroupLabels.alertname }}: {{ .Alerts.Firing | len }} firing{{ end }}")


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
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "pagerduty",
                 "repeat_interval": "1h"},
                {"matchers": ['severity="warning"'], "receiver": "chat"},
            ],
        },
        "inhibit_rules": [
            {"source_matchers": [f'alertname="{source}"'],
             "target_matchers": [f'alertname=~"{"|".join(targets)}"']}
            for source, targets in INHIBITIONS.items()
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
