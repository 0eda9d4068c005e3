"""Detection inside the daemon: coverage, rule activation, evaluation, alerts, state."""
