"""What the engine tells a monitoring stack: traces (``engine.observability.tracing``)."""
