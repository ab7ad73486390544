"""The setup that is code: work pool, blocks, automations, concurrency limits, and the `serve` entry."""
