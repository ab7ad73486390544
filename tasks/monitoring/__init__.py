"""Monitoring and troubleshooting: probes, traffic metrics, samples, alert rules, health assessment, diagnostics, run state."""
