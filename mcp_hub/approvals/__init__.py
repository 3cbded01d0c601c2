"""Human approval of sensitive tool calls (issue 4; docs/approvals.md).

`policy` (which calls are held, who decides), `reasons` (what held an action, recorded then, against the rules as
they read now), `service` (durable actions: hold, decide, run once, expire),
`tasks` (the Tasks extension front for 2026-07-28 clients), `webhooks` (signed announcements), `feed` (a
process-wide change signal for live pages), `presentation` (links, JSON, durations for people).
"""
