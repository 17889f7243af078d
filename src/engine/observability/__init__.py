"""What the engine tells an operator and a monitoring stack about itself: metrics (``metrics``), traces
(``tracing``) and structured logs (``logs``)."""
