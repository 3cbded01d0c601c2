"""The downstream side: one long-lived connection per connector (`connection`), all of them (`pool`), their
transports (`transport`), health (`health`), the hub's own OAuth client for protected downstreams (`oauth`),
and forwarding without typed-model round trips (`_raw`)."""
