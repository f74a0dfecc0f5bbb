"""What is stale and why: the graph of steps, the staleness reasons, and the no-op
shortcuts (the graph cache, the up-to-date snapshot), which are only caches.

May import `define` and `store`; never runs a step.
"""
