"""What an operator watches: Prometheus metrics (`metrics`, served by `endpoint`) and OpenTelemetry traces
(`tracing`). docs/observability.md names every metric, label and span."""
