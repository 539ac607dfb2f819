"""One named flow per use case: services change the state, posts tell Slack, in that order.

Listeners, the scheduler, the worker, the CLI and the console call a flow; a flow calls services
and posts, and publishes queue jobs (``bot.queue``) only after its commit. Nothing below calls a
flow.
"""
