"""The audit trail: every request through the hub, written to the database in batches, hash-chained
(docs/audit.md).

| module | what |
|---|---|
| `writer` | `AuditWriter`: the batching queue; observers of recorded events, listeners of stored batches |
| `verify` | `verify_chain`: the walk that names the first tampered row or checkpoint |
| `retention` | `AuditRetention`: the `[audit] retention_days` prune task |
| `sinks` | `AuditSinks`, `WebhookSink`, `SyslogSink`: stored records forwarded off the hub |
"""

from mcp_hub.audit.writer import AuditWriter

__all__ = ["AuditWriter"]
