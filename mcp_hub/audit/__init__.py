"""The audit trail: every tool call through the hub, written to the database in batches."""

from mcp_hub.audit.writer import AuditWriter

__all__ = ["AuditWriter"]
