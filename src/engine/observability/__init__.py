"""What the engine tells an operator about itself: metrics (``metrics``), and beside them traces and logs."""
