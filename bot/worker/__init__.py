"""The verification worker: the Celery tasks (``tasks``), one verification run
(``verification``), its lease (``lease``), the per-process caches and warm-up (``runtime``,
``warmup``) and local worker processes (``processes``).

This package may load torch (all but ``processes``, which the bot uses to start workers); the
bot publishes jobs through ``bot.queue`` without importing it.
"""
